"""Streaming a turn as users meet it: a model paced like a real one, a management API that
takes a realistic time per POST, clients that leave, streams that stop short, and a function
that runs out of time. The real handler runs against moto and the loopback fakes."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, ClassVar

import pytest

from fakes.bedrock import BedrockFake, model_like_deltas
from fakes.connections import WsManagementFake
from functions.websocket.frames import MAX_FRAME_BYTES
from functions.websocket.turn import STOP_MARGIN_SECONDS
from tests.functions.helpers import LambdaContext, Rest, WebSocket, stored_messages

POST_LATENCY_MS = 15


@pytest.fixture
def paced(bedrock: BedrockFake, ws_management: WsManagementFake) -> BedrockFake:
    """A model that streams like a real one into a management API with in-region latency."""
    bedrock.pace(first_delta_ms=50, deltas_per_second=400)
    ws_management.latency_ms = POST_LATENCY_MS
    return bedrock


def _turn(
    ws: WebSocket,
    rest: Rest,
    content: str = "Tell me a story",
    context: LambdaContext | None = None,
) -> tuple[str, str]:
    """One streamed turn; ``context``, when given, is the invocation's (its clock starts here,
    after the setup calls, so a slow machine does not eat the turn's time)."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    if context is not None:
        context.started = time.monotonic()
        ws.context = context
    payload = {"action": "sendMessage", "session_id": session_id, "content": content}
    assert ws.send(connection_id, payload) == {"statusCode": 200}
    return session_id, connection_id


def _answer(session_id: str) -> dict:
    [answer] = [item for item in stored_messages(session_id) if item["role"]["S"] == "assistant"]
    return answer


def _text(frames: list[dict]) -> str:
    return "".join(frame["content"] for frame in frames if frame["type"] == "chunk")


def test_frames_arrive_in_order_and_reassemble_to_the_stored_answer(
    ws: WebSocket, rest: Rest, paced: BedrockFake, ws_management: WsManagementFake
) -> None:
    deltas = model_like_deltas(200)
    paced.stream_chunks = deltas
    session_id, connection_id = _turn(ws, rest)

    frames = ws.frames(connection_id)
    types = [frame["type"] for frame in frames]
    assert (types[0], set(types[1:-1]), types[-1]) == ("start", {"chunk"}, "end")
    assert len({frame["message_id"] for frame in frames}) == 1
    assert _text(frames) == "".join(deltas) == _answer(session_id)["content"]["S"]
    assert len(frames) - 2 < len(deltas) / 4  # coalesced, not one POST per delta
    assert max(len(raw) for raw in ws_management.raw_frames(connection_id)) <= MAX_FRAME_BYTES
    assert (frames[-1]["status"], frames[-1]["stop_reason"]) == ("complete", "end_turn")


def test_the_first_delta_is_sent_before_the_second_arrives(
    ws: WebSocket, rest: Rest, paced: BedrockFake, ws_management: WsManagementFake
) -> None:
    """The model holds its second delta until the client has the first: a sender that waited
    for more text before posting would stall here until the hold gives up."""
    first_chunk_posted = threading.Event()

    def on_frame(connection_id: str, body: bytes) -> None:
        if b'"type":"chunk"' in body:
            first_chunk_posted.set()

    ws_management.on_frame = on_frame
    paced.stream_chunks = ["Once ", "upon ", "a ", "time."]
    paced.hold(after_chunks=1, until=first_chunk_posted)
    session_id, connection_id = _turn(ws, rest)

    [record] = paced.streams
    chunk_times = [
        at
        for at, frame in zip(
            ws_management.frame_times(connection_id), ws.frames(connection_id), strict=True
        )
        if frame["type"] == "chunk"
    ]
    assert first_chunk_posted.is_set()
    assert ws.frames(connection_id)[1]["content"] == "Once "
    assert chunk_times[0] < record.delta_times[1]
    assert _answer(session_id)["content"]["S"] == "Once upon a time."


def test_a_client_gone_mid_stream_still_gets_the_whole_answer_stored(
    ws: WebSocket, rest: Rest, paced: BedrockFake, ws_management: WsManagementFake
) -> None:
    deltas = model_like_deltas(150, seed=3)
    paced.stream_chunks = deltas
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    ws_management.gone(connection_id, after=3)  # start and two chunks, then 410
    payload = {"action": "sendMessage", "session_id": session_id, "content": "go"}
    assert ws.send(connection_id, payload) == {"statusCode": 200}

    posts = [r.status for r in ws_management.requests if r.method == "POST"]
    assert posts == [200, 200, 200, 410]  # posting stopped at the first 410
    answer = _answer(session_id)
    assert answer["content"]["S"] == "".join(deltas)
    assert answer["status"]["S"] == "complete"


