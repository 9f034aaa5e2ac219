"""The dev server serves whatever the synthesized JSON says, not a second description of the
stack: a copy with a route removed, another stage name, a shorter integration timeout and a
reserved concurrency of 1 is served exactly so."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from devserver.server import DevServer
from devserver.stack import stack_file
from tests.support.dev_server import DEV_GROUP, Logs, start_server, websocket

pytestmark = DEV_GROUP

STAGE = "beta"
EDITED_LOGS = Logs()
TIMEOUT_MS = 400
# Long enough that the turn's storage calls before the model call fit in the deadline's
# share (half the timeout) even on a loaded machine; at 1 s they did not, under a load of 12,
# and at 3 s a cold $connect in a fresh-clone CI run once spent 1.5 s building its DynamoDB
# client, and its put was refused as too late (a 500 for the handshake).
WEBSOCKET_TIMEOUT_S = 4
AUDIENCE = "api://ai-assistant"
ENTRA_RULES = {
    "provider": "entra",
    "read_scopes": ["Sessions.Read"],
    "chat_scopes": ["Chat.ReadWrite"],
    "allowed_client_ids": ["cli-app"],
    "allowed_tenant_ids": ["tenant-1"],
}


# Denies tokens ending in "deny-me" with an explicit policy, and leaves the rest to the real
# authorizer: the one way to see API Gateway's 403 for a policy, since the real one never denies.
DENY_WRAPPER = """
from functions.authorizer.handler import handler as real


def handler(event, context):
    token = event.get("authorizationToken") or (event.get("queryStringParameters") or {}).get(
        "token", ""
    )
    if token.endswith("deny-me"):
        arn = event["methodArn"]
        statement = {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": arn}
        return {"principalId": "denied", "policyDocument": {"Statement": [statement]}}
    return real(event, context)
"""


def _wrap_authorizer(stack_dir: Path, function: dict[str, Any]) -> None:
    """The authorizer's package plus ``deny_wrapper.py``, as the function's new code."""
    original = stack_dir / function["filename"]
    wrapped = original.with_name("authorizer-with-deny.zip")
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(wrapped, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("deny_wrapper.py", DENY_WRAPPER)
    function["filename"] = str(wrapped.relative_to(stack_dir))
    digest = hashlib.sha256(wrapped.read_bytes()).digest()
    function["source_code_hash"] = base64.b64encode(digest).decode()
    function["handler"] = "deny_wrapper.handler"


def _edit(stack: dict[str, Any], stack_dir: Path) -> None:
    resources = stack["resource"]
    methods = resources["aws_api_gateway_method"]
    [kb_get] = [
        method_id
        for method_id, method in methods.items()
        if method["http_method"] == "GET" and "knowledge-bases" in method["resource_id"]
    ]
    del methods[kb_get]
    integrations = resources["aws_api_gateway_integration"]
    for integration_id in [i for i, body in integrations.items() if kb_get in body["http_method"]]:
        del integrations[integration_id]
    for integration in integrations.values():
        if "post-api-v1-sessions-session_id-messages" in integration["http_method"]:
            integration["timeout_milliseconds"] = TIMEOUT_MS
    for stage in resources["aws_api_gateway_stage"].values():
        stage["stage_name"] = STAGE
    for stage in resources["aws_apigatewayv2_stage"].values():
        stage["name"] = STAGE
    for function in resources["aws_lambda_function"].values():
        if function["function_name"].endswith("-main"):
            function["reserved_concurrent_executions"] = 1
        if function["function_name"].endswith("-websocket"):
            function["timeout"] = WEBSOCKET_TIMEOUT_S
        if function["function_name"].endswith("-jwt-authorizer"):
            _wrap_authorizer(stack_dir, function)
            function["environment"]["variables"] |= {
                "JWT_AUDIENCE": AUDIENCE,
                "JWT_VALIDATION": json.dumps(ENTRA_RULES),
            }


@pytest.fixture(scope="module")
def edited(
    dev: DevServer,
    stacks_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    package_cache: Path,
) -> Iterator[DevServer]:
    """The edited stack, served with ``--dynamodb-endpoint`` at the first server's DynamoDB."""
    copy = tmp_path_factory.mktemp("edited") / "stacks"
    shutil.copytree(stacks_dir / "compute-dev", copy / "compute-dev")
    path = stack_file(copy, "dev")
    stack = json.loads(path.read_text())
    _edit(stack, path.parent)
    path.write_text(json.dumps(stack))
    assert dev.moto is not None
    state = tmp_path_factory.mktemp("state")
    server = start_server(path, state, package_cache, EDITED_LOGS, dynamodb_endpoint=dev.moto.url)
    yield server
    server.stop()


def test_a_removed_route_is_gone(dev: DevServer, edited: DevServer) -> None:
    as_deployed = httpx.get(
        f"{dev.rest_url}/api/v1/knowledge-bases",
        headers={"Authorization": f"Bearer {dev.token('alice')}"},
    )
    assert as_deployed.status_code == 200
    removed = httpx.get(
        f"{edited.rest_url}/api/v1/knowledge-bases",
        headers={"Authorization": f"Bearer {edited.token('alice')}"},
    )
    assert removed.status_code == 403
    assert removed.json() == {"message": "Missing Authentication Token"}


def test_the_stage_names_come_from_the_stack(edited: DevServer) -> None:
    assert edited.rest_url.endswith(f"/{STAGE}")
    assert edited.ws_url.endswith(f"/{STAGE}")
    assert httpx.get(f"{edited.rest_url}/api/v1/health").status_code == 200
    v1 = edited.rest_url.removesuffix(STAGE) + "v1/api/v1/health"
    assert httpx.get(v1).status_code == 403
    with websocket(edited, "alice") as ws:
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}


