"""The part of the settings that the two chat functions, main (REST) and websocket, share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.contract import (
    DEFAULT_HISTORY_BUDGET_TOKENS,
    DEFAULT_SESSION_TTL_DAYS,
    DEFAULT_USER_DAILY_TOKEN_LIMIT,
    DEFAULT_USER_MAX_CONCURRENT_ANSWERS,
    Env,
)
from functions.core.settings import (
    ConfigurationError,
    FunctionSettings,
    boolean,
    integer,
    listed,
    optional,
    required,
)


@dataclass(frozen=True)
class Guardrail:
    """The Bedrock guardrail every model call is checked by."""

    identifier: str
    version: str  # a number, or DRAFT


@dataclass(frozen=True, kw_only=True)
class ChatSettings(FunctionSettings):
    """What the two chat functions (main for REST, websocket) share, and all that ``Store`` and
    ``ChatService`` read: the tables, the models, the knowledge base and the history rules."""

    sessions_table: str
    messages_table: str
    connections_table: str
    idempotency_table: str
    bedrock_models: tuple[str, ...]
    knowledge_base_id: str | None
    session_ttl_days: int
    history_budget_tokens: int
    usage_table: str
    user_daily_token_limit: int  # 0: no limit
    user_monthly_token_limit: int  # 0: no limit
    user_max_concurrent_answers: int  # 0: no limit
    guardrail: Guardrail | None
    prompt_caching: bool
    # The small model that names a session after its first complete answer; None: titles off.
    title_model_id: str | None = None
    # The KMS HMAC key next_token's signing key is derived from; None: listings carry no
    # next_token (only main pages).
    pagination_key_arn: str | None = None

    @property
    def default_model(self) -> str:
        """The first configured model, used when a session does not name one."""
        return self.bedrock_models[0]

    @property
    def knowledge_bases_enabled(self) -> bool:
        return self.knowledge_base_id is not None

    @staticmethod
    def chat_fields(env: Mapping[str, str]) -> dict[str, Any]:
        """The shared fields, for each function's :meth:`read` to add its own to."""
        models = listed(env, Env.BEDROCK_MODELS)
        if not models:
            raise ConfigurationError(f"environment variable {Env.BEDROCK_MODELS} lists no model")
        return {
            "sessions_table": required(env, Env.SESSIONS_TABLE),
            "messages_table": required(env, Env.MESSAGES_TABLE),
            "connections_table": required(env, Env.CONNECTIONS_TABLE),
            "idempotency_table": required(env, Env.IDEMPOTENCY_TABLE),
            "bedrock_models": models,
            "knowledge_base_id": optional(env, Env.KNOWLEDGE_BASE_ID),
            "session_ttl_days": integer(env, Env.SESSION_TTL_DAYS, DEFAULT_SESSION_TTL_DAYS, 1),
            "history_budget_tokens": integer(
                env, Env.HISTORY_BUDGET_TOKENS, DEFAULT_HISTORY_BUDGET_TOKENS, 1
            ),
            "usage_table": required(env, Env.USAGE_TABLE),
            "user_daily_token_limit": integer(
                env, Env.USER_DAILY_TOKEN_LIMIT, DEFAULT_USER_DAILY_TOKEN_LIMIT, 0
            ),
            "user_monthly_token_limit": integer(env, Env.USER_MONTHLY_TOKEN_LIMIT, 0, 0),
            "user_max_concurrent_answers": integer(
                env, Env.USER_MAX_CONCURRENT_ANSWERS, DEFAULT_USER_MAX_CONCURRENT_ANSWERS, 0
            ),
            "guardrail": _guardrail(env),
            "prompt_caching": boolean(env, Env.BEDROCK_PROMPT_CACHING, True),
            "title_model_id": optional(env, Env.TITLE_MODEL_ID),
        }


def _guardrail(env: Mapping[str, str]) -> Guardrail | None:
    identifier = optional(env, Env.BEDROCK_GUARDRAIL_ID)
    version = optional(env, Env.BEDROCK_GUARDRAIL_VERSION)
    if (identifier is None) != (version is None):
        raise ConfigurationError(
            f"environment variables {Env.BEDROCK_GUARDRAIL_ID} and "
            f"{Env.BEDROCK_GUARDRAIL_VERSION} are set together or not at all"
        )
    return Guardrail(identifier, version) if identifier and version else None
