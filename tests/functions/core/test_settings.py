"""Function settings read from the environment: each function's fields, and every fault named."""

from __future__ import annotations

import pytest

from functions.cleanup.settings import Settings as CleanupSettings
from functions.contract import DEFAULT_SESSION_TTL_DAYS, Env
from functions.core.settings import ConfigurationError, FunctionSettings
from functions.main.settings import Settings as MainSettings
from functions.websocket.settings import Settings as WebSocketSettings

MAIN_ENV = {
    Env.SESSIONS_TABLE: "p-sessions",
    Env.MESSAGES_TABLE: "p-messages",
    Env.CONNECTIONS_TABLE: "p-connections",  # DELETE /me removes the caller's records
    Env.IDEMPOTENCY_TABLE: "p-idempotency",
    Env.USAGE_TABLE: "p-usage",
    Env.BEDROCK_MODELS: " model-a , model-b,,model-a ",
    Env.KNOWLEDGE_BASE_ID: "",
    Env.PAGINATION_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/k",
    Env.ATTACHMENTS_BUCKET: "p-attachments",
}
WEBSOCKET_ENV = {
    Env.SESSIONS_TABLE: "p-sessions",
    Env.MESSAGES_TABLE: "p-messages",
    Env.CONNECTIONS_TABLE: "p-connections",
    Env.IDEMPOTENCY_TABLE: "p-idempotency",
    Env.USAGE_TABLE: "p-usage",
    Env.BEDROCK_MODELS: "model-a",
    Env.KNOWLEDGE_BASE_ID: "KB12345678",
    Env.SESSION_TTL_DAYS: "7",
    Env.WEBSOCKET_CALLBACK_URL: "https://abc.execute-api.us-east-1.amazonaws.com/v1",
    Env.ATTACHMENTS_BUCKET: "p-attachments",
}


CLEANUP_ENV = {Env.MESSAGES_TABLE: "p-messages", Env.ATTACHMENTS_BUCKET: "p-attachments"}


def test_main_settings() -> None:
    config = MainSettings.from_env(MAIN_ENV)
    assert config.bedrock_models == ("model-a", "model-b")
    assert config.default_model == "model-a"
    assert config.knowledge_base_id is None
    assert not config.knowledge_bases_enabled
    assert config.session_ttl_days == DEFAULT_SESSION_TTL_DAYS
    assert config.pagination_key_arn == "arn:aws:kms:us-east-1:123456789012:key/k"
    assert config.connections_table == "p-connections"
    assert config.idempotency_table == "p-idempotency"
    assert config.attachments_bucket == "p-attachments"
    assert not hasattr(config, "websocket_callback_url")  # main posts no frames


def test_websocket_settings() -> None:
    config = WebSocketSettings.from_env(WEBSOCKET_ENV)
    assert config.connections_table == "p-connections"
    assert config.knowledge_base_id == "KB12345678"
    assert config.session_ttl_days == 7
    assert config.pagination_key_arn is None  # the WebSocket function does not page


@pytest.mark.parametrize(
    ("kind", "env", "missing"),
    [
        (MainSettings, MAIN_ENV, Env.SESSIONS_TABLE),
        (MainSettings, MAIN_ENV, Env.PAGINATION_KEY_ARN),
        (MainSettings, MAIN_ENV, Env.BEDROCK_MODELS),
        (MainSettings, MAIN_ENV, Env.ATTACHMENTS_BUCKET),
        (WebSocketSettings, WEBSOCKET_ENV, Env.CONNECTIONS_TABLE),
        (WebSocketSettings, WEBSOCKET_ENV, Env.WEBSOCKET_CALLBACK_URL),
        (CleanupSettings, CLEANUP_ENV, Env.MESSAGES_TABLE),
        (CleanupSettings, CLEANUP_ENV, Env.ATTACHMENTS_BUCKET),
    ],
)
def test_missing_variable_is_named(
    kind: type[FunctionSettings], env: dict[str, str], missing: str
) -> None:
    broken = {name: value for name, value in env.items() if name != missing}
    with pytest.raises(ConfigurationError, match=missing):
        kind.from_env(broken)


@pytest.mark.parametrize("days", ["0", "-3", "thirty"])
def test_invalid_ttl_is_named(days: str) -> None:
    with pytest.raises(ConfigurationError, match=Env.SESSION_TTL_DAYS):
        MainSettings.from_env(MAIN_ENV | {Env.SESSION_TTL_DAYS: days})
