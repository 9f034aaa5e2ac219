"""The capacity meter prices requests by DynamoDB's published rules (the bench's request-unit
figures rest on it)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from fakes.dynamodb_meter import CapacityMeter, attribute_size, item_size
from fakes.moto import MotoServer, aws_env
from functions.contract import MESSAGES, SESSIONS
from tests.support.moto_server import create_table


def test_attribute_sizes_follow_the_published_rules() -> None:
    assert attribute_size({"S": "hello"}) == 5
    assert attribute_size({"S": "漢"}) == 3  # UTF-8 bytes
    assert attribute_size({"N": "123"}) == 3  # 2 bytes for 3 digits, plus 1
    assert attribute_size({"N": "1200"}) == 2  # trailing zeros are trimmed
    assert attribute_size({"BOOL": True}) == 1
    assert attribute_size({"M": {"ab": {"N": "1"}}}) == 3 + 1 + 2 + 2
    assert attribute_size({"L": [{"S": "x"}, {"S": "yz"}]}) == 3 + (1 + 1) + (1 + 2)
    assert item_size({"name": {"S": "hello"}, "n": {"N": "7"}}) == 4 + 5 + 1 + 2


@pytest.fixture
def meter(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[CapacityMeter, object]]:
    moto_server.reset()
    for name, value in aws_env(moto_server.url).items():
        monkeypatch.setenv(name, value)
    client = boto3.client("dynamodb", endpoint_url=moto_server.url)
    create_table(client, SESSIONS, "s")
    create_table(client, MESSAGES, "m")
    with CapacityMeter(moto_server.url, {"s": SESSIONS, "m": MESSAGES}) as proxy:
        yield proxy, boto3.client("dynamodb", endpoint_url=proxy.url)


def _session(last_activity: str, title: str = "t") -> dict:
    return {
        "session_id": {"S": "s1"},
        "user_id": {"S": "u"},
        "last_activity": {"S": last_activity},
        "title": {"S": title},
        "blob": {"S": "x" * 1500},
    }


def test_writes_are_priced_per_kb_with_their_index_writes(meter: tuple) -> None:
    proxy, client = meter
    client.put_item(TableName="s", Item=_session("2026-01-01"))  # 1.5 KB: 2 + index put 2
    assert proxy.totals()["write_units"] == 4
    proxy.reset()
    client.update_item(  # the index key changes: item 2 + index delete 2 + index put 2
        TableName="s",
        Key={"session_id": {"S": "s1"}},
        UpdateExpression="SET last_activity = :now",
        ExpressionAttributeValues={":now": {"S": "2026-01-02"}},
    )
    assert proxy.totals()["write_units"] == 6
    proxy.reset()
    client.update_item(  # only a projected attribute changes: item 2 + one index write 2
        TableName="s",
        Key={"session_id": {"S": "s1"}},
        UpdateExpression="SET title = :title",
        ExpressionAttributeValues={":title": {"S": "new"}},
    )
    assert proxy.totals()["write_units"] == 4


def test_reads_are_priced_per_4_kb_and_halved_when_eventually_consistent(meter: tuple) -> None:
    proxy, client = meter
    for seq in range(10):  # ten items of about 1 KB
        client.put_item(
            TableName="m",
            Item={"session_id": {"S": "s1"}, "seq": {"N": str(seq)}, "c": {"S": "x" * 1000}},
        )
    proxy.reset()
    query = {
        "TableName": "m",
        "KeyConditionExpression": "session_id = :s",
        "ExpressionAttributeValues": {":s": {"S": "s1"}},
    }
    client.query(**query, ConsistentRead=True)
    assert proxy.totals()["read_units"] == 3  # ~10 KB -> 3 x 4 KB
    proxy.reset()
    client.query(**query)
    assert proxy.totals()["read_units"] == 1.5
    proxy.reset()
    client.get_item(TableName="m", Key={"session_id": {"S": "s1"}, "seq": {"N": "1"}})
    assert proxy.totals() == {"read_units": 0.5, "write_units": 0, "requests": {"GetItem": 1}}


def test_transaction_items_cost_twice_and_condition_checks_count(meter: tuple) -> None:
    proxy, client = meter
    client.put_item(TableName="s", Item=_session("2026-01-01"))
    proxy.reset()
    client.transact_write_items(
        TransactItems=[
            {
                "ConditionCheck": {
                    "TableName": "s",
                    "Key": {"session_id": {"S": "s1"}},
                    "ConditionExpression": "attribute_exists(session_id)",
                }
            },
            {"Put": {"TableName": "m", "Item": {"session_id": {"S": "s1"}, "seq": {"N": "1"}}}},
        ]
    )
    # the 1.5 KB session checked: 2 x 2; the small message put: 2 x 1
    assert proxy.totals()["write_units"] == 6
