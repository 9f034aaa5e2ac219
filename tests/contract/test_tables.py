"""The tables' key schemas: synthesized, in the contract, in the moto tables the function tests
use, and in the requests the code really sends.

The code's side is read from its requests (recorded during the enforced run, which drives every
route against the synthesized table names): every ``Key`` it sends, every item it puts, every
index it queries and every attribute its key conditions name must match the synthesized key
schema of the table it addresses.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest

from functions.contract import TABLES, TableSchema
from tests.compute.synth import STACKS
from tests.security.code_paths import Run
from tests.security.synthesized import Stack

pytestmark = STACKS

parametrize_tables = pytest.mark.parametrize("schema", TABLES, ids=lambda s: s.suffix)
_KEYWORDS = {"AND", "BETWEEN", "begins_with"}


def synthesized_table(stack: Stack, schema: TableSchema) -> dict[str, Any]:
    return stack.tables()[stack.table_names()[schema.env]]


def key_schema(table: dict[str, Any]) -> list[tuple[str, str]]:
    """[(name, HASH|RANGE)] of a synthesized table or GSI."""
    keys = [(table["hash_key"], "HASH")]
    if table.get("range_key"):
        keys.append((table["range_key"], "RANGE"))
    return keys


def indexes(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {index["name"]: index for index in table.get("global_secondary_index", [])}


def attribute_types(table: dict[str, Any]) -> dict[str, str]:
    return {attribute["name"]: attribute["type"] for attribute in table["attribute"]}


@parametrize_tables
def test_synthesized_tables_match_the_contract(stack: Stack, schema: TableSchema) -> None:
    """Mutations caught: a key renamed or retyped on either side, a GSI renamed or given
    other keys or a partial projection (the list query reads every attribute), TTL on
    another attribute."""
    table = synthesized_table(stack, schema)
    expected = [(schema.hash_key.name, "HASH")]
    if schema.range_key:
        expected.append((schema.range_key.name, "RANGE"))
    assert key_schema(table) == expected
    assert attribute_types(table) == {key.name: key.type for key in schema.attributes}
    assert len(table["attribute"]) == len(schema.attributes)
    contract_indexes = {index.name: index for index in schema.indexes}
    assert set(indexes(table)) == set(contract_indexes)
    for name, index in indexes(table).items():
        wanted = contract_indexes[name]
        assert index["hash_key"] == wanted.hash_key.name
        assert index.get("range_key") == (wanted.range_key.name if wanted.range_key else None)
        assert index["projection_type"] == "ALL"
    assert table["ttl"] == {"attribute_name": schema.ttl_attribute, "enabled": True}


def test_the_stack_has_exactly_the_contract_tables(stack: Stack) -> None:
    """Mutation caught: a table the code never uses, or two env vars naming one table."""
    names = stack.table_names()
    assert set(names) == {schema.env for schema in TABLES}
    assert set(names.values()) == set(stack.tables())


@parametrize_tables
def test_the_function_tests_tables_match_the_synthesized_ones(
    stack: Stack, schema: TableSchema, moto_env: dict[str, str]
) -> None:
    """The tables tests.support.moto_server.create_tables makes for the function tests are
    the deployed ones: same keys, types, indexes and TTL. Mutation caught: the helper
    drifting from the stack (the function tests would pass against a table that does not
    exist in AWS)."""
    client = boto3.client("dynamodb")
    name = moto_env[schema.env]
    described = client.describe_table(TableName=name)["Table"]
    table = synthesized_table(stack, schema)
    assert [(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]] == key_schema(table)
    assert {
        d["AttributeName"]: d["AttributeType"] for d in described["AttributeDefinitions"]
    } == attribute_types(table)
    described_indexes = {i["IndexName"]: i for i in described.get("GlobalSecondaryIndexes", [])}
    assert set(described_indexes) == set(indexes(table))
    for index_name, index in indexes(table).items():
        found = described_indexes[index_name]
        assert [(k["AttributeName"], k["KeyType"]) for k in found["KeySchema"]] == key_schema(index)
        assert found["Projection"]["ProjectionType"] == index["projection_type"]
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == table["ttl"]["attribute_name"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def _key_condition_attributes(params: dict[str, Any]) -> set[str]:
    names = params.get("ExpressionAttributeNames", {})
    tokens = re.findall(r"(?<![:\w])#?[A-Za-z_]\w*", params["KeyConditionExpression"])
    return {names.get(token, token) for token in tokens if token not in _KEYWORDS}


def _check_key(table: dict[str, Any], key: dict[str, Any], where: str) -> None:
    """``key`` holds exactly the table's key attributes, each of its declared type."""
    types = attribute_types(table)
    assert sorted(key) == sorted(name for name, _ in key_schema(table)), where
    for name, value in key.items():
        assert set(value) == {types[name]}, f"{where}: {name} is {value}, declared {types[name]}"


