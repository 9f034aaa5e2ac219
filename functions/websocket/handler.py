"""Lambda entry point of the WebSocket API: ``$connect``, ``$disconnect`` and every message.

Client → server: ``{"action": "sendMessage", "session_id", "content"}`` or ``{"action": "ping"}``.
Server → client (through the management API at ``WEBSOCKET_CALLBACK_URL``): ``start``, ``chunk``
frames as the model streams, ``end``; ``pong``; or ``error`` with a code from
:data:`functions.websocket.frames.ErrorCode`.

When the client vanishes mid-answer (``GoneException``), posting stops but the model stream is
still read to its end, so the stored assistant message is complete, and the connection record is
deleted. Message routes always answer 200: the outcome travels in the frames.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.shared import aws
from functions.shared.chat import ChatService, validate_content
from functions.shared.contract import WEBSOCKET
from functions.shared.errors import (
    BadRequest,
    DomainError,
    NotFound,
    Throttled,
    error_code,
    translate,
)
from functions.shared.identity import user_id_from
from functions.shared.observability import logger, metrics, tracer
from functions.shared.settings import Settings, get_settings
from functions.shared.store import ConnectionRepository, Store
from functions.websocket import frames

MAX_SESSION_ID_CHARS = 128
_OK = {"statusCode": 200}


@dataclass(frozen=True)
class SendMessage:
    session_id: str
    content: str


@dataclass(frozen=True)
class Ping:
    pass


@dataclass
class Sender:
    """Posts frames to one connection until it stops accepting them.

    ``gone`` means API Gateway said the client disconnected; any other posting failure also
    stops posting (the answer is still stored) but leaves the connection record alone.
    """

    client: Any
    connection_id: str
    open: bool = True
    gone: bool = False

    def send(self, frame: dict[str, Any]) -> bool:
        """Post ``frame``; False once the connection no longer accepts frames."""
        if not self.open:
            return False
        try:
            self.client.post_to_connection(
                ConnectionId=self.connection_id, Data=frames.encode(frame)
            )
        except (ClientError, BotoCoreError) as error:
            self.open = False
            self.gone = isinstance(error, ClientError) and error_code(error) == "GoneException"
            if not self.gone:
                logger.warning("posting to the connection failed", extra={"error": str(error)})
            return False
        return True


def settings() -> Settings:
    return get_settings(WEBSOCKET.key)


def connections(config: Settings) -> ConnectionRepository:
    repository = Store.from_settings(config).connections
    if repository is None:  # from_env requires the table for this function
        raise RuntimeError("the WebSocket function has no connections table")
    return repository


def on_connect(event: dict[str, Any]) -> dict[str, Any]:
    """Register the connection under the user the authorizer vouched for."""
    user_id = user_id_from(event)
    if user_id is None:
        return {"statusCode": 401}
    connections(settings()).put(event["requestContext"]["connectionId"], user_id)
    return _OK


def on_disconnect(event: dict[str, Any]) -> dict[str, Any]:
    connections(settings()).delete(event["requestContext"]["connectionId"])
    return _OK


def on_message(event: dict[str, Any]) -> dict[str, Any]:
    """Answer one client frame; every failure becomes an error frame."""
    config = settings()
    connection_id = event["requestContext"]["connectionId"]
    sender = Sender(
        aws.client("apigatewaymanagementapi", endpoint_url=config.websocket_callback_url),
        connection_id,
    )
    try:
        request = parse(event)
        if isinstance(request, Ping):
            sender.send(frames.pong())
        else:
            user_id = _user_of(event, config)
            stream_answer(
                ChatService(config, Store.from_settings(config)), sender, user_id, request
            )
    except Exception as error:
        sender.send(_error_frame(error))
    if sender.gone:
        metrics.add_metric(name="ClientGone", unit=MetricUnit.Count, value=1)
        connections(config).delete(connection_id)
    return _OK


def stream_answer(chat: ChatService, sender: Sender, user_id: str, request: SendMessage) -> None:
    """Stream one chat turn to the client; the whole answer is stored whatever the client does."""
    stream = chat.stream(user_id, request.session_id, request.content)
    sender.send(frames.start(stream.session_id, stream.message_id))
    for delta in stream:
        for frame in frames.chunks(stream.session_id, stream.message_id, delta):
            if not sender.send(frame):
                break
        if not sender.open:
            break  # complete() reads the rest of the answer
    reply = stream.complete()
    logger.info(
        "chat turn stored",
        extra={
            "session_id": stream.session_id,
            "seq": reply.message.seq,
            "usage": reply.usage.to_dict(),
            "client_gone": sender.gone,
        },
    )
    metrics.add_metric(name="ChatTurns", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=reply.usage.output_tokens)
    sender.send(frames.end(stream.session_id, stream.message_id, reply.usage, reply.citations))


def parse(event: dict[str, Any]) -> SendMessage | Ping:
    """The client's request, or :class:`BadRequest` for anything but the two known actions."""
    try:
        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body, validate=True).decode("utf-8")
        payload = json.loads(body)
    except (ValueError, binascii.Error):
        raise BadRequest("the message must be a JSON object") from None
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
    return SendMessage(session_id=session_id, content=validate_content(payload.get("content")))


def _user_of(event: dict[str, Any], config: Settings) -> str:
    """The authorizer's user: from the event when API Gateway passes it on, else as recorded
    at ``$connect``."""
    user_id = user_id_from(event)
    if user_id is not None:
        return user_id
    connection = connections(config).get(event["requestContext"]["connectionId"])
    if connection is None or not connection.user_id:
        raise BadRequest("this connection is not registered; reconnect")
    return connection.user_id


def _error_frame(error: Exception) -> dict[str, Any]:
    domain = translate(error)
    if domain is None:
        logger.exception("unhandled error")
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        return frames.error("internal", "internal error")
    if isinstance(domain, Throttled):
        metrics.add_metric(name="Throttled", unit=MetricUnit.Count, value=1)
    return frames.error(_ws_code(domain), domain.message)


def _ws_code(error: DomainError) -> frames.ErrorCode:
    if isinstance(error, NotFound):
        return "not_found"
    if isinstance(error, BadRequest):
        return "bad_request"
    if isinstance(error, Throttled):
        return "throttled"
    return "internal"


_ROUTES = {"$connect": on_connect, "$disconnect": on_disconnect}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # answers hold users' chats
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route = event.get("requestContext", {}).get("routeKey")
    return _ROUTES.get(route, on_message)(event)
