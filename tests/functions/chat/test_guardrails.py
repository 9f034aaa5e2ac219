"""Bedrock Guardrails through both transports: what is sent, an intervention mid-stream and on
REST, what is stored, and that the next turn of the session is not blocked by the last."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake
from functions.contract import Env
from functions.core.settings import get_settings
from functions.data.turns import Store
from functions.main.settings import Settings
from tests.functions.helpers import Rest, WebSocket

GUARDRAIL_ID = "gr0123abcd"
GUARDRAIL = {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "7", "trace": "disabled"}
BLOCKED = "Sorry, I cannot help with that."


@pytest.fixture
def guarded(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.BEDROCK_GUARDRAIL_ID, GUARDRAIL_ID)
    monkeypatch.setenv(Env.BEDROCK_GUARDRAIL_VERSION, "7")
    get_settings.cache_clear()


def _session(rest: Rest) -> str:
    return rest.create_session(knowledge_base_id=None)["session_id"]


def _ask(ws: WebSocket, connection_id: str, session_id: str, content: str) -> list[dict[str, Any]]:
    """The frames of one streamed turn."""
    before = len(ws.frames(connection_id))
    payload = {"action": "sendMessage", "session_id": session_id, "content": content}
    assert ws.send(connection_id, payload) == {"statusCode": 200}
    return ws.frames(connection_id)[before:]


def _text(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["content"] for frame in frames if frame["type"] == "chunk")


def _sent_texts(body: dict[str, Any]) -> list[str]:
    """Every text the request gave the model, guarded or not."""
    return [
        block["text"] if "text" in block else block["guardContent"]["text"]["text"]
        for message in body["messages"]
        for block in message["content"]
    ]


def _stored(session_id: str, seq: int) -> Any:
    return Store.from_settings(get_settings(Settings)).messages.get(session_id, seq)


@pytest.mark.usefixtures("guarded")
def test_both_calls_carry_the_guardrail_and_only_the_stream_is_async(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake
) -> None:
    session_id = _session(rest)
    assert (
        rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"}).status == 200
    )
    _ask(ws, ws.open(), session_id, "and again")

    [converse] = bedrock.requests_for(CONVERSE)
    [stream] = bedrock.requests_for(CONVERSE_STREAM)
    assert converse.body["guardrailConfig"] == GUARDRAIL
    assert stream.body["guardrailConfig"] == {**GUARDRAIL, "streamProcessingMode": "async"}
    assert stream.body["messages"][-1] == {
        "role": "user",
        "content": [{"guardContent": {"text": {"text": "and again"}}}],
    }
    assert stream.body["messages"][0] == {"role": "user", "content": [{"text": "hi"}]}


def test_without_a_guardrail_no_call_carries_one(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake
) -> None:
    session_id = _session(rest)
    rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"})
    _ask(ws, ws.open(), session_id, "again")

    for request in bedrock.requests:
        assert "guardrailConfig" not in request.body
        assert "guardContent" not in str(request.body["messages"])


@pytest.mark.usefixtures("guarded")
def test_an_intervention_mid_stream_is_stored_and_the_next_turn_goes_on(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake
) -> None:
    session_id, connection_id = _session(rest), ws.open()
    bedrock.stream_chunks = ["Here ", "is ", "how ", "to ", "do ", "it."]
    bedrock.intervene(after_chunks=3, message=BLOCKED)

    frames = _ask(ws, connection_id, session_id, "How do I do it?")

    end = frames[-1]
    assert _text(frames) == f"Here is how {BLOCKED}"  # async: what streamed stays streamed
    assert (end["type"], end["status"], end["stop_reason"]) == (
        "end",
        "incomplete",
        "guardrail_intervened",
    )
    answer = _stored(session_id, 2)
    assert (answer.status, answer.stop_reason) == ("incomplete", "guardrail_intervened")
    assert answer.content == f"Here is how {BLOCKED}"
    listed = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    assert (listed[1]["status"], listed[1]["stop_reason"]) == (
        "incomplete",
        "guardrail_intervened",
    )

    bedrock.stream_chunks = ["Sunny."]
    later = _ask(ws, connection_id, session_id, "What is the weather?")

    assert (later[-1]["status"], later[-1]["stop_reason"]) == ("complete", "end_turn")
    assert _text(later) == "Sunny."
    # The stopped turn is not sent again: neither its question nor the blocked answer.
    sent = _sent_texts(bedrock.requests_for(CONVERSE_STREAM)[-1].body)
    assert sent == ["What is the weather?"]


@pytest.mark.usefixtures("guarded")
def test_the_guardrail_assesses_the_new_question_not_the_history(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake
) -> None:
    """The fake's guardrail assesses only guardContent when there is some, else every text
    (as Bedrock's does): earlier turns it would block today do not block later ones."""
    session_id, connection_id = _session(rest), ws.open()
    first = _ask(ws, connection_id, session_id, "Tell me about the forbidden city.")
    assert first[-1]["status"] == "complete"
    bedrock.block_input("forbidden", message=BLOCKED)

    later = _ask(ws, connection_id, session_id, "And its gardens?")
    blocked = _ask(ws, connection_id, session_id, "Is it still forbidden?")

    assert later[-1]["status"] == "complete"
    sent = _sent_texts(bedrock.requests_for(CONVERSE_STREAM)[1].body)
    assert sent[0] == "Tell me about the forbidden city."  # in the history, unassessed
    assert (blocked[-1]["status"], blocked[-1]["stop_reason"]) == (
        "incomplete",
        "guardrail_intervened",
    )
    assert _text(blocked) == BLOCKED
    assert _stored(session_id, 6).content == BLOCKED


@pytest.mark.usefixtures("guarded", "single_attempt")
def test_an_unanswered_question_merged_into_the_turn_is_not_guard_content(
    rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = _session(rest)
    bedrock.throttle(1, operation=CONVERSE)
    failed = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "forbidden?"})
    assert failed.status == 503, failed.text
    bedrock.block_input("forbidden", message=BLOCKED)

    answer = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "Now?"})

    assert answer.json["message"]["status"] == "complete"
    last = bedrock.requests_for(CONVERSE)[-1]
    assert last.body["messages"] == [
        {
            "role": "user",
            "content": [{"text": "forbidden?"}, {"guardContent": {"text": {"text": "Now?"}}}],
        }
    ]


@pytest.mark.usefixtures("guarded")
def test_an_intervention_over_rest_answers_and_stores_the_blocked_message(
    rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = _session(rest)
    bedrock.reply = "Something it should not say."
    bedrock.intervene(after_chunks=0, message=BLOCKED)

    response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "Say it."})
    later = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "Hello?"})

    assert response.status == 200, response.text
    message = response.json["message"]
    assert (message["content"], message["status"], message["stop_reason"]) == (
        BLOCKED,
        "incomplete",
        "guardrail_intervened",
    )
    stored = _stored(session_id, 2)
    assert (stored.content, stored.stop_reason) == (BLOCKED, "guardrail_intervened")
    assert later.json["message"]["status"] == "complete"
    assert _sent_texts(bedrock.requests_for(CONVERSE)[-1].body) == ["Hello?"]
