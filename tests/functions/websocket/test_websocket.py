"""The WebSocket function: connections, the frame protocol, streaming, disconnects, failures."""

from __future__ import annotations

import os
import socket
import time

import boto3
import pytest

from fakes.bedrock import CONVERSE_STREAM, BedrockFake, passage
from fakes.connections import WsManagementFake
from functions.chat.prompting import SYSTEM_PROMPT
from functions.contract import CONNECTION_TTL_SECONDS, Env
from functions.core.settings import get_settings
from functions.websocket.frames import MAX_FRAME_BYTES
from functions.websocket.handler import handler
from tests.functions.helpers import (
    USER_A,
    LambdaContext,
    Rest,
    WebSocket,
    dynamodb_throttled,
    stored_messages,
)
from tests.support.events import load_event

OK = {"statusCode": 200}


def _connection(connection_id: str) -> dict | None:
    return (
        boto3.client("dynamodb")
        .get_item(
            TableName=os.environ[Env.CONNECTIONS_TABLE],
            Key={"connection_id": {"S": connection_id}},
        )
        .get("Item")
    )


def _send(ws: WebSocket, connection_id: str, session_id: str, content: str) -> None:
    payload = {"action": "sendMessage", "session_id": session_id, "content": content}
    assert ws.send(connection_id, payload) == OK


def _chunks_text(frames: list[dict]) -> str:
    return "".join(frame["content"] for frame in frames if frame["type"] == "chunk")


def test_connect_records_the_connection(ws: WebSocket) -> None:
    connection_id = ws.new_connection_id()
    before = int(time.time())
    assert ws.connect(connection_id, USER_A) == OK
    item = _connection(connection_id)
    assert item is not None
    assert item["user_id"] == {"S": USER_A}
    assert item["connected_at"]["S"].endswith("Z")
    expires_at = int(item["expires_at"]["N"])
    assert (
        before + CONNECTION_TTL_SECONDS <= expires_at <= int(time.time()) + CONNECTION_TTL_SECONDS
    )


def test_connect_without_identity_is_refused(ws: WebSocket) -> None:
    connection_id = ws.new_connection_id()
    assert ws.connect(connection_id, user=None) == {"statusCode": 401}
    assert _connection(connection_id) is None


def test_disconnect_deletes_the_connection(ws: WebSocket) -> None:
    connection_id = ws.open()
    assert ws.disconnect(connection_id) == OK
    assert _connection(connection_id) is None


def test_ping_pong(ws: WebSocket) -> None:
    connection_id = ws.open()
    assert ws.send(connection_id, {"action": "ping"}) == OK
    assert ws.frames(connection_id) == [{"type": "pong"}]


BAD_CLIENT_FRAMES = [
    "not json",
    "[1, 2]",
    "",
    '"text"',
    {"action": "chat", "message": "Hello from client"},  # the recorded event's body
    {"no": "action"},
    {"action": "sendMessage", "content": "hi"},
    {"action": "sendMessage", "session_id": 5, "content": "hi"},
    {"action": "sendMessage", "session_id": "x" * 200, "content": "hi"},
    {"action": "sendMessage", "session_id": "s", "content": "   "},
    {"action": "sendMessage", "session_id": "s", "content": ["hi"]},
    {"action": "sendMessage", "session_id": "s", "content": "x" * 50_001},
    {"action": "sendMessage", "session_id": "s", "replaces": 5},
    {"action": "sendMessage", "session_id": "s", "replaces": ""},
    {"action": "sendMessage", "session_id": "s", "replaces": "x" * 200},
    {"action": "sendMessage", "session_id": "s", "replaces": "m", "content": "   "},
]


def test_bad_client_frames_get_bad_request(ws: WebSocket, bedrock: BedrockFake) -> None:
    connection_id = ws.open()
    for payload in BAD_CLIENT_FRAMES:
        assert ws.send(connection_id, payload) == OK
    frames = ws.frames(connection_id)
    assert len(frames) == len(BAD_CLIENT_FRAMES)
    for payload, frame in zip(BAD_CLIENT_FRAMES, frames, strict=True):
        assert frame["type"] == "error", payload
        assert frame["code"] == "bad_request", payload
        assert frame["message"]
    assert bedrock.requests == []


