"""The connections table: one item per open WebSocket and the user it authenticated as, with
a TTL a little past API Gateway's 2 h connection limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from functions.contract import CONNECTION_TTL_SECONDS, CONNECTIONS, USER_CONNECTIONS
from functions.core.clock import epoch_seconds, timestamp, utc_now
from functions.data.items import dynamodb_item, keys_by_index, plain_item
from functions.domain.models import Connection

if TYPE_CHECKING:
    from botocore.client import BaseClient

CONNECTION_ID = CONNECTIONS.hash_key.name
CONNECTION_OWNER = USER_CONNECTIONS.hash_key.name
CONNECTION_EXPIRES = CONNECTIONS.ttl_attribute


class ConnectionRepository:
    """Open WebSocket connections and the user each one authenticated as."""

    def __init__(self, client: BaseClient, table: str) -> None:
        self._client = client
        self._table = table

    def put(self, connection_id: str, user_id: str) -> Connection:
        now = utc_now()
        connection = Connection(
            connection_id=connection_id,
            user_id=user_id,
            connected_at=timestamp(now),
            expires_at=epoch_seconds(now) + CONNECTION_TTL_SECONDS,
        )
        self._client.put_item(
            TableName=self._table,
            Item=dynamodb_item(
                {
                    CONNECTION_ID: connection.connection_id,
                    CONNECTION_OWNER: connection.user_id,
                    "connected_at": connection.connected_at,
                    CONNECTION_EXPIRES: connection.expires_at,
                }
            ),
        )
        return connection

    def get(self, connection_id: str) -> Connection | None:
        item = self._client.get_item(
            TableName=self._table, Key=_connection_key(connection_id), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        values = plain_item(item)
        return Connection(
            connection_id=connection_id,
            user_id=values.get(CONNECTION_OWNER, ""),
            connected_at=values.get("connected_at", ""),
            expires_at=values.get(CONNECTION_EXPIRES, 0),
        )

    def delete(self, connection_id: str) -> None:
        self._client.delete_item(TableName=self._table, Key=_connection_key(connection_id))

    def ids_of(self, user_id: str) -> Iterator[str]:
        """The ids of ``user_id``'s connection records, through the UserConnections GSI."""
        return keys_by_index(self._client, self._table, CONNECTIONS, USER_CONNECTIONS, user_id)


def _connection_key(connection_id: str) -> dict[str, Any]:
    return dynamodb_item({CONNECTION_ID: connection_id})
