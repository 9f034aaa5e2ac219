"""The WebSocket function's settings: the chat settings, the management API's callback URL, and
how often streamed text is flushed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from functions.contract import DEFAULT_STREAM_FLUSH_INTERVAL_MS, Env
from functions.core.chat_settings import ChatSettings
from functions.core.settings import integer, required


@dataclass(frozen=True, kw_only=True)
class Settings(ChatSettings):
    """Everything the WebSocket function reads from its environment."""

    websocket_callback_url: str  # the API Gateway management endpoint frames are posted to
    stream_flush_interval_ms: int  # least time between two streamed text frames; 0: no wait
    attachments_bucket: str  # where the attachments a sendMessage names are read from

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        return cls(
            **cls.chat_fields(env),
            websocket_callback_url=required(env, Env.WEBSOCKET_CALLBACK_URL),
            stream_flush_interval_ms=integer(
                env, Env.STREAM_FLUSH_INTERVAL_MS, DEFAULT_STREAM_FLUSH_INTERVAL_MS, 0
            ),
            attachments_bucket=required(env, Env.ATTACHMENTS_BUCKET),
        )
