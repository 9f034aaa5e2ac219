"""Hypothesis-generated request bodies and queries: never a 5xx, always the one error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.bedrock import BedrockFake
from tests.functions.helpers import MODELS, HttpResponse, Rest, WebSocket

FIELDS = ("title", "model_id", "knowledge_base_id", "content", "action", "session_id")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from([*MODELS, "ABCDEFGHIJ", "", " ", "\x00", "🙂" * 3]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
# Bodies that look like what the routes expect, with wrong or odd values, plus anything at all.
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
    json_values,
)
raw_bodies = st.one_of(bodies.map(json.dumps), st.text(max_size=40))
fuzz = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _assert_no_server_error(response: HttpResponse) -> None:
    assert response.status < 500, response.text
    if response.status >= 400:
        body = response.json
        assert set(body) == {"error"}
        assert set(body["error"]) <= {"code", "message", "details"}
        assert isinstance(body["error"]["code"], str)
        assert isinstance(body["error"]["message"], str)


@pytest.fixture
def session_id(rest: Rest) -> str:
    return rest.create_session()["session_id"]


@fuzz
@given(raw=raw_bodies)
def test_create_session_bodies(rest: Rest, raw: str) -> None:
    response = rest.call("POST", "/sessions", raw_body=raw)
    _assert_no_server_error(response)
    if response.status == 201:
        assert response.json["model_id"] in MODELS


@fuzz
@given(raw=raw_bodies)
def test_update_session_bodies(rest: Rest, session_id: str, raw: str) -> None:
    _assert_no_server_error(rest.call("PATCH", f"/sessions/{session_id}", raw_body=raw))


@fuzz
@given(raw=raw_bodies)
def test_message_bodies(rest: Rest, bedrock: BedrockFake, session_id: str, raw: str) -> None:
    _assert_no_server_error(rest.call("POST", f"/sessions/{session_id}/messages", raw_body=raw))


@fuzz
@given(
    limit=st.one_of(st.none(), st.text(max_size=6), st.integers().map(str)),
    token=st.one_of(st.none(), st.text(max_size=60)),
    path_id=st.text(min_size=1, max_size=40).filter(lambda text: "/" not in text),
)
def test_queries_and_path_ids(rest: Rest, limit: Any, token: Any, path_id: str) -> None:
    query = {name: value for name, value in (("limit", limit), ("next_token", token)) if value}
    _assert_no_server_error(rest.call("GET", "/sessions", query=query))
    _assert_no_server_error(rest.call("GET", f"/sessions/{path_id}/messages", query=query))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=raw_bodies)
def test_websocket_frames(ws: WebSocket, bedrock: BedrockFake, session_id: str, raw: str) -> None:
    connection_id = ws.open()
    assert ws.send(connection_id, raw) == {"statusCode": 200}
    for frame in ws.frames(connection_id):
        assert frame["type"] in ("start", "chunk", "end", "pong", "error")
        if frame["type"] == "error":
            assert frame["code"] in ("not_found", "bad_request", "throttled")
