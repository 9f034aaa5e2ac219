"""The main (REST) function's settings: the chat settings, the pagination key's ARN, the
attachments bucket, and the CORS origins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from functions.contract import Env
from functions.core.chat_settings import ChatSettings
from functions.core.settings import listed, required


@dataclass(frozen=True, kw_only=True)
class Settings(ChatSettings):
    """Everything the main function reads from its environment, but the CORS origins."""

    # The KMS HMAC key that next_token's signing key is derived from (functions.data.pagination).
    pagination_key_arn: str
    # The bucket the attachment uploads go to (functions.data.attachments).
    attachments_bucket: str

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        return cls(
            **cls.chat_fields(env),
            pagination_key_arn=required(env, Env.PAGINATION_KEY_ARN),
            attachments_bucket=required(env, Env.ATTACHMENTS_BUCKET),
        )


def cors_origins(environ: Mapping[str, str] | None = None) -> list[str]:
    """Origins allowed to call the REST API from a browser; ``*`` allows any.

    Read once, when the app is built (Starlette's CORS middleware takes a fixed list), and apart
    from :class:`Settings`, so that a missing table fails the requests that need it rather than
    the import.
    """
    return list(listed(os.environ if environ is None else environ, Env.CORS_ALLOWED_ORIGINS))
