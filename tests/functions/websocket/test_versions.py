"""Regenerating and editing the last turn over the WebSocket: ``sendMessage`` with
``replaces`` streams the new version's answer like any turn, and is refused with error frames
as on REST."""

from __future__ import annotations

from typing import Any

from fakes.bedrock import CONVERSE_STREAM, BedrockFake
from tests.functions.helpers import Rest, WebSocket, stored_messages

OK = {"statusCode": 200}


def _turn(ws: WebSocket, connection_id: str, **payload: Any) -> list[dict[str, Any]]:
    """Send one sendMessage; the frames it was answered with."""
    before = len(ws.frames(connection_id))
    assert ws.send(connection_id, {"action": "sendMessage", **payload}) == OK
    return ws.frames(connection_id)[before:]


def _listed(rest: Rest, session_id: str) -> list[dict[str, Any]]:
    return rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]


def test_regenerate_and_edit_stream_new_versions(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    bedrock.stream_chunks = ["An ", "answer."]
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _turn(ws, connection_id, session_id=session_id, content="one")
    question = _listed(rest, session_id)[0]["message_id"]

    start, *_, end = _turn(ws, connection_id, session_id=session_id, replaces=question)
    assert (start["type"], end["type"], end["status"]) == ("start", "end", "complete")
    regenerated = _listed(rest, session_id)[2]
    assert (regenerated["content"], regenerated["version"]) == ("one", 2)
    assert regenerated["replaces"] == question

    frames = _turn(
        ws, connection_id, session_id=session_id, replaces=regenerated["message_id"], content="1"
    )
    assert frames[-1]["type"] == "end"
    listed = _listed(rest, session_id)
    assert [(m["content"], m["version"], bool(m["superseded_by"])) for m in listed] == [
        ("one", 1, True),
        ("An answer.", 1, True),
        ("one", 2, True),
        ("An answer.", 2, True),
        ("1", 3, False),
        ("An answer.", 3, False),
    ]
    assert bedrock.requests_for(CONVERSE_STREAM)[-1].body["messages"] == [
        {"role": "user", "content": [{"text": "1"}]}
    ]


def test_refusals_are_error_frames(ws: WebSocket, rest: Rest, bedrock: BedrockFake) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _turn(ws, connection_id, session_id=session_id, content="one")
    _turn(ws, connection_id, session_id=session_id, content="two")
    listed = _listed(rest, session_id)
    calls = len(bedrock.requests_for(CONVERSE_STREAM))
    for replaces, code in (
        (listed[0]["message_id"], "conflict"),  # not the last question
        (listed[3]["message_id"], "conflict"),  # an answer
        ("unknown", "not_found"),
    ):
        [frame] = _turn(ws, connection_id, session_id=session_id, replaces=replaces)
        assert (frame["type"], frame["code"]) == ("error", code), replaces
    other = ws.open(user="user-b")
    [frame] = _turn(ws, other, session_id=session_id, replaces=listed[2]["message_id"])
    assert (frame["type"], frame["code"]) == ("error", "not_found")
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == calls
    assert len(stored_messages(session_id)) == 4


def test_a_keyed_regenerate_is_replayed_without_a_model_call(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _turn(ws, connection_id, session_id=session_id, content="one")
    question = _listed(rest, session_id)[0]["message_id"]
    keyed = {"session_id": session_id, "replaces": question, "idempotency_key": "regen-1"}
    first = _turn(ws, connection_id, **keyed)
    calls = len(bedrock.requests_for(CONVERSE_STREAM))
    again = _turn(ws, connection_id, **keyed)
    assert [frame["type"] for frame in again][:: len(again) - 1] == ["start", "end"]
    assert again[0]["message_id"] == first[0]["message_id"]
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == calls
    assert len(stored_messages(session_id)) == 4
