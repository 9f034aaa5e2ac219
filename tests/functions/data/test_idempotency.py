"""Safe retries: an Idempotency-Key (REST header, WebSocket ``idempotency_key``) makes a repeat
return the original result with no second model call and nothing stored twice; a repeat
while the original runs is 409 ``in_progress``, the same key with another body 422, and one
caller's key never replays another caller's result."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from fakes.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake
from tests.functions.helpers import USER_B, Rest, WebSocket, stored_messages


def _post(rest: Rest, session_id: str, content: str, key: str | None, user: str = "user-a"):
    headers = {"Idempotency-Key": key} if key else {}
    return rest.call(
        "POST",
        f"/sessions/{session_id}/messages",
        body={"content": content},
        headers=headers,
        user=user,
    )


def test_a_repeated_message_returns_the_original_answer_without_a_second_model_call(
    rest: Rest, bedrock: BedrockFake
) -> None:
    bedrock.reply = lambda body: f"answer {len(bedrock.requests_for(CONVERSE))}"
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    first = _post(rest, session_id, "hi", "key-1")
    again = _post(rest, session_id, "hi", "key-1")
    assert (first.status, again.status) == (200, 200)
    assert again.json == first.json
    assert len(bedrock.requests_for(CONVERSE)) == 1
    assert len(stored_messages(session_id)) == 2
    other = _post(rest, session_id, "hi", "key-2")  # another key is another request
    assert other.json["message"]["message_id"] != first.json["message"]["message_id"]
    assert len(bedrock.requests_for(CONVERSE)) == 2


def test_the_same_key_with_another_body_is_422(rest: Rest, bedrock: BedrockFake) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    assert _post(rest, session_id, "hi", "key-1").status == 200
    _post(rest, session_id, "something else", "key-1").assert_error(422, "idempotency_key_reused")
    assert len(bedrock.requests_for(CONVERSE)) == 1


def test_a_repeat_while_the_original_runs_is_409_in_progress(
    rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    started, release = threading.Event(), threading.Event()

    def slow(body: dict) -> str:
        started.set()
        assert release.wait(10)
        return "done"

    bedrock.reply = slow
    with ThreadPoolExecutor(max_workers=1) as pool:
        original = pool.submit(_post, rest, session_id, "hi", "key-1")
        assert started.wait(10)
        _post(rest, session_id, "hi", "key-1").assert_error(409, "in_progress")
        release.set()
        assert original.result().status == 200
    assert _post(rest, session_id, "hi", "key-1").json["message"]["content"] == "done"
    assert len(bedrock.requests_for(CONVERSE)) == 1


@pytest.mark.usefixtures("single_attempt")
def test_a_failed_request_releases_its_key_for_the_retry(rest: Rest, bedrock: BedrockFake) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.throttle(1, operation=CONVERSE)
    _post(rest, session_id, "hi", "key-1").assert_error(503, "throttled")
    retry = _post(rest, session_id, "hi", "key-1")
    assert retry.status == 200, retry.text
    assert [item["role"]["S"] for item in stored_messages(session_id)] == ["user", "assistant"]


def test_keys_are_scoped_to_the_caller(rest: Rest, bedrock: BedrockFake) -> None:
    """user-b sends user-a's key: it is user-b's own new request, never user-a's answer."""
    mine = rest.create_session(knowledge_base_id=None)["session_id"]
    theirs = rest.create_session(user=USER_B, knowledge_base_id=None)["session_id"]
    bedrock.reply = lambda body: body["messages"][-1]["content"][0]["text"].upper()
    assert _post(rest, mine, "mine", "shared-key").json["message"]["content"] == "MINE"
    answer = _post(rest, theirs, "theirs", "shared-key", user=USER_B)
    assert answer.status == 200
    assert answer.json["message"]["content"] == "THEIRS"


def test_a_repeated_session_creation_returns_the_same_session(rest: Rest) -> None:
    headers = {"Idempotency-Key": "create-1"}
    first = rest.call("POST", "/sessions", body={"title": "t"}, headers=headers)
    again = rest.call("POST", "/sessions", body={"title": "t"}, headers=headers)
    assert (first.status, again.status) == (201, 201)
    assert again.json["session_id"] == first.json["session_id"]
    assert len(rest.call("GET", "/sessions").json["sessions"]) == 1
    other = rest.call("POST", "/sessions", body={"title": "other"}, headers=headers)
    other.assert_error(422, "idempotency_key_reused")


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve"])
def test_a_malformed_key_is_400(rest: Rest, key: str) -> None:
    response = rest.call("POST", "/sessions", body={}, headers={"Idempotency-Key": key})
    response.assert_error(400, "bad_request")


def test_a_streamed_repeat_replays_the_stored_answer(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    bedrock.stream_chunks = ["Once ", "upon ", "a ", "time."]
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    first, second = ws.open(), ws.open()
    payload = {
        "action": "sendMessage",
        "session_id": session_id,
        "content": "story",
        "idempotency_key": "ws-1",
    }
    ws.send(first, payload)
    ws.send(second, payload)  # e.g. the client reconnected and sent it again
    original, replayed = ws.frames(first), ws.frames(second)
    assert replayed[0]["type"] == "start"
    assert replayed[-1]["type"] == "end"
    text = "".join(f["content"] for f in replayed if f["type"] == "chunk")
    assert text == "Once upon a time."
    assert replayed[0]["message_id"] == original[0]["message_id"]
    assert (replayed[-1]["status"], replayed[-1]["usage"]) == (
        original[-1]["status"],
        original[-1]["usage"],
    )
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == 1
    assert len(stored_messages(session_id)) == 2
    ws.send(second, {**payload, "content": "another"})
    assert ws.frames(second)[-1]["code"] == "idempotency_key_reused"
