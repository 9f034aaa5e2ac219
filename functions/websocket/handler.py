"""Lambda entry point of the WebSocket API: ``$connect``, ``$disconnect`` and every message.

Client → server: ``{"action": "sendMessage", "session_id", "content"}`` or ``{"action": "ping"}``.
Server → client (through the management API at ``WEBSOCKET_CALLBACK_URL``): ``start``, ``chunk``
frames as the model streams (coalesced, see :mod:`functions.websocket.sender`), ``end`` with the
stored answer's status; ``pong``; or ``error`` with a code from
:data:`functions.shared.errors.ERROR_CODES`, the same code REST answers with.

When the client vanishes mid-answer (``GoneException``), posting stops but the model stream is
still read to its end, so the stored assistant message is complete, and the connection record is
deleted. When the function's own time runs short (:data:`STOP_MARGIN_SECONDS` before its
timeout), it stops reading, stores the answer so far as ``incomplete`` (``timeout``) and says so
in the ``end`` frame, instead of being killed with nothing stored. Message routes always answer
200: the outcome travels in the frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes.api_gateway_websocket_event import (
    APIGatewayWebSocketEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared import aws, deadline
from functions.shared.chat import ChatService, validate_content
from functions.shared.contract import Metric
from functions.shared.errors import BadRequest, NotFound, client_input, for_client
from functions.shared.idempotency import checked_key, once
from functions.shared.identity import user_id_from
from functions.shared.models import Message, Usage
from functions.shared.observability import count, logger, metrics, tracer
from functions.shared.settings import get_settings
from functions.shared.store import ConnectionRepository, Store
from functions.websocket import frames
from functions.websocket.sender import Poster, StreamSender
from functions.websocket.settings import Settings

MAX_SESSION_ID_CHARS = 128
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's WebSocket message limit
MAX_BODY_CHARS = MAX_MESSAGE_BYTES * 4 // 3 + 4  # the same, base64-encoded
# Time kept back from the function's deadline to store the answer, post the last frame and
# return: one DynamoDB attempt at its worst and the answer (functions.shared.deadline).
STOP_MARGIN_SECONDS = deadline.STORE_SECONDS + deadline.ANSWER_SECONDS
_OK = {"statusCode": 200}


@dataclass(frozen=True)
class SendMessage:
    session_id: str
    content: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Ping:
    pass


def settings() -> Settings:
    return get_settings(Settings)


def connections(config: Settings) -> ConnectionRepository:
    repository = Store.from_settings(config).connections
    if repository is None:  # from_env requires the table for this function
        raise RuntimeError("the WebSocket function has no connections table")
    return repository


def on_connect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    """Register the connection under the user the authorizer vouched for."""
    user_id = user_id_from(event.raw_event)
    if user_id is None:
        return {"statusCode": 401}
    connections(settings()).put(event.request_context.connection_id, user_id)
    return _OK


def on_disconnect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    connections(settings()).delete(event.request_context.connection_id)
    return _OK


def on_message(event: APIGatewayWebSocketEvent, context: LambdaContext) -> dict[str, Any]:
    """Answer one client frame; every failure becomes an error frame."""
    config = settings()
    connection_id = event.request_context.connection_id
    poster = Poster(
        aws.client("apigatewaymanagementapi", endpoint_url=config.websocket_callback_url),
        connection_id,
    )
    try:
        request = parse(event)
        if isinstance(request, Ping):
            poster.send(frames.pong())
        else:
            answer_once(
                ChatService(config, Store.from_settings(config)),
                poster,
                _user_of(event, config),
                request,
                context,
                flush_interval=config.stream_flush_interval_ms / 1000,
            )
    except Exception as error:
        domain = for_client(error)
        poster.send(
            frames.error(domain.code, domain.message, domain.retry_after, **domain.fields())
        )
    if poster.gone:
        count(Metric.CLIENT_GONE)
        connections(config).delete(connection_id)
    return _OK


def answer_once(
    chat: ChatService,
    poster: Poster,
    user_id: str,
    request: SendMessage,
    context: LambdaContext,
    *,
    flush_interval: float,
) -> None:
    """Stream the answer, or with an ``idempotency_key`` already answered, replay the stored
    answer as start, chunk and end frames without a model call."""
    streamed: list[Message] = []

    def stream() -> dict[str, Any]:
        message = stream_answer(
            chat,
            poster,
            user_id,
            request,
            time_left=_time_left,
            lease_seconds=lease,
            flush_interval=flush_interval,
        )
        streamed.append(message)
        return {"session_id": message.session_id, "seq": message.seq}

    claim = (user_id, "sendMessage", request.idempotency_key)
    payload = {"session_id": request.session_id, "content": request.content}
    lease = context.get_remaining_time_in_millis() // 1000 + 1
    stored = once(chat.store.idempotency, claim, payload, lease, stream)
    if not streamed:
        replay(chat, poster, stored["session_id"], stored["seq"])


def replay(chat: ChatService, poster: Poster, session_id: str, seq: int) -> None:
    """The frames of a stored answer, as they went out the first time."""
    message = chat.store.messages.get(session_id, seq)
    if message is None:
        raise NotFound("the answer of this idempotency key no longer exists")
    poster.send(frames.start(session_id, message.message_id))
    for frame in frames.chunks(session_id, message.message_id, message.content):
        if not poster.send(frame):
            return
    poster.send(frames.end(message, message.usage or Usage()))


def stream_answer(
    chat: ChatService,
    poster: Poster,
    user_id: str,
    request: SendMessage,
    *,
    time_left: Callable[[], float],
    lease_seconds: int,
    flush_interval: float,
) -> Message:
    """Stream one chat turn to the client; the answer is stored whatever the client does."""
    stream = chat.stream(
        user_id, request.session_id, request.content, time_left, lease_seconds=lease_seconds
    )
    chunks = partial(frames.chunks, stream.session_id, stream.message_id)
    with StreamSender(poster, chunks, flush_interval) as sender:
        sender.send(frames.start(stream.session_id, stream.message_id))
        for delta in stream:
            sender.write(delta)
        reply = stream.complete()
        sender.send(frames.end(reply.message, reply.usage))
    logger.info(
        "chat turn stored",
        extra={
            "session_id": stream.session_id,
            "seq": reply.message.seq,
            "status": reply.message.status,
            "stop_reason": reply.message.stop_reason,
            "usage": reply.usage.to_dict(),
            "client_gone": poster.gone,
            "posts": poster.posts,
        },
    )
    return reply.message


def _time_left() -> float:
    """Seconds the stream may still be read before the answer must be stored."""
    bound = deadline.current()
    assert bound is not None, "the handler binds the invocation's deadline"
    return bound.remaining() - STOP_MARGIN_SECONDS


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


def _user_of(event: APIGatewayWebSocketEvent, config: Settings) -> str:
    """The authorizer's user: from the event when API Gateway passes it on, else as recorded
    at ``$connect``."""
    user_id = user_id_from(event.raw_event)
    if user_id is not None:
        return user_id
    connection = connections(config).get(event.request_context.connection_id)
    if connection is None or not connection.user_id:
        raise BadRequest("this connection is not registered; reconnect")
    return connection.user_id


_ROUTES = {"$connect": on_connect, "$disconnect": on_disconnect}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # answers hold users' chats
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    websocket = APIGatewayWebSocketEvent(event)
    on_route = _ROUTES.get(websocket.request_context.route_key)
    with deadline.bound(deadline.Deadline.of(context)):
        return on_route(websocket) if on_route else on_message(websocket, context)
