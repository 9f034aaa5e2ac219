"""DynamoDB Streams event source mappings for the dev server, and DynamoDB's TTL.

Lambda polls a table's stream for each ``aws_lambda_event_source_mapping`` and invokes the
function with batches of records; :class:`StreamPoller` does the same from the local
DynamoDB's own stream (moto records every write of a table whose stream is on), with the
mapping's settings as synthesized:

* records that match none of the filter patterns are dropped before the function sees them;
* batches of at most ``batch_size`` records, in stream order, as Lambda delivers them
  (``eventSourceARN`` added, ``ApproximateCreationDateTime`` in epoch seconds);
* with ``ReportBatchItemFailures``, a reply naming failed records makes the next attempt start
  at the first of them; an invocation that fails (raises, times out, is throttled) retries the
  whole batch, split in two first when ``bisect_batch_on_function_error`` is on;
* after ``maximum_retry_attempts`` retries, or once a record is older than
  ``maximum_record_age_in_seconds``, the batch's description (``DDBStreamBatchInfo``: shard,
  sequence numbers, size) goes to the failure destination: logged with the queue's name and
  kept in :attr:`StreamPoller.failures` (no SQS is run locally).

moto does not expire items. :class:`TtlSweeper` deletes the items past their TTL attribute, as
DynamoDB's TTL does (days late there, seconds here), and the poller marks the stream records of
those deletes with the identity DynamoDB gives them (``Service``,
``dynamodb.amazonaws.com``), so the cleanup sees a TTL expiry as one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devserver.lambda_pool import InvocationError
from devserver.stack import StackError, StreamMapping
from fakes.dynamodb_streams import StreamReader, as_ttl_expiry, lambda_record

POLL_SECONDS = 0.25  # Lambda polls each shard of a DynamoDB stream four times a second
SWEEP_SECONDS = 5.0

Invoke = Callable[[dict[str, Any]], Any]
Log = Callable[[str], None]


def matches(pattern: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    """Whether a record matches a Lambda filter pattern of exact values (the only rules the
    stack uses: ``{"eventName": ["REMOVE"]}``); other rules are refused, not guessed."""
    for name, rule in pattern.items():
        inner = value.get(name) if isinstance(value, Mapping) else None
        if isinstance(rule, Mapping):
            if not isinstance(inner, Mapping) or not matches(rule, inner):
                return False
        elif isinstance(rule, list):
            if any(isinstance(option, Mapping) for option in rule):
                raise StackError(f"filter rule {rule!r} is not emulated locally")
            if inner not in rule:
                return False
        else:
            raise StackError(f"filter rule {rule!r} is not a list of values")
    return True


@dataclass
class TtlSweeper:
    """Deletes expired items of the tables with a TTL, and remembers whose they were."""

    client: Any  # a DynamoDB client of the local endpoint
    tables: Mapping[str, tuple[str, tuple[str, ...]]]  # name -> (ttl attribute, key names)
    expired: set[tuple[str, str]] = field(default_factory=set)  # (table, key as JSON)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sweep(self) -> int:
        """Delete every item whose TTL has passed; returns how many."""
        now = int(time.time())
        deleted = 0
        for table, (attribute, key_names) in self.tables.items():
            paginator = self.client.get_paginator("scan")
            for page in paginator.paginate(
                TableName=table,
                FilterExpression="#ttl < :now",
                ExpressionAttributeNames={"#ttl": attribute},
                ExpressionAttributeValues={":now": {"N": str(now)}},
            ):
                for item in page.get("Items", []):
                    key = {name: item[name] for name in key_names}
                    with self._lock:
                        self.expired.add((table, _canonical(key)))
                    try:
                        self.client.delete_item(
                            TableName=table,
                            Key=key,
                            ConditionExpression="#ttl < :now",
                            ExpressionAttributeNames={"#ttl": attribute},
                            ExpressionAttributeValues={":now": {"N": str(now)}},
                        )
                        deleted += 1
                    except self.client.exceptions.ConditionalCheckFailedException:
                        continue  # written again meanwhile: no longer expired
        return deleted

    def was_expired(self, table: str, keys: Mapping[str, Any]) -> bool:
        with self._lock:
            return (table, _canonical(keys)) in self.expired


@dataclass
class StreamPoller:
    """One event source mapping: reads the stream, invokes the function (see the module)."""

    mapping: StreamMapping
    table_name: str
    stream_arn: str
    streams: Any  # a dynamodbstreams client of the local endpoint
    invoke: Invoke
    log: Log
    sweeper: TtlSweeper | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _reader: StreamReader = field(init=False)

    def __post_init__(self) -> None:
        self._reader = StreamReader(self.streams, self.stream_arn)

    def start(self) -> StreamPoller:
        if self.mapping.starting_position == "LATEST":
            self._reader.read()  # what was written before is never delivered
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.wait(POLL_SECONDS):
            try:
                self.poll()
            except Exception as error:  # the poller outlives a bad read, as Lambda's does
                self.log(f"reading {self.stream_arn} failed: {error!r}")

    def poll(self) -> int:
        """Deliver the records written since the last poll; returns how many were passed on."""
        records = [self._as_delivered(record) for record in self._reader.read()]
        wanted = [r for r in records if self._selected(r)]
        size = self.mapping.batch_size
        for start in range(0, len(wanted), size):
            self._deliver(wanted[start : start + size], self.mapping.maximum_retry_attempts)
        return len(wanted)

    def _as_delivered(self, record: dict[str, Any]) -> dict[str, Any]:
        event = lambda_record(record, self.stream_arn)
        expired = event.get("eventName") == "REMOVE" and self.sweeper is not None
        if expired and self.sweeper.was_expired(self.table_name, event["dynamodb"].get("Keys", {})):
            return as_ttl_expiry(event)
        return event

    def _selected(self, record: dict[str, Any]) -> bool:
        patterns = self.mapping.patterns
        return not patterns or any(matches(pattern, record) for pattern in patterns)

    def _deliver(self, batch: list[dict[str, Any]], retries_left: int) -> None:
        """Invoke until the batch is done, its retries are spent or its records too old."""
        while batch:
            if self._too_old(batch):
                self._send_to_destination(batch, "the record age limit was reached")
                return
            try:
                answer = self.invoke({"Records": batch})
            except InvocationError as error:
                self.log(f"invocation with {len(batch)} records failed: {error}")
                if retries_left == 0:
                    self._send_to_destination(batch, str(error))
                    return
                if self.mapping.bisect_batch_on_function_error and len(batch) > 1:
                    half = len(batch) // 2
                    self._deliver(batch[:half], retries_left - 1)
                    self._deliver(batch[half:], retries_left - 1)
                    return
                retries_left -= 1
                continue
            failed = self._first_failed(batch, answer)
            if failed is None:
                return
            if retries_left == 0:
                self._send_to_destination(batch[failed:], "batch item failures")
                return
            batch, retries_left = batch[failed:], retries_left - 1

    def _first_failed(self, batch: list[dict[str, Any]], answer: Any) -> int | None:
        """Index of the first record the function reported failed, or None when all passed."""
        if not self.mapping.report_batch_item_failures or not isinstance(answer, Mapping):
            return None
        failed = {item.get("itemIdentifier") for item in answer.get("batchItemFailures") or []}
        for index, record in enumerate(batch):
            if record["dynamodb"]["SequenceNumber"] in failed:
                return index
        return 0 if failed else None  # an identifier of no record: the whole batch

    def _too_old(self, batch: list[dict[str, Any]]) -> bool:
        limit = self.mapping.maximum_record_age_seconds
        oldest = min(
            int(r["dynamodb"].get("ApproximateCreationDateTime", time.time())) for r in batch
        )
        return limit >= 0 and time.time() - oldest > limit

    def _send_to_destination(self, batch: list[dict[str, Any]], reason: str) -> None:
        info = {
            "DDBStreamBatchInfo": {
                "streamArn": self.stream_arn,
                "shardId": "local",
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(batch),
            },
            "reason": reason,
        }
        self.failures.append(info)
        self.log(
            f"retries spent; to the failure destination {self.mapping.failure_destination}: "
            + json.dumps(info)
        )


def _canonical(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)
