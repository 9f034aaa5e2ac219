"""Run-time configuration, read once per container from the variables the stack sets.

The variable *names* come from :mod:`functions.shared.contract`, so the stack and the code cannot
drift apart. Which variables are required depends on the function (``contract.FUNCTION_ENV``):
the main function has no callback URL and the WebSocket function has no pagination key.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.shared.contract import (
    DEFAULT_HISTORY_BUDGET_TOKENS,
    DEFAULT_SESSION_TTL_DAYS,
    DEFAULT_STREAM_FLUSH_INTERVAL_MS,
    FUNCTION_ENV,
    Env,
)


class ConfigurationError(RuntimeError):
    """The function was deployed without a variable it needs; a deployment bug, not a client's."""


@dataclass(frozen=True)
class Settings:
    """Everything the main and WebSocket functions read from their environment."""

    sessions_table: str
    messages_table: str
    bedrock_models: tuple[str, ...]
    knowledge_base_id: str | None
    session_ttl_days: int
    history_budget_tokens: int = DEFAULT_HISTORY_BUDGET_TOKENS
    stream_flush_interval_ms: int = DEFAULT_STREAM_FLUSH_INTERVAL_MS
    connections_table: str | None = None
    idempotency_table: str | None = None
    pagination_key: bytes | None = None
    websocket_callback_url: str | None = None

    @property
    def default_model(self) -> str:
        """The first configured model, used when a session does not name one."""
        return self.bedrock_models[0]

    @property
    def knowledge_bases_enabled(self) -> bool:
        return self.knowledge_base_id is not None

    @classmethod
    def from_env(cls, function_key: str, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the variables ``function_key`` ("main" or "websocket") is deployed with.

        Raises :class:`ConfigurationError` naming the first missing or invalid variable.
        """
        env = os.environ if environ is None else environ
        reads = FUNCTION_ENV[function_key]

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigurationError(f"environment variable {name} is not set")
            return value

        def required_if_read(name: str) -> str | None:
            return required(name) if name in reads else None

        key = required_if_read(Env.PAGINATION_KEY)
        return cls(
            sessions_table=required(Env.SESSIONS_TABLE),
            messages_table=required(Env.MESSAGES_TABLE),
            bedrock_models=_models(env.get(Env.BEDROCK_MODELS, "")),
            knowledge_base_id=env.get(Env.KNOWLEDGE_BASE_ID, "").strip() or None,
            session_ttl_days=_integer(env, Env.SESSION_TTL_DAYS, DEFAULT_SESSION_TTL_DAYS, 1),
            history_budget_tokens=_integer(
                env, Env.HISTORY_BUDGET_TOKENS, DEFAULT_HISTORY_BUDGET_TOKENS, 1
            ),
            stream_flush_interval_ms=(
                _integer(env, Env.STREAM_FLUSH_INTERVAL_MS, DEFAULT_STREAM_FLUSH_INTERVAL_MS, 0)
                if Env.STREAM_FLUSH_INTERVAL_MS in reads
                else DEFAULT_STREAM_FLUSH_INTERVAL_MS
            ),
            connections_table=required_if_read(Env.CONNECTIONS_TABLE),
            idempotency_table=required_if_read(Env.IDEMPOTENCY_TABLE),
            pagination_key=None if key is None else key.encode(),
            websocket_callback_url=required_if_read(Env.WEBSOCKET_CALLBACK_URL),
        )


def _models(raw: str) -> tuple[str, ...]:
    models = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not models:
        raise ConfigurationError(f"environment variable {Env.BEDROCK_MODELS} lists no model")
    return models


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """An optional integer variable of at least ``minimum``; unset or blank means ``default``."""
    raw = env.get(name, "")
    if not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigurationError(
            f"environment variable {name} must be an integer of at least {minimum}, got {raw!r}"
        )
    return value


def cors_origins(environ: Mapping[str, str] | None = None) -> list[str]:
    """Origins allowed to call the REST API from a browser; ``*`` allows any.

    Read once, when the app is built: Starlette's CORS middleware takes a fixed list.
    """
    env = os.environ if environ is None else environ
    raw = env.get(Env.CORS_ALLOWED_ORIGINS, "")
    return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


@functools.cache
def get_settings(function_key: str) -> Settings:
    """This container's settings, read on first use (``get_settings.cache_clear()`` resets)."""
    return Settings.from_env(function_key)
