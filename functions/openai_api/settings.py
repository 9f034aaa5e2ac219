"""The OpenAI-compatible API's settings: exactly the chat settings (tables, models, knowledge
base, budgets, guardrail, prompt caching), which ``ChatService`` reads, and the attachments
bucket the file parts of a question are read from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from functions.contract import Env
from functions.core.chat_settings import ChatSettings
from functions.core.settings import required


@dataclass(frozen=True, kw_only=True)
class Settings(ChatSettings):
    """Everything the function reads from its environment."""

    attachments_bucket: str

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        return cls(**cls.chat_fields(env), attachments_bucket=required(env, Env.ATTACHMENTS_BUCKET))
