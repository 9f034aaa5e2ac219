"""The OpenAI-compatible app under a real uvicorn on 127.0.0.1, against moto and the Bedrock
fake, called as the Lambda Web Adapter calls it: API Gateway's request context (with the
authorizer's answer) in ``x-amzn-request-context``. Clients are the official ``openai`` SDK
(an independent oracle of the shapes) and plain httpx for the raw bytes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from functions.contract import LAMBDA_CONTEXT_HEADER, REQUEST_CONTEXT_HEADER
from functions.openai_api.app import app
from tests.functions.helpers import MODELS, USER_A, authorizer_context


def adapter_headers(user: str | None = USER_A, deadline_in: float | None = None) -> dict[str, str]:
    """The headers the adapter adds: the request context (no authorizer without ``user``) and,
    with ``deadline_in`` seconds, the Lambda context's deadline."""
    context: dict[str, Any] = {"stage": "v1", "requestId": "req-1"}
    if user is not None:
        context["authorizer"] = authorizer_context(user)
    headers = {REQUEST_CONTEXT_HEADER: json.dumps(context)}
    if deadline_in is not None:
        deadline_ms = int((time.time() + deadline_in) * 1000)
        headers[LAMBDA_CONTEXT_HEADER] = json.dumps({"request_id": "r", "deadline": deadline_ms})
    return headers


@dataclass(frozen=True)
class Api:
    base_url: str  # ends with /v1

    def client(
        self, user: str | None = USER_A, deadline_in: float | None = None, **headers: str
    ) -> openai.OpenAI:
        """The SDK, without retries (429 and 5xx are what the tests look at)."""
        return openai.OpenAI(
            base_url=self.base_url,
            api_key="unused-the-adapter-headers-carry-identity",
            max_retries=0,
            default_headers=adapter_headers(user, deadline_in) | headers,
        )

    def post(
        self, body: Any, user: str | None = USER_A, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/chat/completions",
            json=body,
            headers=adapter_headers(user) | (headers or {}),
            timeout=30,
        )


def ask(content: str = "Hello?", **fields: Any) -> dict[str, Any]:
    return {"model": MODELS[0], "messages": [{"role": "user", "content": content}], **fields}


@pytest.fixture
def api(app_env: dict[str, str]) -> Iterator[Api]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Api(f"http://127.0.0.1:{port}/v1")
    server.should_exit = True
    thread.join(10)
