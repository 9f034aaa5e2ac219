"""DynamoDB Streams as a Lambda event source mapping sees them, read from moto's own stream.

moto implements the streams data plane (``DescribeStream``, ``GetShardIterator``,
``GetRecords``) and records every write of a table whose stream is on, so the tests build the
events of the cleanup function from real stream records instead of hand-written JSON, and the
dev server's event source mappings (``devserver.streams``) read their batches here too.
:func:`lambda_event` turns them into what Lambda delivers: the record as ``GetRecords``
returns it, plus ``eventSourceARN``, with ``ApproximateCreationDateTime`` in epoch seconds
(boto3 parses it into a datetime; Lambda passes the number).

Usage::

    reader = StreamReader(boto3.client("dynamodbstreams"), stream_arn)
    ...writes to the table...
    event = lambda_event(reader.read(), stream_arn)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from botocore.client import BaseClient

# What DynamoDB puts on the REMOVE records of items its TTL deleted.
TTL_USER_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def enable_stream(dynamodb: BaseClient, table: str, view_type: str = "KEYS_ONLY") -> str:
    """Turn the table's stream on; returns its ARN."""
    response = dynamodb.update_table(
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
    )
    return response["TableDescription"]["LatestStreamArn"]


class StreamReader:
    """Reads a stream's shards from the start, like a mapping with ``TRIM_HORIZON``; each
    :meth:`read` returns the records written since the previous one.

    Each read asks for a new iterator after the last sequence number it returned from each
    shard. An iterator kept between reads goes stale under moto: a transaction cancelled by
    its condition puts back a copy of every table taken before it, stream included, and the
    kept iterator goes on reading the replaced stream, which holds the cancelled write's
    record and gets none of the later ones. Reading every shard from the start each time
    avoided that too, but then each poll cost as much as all the records ever written: a dev
    server that had written 500 sessions spent 42% of a core polling while idle.

    moto gives a stream one shard for the stream's whole life, so the shards are described
    once, not at every poll (a third of an idle dev server's requests).
    """

    def __init__(self, streams: BaseClient, stream_arn: str) -> None:
        self._streams = streams
        self._arn = stream_arn
        self._shards: list[str] | None = None
        self._last: dict[str, str] = {}  # shard id -> the last sequence number returned

    @property
    def arn(self) -> str:
        return self._arn

    def read(self) -> list[dict[str, Any]]:
        if self._shards is None:
            description = self._streams.describe_stream(StreamArn=self._arn)
            self._shards = [
                shard["ShardId"] for shard in description["StreamDescription"]["Shards"]
            ]
        records: list[dict[str, Any]] = []
        for shard_id in self._shards:
            shard_records = self._read_shard(shard_id)
            if shard_records:
                self._last[shard_id] = _sequence(shard_records[-1])
            records += shard_records
        return records

    def _read_shard(self, shard_id: str) -> list[dict[str, Any]]:
        position: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if shard_id in self._last:
            position = {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "SequenceNumber": self._last[shard_id],
            }
        iterator = self._streams.get_shard_iterator(
            StreamArn=self._arn, ShardId=shard_id, **position
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = self._streams.get_records(ShardIterator=iterator)
            if not page["Records"]:
                break
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
        return records


def _sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """One ``GetRecords`` record as Lambda delivers it to the function."""
    event = copy.deepcopy(record)
    stream = event["dynamodb"]
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    event["eventSourceARN"] = stream_arn
    return event


def lambda_event(records: Iterable[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    return {"Records": [lambda_record(record, stream_arn) for record in records]}


def as_ttl_expiry(record: dict[str, Any]) -> dict[str, Any]:
    """The same REMOVE as DynamoDB's TTL writes it (moto does not expire items itself)."""
    assert record["eventName"] == "REMOVE", record["eventName"]
    return {**record, "userIdentity": dict(TTL_USER_IDENTITY)}
