"""``MotoServer.checkpoint_tables`` and ``reset(tables=…)``: the tables every ``moto_env`` test
starts from are copies that behave as tables created through the API, and start empty each
time, whatever the test before wrote."""

from __future__ import annotations

from typing import Any

from botocore.client import BaseClient

from fakes.moto import MotoServer
from functions.contract import TABLES, TableSchema
from tests.support.moto_server import create_tables


def described(dynamodb: BaseClient, prefix: str) -> dict[str, Any]:
    """Each table's description and TTL, its name's prefix and its creation time left out."""
    found = {}
    for schema in TABLES:
        name = f"{prefix}-{schema.suffix}"
        table = dynamodb.describe_table(TableName=name)["Table"]
        del table["CreationDateTime"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        text = repr((table, ttl)).replace(name, schema.suffix)
        found[schema.suffix] = text
    return found


def items(dynamodb: BaseClient, name: str) -> list[dict[str, Any]]:
    return dynamodb.scan(TableName=name)["Items"]


def item(schema: TableSchema, text: str) -> dict[str, Any]:
    """An item with every key attribute of ``schema``: 1 for numbers, ``text`` for strings."""
    return {key.name: {key.type: "1" if key.type == "N" else text} for key in schema.attributes}


def with_tables(moto_server: MotoServer, dynamodb: BaseClient, prefix: str) -> BaseClient:
    """Nothing in moto but the contract's tables, named ``<prefix>-<suffix>``."""
    moto_server.reset()
    create_tables(dynamodb, prefix)
    return dynamodb


def test_restored_tables_describe_and_work_as_tables_created_now(
    moto_server: MotoServer, _moto_admin: tuple[BaseClient, BaseClient]
) -> None:
    dynamodb = with_tables(moto_server, _moto_admin[0], "kept")
    checkpoint = moto_server.checkpoint_tables()
    moto_server.reset(tables=checkpoint)
    create_tables(dynamodb, "new")  # beside the restored ones, through the API
    assert described(dynamodb, "kept") == described(dynamodb, "new")
    assert sorted(dynamodb.list_tables()["TableNames"]) == sorted(
        f"{prefix}-{schema.suffix}" for prefix in ("kept", "new") for schema in TABLES
    )
    sessions = next(schema for schema in TABLES if schema.suffix == "sessions")
    index = sessions.indexes[0]
    written = item(sessions, "value")
    dynamodb.put_item(TableName="kept-sessions", Item=written)
    found = dynamodb.query(
        TableName="kept-sessions",
        IndexName=index.name,
        KeyConditionExpression="#k = :v",
        ExpressionAttributeNames={"#k": index.hash_key.name},
        ExpressionAttributeValues={":v": written[index.hash_key.name]},
    )["Items"]
    assert found == [written]


def test_each_restore_starts_from_the_checkpoint_whatever_was_written(
    moto_server: MotoServer, _moto_admin: tuple[BaseClient, BaseClient]
) -> None:
    dynamodb = with_tables(moto_server, _moto_admin[0], "c")
    schema = TABLES[0]
    name = f"c-{schema.suffix}"
    kept = item(schema, "kept")
    dynamodb.put_item(TableName=name, Item=kept)
    checkpoint = moto_server.checkpoint_tables()
    later = kept | {schema.hash_key.name: {schema.hash_key.type: "2"}}
    for _ in range(2):  # written after the checkpoint, or after a restore: both forgotten
        dynamodb.put_item(TableName=name, Item=later)
        dynamodb.delete_item(TableName=name, Key={key: kept[key] for key in kept})
        assert items(dynamodb, name) == [later]
        moto_server.reset(tables=checkpoint)
        assert items(dynamodb, name) == [kept]
    moto_server.reset()
    assert dynamodb.list_tables()["TableNames"] == []
