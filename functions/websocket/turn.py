"""One chat turn over the WebSocket: the answer streamed as frames while it is generated and
stored whatever the client does, or, for a repeated ``idempotency_key``, the stored answer
replayed as the same frames without a model call.

When the client vanishes mid-answer (``GoneException``), posting stops but the model stream is
still read to its end, so the stored assistant message is complete. When the function's own
time runs short (:data:`STOP_MARGIN_SECONDS` before its deadline), it stops reading, stores the
answer so far as ``incomplete`` (``timeout``) and says so in the ``end`` frame, instead of being
killed with nothing stored. When the user cancels the answer (the ``cancel`` action, handled by
another invocation), the turn sees it at its next look (every :func:`cancel_interval`), stops
reading and stores the answer so far as ``incomplete`` (``interrupted``) the same way.

After the ``end`` frame, an untitled session's first complete answer gets it a title, sent as a
``title`` frame (:mod:`functions.chat.titles`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat.service import ChatReply, ChatService
from functions.core import deadline
from functions.core.observability import logger
from functions.data.idempotency import Scope, once
from functions.domain.errors import NotFound
from functions.domain.models import UnavailableAttachment, Usage
from functions.websocket import frames
from functions.websocket.protocol import SendMessage
from functions.websocket.sender import Poster, StreamSender

# Time kept back from the function's deadline to store the answer, post the last frame and
# return: one DynamoDB attempt at its worst and the answer (functions.core.deadline).
STOP_MARGIN_SECONDS = deadline.STORE_SECONDS + deadline.ANSWER_SECONDS
# Least time between two looks for a cancel. Each look is one small DynamoDB write, so the flush
# cadence (0.1 s by default) is too often to pay for; half a second is still within what a user
# pressing Ctrl-C notices.
MIN_CANCEL_INTERVAL_SECONDS = 0.5


def cancel_interval(flush_interval: float) -> float:
    """Seconds between two looks for a cancel: the flush cadence, at least
    :data:`MIN_CANCEL_INTERVAL_SECONDS`."""
    return max(flush_interval, MIN_CANCEL_INTERVAL_SECONDS)


def answer(
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

    def stream() -> dict[str, Any]:
        reply = stream_answer(
            chat,
            poster,
            user_id,
            request,
            time_left=_time_left,
            lease_seconds=lease,
            flush_interval=flush_interval,
        )
        return {
            "session_id": reply.message.session_id,
            "seq": reply.message.seq,
            "unavailable_attachments": [asdict(item) for item in reply.unavailable],
        }

    scope = Scope(user_id, "sendMessage", request.idempotency_key)
    payload = {"session_id": request.session_id, "content": request.content}
    if request.replaces is not None:  # as before for a plain turn: its stored keys still match
        payload["replaces"] = request.replaces
    if request.attachments:
        payload["attachments"] = list(request.attachments)
    lease = context.get_remaining_time_in_millis() // 1000 + 1
    outcome = once(chat.store.idempotency, scope, payload, stream, lease_seconds=lease)
    if outcome.replayed:
        replay(chat, poster, outcome.result, request.idempotency_key)


def replay(
    chat: ChatService, poster: Poster, result: dict[str, Any], idempotency_key: str | None
) -> None:
    """The frames of a stored answer, as they went out the first time: the start frame names
    the same unavailable attachments (a result stored before they were kept names none)."""
    session_id = result["session_id"]
    message = chat.store.messages.get(session_id, result["seq"])
    if message is None:
        raise NotFound("the answer of this idempotency key no longer exists")
    unavailable = [
        UnavailableAttachment(**item) for item in result.get("unavailable_attachments", [])
    ]
    poster.send(frames.start(session_id, message.message_id, idempotency_key, unavailable))
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
) -> ChatReply:
    """Stream one chat turn to the client; the answer is stored whatever the client does."""
    stream = chat.stream(
        user_id,
        request.session_id,
        request.content,
        time_left,
        lease_seconds=lease_seconds,
        cancel_every=cancel_interval(flush_interval),
        replaces=request.replaces,
        title_beside=False,
        attachments=request.attachments,
    )
    chunks = partial(frames.chunks, stream.session_id, stream.message_id)
    with StreamSender(poster, chunks, flush_interval) as sender:
        sender.send(
            frames.start(
                stream.session_id,
                stream.message_id,
                request.idempotency_key,
                stream.unavailable,
            )
        )
        for delta in stream:
            sender.write(delta)
        reply = stream.complete()
        sender.send(frames.end(reply.message, reply.usage))
        title = stream.title(reply)  # after the end frame: the answer is not held up for it
        if title is not None:
            sender.send(frames.title(stream.session_id, title))
    logger.info(
        "chat turn stored",
        extra={
            "session_id": stream.session_id,
            "seq": reply.message.seq,
            "status": reply.message.status,
            "stop_reason": reply.message.stop_reason,
            "usage": reply.usage.to_dict(),
            "client_gone": poster.gone,
            "cancelled": stream.cancelled,
            "titled": title is not None,
            "posts": poster.posts,
        },
    )
    return reply


def _time_left() -> float:
    """Seconds the stream may still be read before the answer must be stored."""
    bound = deadline.current()
    assert bound is not None, "the handler binds the invocation's deadline"
    return bound.remaining() - STOP_MARGIN_SECONDS
