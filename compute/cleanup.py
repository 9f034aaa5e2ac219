"""Deletes that always finish: the path that removes the messages of every removed session.

Messages carry no TTL, so a session item removed by its owner or expired by DynamoDB's TTL
would leave its messages behind. The sessions table's stream (``KEYS_ONLY``, see
``storage``) records every removal; an event source mapping passes only the ``REMOVE``
records to the cleanup function, which deletes the messages of each removed session.

Failures are bounded and never silent. A failed record is retried (the function reports it in
``batchItemFailures``; a batch that fails as a whole is bisected) at most
:data:`MAXIMUM_RETRY_ATTEMPTS` times and for at most :data:`MAXIMUM_RECORD_AGE_SECONDS`; then
the mapping sends a description of the batch (shard and sequence numbers, not the records) to
an SQS queue encrypted with the stack's key, and an alarm pages whoever watches the alarm
topic. Without a bound, one record that always fails would block its shard until DynamoDB
trims the stream after 24 hours, and every later removal on that shard would be lost with it.
"""

from __future__ import annotations

import json

from constructs import Construct

from compute.config import ComputeConfig
from compute.provider import (
    DynamodbTable,
    LambdaEventSourceMapping,
    LambdaEventSourceMappingDestinationConfig,
    LambdaEventSourceMappingDestinationConfigOnFailure,
    LambdaEventSourceMappingFilterCriteria,
    LambdaEventSourceMappingFilterCriteriaFilter,
    LambdaFunction,
    SqsQueue,
)

# Only removals reach the function (and are billed): inserts and updates of sessions, by far
# the most records, are dropped by the mapping.
REMOVALS_ONLY = json.dumps({"eventName": ["REMOVE"]})
# TRIM_HORIZON: the mapping is created right after the stream, in the same apply, and must
# not skip the removals written in between (LATEST would start after them). Later it resumes
# from its checkpoint, whatever this says.
STARTING_POSITION = "TRIM_HORIZON"
# A record may delete thousands of messages (25 per BatchWriteItem): small batches keep an
# invocation far from its timeout.
BATCH_SIZE = 10
MAXIMUM_RETRY_ATTEMPTS = 5
# Long enough to outlast a throttling spell, short enough that the failed batch reaches the
# queue while its records are still in the stream (24 hours), so an operator can replay them.
MAXIMUM_RECORD_AGE_SECONDS = 6 * 3600
# SQS's longest retention: the batch description outlives any weekend.
FAILURE_RETENTION_SECONDS = 14 * 24 * 3600


class SessionCleanup(Construct):
    """The failure queue, created before the roles (the cleanup role may send to it), and,
    once the function exists, the mapping from the sessions stream to it (:meth:`connect`)."""

    def __init__(self, scope: Construct, id_: str, *, config: ComputeConfig, key_arn: str) -> None:
        super().__init__(scope, id_)
        self.failures = SqsQueue(
            self,
            "failures",
            name=f"{config.prefix}-cleanup-failures",
            kms_master_key_id=key_arn,
            message_retention_seconds=FAILURE_RETENTION_SECONDS,
        )
        self.mapping: LambdaEventSourceMapping | None = None

    def connect(self, *, function: LambdaFunction, sessions: DynamodbTable) -> None:
        """Feed the sessions table's stream to ``function``. The function depends on its role's
        policy, so the mapping, created after the function, finds the stream grants in place."""
        self.mapping = LambdaEventSourceMapping(
            self,
            "sessions-stream",
            event_source_arn=sessions.stream_arn,
            function_name=function.arn,
            starting_position=STARTING_POSITION,
            batch_size=BATCH_SIZE,
            filter_criteria=LambdaEventSourceMappingFilterCriteria(
                filter=[LambdaEventSourceMappingFilterCriteriaFilter(pattern=REMOVALS_ONLY)]
            ),
            function_response_types=["ReportBatchItemFailures"],
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=MAXIMUM_RETRY_ATTEMPTS,
            maximum_record_age_in_seconds=MAXIMUM_RECORD_AGE_SECONDS,
            destination_config=LambdaEventSourceMappingDestinationConfig(
                on_failure=LambdaEventSourceMappingDestinationConfigOnFailure(
                    destination_arn=self.failures.arn
                )
            ),
        )