def test_integration_timeout_is_504_and_reserved_concurrency_throttles(
    edited: DevServer,
) -> None:
    """The slow turn outlives the 400 ms integration timeout (504) but runs on in the only
    execution environment main may have, so a request meanwhile is throttled (500)."""
    assert edited.model is not None
    auth = {"Authorization": f"Bearer {edited.token('alice')}"}
    client = httpx.Client(base_url=edited.rest_url, headers=auth, timeout=30)
    session_id = client.post("/api/v1/sessions", json={}).json()["session_id"]
    edited.model.response_delay = 1.2
    try:
        with ThreadPoolExecutor(1) as executor:
            slow = executor.submit(
                client.post, f"/api/v1/sessions/{session_id}/messages", json={"content": "hi"}
            )
            [main] = [f for f in edited.stack.functions.values() if f.name.endswith("-main")]
            assert edited.functions is not None
            pool = edited.functions.pool(main.resource_id)
            deadline = time.monotonic() + 10
            while pool.busy < 1:  # the slow turn holds main's one execution environment
                assert time.monotonic() < deadline, "the slow turn never reached main"
                time.sleep(0.01)
            throttled = client.get("/api/v1/sessions")
            timed_out = slow.result()
    finally:
        edited.model.response_delay = 0.0
    assert timed_out.status_code == 504
    assert timed_out.json() == {"message": "Endpoint request timed out"}
    assert timed_out.headers["access-control-allow-origin"] == "*"
    assert throttled.status_code == 500
    assert throttled.json() == {"message": "Internal server error"}
    deadline = time.monotonic() + 10
    while client.get("/api/v1/sessions").status_code != 200:
        assert time.monotonic() < deadline, "main never became free again"
        time.sleep(0.1)


def test_another_dynamodb_endpoint_is_used(dev: DevServer, edited: DevServer) -> None:
    """``--dynamodb-endpoint``: no moto of its own, the existing tables kept and used."""
    assert edited.moto is None
    created = httpx.post(
        f"{dev.rest_url}/api/v1/sessions",
        json={"title": "shared"},
        headers={"Authorization": f"Bearer {dev.token('gina')}"},
    ).json()
    seen = httpx.get(
        f"{edited.rest_url}/api/v1/sessions/{created['session_id']}",
        headers={"Authorization": f"Bearer {edited.token('gina')}"},
    )
    assert seen.status_code == 200
    assert seen.json()["title"] == "shared"


def test_a_function_past_its_timeout_is_stopped(edited: DevServer) -> None:
    """The websocket function's timeout (4 s here) ends the invocation, as Lambda does: the
    model's first response comes after it."""
    assert edited.model is not None
    auth = {"Authorization": f"Bearer {edited.token('hank')}"}
    session_id = httpx.post(f"{edited.rest_url}/api/v1/sessions", json={}, headers=auth).json()[
        "session_id"
    ]
    edited.model.response_delay = WEBSOCKET_TIMEOUT_S + 0.6
    try:
        with websocket(edited, "hank") as ws:
            message = {"action": "sendMessage", "session_id": session_id, "content": "slow"}
            ws.send(json.dumps(message))
            frames = [json.loads(ws.recv(timeout=10))]
            while frames[-1].get("type") in ("start", "chunk"):
                frames.append(json.loads(ws.recv(timeout=10)))
    finally:
        edited.model.response_delay = 0.0
    # The function never got to answer; API Gateway tells the client its integration failed.
    assert frames[-1]["message"] == "Internal server error"
    assert "type" not in frames[-1]
    lines = [line for source, line in EDITED_LOGS.lines if source.endswith("-websocket")]
    timed_out = f"Task timed out after {WEBSOCKET_TIMEOUT_S:.2f} seconds"
    assert any(timed_out in line for line in lines), lines[-20:]


def test_a_denying_policy_is_403_on_rest_and_websocket(edited: DevServer) -> None:
    """The stack's authorizer handler (here a wrapper) decides; its Deny is API Gateway's 403."""
    denied = httpx.get(
        f"{edited.rest_url}/api/v1/sessions", headers={"Authorization": "Bearer x.deny-me"}
    )
    assert denied.status_code == 403
    assert denied.json() == {"message": "User is not authorized to access this resource"}
    assert denied.headers["access-control-allow-origin"] == "*"
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{edited.ws_url}?token=x.deny-me", open_timeout=10)
    assert refused.value.response.status_code == 403
    allowed = httpx.get(
        f"{edited.rest_url}/api/v1/sessions",
        headers={"Authorization": f"Bearer {edited.token('ivy')}"},
    )
    assert allowed.status_code == 200


def test_tokens_take_the_shape_the_stacks_authorizer_demands(edited: DevServer) -> None:
    """The edited stack trusts only Entra tokens for one tenant and client, with scopes: the
    dev server's tokens are such tokens, and the real authorizer accepts them."""
    token = edited.token("judy")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["oid"] == "judy"
    assert claims["tid"] == "tenant-1"
    assert claims["azp"] == "cli-app"
    assert claims["aud"] == AUDIENCE
    assert {"Sessions.Read", "Chat.ReadWrite"} <= set(claims["scp"].split())
    auth = {"Authorization": f"Bearer {token}"}
    assert (
        httpx.post(f"{edited.rest_url}/api/v1/sessions", json={}, headers=auth).status_code == 201
    )
    with websocket(edited, "judy") as ws:
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
