"""The real pipeline: a JWT from a local OIDC issuer goes through the authorizer handler, its
answer becomes ``requestContext.authorizer`` as API Gateway builds it, and the main and WebSocket
handlers act as the token's subject."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import pytest

from fakes.bedrock import BedrockFake
from fakes.oidc import AUDIENCE, LocalIssuer, SigningKey
from functions.authorizer.handler import handler as authorizer_handler
from functions.contract import API_BASE_PATH, Env
from functions.websocket.handler import handler as websocket_handler
from tests.functions.helpers import HttpResponse, LambdaContext, Rest, WebSocket
from tests.support.events import load_event


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.rsa("e2e-key")


@pytest.fixture
def issuer(
    signing_key: SigningKey, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalIssuer]:
    running = LocalIssuer(keys=[signing_key]).start()
    monkeypatch.setenv(Env.JWT_ISSUER, running.url)
    monkeypatch.setenv(Env.JWT_AUDIENCE, AUDIENCE)
    monkeypatch.delenv(Env.JWKS_URL, raising=False)
    yield running
    running.stop()


def api_gateway_authorizer_context(policy: dict[str, Any]) -> dict[str, Any]:
    """What API Gateway puts in ``requestContext.authorizer`` from an authorizer's answer."""
    return {"principalId": policy["principalId"], "integrationLatency": 12, **policy["context"]}


def allows(policy: dict[str, Any], method_arn: str) -> bool:
    statements = policy["policyDocument"]["Statement"]
    return any(
        statement["Effect"] == "Allow" and fnmatch.fnmatchcase(method_arn, statement["Resource"])
        for statement in statements
    )


def rest_call(
    rest: Rest, context: LambdaContext, token: str, method: str, path: str, *, body: Any = None
) -> HttpResponse:
    """Authorize like API Gateway (TOKEN authorizer), then invoke the main function."""
    authorization = load_event("rest-token-authorizer")
    authorization["authorizationToken"] = f"Bearer {token}"
    arn = authorization["methodArn"].rsplit("/", 2)[0] + f"/{method}{API_BASE_PATH}{path}"
    authorization["methodArn"] = arn
    policy = authorizer_handler(authorization, context)
    assert allows(policy, arn)
    event = rest.event(method, path, user=None, **({"body": body} if body is not None else {}))
    event["requestContext"]["authorizer"] = api_gateway_authorizer_context(policy)
    return rest.invoke(event)


def test_token_to_session_through_authorizer_and_main(
    issuer: LocalIssuer, rest: Rest, context: LambdaContext
) -> None:
    token = issuer.token(sub="ada-123")
    created = rest_call(rest, context, token, "POST", "/sessions", body={"title": "e2e"})
    assert created.status == 201, created.text
    listed = rest_call(rest, context, token, "GET", "/sessions")
    assert [s["session_id"] for s in listed.json["sessions"]] == [created.json["session_id"]]
    # Another subject's token sees nothing of it.
    other = issuer.token(sub="bob-456")
    assert rest_call(rest, context, other, "GET", "/sessions").json["sessions"] == []
    response = rest_call(rest, context, other, "GET", f"/sessions/{created.json['session_id']}")
    response.assert_error(404, "not_found")


def test_forged_token_never_reaches_the_main_function(
    issuer: LocalIssuer, context: LambdaContext
) -> None:
    forged = SigningKey.rsa("e2e-key").sign(issuer.claims(sub="mallory"))  # right kid, wrong key
    authorization = load_event("rest-token-authorizer")
    authorization["authorizationToken"] = f"Bearer {forged}"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer_handler(authorization, context)


def test_token_to_streamed_chat_over_websocket(
    issuer: LocalIssuer,
    rest: Rest,
    ws: WebSocket,
    bedrock: BedrockFake,
    context: LambdaContext,
) -> None:
    token = issuer.token(sub="ada-123")
    created = rest_call(rest, context, token, "POST", "/sessions", body={"knowledge_base_id": None})
    session_id = created.json["session_id"]

    connect_authorization = load_event("websocket-connect-authorizer-request")
    connect_authorization["headers"]["Authorization"] = f"Bearer {token}"
    connect_authorization["multiValueHeaders"]["Authorization"] = [f"Bearer {token}"]
    policy = authorizer_handler(connect_authorization, context)
    assert allows(policy, connect_authorization["methodArn"])

    connection_id = ws.new_connection_id()
    connect = load_event("websocket-connect")
    connect["requestContext"]["connectionId"] = connection_id
    connect["requestContext"]["authorizer"] = api_gateway_authorizer_context(policy)
    assert websocket_handler(connect, context) == {"statusCode": 200}

    payload = {"action": "sendMessage", "session_id": session_id, "content": "hello"}
    assert ws.send(connection_id, payload) == {"statusCode": 200}
    frames = ws.frames(connection_id)
    assert [frames[0]["type"], frames[-1]["type"]] == ["start", "end"]
    history = rest_call(rest, context, token, "GET", f"/sessions/{session_id}/messages")
    assert [m["role"] for m in history.json["messages"]] == ["user", "assistant"]
