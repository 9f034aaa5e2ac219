"""Client-to-server messages of the WebSocket chat protocol, parsed and bounded.

``{"action": "sendMessage", "session_id", "content", "idempotency_key"?}`` or
``{"action": "ping"}``; anything else is :class:`BadRequest`. The answers are
:mod:`functions.websocket.frames`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.utilities.data_classes.api_gateway_websocket_event import (
    APIGatewayWebSocketEvent,
)

from functions.chat.service import validate_content
from functions.data.idempotency import checked_key
from functions.domain.errors import BadRequest, client_input

MAX_SESSION_ID_CHARS = 128
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's WebSocket message limit
MAX_BODY_CHARS = MAX_MESSAGE_BYTES * 4 // 3 + 4  # the same, base64-encoded


@dataclass(frozen=True)
class SendMessage:
    session_id: str
    content: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Ping:
    pass


def parse(event: APIGatewayWebSocketEvent) -> SendMessage | Ping:
    """The client's request, or :class:`BadRequest` for anything but the two known actions.

    Parsing is bounded: a body over API Gateway's 128 KB message limit is refused unread, and
    JSON nested too deep for the parser is a bad request like any other malformed JSON.
    """
    if len(event.body or "") > MAX_BODY_CHARS:
        raise BadRequest(f"the message must be at most {MAX_MESSAGE_BYTES // 1024} KB")
    with client_input("the message must be a JSON object"):
        payload = event.json_body if event.body else None
    if not isinstance(payload, dict):
        raise BadRequest("the message must be a JSON object")
    action = payload.get("action")
    if action == "ping":
        return Ping()
    if action != "sendMessage":
        raise BadRequest('action must be "sendMessage" or "ping"')
    session_id = payload.get("session_id")
    if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID_CHARS:
        raise BadRequest("session_id must be a non-empty string")
    key = payload.get("idempotency_key")
    return SendMessage(
        session_id=session_id,
        content=validate_content(payload.get("content")),
        idempotency_key=None if key is None else checked_key(key),
    )