def test_recorded_message_event_as_is(ws: WebSocket, context: LambdaContext) -> None:
    """The recorded event (route "chat", body {"action": "chat"}) only gets its ids changed."""
    connection_id = ws.open()
    event = load_event("websocket-message")
    event["requestContext"]["connectionId"] = connection_id
    assert handler(event, context) == OK
    assert ws.frames(connection_id)[0]["code"] == "bad_request"


def test_send_message_streams_start_chunks_end(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    bedrock.stream_chunks = ["Hel", "lo ", "there."]
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _send(ws, connection_id, session_id, "Hi!")

    frames = ws.frames(connection_id)
    start, *chunks, end = frames
    message_id = start["message_id"]
    assert start == {"type": "start", "session_id": session_id, "message_id": message_id}
    assert chunks  # deltas that arrive together are coalesced into fewer frames
    for chunk in chunks:
        assert set(chunk) == {"type", "session_id", "message_id", "content"}
        assert (chunk["type"], chunk["session_id"], chunk["message_id"]) == (
            "chunk",
            session_id,
            message_id,
        )
    assert _chunks_text(frames) == "Hello there."
    assert end["type"] == "end"
    assert end["message_id"] == message_id
    assert end["session_id"] == session_id
    assert (end["status"], end["stop_reason"]) == ("complete", "end_turn")
    # The fake counts one token per word: the system prompt and "Hi!" in, "Hello there." out.
    input_tokens = len(SYSTEM_PROMPT.split()) + 1
    assert end["usage"] == {
        "input_tokens": input_tokens,
        "output_tokens": 2,
        "total_tokens": input_tokens + 2,
        "cache_read_input_tokens": 0,  # Claude 3 Haiku has no prompt caching
        "cache_write_input_tokens": 0,
    }
    assert end["citations"] == []

    [request] = bedrock.requests_for(CONVERSE_STREAM)
    assert request.body["messages"][-1] == {"role": "user", "content": [{"text": "Hi!"}]}
    stored = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "Hi!"),
        ("assistant", "Hello there."),
    ]
    assert stored[1]["message_id"] == message_id


