"""Two users: everything user B tries on user A's session fails like a missing session, and
leaves A's data exactly as it was."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.bedrock import BedrockFake
from tests.functions.helpers import (
    USER_A,
    USER_B,
    Rest,
    WebSocket,
    stored_messages,
    stored_session,
)


@pytest.fixture
def a_session(rest: Rest, bedrock: BedrockFake) -> dict[str, Any]:
    """A session of user A with one turn, and a snapshot of what is stored for it."""
    session = rest.create_session(USER_A, title="A's secrets", knowledge_base_id=None)
    response = rest.call(
        "POST", f"/sessions/{session['session_id']}/messages", user=USER_A, body={"content": "x"}
    )
    assert response.status == 200
    bedrock.reset()
    return session


def _snapshot(session_id: str) -> tuple[Any, Any]:
    return stored_session(session_id), stored_messages(session_id)


ATTEMPTS = [
    ("GET", "", None),
    ("PATCH", "", {"title": "mine now"}),
    ("DELETE", "", None),
    ("GET", "/messages", None),
    ("POST", "/messages", {"content": "let me in"}),
]


def test_user_b_gets_404_and_changes_nothing(
    rest: Rest, bedrock: BedrockFake, a_session: dict[str, Any]
) -> None:
    session_id = a_session["session_id"]
    before = _snapshot(session_id)
    for method, suffix, body in ATTEMPTS:
        kwargs = {"body": body} if body is not None else {}
        response = rest.call(method, f"/sessions/{session_id}{suffix}", user=USER_B, **kwargs)
        error = response.assert_error(404, "not_found")
        # Exactly what a missing session answers: nothing tells B the session exists.
        missing = rest.call(
            method,
            f"/sessions/0b515f04-62f1-415e-a225-f6913c371fab{suffix}",
            user=USER_B,
            **kwargs,
        )
        assert missing.json["error"] == error, (method, suffix)
        assert _snapshot(session_id) == before, (method, suffix)
    assert bedrock.requests == []


def test_user_b_lists_none_of_as_sessions(rest: Rest, a_session: dict[str, Any]) -> None:
    assert rest.call("GET", "/sessions", user=USER_B).json == {"sessions": [], "next_token": None}
    listed = rest.call("GET", "/sessions", user=USER_A).json["sessions"]
    assert [session["session_id"] for session in listed] == [a_session["session_id"]]


def test_user_b_cannot_page_with_as_token(rest: Rest, a_session: dict[str, Any]) -> None:
    session_id = a_session["session_id"]
    token = rest.call(
        "GET", f"/sessions/{session_id}/messages", user=USER_A, query={"limit": "1"}
    ).json["next_token"]
    assert token
    response = rest.call(
        "GET", f"/sessions/{session_id}/messages", user=USER_B, query={"next_token": token}
    )
    response.assert_error(404, "not_found")


def test_user_b_cannot_chat_in_as_session_over_websocket(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake, a_session: dict[str, Any]
) -> None:
    session_id = a_session["session_id"]
    before = _snapshot(session_id)
    connection_id = ws.open(USER_B)
    payload = {"action": "sendMessage", "session_id": session_id, "content": "let me in"}
    assert ws.send(connection_id, payload) == {"statusCode": 200}
    [frame] = ws.frames(connection_id)
    assert (frame["type"], frame["code"]) == ("error", "not_found")
    assert _snapshot(session_id) == before
    assert bedrock.requests == []


def test_a_still_has_full_access(rest: Rest, a_session: dict[str, Any]) -> None:
    session_id = a_session["session_id"]
    assert rest.call("GET", f"/sessions/{session_id}", user=USER_A).status == 200
    assert rest.call("DELETE", f"/sessions/{session_id}", user=USER_A).status == 204
