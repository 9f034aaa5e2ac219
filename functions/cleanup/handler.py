"""Lambda entry point of the session cleanup: DynamoDB Streams records of the sessions table.

Messages carry no TTL (an active session must not lose its oldest turns), so whatever removes
a session item, the owner's ``DELETE`` or DynamoDB's TTL, its messages would stay behind. The
stream of the sessions table sees every removal; the event source mapping passes only
``REMOVE`` records here, and this function deletes every message of each removed session,
then every attachment under its prefix in the attachments bucket.

Each record is processed on its own (Powertools' ``BatchProcessor``): a record that fails is
reported in ``batchItemFailures``, so Lambda checkpoints the records before it and retries
from it, instead of redoing the whole batch. Deleting is idempotent: a replayed record finds
no message left, deletes nothing and succeeds, so retrying the records after a failed one
costs one ``Query`` each.

The handler ignores anything but ``REMOVE`` itself, even though the mapping's filter already
drops them: the filter is infrastructure, and a mapping created without it must not make this
function delete the messages of a live session.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.cleanup.settings import Settings
from functions.contract import SESSIONS
from functions.core import aws, deadline
from functions.core.observability import count, logger, metrics, tracer
from functions.core.settings import get_settings
from functions.data.attachments import AttachmentStore
from functions.data.messages import MessageRepository

# The identity DynamoDB puts on the REMOVE records of items its TTL deleted.
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@functools.cache
def messages() -> MessageRepository:
    """The container's repository of the messages table, on the container's settings."""
    return MessageRepository(aws.client("dynamodb"), get_settings(Settings).messages_table)


@functools.cache
def attachments() -> AttachmentStore:
    """The container's store of the attachments bucket, on the container's settings."""
    return AttachmentStore(get_settings(Settings).attachments_bucket)


def removal_cause(record: DynamoDBRecord) -> str:
    """``"ttl"`` when DynamoDB's TTL expired the session, ``"delete"`` when a caller did."""
    identity = record.user_identity
    expired = all(identity.get(name) == value for name, value in TTL_IDENTITY.items())
    return "ttl" if expired else "delete"


def clean(record: DynamoDBRecord) -> int:
    """Delete the messages and attachments of the session a ``REMOVE`` record names; returns
    how many messages.

    Other records are skipped (0). Any failure propagates, so the batch processor reports
    this record as a batch item failure and Lambda retries it.
    """
    if record.event_name is not DynamoDBRecordEventName.REMOVE:
        logger.debug("not a removal; ignored", extra={"event_name": str(record.event_name)})
        return 0
    stream = record.dynamodb
    keys = stream.keys if stream else {}
    session_id = keys.get(SESSIONS.hash_key.name)
    if not isinstance(session_id, str) or not session_id:
        raise ValueError(f"REMOVE record {record.event_id} has no {SESSIONS.hash_key.name}")
    cause = removal_cause(record)
    details = {"session_id": session_id, "cause": cause, "event_id": record.event_id}
    try:
        deleted = messages().delete_all(session_id)
        files = attachments().delete_session(session_id)
    except Exception:
        logger.exception("could not delete the data of a removed session", extra=details)
        count("SessionCleanupFailures")
        raise
    logger.info(
        "deleted the messages and attachments of a removed session",
        extra={**details, "deleted": deleted, "attachments_deleted": files},
    )
    metrics.add_metric(name="MessagesDeleted", unit=MetricUnit.Count, value=deleted)
    metrics.add_metric(name="AttachmentsDeleted", unit=MetricUnit.Count, value=files)
    count("SessionsCleaned")
    return deleted


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """``{"batchItemFailures": [...]}``: the sequence numbers of the records to retry.

    A record whose deletes would run past the deadline fails (and is retried) rather than
    letting Lambda kill the invocation, which would retry the whole batch."""
    with deadline.bound(deadline.Deadline.of(context)):
        return dict(
            process_partial_response(
                event=event, record_handler=clean, processor=processor, context=context
            )
        )
