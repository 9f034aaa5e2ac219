"""The OpenAI-compatible API's settings: exactly the chat settings (tables, models, knowledge
base, budgets, guardrail, prompt caching), which ``ChatService`` reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from functions.core.chat_settings import ChatSettings


@dataclass(frozen=True, kw_only=True)
class Settings(ChatSettings):
    """Everything the function reads from its environment."""

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        return cls(**cls.chat_fields(env))
