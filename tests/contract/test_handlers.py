"""Each synthesized function's ``handler`` runs from the package the stack deploys.

The package is rebuilt for the synthesized runtime and architecture and must hash to the
synthesized ``source_code_hash``, so it is the deployed zip; then a fresh interpreter with only
that package and boto3 on its path (what the Lambda runtime provides) resolves the synthesized
handler string, with the function's synthesized environment.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compute.packaging import Target, build_function
from devserver.lambda_runtime import extract, runtime_site
from functions.contract import FUNCTIONS, MAIN, OPENAI_BASE_PATH, Env, FunctionSpec
from tests.compute.synth import STACKS
from tests.security.synthesized import Stack, synthesized
from tests.support.events import load_event

HOST_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
pytestmark = STACKS

parametrize_functions = pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)

# Runs in the fresh interpreter: stdin holds the two path entries, the handler string and, for
# the main function, an API Gateway event to answer.
_IMPORT_AND_CALL = """
import importlib, json, sys
request = json.loads(sys.stdin.read())
sys.path[:0] = request["path"]
module, attribute = request["handler"].rsplit(".", 1)
handler = getattr(importlib.import_module(module), attribute)
assert callable(handler), request["handler"]
test_only = ("hypothesis", "moto", "pytest", "tests")
assert not [m for m in sys.modules if m.startswith(test_only)]
if request.get("asgi") is not None:
    import asyncio
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "https", "path": request["asgi"]["path"],
             "raw_path": request["asgi"]["path"].encode(), "query_string": b"",
             "root_path": "", "server": ("localhost", 443), "client": ("127.0.0.1", 1),
             "headers": [(k.encode(), v.encode()) for k, v in request["asgi"]["headers"].items()]}
    asyncio.run(handler(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    print(json.dumps({"status": sent[0]["status"], "body": body.decode()}))
elif request["event"] is not None:
    class Context:
        function_name = "contract"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:contract"
        aws_request_id = "contract-test"
    print(json.dumps(handler(request["event"], Context())))
"""


def target(stack: Stack, spec: FunctionSpec) -> Target:
    function = stack.function(spec)
    [architecture] = function["architectures"]
    return Target(function["runtime"], architecture)


@parametrize_functions
def test_synthesized_code_is_the_functions_package(stack: Stack, spec: FunctionSpec) -> None:
    """Mutations caught: a function deployed with another function's zip, a stale hash
    (Terraform would not redeploy changed code), a package built for the wrong architecture
    or runtime (a different zip and hash)."""
    function = stack.function(spec)
    package = build_function(spec, target(stack, spec))
    assert function["source_code_hash"] == package.source_code_hash
    assert Path(function["filename"]).name == package.path.name


@parametrize_functions
def test_handler_runs_from_its_package_alone(spec: FunctionSpec, tmp_path: Path) -> None:
    """The dev stack's handler string resolves to a callable in a fresh interpreter holding
    only the package and boto3; the main function also answers ``GET /api/v1/health``, and the
    OpenAI-compatible app (its start script's ASGI app) lists the models to an authorized
    caller and refuses one without identity, through its logging and error layers (what a
    package trimmed too far would fail at).

    Mutations caught: a handler string renamed on either side, a dependency missing from
    ``requirements.txt`` (import or first request fails), a test-only import in the code."""
    stack = synthesized("dev")
    function = stack.function(spec)
    build = target(stack, spec)
    if build.architecture != HOST_ARCHITECTURE:
        pytest.skip(f"dev deploys {build.architecture}; this host runs {HOST_ARCHITECTURE}")
    tree = extract(build_function(spec, build).path, tmp_path / "task")
    event = None
    if spec is MAIN:
        event = load_event("rest-proxy-request")
        event["httpMethod"] = event["requestContext"]["httpMethod"] = "GET"
        event["path"] = event["resource"] = "/api/v1/health"
        event["requestContext"]["path"] = event["requestContext"]["resourcePath"] = event["path"]
        event["body"] = None
    handler = function["handler"]
    if spec.web_adapter:
        # The adapter execs the handler, a start script of the package, which serves the app.
        assert spec.asgi_app in (tree / handler).read_text(), handler
        handler = ".".join(spec.entry)
    request = {
        "path": [str(tree), str(runtime_site(tmp_path / "runtime"))],
        "handler": handler,
        "event": event,
    }
    environment = stack.environment(spec, websocket_callback_url="https://example.invalid/v1")

    def run(**extra: Any) -> dict[str, Any] | None:
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _IMPORT_AND_CALL],
            env={**environment, "PATH": "/usr/bin:/bin", "AWS_REGION": stack.region},
            input=json.dumps(request | extra),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    answer = run()
    if spec is MAIN:
        assert answer is not None
        assert answer["statusCode"] == 200, answer
        assert json.loads(answer["body"])["status"] == "ok"
    if spec.web_adapter:
        models = f"{OPENAI_BASE_PATH}/models"
        identity = json.dumps({"authorizer": {"principalId": "user-a"}})
        listed = run(asgi={"path": models, "headers": {"x-amzn-request-context": identity}})
        assert listed is not None
        assert listed["status"] == 200, listed
        listed_ids = [model["id"] for model in json.loads(listed["body"])["data"]]
        assert listed_ids == environment[Env.BEDROCK_MODELS].split(",")
        refused = run(asgi={"path": models, "headers": {}})
        assert refused is not None
        assert refused["status"] == 401, refused
