"""Shared building blocks on their own: settings, pagination tokens, frame splitting, errors."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.cleanup.settings import Settings as CleanupSettings
from functions.main.settings import Settings as MainSettings
from functions.shared.contract import DEFAULT_SESSION_TTL_DAYS, Env
from functions.shared.errors import BadRequest, Throttled, translate
from functions.shared.pagination import TokenSigner
from functions.shared.settings import ConfigurationError, FunctionSettings
from functions.websocket import frames
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
}


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
        (WebSocketSettings, WEBSOCKET_ENV, Env.CONNECTIONS_TABLE),
        (WebSocketSettings, WEBSOCKET_ENV, Env.WEBSOCKET_CALLBACK_URL),
        (CleanupSettings, {Env.MESSAGES_TABLE: "p-messages"}, Env.MESSAGES_TABLE),
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


def test_token_round_trip_and_binding() -> None:
    signer = TokenSigner(b"secret")
    key = {"session_id": {"S": "s1"}, "seq": {"N": "3"}}
    token = signer.encode("messages", "alice", "s1", key)
    assert signer.decode(token, "messages", "alice", "s1") == key
    for kind, user, scope in [("sessions", "alice", "s1"), ("messages", "bob", "s1"),
                              ("messages", "alice", "s2")]:  # fmt: skip
        with pytest.raises(BadRequest):
            signer.decode(token, kind, user, scope)
    with pytest.raises(BadRequest):
        TokenSigner(b"other key").decode(token, "messages", "alice", "s1")


@settings(max_examples=100, deadline=None)
@given(token=st.text(max_size=200))
def test_arbitrary_tokens_are_bad_requests(token: str) -> None:
    with pytest.raises(BadRequest):
        TokenSigner(b"secret").decode(token, "sessions", "alice", "")


@settings(max_examples=25, deadline=None)
@given(text=st.text(min_size=1, max_size=50_000).map(lambda t: t * 3))
def test_frame_split_fits_and_reassembles(text: str) -> None:
    pieces = list(frames.chunks("s" * 36, "m" * 36, text))
    assert "".join(piece["content"] for piece in pieces) == text
    assert all(len(frames.encode(piece)) <= frames.MAX_FRAME_BYTES for piece in pieces)


def test_lone_surrogates_cannot_break_a_frame() -> None:
    encoded = frames.encode(frames.error("internal", "bad \ud800 text"))
    assert json.loads(encoded)["message"] == "bad ? text"


def _client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Converse")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("throttlingException", 400),  # Bedrock's event-stream spelling
        ("ProvisionedThroughputExceededException", 400),
        ("RequestLimitExceeded", 400),
        ("ServiceQuotaExceededException", 400),
        ("ServiceUnavailableException", 503),
    ],
)
def test_throttling_errors_become_throttled(code: str, status: int) -> None:
    assert isinstance(translate(_client_error(code, status)), Throttled)


def test_other_errors_are_not_translated() -> None:
    assert translate(_client_error("ValidationException", 400)) is None
    assert translate(ValueError("bug")) is None
    assert isinstance(translate(EndpointConnectionError(endpoint_url="http://x")), Throttled)
