"""The dev server, started once per test session on free ports, from a fresh synthesis of the
dev environment, and the real clients that drive it: httpx for REST, websockets for the
WebSocket API.

Every module that uses it (``tests/dev``, the chat client's terminal tests) is in one
``xdist_group`` (``pytestmark = DEV_GROUP``), so under ``pytest -n`` with ``--dist loadgroup``
one worker starts the server once instead of every worker starting its own. A plugin of the
top-level conftest, so that those packages share the one server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from devserver.server import DevServer, Settings
from devserver.stack import stack_file
from functions.contract import OPENAI_API, Env

ROOT = Path(__file__).resolve().parents[2]
DEV_GROUP = pytest.mark.xdist_group("dev")
CHUNK_DELAY = 0.005  # paced, so a stream really is a stream, yet quick


class Logs:
    """Every line the server printed, by source (function name, ``rest-api``, ...).

    A failed test's report shows the lines every server printed while it ran
    (:func:`pytest_runtest_makereport`): a 500 from the gateway says nothing of its cause.
    """

    every: ClassVar[list[Logs]] = []  # every instance of the process, for the reports

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines: list[tuple[str, str]] = []
        Logs.every.append(self)

    def __call__(self, source: str, line: str) -> None:
        with self._lock:
            self.lines.append((source, line))

    def sources(self) -> set[str]:
        with self._lock:
            return {source for source, _ in self.lines}


_LINES_BEFORE = pytest.StashKey[list[int]]()
REPORTED_LINES = 200


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    item.stash[_LINES_BEFORE] = [len(logs.lines) for logs in Logs.every]
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[pytest.TestReport]:
    report = yield
    if report.failed and _LINES_BEFORE in item.stash:
        before = item.stash[_LINES_BEFORE]
        for number, logs in enumerate(Logs.every):
            new = logs.lines[before[number] if number < len(before) else 0 :]
            if new:
                text = "\n".join(f"{source}: {line}" for source, line in new[-REPORTED_LINES:])
                report.sections.append((f"dev server output ({number})", text))
    return report


@pytest.fixture(scope="session")
def stacks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cdktf.out/stacks`` of the dev environment, synthesized as ``make dev`` does."""
    folder = tmp_path_factory.mktemp("synth")
    env = {**os.environ, "COMPUTE_CONFIG_DIR": str(ROOT / "config"), "COMPUTE_ENVIRONMENTS": "dev"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return folder / "cdktf.out" / "stacks"


@pytest.fixture(scope="session")
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package cache that every dev server of this test process shares, as a developer's
    successive ``make dev`` runs do: the first start extracts the packages, the next find them."""
    return tmp_path_factory.mktemp("packages")


def start_server(
    stack_path: Path,
    state_dir: Path,
    packages: Path,
    logs: Logs,
    *,
    dynamodb_endpoint: str | None = None,
    kb_dir: Path | None = None,
) -> DevServer:
    settings = Settings(
        dynamodb_endpoint=dynamodb_endpoint,
        kb_dir=kb_dir,
        stack_path=stack_path,
        rest_port=0,
        ws_port=0,
        oidc_port=0,
        management_port=0,
        state_dir=state_dir,
        package_cache=packages,
        chunk_delay=CHUNK_DELAY,
        first_delta=0.0,
    )
    return DevServer(settings, log=logs).start()


@pytest.fixture(scope="session")
def logs() -> Logs:
    return Logs()


@pytest.fixture(scope="session")
def dev(
    stacks_dir: Path, tmp_path_factory: pytest.TempPathFactory, package_cache: Path, logs: Logs
) -> Iterator[DevServer]:
    state = tmp_path_factory.mktemp("state")
    server = start_server(stack_file(stacks_dir, "dev"), state, package_cache, logs)
    yield server
    server.stop()


@pytest.fixture
def model(dev: DevServer) -> Iterator[Any]:
    """The local model, restored after the test changes its reply or pace."""
    assert dev.model is not None
    saved = (dev.model.reply, dev.model.pacing, dev.model.response_delay)
    yield dev.model
    dev.model.reply, dev.model.pacing, dev.model.response_delay = saved


class Api:
    """A REST client acting as one user (or anonymous)."""

    def __init__(self, dev: DevServer, user: str | None) -> None:
        headers = {"Authorization": f"Bearer {dev.token(user)}"} if user else {}
        self.token = dev.token(user) if user else None
        self.http = httpx.Client(base_url=dev.rest_url, headers=headers, timeout=30)

    def create_session(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/api/v1/sessions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/v1/sessions/{session_id}/messages")
        assert response.status_code == 200, response.text
        return response.json()["messages"]


@pytest.fixture
def alice(dev: DevServer) -> Iterator[Api]:
    api = Api(dev, "alice")
    yield api
    api.http.close()


@pytest.fixture
def bob(dev: DevServer) -> Iterator[Api]:
    api = Api(dev, "bob")
    yield api
    api.http.close()


def wait_for(predicate: Any, timeout: float = 15) -> Any:
    """``predicate()``'s first truthy value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def local_dynamodb(dev: DevServer) -> Any:
    """A client of the dev server's DynamoDB, to check what is stored."""
    return local_client(dev, "dynamodb")


def local_client(dev: DevServer, service: str) -> Any:
    """A client of one service of the dev server's moto (DynamoDB, S3), to check what is
    stored."""
    assert dev.moto is not None
    return boto3.client(
        service,
        endpoint_url=dev.moto.url,
        region_name=dev.stack.region,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def stored_message_count(dev: DevServer, session_id: str) -> int:
    [table] = [t.name for t in dev.stack.tables.values() if t.name.endswith("-messages")]
    return local_dynamodb(dev).query(
        TableName=table,
        KeyConditionExpression="session_id = :s",
        ExpressionAttributeValues={":s": {"S": session_id}},
        Select="COUNT",
    )["Count"]


def websocket(dev: DevServer, user: str, **kwargs: Any) -> ClientConnection:
    return connect(f"{dev.ws_url}?token={dev.token(user)}", open_timeout=10, **kwargs)


def frames_until_end(ws: ClientConnection, timeout: float = 20) -> list[dict[str, Any]]:
    """Frames of one turn, through its ``end`` or ``error`` frame."""
    frames = []
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        frames.append(frame)
        if frame.get("type") in ("end", "error"):
            return frames


def ask_openai(dev: DevServer, user: str) -> None:
    """One stateless completion through the OpenAI-compatible app, which logs its turn."""
    function = next(f for f in dev.stack.functions.values() if f.handler == OPENAI_API.handler)
    model = function.environment[Env.BEDROCK_MODELS].split(",")[0]
    response = httpx.post(
        f"{dev.openai_base_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {dev.token(user)}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
