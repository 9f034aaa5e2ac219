"""Cancelling an answer over the WebSocket: the ``cancel`` action arrives as its own invocation
while another one streams the answer, as in Lambda, and the streaming one stops reading the
model, stores what it had as ``incomplete`` (``interrupted``) and settles the budget and the
answer slot. The real handler runs against moto, the paced Bedrock fake and the management
API fake."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from fakes.bedrock import BedrockFake, model_like_deltas
from fakes.connections import WsManagementFake
from functions.chat.service import estimate_tokens
from functions.contract import Env
from functions.core.settings import get_settings
from tests.functions.helpers import USER_B, Rest, WebSocket, stored_messages, table

DELTAS = 1000  # ten seconds of answer at the pace below: a cancel always comes mid-answer


@pytest.fixture
def slow_model(
    bedrock: BedrockFake, ws_management: WsManagementFake, monkeypatch: pytest.MonkeyPatch
) -> BedrockFake:
    """A long answer paced like a real model, one answer slot per user and a daily budget."""
    bedrock.stream_chunks = model_like_deltas(DELTAS, seed=11)
    bedrock.pace(first_delta_ms=50, deltas_per_second=100)
    ws_management.latency_ms = 15
    monkeypatch.setenv(Env.USER_MAX_CONCURRENT_ANSWERS, "1")
    monkeypatch.setenv(Env.USER_DAILY_TOKEN_LIMIT, "1000000")
    get_settings.cache_clear()
    return bedrock


class Streaming:
    """A sendMessage streaming in a thread of its own (one invocation), and its first chunk."""

    def __init__(self, ws: WebSocket, management: WsManagementFake, connection_id: str) -> None:
        self.ws = ws
        self.connection_id = connection_id
        self.first_chunk = threading.Event()
        self.result: dict[str, Any] | None = None
        management.on_frame = self._on_frame
        self._thread: threading.Thread | None = None

    def _on_frame(self, connection_id: str, body: bytes) -> None:
        if connection_id == self.connection_id and b'"type":"chunk"' in body:
            self.first_chunk.set()

    def start(self, payload: dict[str, Any]) -> Streaming:
        def run() -> None:
            self.result = self.ws.send(self.connection_id, payload)

        self._thread = threading.Thread(target=run)
        self._thread.start()
        assert self.first_chunk.wait(30), "the answer never started"
        return self

    def join(self) -> dict[str, Any] | None:
        assert self._thread is not None
        self._thread.join(60)
        return self.result


@pytest.fixture
def session(rest: Rest) -> str:
    return rest.create_session(knowledge_base_id=None)["session_id"]


def _send(session_id: str, key: str = "turn-1") -> dict[str, Any]:
    return {
        "action": "sendMessage",
        "session_id": session_id,
        "content": "Tell me a long story",
        "idempotency_key": key,
    }


def _start(frames: list[dict[str, Any]]) -> dict[str, Any]:
    [start] = [frame for frame in frames if frame["type"] == "start"]
    return start


def _answers(session_id: str) -> list[dict[str, Any]]:
    return [item for item in stored_messages(session_id) if item["role"]["S"] == "assistant"]


def _day_tokens(user: str) -> int:
    key = f"day#{datetime.now(UTC):%Y-%m-%d}"
    item = boto3.client("dynamodb").get_item(
        TableName=table(Env.USAGE_TABLE),
        Key={"user_id": {"S": user}, "period": {"S": key}},
        ConsistentRead=True,
    )["Item"]
    return int(item["tokens"]["N"])


@pytest.fixture
def cancelled(
    ws: WebSocket,
    rest: Rest,
    slow_model: BedrockFake,
    ws_management: WsManagementFake,
    session: str,
) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """An answer cancelled after its first chunk: (session, connection, its frames)."""
    connection_id = ws.open()
    streaming = Streaming(ws, ws_management, connection_id).start(_send(session))
    message_id = _start(ws.frames(connection_id))["message_id"]
    assert ws.send(connection_id, {"action": "cancel", "message_id": message_id}) == {
        "statusCode": 200
    }
    assert streaming.join() == {"statusCode": 200}
    yield session, connection_id, ws.frames(connection_id)


def test_a_cancelled_answer_stops_and_is_stored_interrupted_with_what_was_generated(
    cancelled: tuple[str, str, list[dict[str, Any]]], slow_model: BedrockFake
) -> None:
    session_id, _, frames = cancelled
    [record] = slow_model.streams
    assert record.finished is None  # the function stopped before the model's answer ended
    end = frames[-1]
    assert (end["type"], end["status"], end["stop_reason"]) == ("end", "incomplete", "interrupted")
    assert not [frame for frame in frames if frame["type"] == "error"]  # no frame for the cancel
    [answer] = _answers(session_id)
    stored = answer["content"]["S"]
    full = "".join(slow_model.stream_chunks)
    assert stored == "".join(f["content"] for f in frames if f["type"] == "chunk")
    assert stored and full.startswith(stored) and len(stored) < len(full)
    assert (answer["status"]["S"], answer["stop_reason"]["S"]) == ("incomplete", "interrupted")


def test_a_cancelled_answer_settles_the_budget_to_what_was_used_and_frees_its_slot(
    cancelled: tuple[str, str, list[dict[str, Any]]], ws: WebSocket, slow_model: BedrockFake
) -> None:
    """The model reports no usage for a stream cut short: the input and the text generated so
    far are settled as estimated, not the whole hold, and not nothing."""
    session_id, connection_id, frames = cancelled
    usage = frames[-1]["usage"]
    [answer] = _answers(session_id)
    assert usage["output_tokens"] == estimate_tokens(answer["content"]["S"])
    assert usage["input_tokens"] > 0
    assert _day_tokens("user-a") == usage["input_tokens"] + usage["output_tokens"]
    # The only answer slot is free again: the next turn is answered, not refused as busy
    # (a short one: its length proves nothing here).
    slow_model.stream_chunks = model_like_deltas(20, seed=13)
    ws.send(connection_id, _send(session_id, key="turn-2"))
    after = ws.frames(connection_id)[len(frames) :]
    assert after[0]["type"] == "start", after
    assert after[-1]["status"] == "complete"


def test_the_start_frame_and_a_replay_echo_the_idempotency_key(
    cancelled: tuple[str, str, list[dict[str, Any]]], ws: WebSocket
) -> None:
    session_id, connection_id, frames = cancelled
    first = _start(frames)
    assert first["idempotency_key"] == "turn-1"
    ws.send(connection_id, _send(session_id))  # the same key: the stored answer, replayed
    replayed = ws.frames(connection_id)[len(frames) :]
    assert replayed[0] == first
    assert (replayed[-1]["status"], replayed[-1]["stop_reason"]) == ("incomplete", "interrupted")


def test_cancelling_a_finished_answer_is_a_conflict_that_names_it(
    cancelled: tuple[str, str, list[dict[str, Any]]], ws: WebSocket
) -> None:
    _, connection_id, frames = cancelled
    message_id = _start(frames)["message_id"]
    ws.send(connection_id, {"action": "cancel", "message_id": message_id})
    [error] = ws.frames(connection_id)[len(frames) :]
    assert (error["type"], error["code"], error["message_id"]) == ("error", "conflict", message_id)
    assert "already finished" in error["message"]


def test_cancelling_someone_elses_answer_is_refused_like_an_unknown_one(
    ws: WebSocket, slow_model: BedrockFake, ws_management: WsManagementFake, session: str
) -> None:
    """User B learns nothing about user A's answer, and A's answer runs to its end."""
    slow_model.stream_chunks = model_like_deltas(150, seed=12)
    owner = ws.open()
    intruder = ws.open(USER_B)
    streaming = Streaming(ws, ws_management, owner).start(_send(session))
    message_id = _start(ws.frames(owner))["message_id"]
    ws.send(intruder, {"action": "cancel", "message_id": message_id})
    ws.send(intruder, {"action": "cancel", "message_id": "no-such-answer"})
    streaming.join()

    theirs, unknown = ws.frames(intruder)
    assert (theirs["code"], unknown["code"]) == ("not_found", "not_found")
    assert theirs["message"].replace(message_id, "X") == unknown["message"].replace(
        "no-such-answer", "X"
    )
    end = ws.frames(owner)[-1]
    assert (end["status"], end["stop_reason"]) == ("complete", "end_turn")
    assert _answers(session)[0]["content"]["S"] == "".join(slow_model.stream_chunks)


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "cancel"},
        {"action": "cancel", "message_id": ""},
        {"action": "cancel", "message_id": 7},
    ],
)
def test_a_cancel_without_a_message_id_is_a_bad_request(
    ws: WebSocket, rest: Rest, payload: dict[str, Any]
) -> None:
    connection_id = ws.open()
    ws.send(connection_id, payload)
    [error] = ws.frames(connection_id)
    assert error["code"] == "bad_request"
    assert "message_id" in error["message"]


def test_an_error_answering_a_keyed_request_echoes_its_key(ws: WebSocket, rest: Rest) -> None:
    connection_id = ws.open()
    ws.send(connection_id, _send("no-such-session", key="turn-9"))
    ws.send(connection_id, {**_send("s", key="turn-10"), "content": " "})
    missing, blank = ws.frames(connection_id)
    assert (missing["code"], missing["idempotency_key"]) == ("not_found", "turn-9")
    assert (blank["code"], blank["idempotency_key"]) == ("bad_request", "turn-10")
