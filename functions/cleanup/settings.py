"""The session cleanup function's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from functions.contract import Env
from functions.core.settings import FunctionSettings, required


@dataclass(frozen=True)
class Settings(FunctionSettings):
    """The messages table and the attachments bucket: the removed session's key arrives in the
    stream record."""

    messages_table: str
    attachments_bucket: str

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        return cls(
            messages_table=required(env, Env.MESSAGES_TABLE),
            attachments_bucket=required(env, Env.ATTACHMENTS_BUCKET),
        )