def _check_indexed(table: dict[str, Any], item: dict[str, Any], where: str) -> None:
    """A whole item carries every key of every index, each of its declared type: no index of
    this stack is sparse (every session must be listable, every connection findable)."""
    types = attribute_types(table)
    for name, index in indexes(table).items():
        for key, _ in key_schema(index):
            assert key in item, (
                f"{where}: the item is missing {name}'s key {key}, so {name} skips it"
            )
            assert set(item[key]) == {types[key]}, f"{where}: {key} is {item[key]}"


_SET = re.compile(r"(#?\w+)\s*=\s*(:\w+)")


def _check_update(table: dict[str, Any], params: dict[str, Any], where: str) -> None:
    """An update never removes an index key and sets index keys only to their declared type."""
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    types = attribute_types(table)
    indexed = {key for index in indexes(table).values() for key, _ in key_schema(index)}
    expression = params.get("UpdateExpression", "")
    set_part, _, remove_part = expression.partition(" REMOVE ")
    for token, placeholder in _SET.findall(set_part.removeprefix("SET ")):
        attribute = names.get(token, token)
        if attribute in indexed:
            value = values[placeholder]
            assert set(value) == {types[attribute]}, f"{where}: sets {attribute} to {value}"
    removed = {names.get(token.strip(), token.strip()) for token in remove_part.split(",")}
    assert not removed & indexed, f"{where}: removes index keys {removed & indexed}"


def _check_call(stack: Stack, operation: str, params: dict[str, Any]) -> None:
    if operation == "BatchWriteItem":
        for name, requests in params["RequestItems"].items():
            for request in requests:
                for kind, body in request.items():
                    key = body["Key"] if kind == "DeleteRequest" else body["Item"]
                    table = stack.tables()[name]
                    subset = {k: key[k] for k, _ in key_schema(table) if k in key}
                    _check_key(table, subset if kind == "PutRequest" else key, operation)
                    if kind == "PutRequest":
                        _check_indexed(table, key, operation)
        return
    table = stack.tables()[params["TableName"]]
    where = f"{operation} on {params['TableName']}"
    if "Key" in params:
        _check_key(table, params["Key"], where)
    if operation == "PutItem":
        item = params["Item"]
        missing = [name for name, _ in key_schema(table) if name not in item]
        assert not missing, f"{where}: item without key attributes {missing}"
        _check_key(table, {name: item[name] for name, _ in key_schema(table)}, where)
        _check_indexed(table, item, where)
    if operation == "UpdateItem":
        _check_update(table, params, where)
    if operation == "Query":
        target = indexes(table)[params["IndexName"]] if "IndexName" in params else table
        keys = [name for name, _ in key_schema(target)]
        attributes = _key_condition_attributes(params)
        assert keys[0] in attributes and attributes <= set(keys), f"{where}: {attributes}"


def test_the_codes_requests_match_the_synthesized_key_schemas(run: Run) -> None:
    """Mutations caught: store.py querying an index name the stack does not declare, a key
    attribute renamed in the code (``sessionId``) or sent with another type (``seq`` as a
    string), a key condition on a non-key attribute; an index key renamed on one side only
    (the contract's ``USER_INDEX`` sort key renamed, the store writing the old name: sessions
    drop out of the index), an update that sets an index key to another type or removes it."""
    calls = [call for record in run.functions.values() for call in record.calls]
    operations = {call.operation for call in calls if call.service == "dynamodb"}
    assert {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "BatchWriteItem",
    } <= operations
    for call in calls:
        if call.service == "dynamodb":
            _check_call(run.stack, call.operation, dict(call.params))