def test_streamed_turn_uses_the_same_grounding_as_rest(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    bedrock.retrieval_results = [passage("Paris is in France.", "s3://kb/geo.md", 0.8)]
    session_id = rest.create_session()["session_id"]
    connection_id = ws.open()
    _send(ws, connection_id, session_id, "Where is Paris?")
    end = ws.frames(connection_id)[-1]
    assert end["citations"] == [
        {"index": 1, "text": "Paris is in France.", "source": "s3://kb/geo.md", "score": 0.8}
    ]
    [request] = bedrock.requests_for(CONVERSE_STREAM)
    [grounding, question] = request.body["messages"][-1]["content"]
    assert "[1] (source: s3://kb/geo.md)\nParis is in France." in grounding["text"]
    assert question == {"text": "Where is Paris?"}


def test_identity_from_the_event_when_api_gateway_passes_it(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.new_connection_id()  # never registered through $connect
    payload = {"action": "sendMessage", "session_id": session_id, "content": "hi"}
    assert ws.send(connection_id, payload, user=USER_A) == OK
    assert ws.frames(connection_id)[-1]["type"] == "end"


def test_unregistered_connection_without_identity_is_refused(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.new_connection_id()
    _send(ws, connection_id, session_id, "hi")
    [frame] = ws.frames(connection_id)
    assert frame["type"] == "error"
    assert frame["code"] == "bad_request"
    assert stored_messages(session_id) == []


def test_missing_session_is_not_found(ws: WebSocket, bedrock: BedrockFake) -> None:
    connection_id = ws.open()
    _send(ws, connection_id, "0b515f04-62f1-415e-a225-f6913c371fab", "hi")
    [frame] = ws.frames(connection_id)
    assert (frame["type"], frame["code"]) == ("error", "not_found")
    assert bedrock.requests == []


def test_client_gone_mid_stream_still_stores_the_whole_answer(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake, ws_management: WsManagementFake
) -> None:
    words = [f"word{number} " for number in range(40)]
    bedrock.stream_chunks = words
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    bedrock.pace(first_delta_ms=0, deltas_per_second=400)  # 0.1 s: several flushes
    ws_management.gone(connection_id, after=2)  # start + 1 chunk, then 410

    _send(ws, connection_id, session_id, "Tell me a long story")

    frames = ws.frames(connection_id)
    assert [frame["type"] for frame in frames] == ["start", "chunk"]
    posts = [r for r in ws_management.requests if r.method == "POST"]
    assert [r.status for r in posts] == [200, 200, 410]  # no posting after Gone
    stored = stored_messages(session_id)
    assistant = [item for item in stored if item["role"]["S"] == "assistant"]
    assert [item["content"]["S"] for item in assistant] == ["".join(words)]
    assert assistant[0]["message_id"]["S"] == frames[0]["message_id"]
    assert _connection(connection_id) is None


def test_large_deltas_are_split_into_frames_of_at_most_32_kb(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake, ws_management: WsManagementFake
) -> None:
    deltas = [
        "a" * 100_000,  # ASCII: 1 byte per character
        "é" * 40_000,  # 2 bytes per character
        "漢" * 30_000,  # 3 bytes per character
        '"\\\n' * 12_000,  # JSON escapes: 2 bytes per character
        "\x01" * 10_000,  # \u0001: 6 bytes per character
        "🙂" * 20_000,  # 4 bytes per character
        "small",
    ]
    bedrock.stream_chunks = deltas
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _send(ws, connection_id, session_id, "Write a lot")

    raw = ws_management.raw_frames(connection_id)
    assert max(len(frame) for frame in raw) <= MAX_FRAME_BYTES
    frames = ws.frames(connection_id)
    assert _chunks_text(frames) == "".join(deltas)
    chunk_sizes = [len(f) for f, d in zip(raw, frames, strict=True) if d["type"] == "chunk"]
    assert len(chunk_sizes) > len(deltas)
    assert max(chunk_sizes) > MAX_FRAME_BYTES - 64  # frames are filled, not needlessly small
    stored = [item for item in stored_messages(session_id) if item["role"]["S"] == "assistant"]
    assert stored[0]["content"]["S"] == "".join(deltas)


@pytest.mark.usefixtures("single_attempt")
def test_bedrock_throttling_is_a_throttled_frame(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    bedrock.throttle(1, operation=CONVERSE_STREAM)
    _send(ws, connection_id, session_id, "hi")
    [frame] = ws.frames(connection_id)
    assert (frame["type"], frame["code"]) == ("error", "throttled")


def test_throttling_mid_stream_is_a_throttled_frame(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    bedrock.stream_chunks = ["one ", "two ", "three"]
    bedrock.break_stream(after_chunks=2, error_type="throttlingException")
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _send(ws, connection_id, session_id, "hi")
    frames = ws.frames(connection_id)
    types = [frame["type"] for frame in frames]
    assert (types[0], set(types[1:-1]), types[-1]) == ("start", {"chunk"}, "error")
    assert _chunks_text(frames) == "one two "  # what came before the failure, then the error
    assert frames[-1]["code"] == "throttled"


def test_model_stream_failure_is_an_upstream_error_frame(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    """The same code REST answers (502 upstream_error): the dependency failed, not our code."""
    bedrock.break_stream(after_chunks=1)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _send(ws, connection_id, session_id, "hi")
    frames = ws.frames(connection_id)
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "upstream_error"
    # The user's turn is kept; a broken answer is not stored, only a failure marker is.
    question, marker = stored_messages(session_id)
    assert question["role"]["S"] == "user"
    assert (marker["role"]["S"], marker["content"]["S"]) == ("assistant", "")
    assert (marker["status"]["S"], marker["stop_reason"]["S"]) == ("failed", "upstream_error")


@pytest.mark.usefixtures("single_attempt")
def test_dynamodb_throttling_is_a_throttled_frame(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    with dynamodb_throttled("GetItem"):
        _send(ws, connection_id, session_id, "hi")
    [frame] = ws.frames(connection_id)
    assert (frame["type"], frame["code"]) == ("error", "throttled")
    assert bedrock.requests == []


@pytest.mark.usefixtures("single_attempt")
def test_unreachable_management_api_still_stores_the_answer(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posting fails for another reason than Gone: the answer is stored, the connection kept."""
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    monkeypatch.setenv(Env.WEBSOCKET_CALLBACK_URL, f"http://127.0.0.1:{closed_port}/v1")
    get_settings.cache_clear()
    _send(ws, connection_id, session_id, "hi")
    roles = [item["role"]["S"] for item in stored_messages(session_id)]
    assert roles == ["user", "assistant"]
    assert _connection(connection_id) is not None


def _no_unhandled_error(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]


def test_a_frame_nested_too_deep_is_a_bad_request_not_a_bug(
    ws: WebSocket, bedrock: BedrockFake, caplog: pytest.LogCaptureFixture
) -> None:
    connection_id = ws.open()
    assert ws.send(connection_id, "[" * 100_000 + "]" * 100_000) == OK
    assert ws.send(connection_id, '{"a":' * 100_000 + "1" + "}" * 100_000) == OK
    assert [(f["type"], f["code"]) for f in ws.frames(connection_id)] == [
        ("error", "bad_request"),
        ("error", "bad_request"),
    ]
    _no_unhandled_error(caplog)
    assert bedrock.requests == []


def test_a_message_over_the_api_gateway_limit_is_refused_unread(ws: WebSocket) -> None:
    connection_id = ws.open()
    payload = {"action": "sendMessage", "session_id": "s", "content": "x" * (200 * 1024)}
    assert ws.send(connection_id, payload) == OK
    [frame] = ws.frames(connection_id)
    assert (frame["code"], frame["message"]) == (
        "bad_request",
        "the message must be at most 128 KB",
    )


def test_content_with_a_lone_surrogate_is_refused_before_anything_is_stored(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    body = f'{{"action": "sendMessage", "session_id": "{session_id}", "content": "a\\ud800b"}}'
    assert ws.send(connection_id, body) == OK
    [frame] = ws.frames(connection_id)
    assert (frame["type"], frame["code"]) == ("error", "bad_request")
    assert "surrogate" in frame["message"]
    assert stored_messages(session_id) == []
    assert rest.call("GET", f"/sessions/{session_id}").json["message_count"] == 0
    assert bedrock.requests == []
    _no_unhandled_error(caplog)
    # REST refuses the same content (at parsing, before the shared rule is even needed).
    response = rest.call(
        "POST", f"/sessions/{session_id}/messages", raw_body='{"content": "a\\ud800b"}'
    )
    response.assert_error(400, "bad_request")


@pytest.mark.parametrize("how", ["reset", "corrupt"])
def test_a_transport_failure_mid_stream_is_a_retryable_upstream_error(
    ws: WebSocket,
    rest: Rest,
    bedrock: BedrockFake,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    bedrock.stream_chunks = ["one ", "two ", "three"]
    bedrock.cut_stream(after_chunks=2, how=how)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _send(ws, connection_id, session_id, "hi")
    frames = ws.frames(connection_id)
    assert (frames[-1]["type"], frames[-1]["code"]) == ("error", "upstream_error")
    _no_unhandled_error(caplog)
    _, marker = stored_messages(session_id)
    assert (marker["status"]["S"], marker["stop_reason"]["S"]) == ("failed", "upstream_error")
