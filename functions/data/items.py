"""DynamoDB's attribute-value form, through boto3's own serializers, and the key lookups every
repository shares.

The repositories keep the low-level client rather than boto3's resource layer, which does the
same conversion implicitly, because a resource is slower to create on a cold start: the first
DynamoDB resource took 99-133 ms on this project's machine, the first client 56-80 ms (three
fresh processes each, 2026-12-02).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from functions.contract import Index, Key, TableSchema

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from botocore.client import BaseClient


@functools.cache
def _converters() -> tuple[TypeSerializer, TypeDeserializer]:
    """Imported on first use, like boto3 itself (``functions.core.aws``): importing
    ``boto3.dynamodb`` imports all of boto3, which a cold start should not pay before the first
    request needs it."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def dynamodb_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` in DynamoDB's attribute-value form; None leaves the attribute out. Also builds
    ``ExpressionAttributeValues``, whose names are ``:placeholders``."""
    serialize = _converters()[0].serialize
    return {name: serialize(value) for name, value in values.items() if value is not None}


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's values as Python values; numbers as int, the only numbers this store writes."""
    deserialize = _converters()[1].deserialize
    return {name: _plain(deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    return value


def key_name(key: Key | None) -> str:
    """The attribute of a key the contract declares (a range key is optional in its type)."""
    assert key is not None, "the contract declares this key"
    return key.name


def keys_by_index(
    client: BaseClient, table: str, schema: TableSchema, index: Index, value: str
) -> Iterator[str]:
    """The table's hash keys of every item whose ``index`` hash key is ``value`` (all pages)."""
    paginator = client.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        IndexName=index.name,
        KeyConditionExpression="#hash = :value",
        ExpressionAttributeNames={"#hash": index.hash_key.name, "#key": schema.hash_key.name},
        ExpressionAttributeValues=dynamodb_item({":value": value}),
        ProjectionExpression="#key",
    ):
        for item in page.get("Items", []):
            yield plain_item(item)[schema.hash_key.name]
