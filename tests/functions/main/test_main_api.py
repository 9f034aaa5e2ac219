"""The REST API through the main Lambda handler: routes, identity, sessions, errors, paging."""

from __future__ import annotations

import base64
import json
import os
import time

import boto3
import pytest
from fastapi.routing import iter_route_contexts

from functions.contract import REST_ROUTES, Env
from functions.core.settings import get_settings
from functions.main.app import app
from tests.functions.helpers import (
    DEFAULT_KNOWLEDGE_BASE_ID,
    MODELS,
    USER_A,
    USER_B,
    Rest,
    stored_session,
)

DAY = 86_400
SESSION_PATHS = ("/sessions/{id}", "/sessions/{id}/messages")


def test_routes_are_exactly_the_contract_routes() -> None:
    declared = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert declared == {(route.method, route.full_path) for route in REST_ROUTES}


IDEMPOTENT_OPERATIONS = {
    ("post", "/api/v1/sessions"),
    ("post", "/api/v1/sessions/{session_id}/messages"),
}


def test_openapi_documents_the_error_shape_and_no_validation_422() -> None:
    """Validation is 400 in the one error shape; 422 is only the Idempotency-Key reuse of the
    two idempotent operations (IETF draft) and a refused attachment, in the same shape."""
    schema = app.openapi()
    assert "ErrorResponse" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if (method, path) in IDEMPOTENT_OPERATIONS:
                assert responses["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorResponse"
                }
                assert "idempotency_key_reused" in responses["422"]["description"]
            elif (method, path) == ("post", "/api/v1/sessions/{session_id}/attachments"):
                assert "attachment_rejected" in responses["422"]["description"]
            else:
                assert "422" not in responses, (method, path)
            assert responses["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
            if path != "/api/v1/health":  # the only route that touches no AWS service
                assert "Retry-After" in responses["503"]["headers"]
                assert "dependency_unreachable" in responses["502"]["description"]


def test_health_needs_no_identity(rest: Rest) -> None:
    # The recorded event as is: its authorizer holds no identity ({"claims": null, ...}).
    response = rest.call("GET", "/health", user=None)
    assert response.status == 200
    assert response.json["status"] == "ok"


def test_every_authorized_route_answers_401_without_identity(rest: Rest) -> None:
    for route in REST_ROUTES:
        if not route.authorized:
            continue
        path = route.path.replace("{session_id}", "0b515f04-62f1-415e-a225-f6913c371fab")
        body = {"content": "hi"} if route.method in ("POST", "PATCH") else None
        response = rest.call(route.method, path, user=None, body=body)
        response.assert_error(401, "unauthorized")


def test_blank_principal_is_no_identity(rest: Rest) -> None:
    event = rest.event("GET", "/sessions", user=None)
    event["requestContext"]["authorizer"] = {"principalId": "  ", "integrationLatency": 0}
    rest.invoke(event).assert_error(401, "unauthorized")


def test_principal_id_alone_identifies_the_caller(rest: Rest) -> None:
    session = rest.create_session()
    event = rest.event("GET", f"/sessions/{session['session_id']}", user=None)
    event["requestContext"]["authorizer"] = {"principalId": USER_A, "integrationLatency": 0}
    assert rest.invoke(event).status == 200


def test_create_session_defaults(rest: Rest) -> None:
    before = int(time.time())
    session = rest.create_session()
    assert set(session) == {
        "session_id",
        "title",
        "model_id",
        "knowledge_base_id",
        "created_at",
        "last_activity",
        "expires_at",
        "message_count",
    }
    assert session["model_id"] == MODELS[0]
    assert session["knowledge_base_id"] == DEFAULT_KNOWLEDGE_BASE_ID
    assert session["message_count"] == 0
    assert session["title"] == "New session"
    assert session["created_at"] == session["last_activity"]
    assert session["created_at"].endswith("Z")
    assert before + 30 * DAY <= session["expires_at"] <= int(time.time()) + 30 * DAY
    item = stored_session(session["session_id"])
    assert item is not None
    assert item["expires_at"] == {"N": str(session["expires_at"])}  # a Number, for TTL
    assert item["user_id"] == {"S": USER_A}
    fetched = rest.call("GET", f"/sessions/{session['session_id']}")
    assert fetched.status == 200
    assert fetched.json == session


def test_create_session_with_every_field(rest: Rest) -> None:
    session = rest.create_session(
        title="  Trip plans ", model_id=MODELS[1], knowledge_base_id="ABCDEFGHIJ"
    )
    assert session["title"] == "Trip plans"
    assert session["model_id"] == MODELS[1]
    assert session["knowledge_base_id"] == "ABCDEFGHIJ"


def test_explicit_null_knowledge_base_means_none(rest: Rest) -> None:
    assert rest.create_session(knowledge_base_id=None)["knowledge_base_id"] is None


def test_session_ttl_follows_the_setting(rest: Rest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.SESSION_TTL_DAYS, "2")
    get_settings.cache_clear()
    before = int(time.time())
    session = rest.create_session()
    assert before + 2 * DAY <= session["expires_at"] <= int(time.time()) + 2 * DAY


BAD_CREATE_BODIES = [
    {"model_id": "amazon.titan-text-express-v1"},
    {"model_id": ""},
    {"model_id": 5},
    {"title": ""},
    {"title": "x" * 201},
    {"title": ["list"]},
    {"knowledge_base_id": "short"},
    {"knowledge_base_id": "ABCDEFGHI!"},
    {"unknown": 1},
    [],
    "text",
    None,
]


def test_create_session_rejects_bad_bodies(rest: Rest) -> None:
    for body in BAD_CREATE_BODIES:
        response = rest.call("POST", "/sessions", body=body)
        assert response.status == 400, body
        response.assert_error(400, "bad_request")
    assert stored_sessions_count(rest) == 0


def test_unknown_model_message_lists_the_allowed_ones(rest: Rest) -> None:
    response = rest.call("POST", "/sessions", body={"model_id": "nope"})
    error = response.assert_error(400, "bad_request")
    assert all(model in error["message"] for model in MODELS)


def test_malformed_json_is_400(rest: Rest) -> None:
    response = rest.call("POST", "/sessions", raw_body='{"title": ')
    error = response.assert_error(400, "bad_request")
    assert error["details"]


def test_knowledge_base_rejected_when_the_feature_is_off(
    rest: Rest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Env.KNOWLEDGE_BASE_ID, "")
    get_settings.cache_clear()
    response = rest.call("POST", "/sessions", body={"knowledge_base_id": "ABCDEFGHIJ"})
    response.assert_error(400, "bad_request")
    assert rest.create_session()["knowledge_base_id"] is None


def test_unknown_route_and_method_have_the_error_shape(rest: Rest) -> None:
    rest.call("GET", "/nothing-here").assert_error(404, "not_found")
    response = rest.call("PUT", "/sessions", body={})
    response.assert_error(405, "method_not_allowed")


def test_missing_and_malformed_session_ids_are_404(rest: Rest) -> None:
    for session_id in ("0b515f04-62f1-415e-a225-f6913c371fab", "not-a-uuid", "x" * 3000):
        for path in SESSION_PATHS:
            rest.call("GET", path.format(id=session_id)).assert_error(404, "not_found")
        response = rest.call("PATCH", f"/sessions/{session_id}", body={"title": "t"})
        response.assert_error(404, "not_found")
        rest.call("DELETE", f"/sessions/{session_id}").assert_error(404, "not_found")


def test_patch_updates_fields_and_refreshes_activity(rest: Rest) -> None:
    session = rest.create_session()
    time.sleep(0.01)
    response = rest.call(
        "PATCH",
        f"/sessions/{session['session_id']}",
        body={"title": "Renamed", "model_id": MODELS[1], "knowledge_base_id": None},
    )
    assert response.status == 200, response.text
    updated = response.json
    assert updated["title"] == "Renamed"
    assert updated["model_id"] == MODELS[1]
    assert updated["knowledge_base_id"] is None
    assert updated["last_activity"] > session["last_activity"]
    assert updated["created_at"] == session["created_at"]
    assert updated["expires_at"] >= session["expires_at"]
    assert rest.call("GET", f"/sessions/{session['session_id']}").json == updated


def test_empty_patch_is_a_no_op_that_counts_as_activity(rest: Rest) -> None:
    """Mutations caught: an empty PATCH that skips the update (activity and expiry stay), or
    that changes a field."""
    session = rest.create_session(title="Keep")
    other = rest.create_session(title="Newer")
    time.sleep(1.1)  # expires_at has a resolution of seconds
    response = rest.call("PATCH", f"/sessions/{session['session_id']}", body={})
    assert response.status == 200
    patched = response.json
    unchanged = ("session_id", "title", "model_id", "knowledge_base_id", "created_at")
    assert {key: patched[key] for key in unchanged} == {key: session[key] for key in unchanged}
    assert patched["message_count"] == session["message_count"]
    assert patched["last_activity"] > other["last_activity"] > session["last_activity"]
    assert patched["expires_at"] > session["expires_at"]
    assert rest.call("GET", f"/sessions/{session['session_id']}").json == patched
    listed = rest.call("GET", "/sessions").json["sessions"]
    assert [item["session_id"] for item in listed] == [session["session_id"], other["session_id"]]


BAD_PATCH_BODIES = [
    {"title": None},
    {"model_id": None},
    {"model_id": "unknown-model"},
    {"knowledge_base_id": "bad"},
    {"message_count": 5},
]


def test_patch_rejects_bad_bodies(rest: Rest) -> None:
    session = rest.create_session(title="Keep")
    for body in BAD_PATCH_BODIES:
        response = rest.call("PATCH", f"/sessions/{session['session_id']}", body=body)
        assert response.status == 400, body
        response.assert_error(400, "bad_request")
    assert rest.call("GET", f"/sessions/{session['session_id']}").json == session


def test_list_sessions_newest_activity_first_across_pages(rest: Rest) -> None:
    created = [rest.create_session(title=f"s{i}")["session_id"] for i in range(5)]
    # Touch the oldest one: it becomes the most recently active.
    rest.call("PATCH", f"/sessions/{created[0]}", body={"title": "touched"})
    expected = [created[0], *reversed(created[1:])]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = {"limit": "2"} | ({"next_token": token} if token else {})
        response = rest.call("GET", "/sessions", query=query)
        assert response.status == 200, response.text
        pages += 1
        assert len(response.json["sessions"]) <= 2
        seen.extend(session["session_id"] for session in response.json["sessions"])
        token = response.json["next_token"]
        if token is None:
            break
    assert seen == expected
    assert pages >= 3


def test_list_only_shows_the_callers_sessions(rest: Rest) -> None:
    mine = rest.create_session(USER_A)["session_id"]
    rest.create_session(USER_B)
    response = rest.call("GET", "/sessions", user=USER_A)
    assert [session["session_id"] for session in response.json["sessions"]] == [mine]


def test_list_limit_out_of_range_is_400(rest: Rest) -> None:
    for limit in ("0", "101", "-1", "abc", "1.5"):
        rest.call("GET", "/sessions", query={"limit": limit}).assert_error(400, "bad_request")


def test_list_limit_bounds_are_accepted(rest: Rest) -> None:
    for limit in ("1", "100"):
        assert rest.call("GET", "/sessions", query={"limit": limit}).status == 200


def _first_page_token(rest: Rest, user: str = USER_A) -> str:
    response = rest.call("GET", "/sessions", user=user, query={"limit": "1"})
    token = response.json["next_token"]
    assert token
    return token


def test_next_token_cannot_be_replayed_by_another_user(rest: Rest) -> None:
    rest.create_session(USER_A)
    rest.create_session(USER_A)
    token = _first_page_token(rest)
    response = rest.call("GET", "/sessions", user=USER_B, query={"next_token": token})
    response.assert_error(400, "bad_request")


def test_forged_next_token_is_rejected(rest: Rest) -> None:
    """Editing the readable payload (to page through another user's index) breaks the MAC."""
    rest.create_session(USER_A)
    rest.create_session(USER_A)
    token = _first_page_token(rest)
    payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["u"] = USER_B
    claims["e"]["user_id"] = {"S": USER_B}
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for forged in (f"{forged_payload}.{signature}", token[:-2] + "AA", "garbage", "a.b.c", "é.é"):
        response = rest.call("GET", "/sessions", user=USER_B, query={"next_token": forged})
        response.assert_error(400, "bad_request")


def test_sessions_token_is_not_a_messages_token(rest: Rest) -> None:
    session = rest.create_session(USER_A)
    rest.create_session(USER_A)
    token = _first_page_token(rest)
    response = rest.call(
        "GET", f"/sessions/{session['session_id']}/messages", query={"next_token": token}
    )
    response.assert_error(400, "bad_request")


def test_delete_session(rest: Rest) -> None:
    session = rest.create_session()
    response = rest.call("DELETE", f"/sessions/{session['session_id']}")
    assert response.status == 204
    assert response.text == ""
    rest.call("GET", f"/sessions/{session['session_id']}").assert_error(404, "not_found")
    rest.call("DELETE", f"/sessions/{session['session_id']}").assert_error(404, "not_found")
    assert stored_session(session["session_id"]) is None


def test_expired_session_is_gone_before_dynamodb_deletes_it(rest: Rest) -> None:
    session = rest.create_session()
    boto3.client("dynamodb").update_item(
        TableName=os.environ[Env.SESSIONS_TABLE],
        Key={"session_id": {"S": session["session_id"]}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    rest.call("GET", f"/sessions/{session['session_id']}").assert_error(404, "not_found")
    assert rest.call("GET", "/sessions").json["sessions"] == []
    response = rest.call("PATCH", f"/sessions/{session['session_id']}", body={"title": "x"})
    response.assert_error(404, "not_found")


def stored_sessions_count(rest: Rest) -> int:
    return len(rest.call("GET", "/sessions").json["sessions"])
