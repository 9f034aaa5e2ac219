"""Server-to-client frames of the WebSocket chat protocol, and splitting text to fit them.

API Gateway caps a WebSocket frame at 32 KB, so a long model delta becomes several ``chunk``
frames whose contents concatenate back to the delta. A turn's frames are ``start``, ``chunk``s and
``end``, then, when the turn named its untitled session, ``title`` (docs/functions.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

from functions.contract import MAX_WEBSOCKET_FRAME_BYTES
from functions.domain.models import Message, UnavailableAttachment, Usage

MAX_FRAME_BYTES = MAX_WEBSOCKET_FRAME_BYTES


def encode(frame: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. Non-ASCII stays raw (``\\uXXXX`` escapes would double CJK text);
    a lone surrogate, which UTF-8 cannot carry, becomes ``?``."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def start(
    session_id: str,
    message_id: str,
    idempotency_key: str | None = None,
    unavailable: Sequence[UnavailableAttachment] = (),
) -> dict[str, Any]:
    """The answer's first frame; it echoes the request's ``idempotency_key``, if any, so the
    client knows which of its requests this answer is, and lists the earlier questions'
    attachments the turn could not send the model again (``unavailable_attachments``, only
    when there are any: REST's field of that name)."""
    frame: dict[str, Any] = {"type": "start", "session_id": session_id, "message_id": message_id}
    if idempotency_key is not None:
        frame["idempotency_key"] = idempotency_key
    if unavailable:
        frame["unavailable_attachments"] = [asdict(item) for item in unavailable]
    return frame


def chunks(session_id: str, message_id: str, text: str) -> Iterator[dict[str, Any]]:
    """``chunk`` frames carrying ``text``, each at most :data:`MAX_FRAME_BYTES` encoded."""
    envelope = {"type": "chunk", "session_id": session_id, "message_id": message_id}
    for piece in _split(text, lambda content: len(encode({**envelope, "content": content}))):
        yield {**envelope, "content": piece}


def end(message: Message, usage: Usage) -> dict[str, Any]:
    """The stored answer's outcome: ``status`` ``complete`` or ``incomplete`` (and why)."""
    return {
        "type": "end",
        "session_id": message.session_id,
        "message_id": message.message_id,
        "status": message.status,
        "stop_reason": message.stop_reason,
        "usage": usage.to_dict(),
        "citations": [citation.to_dict() for citation in message.citations],
    }


def title(session_id: str, title: str) -> dict[str, Any]:
    """The title the turn just gave its untitled session, after the answer's ``end`` frame
    (only when one was generated and stored: a failed title sends nothing)."""
    return {"type": "title", "session_id": session_id, "title": title}


def error(code: str, message: str, retry_after: int | None = None, **fields: Any) -> dict[str, Any]:
    """An error with the code REST answers with; ``retry_after`` (seconds) and ``fields`` (such
    as ``quota``) as REST's ``Retry-After`` header and error body carry them."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message, **fields}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def _split(text: str, size: Callable[[str], int]) -> Iterator[str]:
    """Cut ``text`` into the fewest pieces whose frames fit, measuring real encoded frames.

    Escaping makes a character cost 1 to 6 bytes, so each cut is found by binary search on the
    encoded size of the frame rather than by estimating characters per byte. A character costs
    at least one byte, so no piece is longer than the frame limit in characters.
    """
    start_at = 0
    while start_at < len(text):
        low, high = start_at + 1, min(len(text), start_at + MAX_FRAME_BYTES)
        if size(text[start_at:high]) <= MAX_FRAME_BYTES:
            low = high
        else:
            while low < high:
                middle = (low + high + 1) // 2
                if size(text[start_at:middle]) <= MAX_FRAME_BYTES:
                    low = middle
                else:
                    high = middle - 1
        yield text[start_at:low]
        start_at = low
