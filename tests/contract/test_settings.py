"""Each function's settings class reads exactly the variables ``contract.FUNCTION_ENV`` lists for
that function (Powertools' own aside): no fewer, since the stack would set a variable nothing
reads, and no more, since a variable the stack does not set on that function always reads as
unset there, and the function silently runs on its default.

The reads are observed, not parsed: each class reads a mapping that records every lookup, while
direct ``os.environ`` reads by ``functions/`` code are recorded too (tests/security/recording.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest

from functions.authorizer import handler as authorizer_handler
from functions.authorizer.settings import Settings as AuthorizerSettings
from functions.cleanup.settings import Settings as CleanupSettings
from functions.contract import (
    AUTHORIZER,
    CLEANUP,
    FUNCTION_ENV,
    FUNCTIONS,
    MAIN,
    OPENAI_API,
    WEBSOCKET,
    Env,
    FunctionSpec,
)
from functions.main.settings import Settings as MainSettings
from functions.main.settings import cors_origins
from functions.openai_api.settings import Settings as OpenAISettings
from functions.websocket.settings import Settings as WebSocketSettings
from tests.contract.test_environment import POWERTOOLS_READS
from tests.security.recording import environment_reads

Reader = Callable[[Mapping[str, str]], object]

# What reads each function's settings: its settings class, and for main the CORS origins, read
# apart when the app is built.
READERS: dict[str, tuple[Reader, ...]] = {
    MAIN.key: (MainSettings.from_env, cors_origins),
    WEBSOCKET.key: (WebSocketSettings.from_env,),
    AUTHORIZER.key: (AuthorizerSettings.from_env,),
    CLEANUP.key: (CleanupSettings.from_env,),
    OPENAI_API.key: (OpenAISettings.from_env,),
}
# A valid value for every variable of the contract, so that every read succeeds and none is
# skipped because an earlier one failed.
VALID = {
    Env.SESSIONS_TABLE: "p-sessions",
    Env.MESSAGES_TABLE: "p-messages",
    Env.CONNECTIONS_TABLE: "p-connections",
    Env.IDEMPOTENCY_TABLE: "p-idempotency",
    Env.BEDROCK_MODELS: "model-a,model-b",
    Env.KNOWLEDGE_BASE_ID: "KB12345678",
    Env.SESSION_TTL_DAYS: "30",
    Env.HISTORY_BUDGET_TOKENS: "12000",
    Env.USAGE_TABLE: "p-usage",
    Env.USER_DAILY_TOKEN_LIMIT: "100000",
    Env.USER_MONTHLY_TOKEN_LIMIT: "0",
    Env.USER_MAX_CONCURRENT_ANSWERS: "2",
    Env.BEDROCK_GUARDRAIL_ID: "gr123",
    Env.BEDROCK_GUARDRAIL_VERSION: "1",
    Env.BEDROCK_PROMPT_CACHING: "true",
    Env.TITLE_MODEL_ID: "model-a",
    Env.STREAM_FLUSH_INTERVAL_MS: "100",
    Env.PAGINATION_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/0d3c8b1e-5f0a",
    Env.ATTACHMENTS_BUCKET: "chat-dev-attachments",
    Env.WEBSOCKET_CALLBACK_URL: "https://abc.execute-api.us-east-1.amazonaws.com/v1",
    Env.CORS_ALLOWED_ORIGINS: "*",
    Env.JWT_ISSUER: "https://idp.example.com",
    Env.JWT_AUDIENCE: "api://chat",
    Env.JWKS_URL: "https://idp.example.com/jwks.json",
    Env.JWT_VALIDATION: '{"provider": "generic", "required_scopes": ["chat"]}',
    Env.POWERTOOLS_SERVICE_NAME: "chat",
    Env.POWERTOOLS_METRICS_NAMESPACE: "chat",
}


class RecordingEnv(Mapping[str, str]):
    """``values``, remembering every name looked up, present or not."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.looked_up: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.looked_up.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("settings read their variables by name, never all of them")

    def __len__(self) -> int:
        return len(self._values)


def reads(spec: FunctionSpec) -> set[str]:
    """Every variable the function's settings read from a complete, valid environment."""
    env = RecordingEnv(VALID)
    with environment_reads() as direct:
        for reader in READERS[spec.key]:
            reader(env)
    return env.looked_up | direct


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_each_function_settings_read_exactly_its_contract_variables(spec: FunctionSpec) -> None:
    """Mutations caught: main also reading ``STREAM_FLUSH_INTERVAL_MS``, websocket no longer
    reading it (running on the default), the authorizer reading a variable through
    ``os.environ``, a variable added to ``FUNCTION_ENV`` that no settings class reads."""
    assert reads(spec) == set(FUNCTION_ENV[spec.key]) - POWERTOOLS_READS


def test_the_authorizer_hands_its_settings_every_contract_variable() -> None:
    """The handler copies its variables out of the environment before ``Settings`` reads them
    (see ``_verifier_from``): one it leaves out would always read as unset. Mutation caught:
    ``JWKS_URL`` dropped from ``SETTINGS_VARIABLES``."""
    variables = authorizer_handler.SETTINGS_VARIABLES
    assert sorted(variables) == sorted(FUNCTION_ENV[AUTHORIZER.key])
    assert len(set(variables)) == len(variables)
