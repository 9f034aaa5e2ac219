"""``fakes.dynamodb_streams.StreamReader`` on moto's stream: each read returns exactly the
records written since the last one, fetches only those, and keeps up after a transaction that
failed its condition (when moto puts back a copy of the table, stream included)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from fakes.dynamodb_streams import StreamReader, enable_stream

TABLE = "streamed"


@pytest.fixture
def dynamodb(moto_env: dict[str, str]) -> BaseClient:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


@pytest.fixture
def fetched() -> list[int]:
    """How many records each ``GetRecords`` call of the reader's client returned."""
    return []


@pytest.fixture
def described() -> list[str]:
    """The streams each ``DescribeStream`` call of the reader's client asked for."""
    return []


@pytest.fixture
def reader(dynamodb: BaseClient, fetched: list[int], described: list[str]) -> StreamReader:
    streams = boto3.client("dynamodbstreams")

    def count(parsed: dict[str, Any], **_: Any) -> None:
        fetched.append(len(parsed.get("Records", [])))

    def describing(params: dict[str, Any], **_: Any) -> None:
        described.append(params["StreamArn"])

    streams.meta.events.register("after-call.dynamodbstreams.GetRecords", count)
    streams.meta.events.register("provide-client-params.dynamodbstreams.DescribeStream", describing)
    return StreamReader(streams, enable_stream(dynamodb, TABLE))


def put(dynamodb: BaseClient, *ids: str) -> None:
    for item_id in ids:
        dynamodb.put_item(TableName=TABLE, Item={"id": {"S": item_id}})


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["dynamodb"]["Keys"]["id"]["S"] for record in records]


def test_each_read_returns_and_fetches_only_what_was_written_since(
    dynamodb: BaseClient, reader: StreamReader, fetched: list[int], described: list[str]
) -> None:
    put(dynamodb, *(f"a{n}" for n in range(30)))
    assert ids(reader.read()) == [f"a{n}" for n in range(30)]
    assert reader.read() == []
    put(dynamodb, "b0", "b1")
    fetched.clear()
    assert ids(reader.read()) == ["b0", "b1"]
    assert sum(fetched) == 2  # not the 30 read before
    assert reader.read() == []
    assert described == [reader.arn]  # its one shard, described once for five reads


def test_a_failed_transaction_does_not_hide_later_records(
    dynamodb: BaseClient, reader: StreamReader
) -> None:
    put(dynamodb, "first")
    assert ids(reader.read()) == ["first"]
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"id": {"S": "never"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"id": {"S": "first"}},
                        "ConditionExpression": "attribute_not_exists(id)",
                    }
                },
            ]
        )
    put(dynamodb, "second")
    assert ids(reader.read()) == ["second"]
