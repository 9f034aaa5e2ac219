"""DynamoDB tables for the function tests, created from ``contract.TABLES`` on the moto server
of :mod:`fakes.moto`.

Usage::

    import boto3
    from fakes.moto import MotoServer, aws_env
    from tests.support.moto_server import create_tables

    with MotoServer() as server:
        for name, value in aws_env(server.url).items():
            monkeypatch.setenv(name, value)
        tables = create_tables(boto3.client("dynamodb"), prefix="aiassist-test")
        # tables == {"SESSIONS_TABLE_NAME": "aiassist-test-sessions", ...}
"""

from __future__ import annotations

from typing import Any

from botocore.client import BaseClient

from functions.contract import ATTACHMENTS_BUCKET_SUFFIX, TABLES, Env, Index, Key, TableSchema


def _key_schema(hash_key: Key, range_key: Key | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


def _gsi(index: Index) -> dict[str, Any]:
    return {
        "IndexName": index.name,
        "KeySchema": _key_schema(index.hash_key, index.range_key),
        "Projection": {"ProjectionType": "ALL"},
    }


def create_table(
    dynamodb: BaseClient, schema: TableSchema, name: str, stream_view_type: str | None = None
) -> str | None:
    """Create one table exactly as the stack declares it: keys, GSIs (ALL), on-demand, TTL,
    and a stream of ``stream_view_type`` when given (in the same request). Returns the
    stream's ARN, if any."""
    params: dict[str, Any] = {
        "TableName": name,
        "KeySchema": _key_schema(schema.hash_key, schema.range_key),
        "AttributeDefinitions": [
            {"AttributeName": key.name, "AttributeType": key.type} for key in schema.attributes
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if schema.indexes:
        params["GlobalSecondaryIndexes"] = [_gsi(index) for index in schema.indexes]
    if stream_view_type:
        params["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream_view_type}
    table = dynamodb.create_table(**params)["TableDescription"]
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.ttl_attribute},
    )
    return table.get("LatestStreamArn")


def create_pagination_key(kms: BaseClient) -> str:
    """An HMAC key as the stack declares its pagination key (HMAC_256, GenerateMac and
    VerifyMac only); returns its ARN, the value of ``PAGINATION_KEY_ARN``."""
    metadata = kms.create_key(
        KeySpec="HMAC_256",
        KeyUsage="GENERATE_VERIFY_MAC",
        Description="pagination token key (tests)",
    )["KeyMetadata"]
    return str(metadata["Arn"])


def create_tables(dynamodb: BaseClient, prefix: str) -> dict[str, str]:
    """Create every table of ``contract.TABLES`` as ``<prefix>-<suffix>``.

    Returns the environment the functions read, table env var -> table name, e.g.
    ``{"SESSIONS_TABLE_NAME": "p-sessions", "MESSAGES_TABLE_NAME": "p-messages", ...}``.
    """
    env: dict[str, str] = {}
    for schema in TABLES:
        name = f"{prefix}-{schema.suffix}"
        create_table(dynamodb, schema, name)
        env[schema.env] = name
    return env


def create_attachments_bucket(s3: BaseClient, prefix: str) -> dict[str, str]:
    """The attachments bucket as ``<prefix>-<ATTACHMENTS_BUCKET_SUFFIX>``; returns the
    environment the functions read, ``{"ATTACHMENTS_BUCKET_NAME": name}``."""
    name = f"{prefix}-{ATTACHMENTS_BUCKET_SUFFIX}"
    s3.create_bucket(Bucket=name)
    return {Env.ATTACHMENTS_BUCKET: name}
