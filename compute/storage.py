"""DynamoDB tables, built from the key schemas in ``functions.contract`` so the
infrastructure and the code that queries it cannot drift. Encrypted with the stack's key."""

from __future__ import annotations

from typing import Any

from cdktf import Fn, Op, Token
from constructs import Construct

from compute.config import ComputeConfig
from compute.expressions import is_expression
from compute.provider import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTableGlobalSecondaryIndex,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
    DynamodbTableTtl,
)
from functions.contract import SESSIONS, TABLES, TableSchema

# The sessions table's stream feeds the cleanup function, which needs only the removed
# session's key: KEYS_ONLY keeps titles and user ids out of the stream (and of the failure
# queue's retries), and makes each record as small as a record can be.
SESSIONS_STREAM_VIEW = "KEYS_ONLY"


class Storage(Construct):
    """The sessions table of the spec, plus the messages and connections tables the
    functions need, each with TTL, encryption at rest under the stack's key and optional
    PITR. The sessions table has a stream: every removal of a session, by its owner or by
    TTL, reaches the cleanup function, which deletes the session's messages."""

    def __init__(self, scope: Construct, id_: str, *, config: ComputeConfig, key_arn: str) -> None:
        super().__init__(scope, id_)
        self._key_arn = key_arn
        self.tables: dict[str, DynamodbTable] = {
            schema.suffix: self._table(schema, config) for schema in TABLES
        }

    def _table(self, schema: TableSchema, config: ComputeConfig) -> DynamodbTable:
        capacity = _capacity(config)
        return DynamodbTable(
            self,
            schema.suffix,
            name=f"{config.prefix}-{schema.suffix}",
            billing_mode=config.dynamodb_billing_mode,
            hash_key=schema.hash_key.name,
            range_key=schema.range_key.name if schema.range_key else None,
            attribute=[
                DynamodbTableAttribute(name=key.name, type=key.type) for key in schema.attributes
            ],
            global_secondary_index=[
                DynamodbTableGlobalSecondaryIndex(
                    name=index.name,
                    hash_key=index.hash_key.name,
                    range_key=index.range_key.name if index.range_key else None,
                    projection_type="ALL",
                    **capacity,
                )
                for index in schema.indexes
            ]
            or None,
            ttl=DynamodbTableTtl(attribute_name=schema.ttl_attribute, enabled=True),
            point_in_time_recovery=DynamodbTablePointInTimeRecovery(
                enabled=config.dynamodb_point_in_time_recovery
            ),
            server_side_encryption=DynamodbTableServerSideEncryption(
                enabled=True, kms_key_arn=self._key_arn
            ),
            deletion_protection_enabled=config.deletion_protection_enabled,
            **self._stream(schema),
            **capacity,
        )

    @staticmethod
    def _stream(schema: TableSchema) -> dict[str, object]:
        if schema is not SESSIONS:
            return {}
        return {"stream_enabled": True, "stream_view_type": SESSIONS_STREAM_VIEW}

    @property
    def sessions(self) -> DynamodbTable:
        return self.tables["sessions"]


def _capacity(config: ComputeConfig) -> dict[str, Any]:
    """Read and write capacity, which only provisioned tables (and their indexes) have. The
    module's billing mode is a variable: there each is null unless it is ``PROVISIONED``."""
    units = {
        "read_capacity": config.dynamodb_read_capacity,
        "write_capacity": config.dynamodb_write_capacity,
    }
    mode = config.dynamodb_billing_mode
    if is_expression(mode):
        provisioned = Op.eq(mode, "PROVISIONED")
        return {
            name: Token.as_number(Fn.conditional(provisioned, value, Token.null_value()))
            for name, value in units.items()
        }
    return units if mode == "PROVISIONED" else {}
