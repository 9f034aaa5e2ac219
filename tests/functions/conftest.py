"""Fixtures for the main and WebSocket function tests: a configured environment, ready to call
the real handlers against moto, the Bedrock fake and the WebSocket management fake."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from fakes.bedrock import BedrockFake
from fakes.connections import WsManagementFake
from fakes.dynamodb_faults import DynamoFaults, routed_through_faults
from fakes.dynamodb_streams import StreamReader, enable_stream, lambda_event
from fakes.moto import MotoServer
from functions.cleanup import handler as cleanup
from functions.contract import Env
from functions.core import aws
from functions.core.settings import get_settings
from functions.data.pagination import derived_key
from tests.functions.helpers import (
    DEFAULT_KNOWLEDGE_BASE_ID,
    MODELS,
    TITLE_MODEL,
    LambdaContext,
    Rest,
    WebSocket,
)
from tests.support.moto_server import create_pagination_key


def pytest_configure(config: pytest.Config) -> None:
    # A request that records no metric (e.g. GET /health) makes Powertools warn; that is expected.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish")


@pytest.fixture
def app_env(
    moto_env: dict[str, str],
    bedrock: BedrockFake,
    ws_management: WsManagementFake,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    """Everything the stack would set for the main and WebSocket functions, pointed at fakes.

    ``AWS_MAX_ATTEMPTS=2`` keeps the throttling tests fast: botocore still retries (adaptive
    mode, with backoff) before the error surfaces, once instead of twice.
    """
    values = {
        Env.BEDROCK_MODELS: ",".join(MODELS),
        Env.KNOWLEDGE_BASE_ID: DEFAULT_KNOWLEDGE_BASE_ID,
        Env.SESSION_TTL_DAYS: "30",
        Env.PAGINATION_KEY_ARN: create_pagination_key(boto3.client("kms")),
        "AWS_MAX_ATTEMPTS": "2",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    _reset_caches()
    yield moto_env | values
    _reset_caches()


@pytest.fixture
def single_attempt(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No botocore retry, for tests about what happens once retries are exhausted.

    In adaptive mode a throttled *fresh* client (every test's clients are fresh) throttles
    itself to its minimum rate, so its retry waits ~2 s for a send token. Tests that prove the
    retry keep the default; the others skip that wait.
    """
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    aws.reset_clients()


@pytest.fixture
def retrying_faults(
    app_env: dict[str, str], moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DynamoFaults]:
    """A fault proxy in front of moto with botocore's retry on (two attempts), as in Lambda."""
    with routed_through_faults(moto_server.url, monkeypatch, attempts=2) as proxy:
        yield proxy


@pytest.fixture
def titles_on(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Session titles on, with :data:`TITLE_MODEL` (off in ``app_env``, as with the setting
    empty, so the other tests' model calls are the turns' alone)."""
    monkeypatch.setenv(Env.TITLE_MODEL_ID, TITLE_MODEL)
    get_settings.cache_clear()


def _reset_caches() -> None:
    """Settings, clients and the derived pagination key are cached per container; each test is
    a fresh container."""
    get_settings.cache_clear()
    aws.reset_clients()
    derived_key.cache_clear()


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def rest(app_env: dict[str, str], context: LambdaContext) -> Rest:
    return Rest(context)


@pytest.fixture
def ws(
    app_env: dict[str, str], context: LambdaContext, ws_management: WsManagementFake
) -> WebSocket:
    return WebSocket(context, ws_management)


class SessionCleanup:
    """The sessions table's stream (KEYS_ONLY, as the stack sets it) feeding the real session
    cleanup function, as the event source mapping does: :meth:`drain` delivers every record
    written since the last call."""

    def __init__(self, sessions_table: str) -> None:
        self._arn = enable_stream(boto3.client("dynamodb"), sessions_table)
        self._reader = StreamReader(boto3.client("dynamodbstreams"), self._arn)

    def drain(self) -> None:
        records = self._reader.read()
        if records:
            answer = cleanup.handler(lambda_event(records, self._arn), LambdaContext())
            assert answer == {"batchItemFailures": []}, answer


@pytest.fixture
def session_cleanup(app_env: dict[str, str]) -> SessionCleanup:
    cleanup.messages.cache_clear()
    cleanup.attachments.cache_clear()
    return SessionCleanup(app_env[Env.SESSIONS_TABLE])
