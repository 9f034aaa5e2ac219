"""What the API accepts, checked before sending, from the same definitions the functions use
(the contract and the domain's content rule, both standard library only): the client refuses a
message for the reason the server would, without a round trip and without cutting it."""

from __future__ import annotations

import json

from functions.contract import API_BASE_PATH, MAX_WEBSOCKET_FRAME_BYTES, MAX_WEBSOCKET_MESSAGE_BYTES
from functions.domain.content import MAX_CONTENT_CHARS
from functions.domain.content import content_problem as _content_rule

MAX_FRAME_BYTES = MAX_WEBSOCKET_FRAME_BYTES
# The JSON around the content of a sendMessage: action, session id, idempotency key.
_ENVELOPE_BYTES = 512

__all__ = ["API_BASE_PATH", "MAX_FRAME_BYTES", "MAX_WEBSOCKET_MESSAGE_BYTES"]


def too_long(content: str) -> str | None:
    """What makes ``content`` too long to send, or None: the API's character limit, then API
    Gateway's WebSocket message size for the request that carries it."""
    if len(content) > MAX_CONTENT_CHARS:
        return f"it has {len(content):,} characters; the limit is {MAX_CONTENT_CHARS:,}"
    size = len(json.dumps(content, ensure_ascii=False).encode("utf-8", "replace"))
    if size + _ENVELOPE_BYTES > MAX_WEBSOCKET_MESSAGE_BYTES:
        limit = MAX_WEBSOCKET_MESSAGE_BYTES // 1024
        return f"it takes {size:,} bytes to send; the limit is {limit} KB"
    return None


def content_problem(content: str) -> str | None:
    """Why the API would refuse ``content`` as a message for anything but its length."""
    return _content_rule(content[:MAX_CONTENT_CHARS])
