"""Client-to-server messages of the WebSocket chat protocol, parsed and bounded.

* ``{"action": "sendMessage", "session_id", "content", "idempotency_key"?, "replaces"?}``: a
  chat turn. With ``replaces`` (the ``message_id`` of the session's last question) it is a new
  version of that turn: the same question again without ``content`` (regenerate), the edited
  one with it, as on REST. ``attachments``: ids of the session's uploads, as on REST. With
  an ``idempotency_key``, the ``start`` frame and any ``error`` frame answering it echo the key,
  so a client that shares one connection between turns can tell its turn's frames from the
  first one on; every later frame of the answer carries its ``message_id``.
* ``{"action": "cancel", "message_id"}``: stop generating the caller's answer ``message_id``
  (from its ``start`` frame). The answer is stored ``incomplete`` with ``stop_reason``
  ``interrupted`` and what was generated, and its ``end`` frame says so; a successful cancel
  gets no frame of its own. An answer that is not generating (finished, unknown, someone
  else's) gets an ``error`` frame that echoes ``message_id``: ``conflict`` when it is the
  caller's and already finished, else ``not_found``.
* ``{"action": "ping"}``: answered with ``pong``.

Anything else is :class:`BadRequest`. The answers are :mod:`functions.websocket.frames`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.utilities.data_classes.api_gateway_websocket_event import (
    APIGatewayWebSocketEvent,
)

from functions.chat.service import validate_content
from functions.contract import MAX_WEBSOCKET_MESSAGE_BYTES
from functions.data.idempotency import checked_key
from functions.domain.attachments import attachment_ids
from functions.domain.errors import BadRequest, client_input

MAX_SESSION_ID_CHARS = 128
MAX_MESSAGE_ID_CHARS = 128
MAX_MESSAGE_BYTES = MAX_WEBSOCKET_MESSAGE_BYTES
MAX_BODY_CHARS = MAX_MESSAGE_BYTES * 4 // 3 + 4  # the same, base64-encoded


@dataclass(frozen=True)
class SendMessage:
    session_id: str
    content: str | None  # None only with ``replaces``: a regenerate
    idempotency_key: str | None = None
    replaces: str | None = None
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cancel:
    message_id: str


@dataclass(frozen=True)
class Ping:
    pass


Request = SendMessage | Cancel | Ping
ACTIONS = ("sendMessage", "cancel", "ping")


def parse(event: APIGatewayWebSocketEvent) -> Request:
    """The client's request, or :class:`BadRequest` for anything but the known actions.

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
    if action == "cancel":
        return Cancel(_message_id(payload.get("message_id")))
    if action != "sendMessage":
        raise BadRequest('action must be "sendMessage", "cancel" or "ping"')
    session_id = payload.get("session_id")
    if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID_CHARS:
        raise BadRequest("session_id must be a non-empty string")
    key = payload.get("idempotency_key")
    replaces = payload.get("replaces")
    if replaces is not None and (
        not isinstance(replaces, str) or not 0 < len(replaces) <= MAX_MESSAGE_ID_CHARS
    ):
        raise BadRequest("replaces must be the message_id of the session's last question")
    content = payload.get("content")
    return SendMessage(
        session_id=session_id,
        content=None if content is None and replaces else validate_content(content),
        idempotency_key=None if key is None else checked_key(key),
        replaces=replaces,
        attachments=attachment_ids(payload.get("attachments", [])),
    )


def echo(event: APIGatewayWebSocketEvent) -> dict[str, str]:
    """What an ``error`` frame answering this message repeats of it, so the client can match
    the error to its request: a valid ``idempotency_key`` of a ``sendMessage``, the
    ``message_id`` of a ``cancel``; nothing when the message cannot be read."""
    if len(event.body or "") > MAX_BODY_CHARS:
        return {}
    try:
        payload = event.json_body if event.body else None
    except (ValueError, RecursionError):
        return {}
    if not isinstance(payload, dict):
        return {}
    fields = {}
    for name, check in (("idempotency_key", checked_key), ("message_id", _message_id)):
        try:
            fields[name] = check(payload.get(name))
        except BadRequest:
            continue
    return fields


def _message_id(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_MESSAGE_ID_CHARS:
        raise BadRequest("message_id must be the non-empty message_id of a start frame")
    return value