def test_a_stream_that_outlives_the_timeout_stores_an_incomplete_answer_and_says_so(
    ws: WebSocket, rest: Rest, paced: BedrockFake, ws_management: WsManagementFake
) -> None:
    """10 s of model output against about 2 s of reading time before the stop margin."""
    paced.stream_chunks = model_like_deltas(1000, seed=5)
    paced.pace(first_delta_ms=50, deltas_per_second=100)
    context = LambdaContext(timeout_ms=int(STOP_MARGIN_SECONDS * 1000) + 2000)
    session_id, connection_id = _turn(ws, rest, context=context)

    assert context.get_remaining_time_in_millis() > 0  # returned before Lambda's timeout
    frames = ws.frames(connection_id)
    end = frames[-1]
    assert (end["type"], end["status"], end["stop_reason"]) == ("end", "incomplete", "timeout")
    answer = _answer(session_id)
    assert (answer["status"]["S"], answer["stop_reason"]["S"]) == ("incomplete", "timeout")
    stored = answer["content"]["S"]
    assert stored == _text(frames)  # the client saw exactly what was stored
    assert stored and "".join(paced.stream_chunks).startswith(stored)
    assert len(stored) < len("".join(paced.stream_chunks))


def test_a_model_that_stalls_past_the_timeout_still_stores_what_it_said(
    ws: WebSocket, rest: Rest, paced: BedrockFake
) -> None:
    """The model goes silent after five deltas; the function must not wait for it."""
    never = threading.Event()
    paced.stream_chunks = model_like_deltas(20, seed=7)
    paced.hold(after_chunks=5, until=never, timeout_s=30)
    context = LambdaContext(timeout_ms=int(STOP_MARGIN_SECONDS * 1000) + 1500)
    try:
        session_id, connection_id = _turn(ws, rest, context=context)
    finally:
        never.set()  # let the fake's stream finish
    assert context.get_remaining_time_in_millis() > 0
    end = ws.frames(connection_id)[-1]
    assert (end["status"], end["stop_reason"]) == ("incomplete", "timeout")
    assert _answer(session_id)["content"]["S"] == "".join(paced.stream_chunks[:5])


class _CountedQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    """A SimpleQueue that counts the reads made of it, each instance on its own."""

    reads: ClassVar[dict[int, int]] = {}

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self.reads[id(self)] = self.reads.get(id(self), 0) + 1
        return super().get(block, timeout)


def test_a_silent_model_is_waited_for_not_polled(
    ws: WebSocket, rest: Rest, paced: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn waits out a model gone silent near its deadline, when it no longer looks
    for a cancel, in a few blocking reads of the stream's queue. It had read it in a loop
    that never blocked, a core's worth of CPU until the time was up: a look that was due but
    no longer made counted as due at once, every time round."""
    never = threading.Event()
    paced.stream_chunks = model_like_deltas(20, seed=7)
    paced.hold(after_chunks=5, until=never, timeout_s=30)
    monkeypatch.setattr(queue, "SimpleQueue", _CountedQueue)
    _CountedQueue.reads.clear()
    context = LambdaContext(timeout_ms=int(STOP_MARGIN_SECONDS * 1000) + 1500)
    try:
        _, connection_id = _turn(ws, rest, context=context)
    finally:
        never.set()
    assert ws.frames(connection_id)[-1]["stop_reason"] == "timeout"
    # Five deltas, the end, and a wake-up per look for a cancel (none this close to the end).
    assert _CountedQueue.reads and max(_CountedQueue.reads.values()) < 20, _CountedQueue.reads


def test_a_stream_cut_before_message_stop_is_stored_as_interrupted(
    ws: WebSocket, rest: Rest, paced: BedrockFake
) -> None:
    paced.stream_chunks = model_like_deltas(20, seed=9)
    paced.cut_stream(after_chunks=5)
    session_id, connection_id = _turn(ws, rest)
    end = ws.frames(connection_id)[-1]
    assert (end["type"], end["status"], end["stop_reason"]) == ("end", "incomplete", "interrupted")
    answer = _answer(session_id)
    assert answer["content"]["S"] == "".join(paced.stream_chunks[:5])
    assert (answer["status"]["S"], answer["stop_reason"]["S"]) == ("incomplete", "interrupted")


@pytest.mark.parametrize("stop_reason", ["max_tokens", "guardrail_intervened", "content_filtered"])
def test_an_answer_the_model_stopped_short_is_incomplete_with_its_reason(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake, stop_reason: str
) -> None:
    bedrock.stop_reason = stop_reason
    session_id, connection_id = _turn(ws, rest)
    end = ws.frames(connection_id)[-1]
    assert (end["status"], end["stop_reason"]) == ("incomplete", stop_reason)
    listed = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    assert (listed[-1]["status"], listed[-1]["stop_reason"]) == ("incomplete", stop_reason)


def test_rest_answers_carry_the_stop_reason_too(rest: Rest, bedrock: BedrockFake) -> None:
    bedrock.stop_reason = "max_tokens"
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"})
    assert response.status == 200, response.text
    message = response.json["message"]
    assert (message["status"], message["stop_reason"]) == ("incomplete", "max_tokens")
