"""The WebSocket API as API Gateway serves it, driven by the websockets client library."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from devserver.model import answer
from devserver.server import DevServer
from devserver.websocket_gateway import MAX_FRAME_BYTES, Limits
from fakes.bedrock import Pacing
from fakes.oidc import SigningKey
from functions.contract import MAX_WEBSOCKET_MESSAGE_BYTES
from tests.support.dev_server import (
    DEV_GROUP,
    Api,
    Logs,
    ask_openai,
    frames_until_end,
    wait_for,
    websocket,
)

pytestmark = DEV_GROUP


def chat(dev: DevServer, user: str, session_id: str, content: str) -> list[dict[str, Any]]:
    with websocket(dev, user) as ws:
        ws.send(json.dumps({"action": "sendMessage", "session_id": session_id, "content": content}))
        return frames_until_end(ws)


def test_connect_without_a_token_is_401(dev: DevServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(dev.ws_url, open_timeout=10)
    assert refused.value.response.status_code == 401


def test_connect_with_a_rejected_token_is_401(dev: DevServer) -> None:
    assert dev.issuer is not None
    forged = SigningKey.rsa("dev-server").sign(dev.issuer.claims(sub="mallory"))
    with pytest.raises(InvalidStatus) as refused:
        connect(dev.ws_url, additional_headers={"Authorization": forged}, open_timeout=10)
    assert refused.value.response.status_code == 401


def test_the_token_may_come_in_the_header(dev: DevServer) -> None:
    with connect(dev.ws_url, additional_headers={"Authorization": dev.token("alice")}) as ws:
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}


def test_a_streamed_turn_reassembles_to_the_stored_answer(
    dev: DevServer, alice: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # About 60 words at 20 ms each: over a second, ten flush intervals, so the answer comes
    # in several frames even on a loaded machine (the suite's 5 ms pace ends within three).
    monkeypatch.setattr(dev.model, "pacing", Pacing(first_delta_s=0.0, deltas_per_second=50))
    session_id = alice.create_session()["session_id"]
    frames = chat(dev, "alice", session_id, "tell me something")
    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "start" and kinds[-1] == "end"
    chunks = [frame["content"] for frame in frames if frame["type"] == "chunk"]
    assert len(chunks) > 1  # streamed as it came (the sender coalesces deltas), not in one piece
    stored = alice.messages(session_id)
    assert stored[-1]["role"] == "assistant"
    assert "".join(chunks) == stored[-1]["content"]
    assert frames[-1]["usage"]["output_tokens"] == len(stored[-1]["content"].split())


def test_a_client_gone_mid_answer_still_gets_its_answer_stored(
    dev: DevServer, alice: Api, model: Any
) -> None:
    model.pace(first_delta_ms=0, deltas_per_second=100)
    session_id = alice.create_session()["session_id"]
    with websocket(dev, "alice") as ws:
        ws.send(json.dumps({"action": "sendMessage", "session_id": session_id, "content": "bye"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "start"
        assert json.loads(ws.recv(timeout=10))["type"] == "chunk"
    stored = wait_for(lambda: [m for m in alice.messages(session_id) if m["role"] == "assistant"])
    expected = answer({"messages": [{"role": "user", "content": [{"text": "bye"}]}]})
    assert stored[0]["content"] == expected


def test_another_users_session_is_not_found_over_websocket(
    dev: DevServer, alice: Api, bob: Api
) -> None:
    session_id = alice.create_session()["session_id"]
    [frame] = chat(dev, "bob", session_id, "let me in")
    assert frame["type"] == "error"
    assert frame["code"] == "not_found"
    assert alice.messages(session_id) == []


def test_a_long_delta_is_split_into_frames_of_at_most_32_kb(
    dev: DevServer, alice: Api, model: Any
) -> None:
    model.reply = lambda body: "é" * 40_000  # one delta of 80 KB in UTF-8
    session_id = alice.create_session()["session_id"]
    with websocket(dev, "alice") as ws:
        ws.send(json.dumps({"action": "sendMessage", "session_id": session_id, "content": "go"}))
        raw = []
        while not raw or json.loads(raw[-1])["type"] not in ("end", "error"):
            raw.append(ws.recv(timeout=20))
    chunks = [json.loads(frame) for frame in raw if json.loads(frame)["type"] == "chunk"]
    assert len(chunks) >= 3
    assert all(len(frame.encode()) <= MAX_FRAME_BYTES for frame in raw)
    assert "".join(c["content"] for c in chunks) == alice.messages(session_id)[-1]["content"]


def _fragments(message: str) -> list[str]:
    """``message`` as frames of at most 32 KB, as API Gateway asks clients to send it."""
    size = MAX_FRAME_BYTES // 2  # ASCII here: one byte a character, with room to spare
    return [message[start : start + size] for start in range(0, len(message), size)]


def test_a_client_frame_over_32_kb_closes_the_connection(dev: DevServer) -> None:
    with websocket(dev, "alice") as ws:
        ws.send(json.dumps({"action": "ping", "pad": "x" * MAX_FRAME_BYTES}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_a_message_of_32_kb_frames_up_to_128_kb_arrives_whole(dev: DevServer, alice: Api) -> None:
    """The chat client sends a long paste as several frames; API Gateway puts them together."""
    session_id = alice.create_session()["session_id"]
    content = "\n".join(f"    line {n:05d} of a pasted file" for n in range(1_300))  # ~43 KB
    frame = json.dumps({"action": "sendMessage", "session_id": session_id, "content": content})
    assert MAX_FRAME_BYTES < len(frame) < MAX_WEBSOCKET_MESSAGE_BYTES
    with websocket(dev, "alice") as ws:
        ws.send(_fragments(frame))
        types = [json.loads(ws.recv(timeout=20))["type"]]
        while types[-1] not in ("end", "error"):
            types.append(json.loads(ws.recv(timeout=20))["type"])
    assert types[0] == "start" and types[-1] == "end", types
    assert alice.messages(session_id)[0]["content"] == content


def test_a_message_over_128_kb_closes_the_connection_even_in_small_frames(dev: DevServer) -> None:
    with websocket(dev, "alice") as ws:
        too_long = json.dumps({"action": "ping", "pad": "x" * MAX_WEBSOCKET_MESSAGE_BYTES})
        with pytest.raises(ConnectionClosed) as closed:  # the close may come while it sends
            ws.send(_fragments(too_long))
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize(
    "limits", [Limits(idle_seconds=0.3), Limits(max_seconds=0.3)], ids=["idle", "max-duration"]
)
def test_an_idle_or_old_connection_is_closed(dev: DevServer, limits: Limits) -> None:
    assert dev.websocket is not None
    saved, dev.websocket.limits = dev.websocket.limits, limits
    try:
        with websocket(dev, "alice") as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    finally:
        dev.websocket.limits = saved
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


def test_the_management_api_posts_describes_and_answers_gone(dev: DevServer) -> None:
    assert dev.websocket is not None
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=dev.websocket.callback_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    before = set(dev.websocket.connection_ids())
    with websocket(dev, "alice") as ws:
        [connection_id] = wait_for(lambda: set(dev.websocket.connection_ids()) - before)
        client.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": 1}')
        assert json.loads(ws.recv(timeout=10)) == {"hello": 1}
        assert client.get_connection(ConnectionId=connection_id)["Identity"]["SourceIp"]
    wait_for(lambda: connection_id not in dev.websocket.connection_ids())
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")


def test_the_management_api_closes_a_connection(dev: DevServer) -> None:
    assert dev.websocket is not None
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=dev.websocket.callback_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    before = set(dev.websocket.connection_ids())
    with websocket(dev, "alice") as ws:
        [connection_id] = wait_for(lambda: set(dev.websocket.connection_ids()) - before)
        client.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    wait_for(lambda: connection_id not in dev.websocket.connection_ids())
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=connection_id)


def test_every_function_logs_under_its_name(dev: DevServer, logs: Logs) -> None:
    with websocket(dev, "alice") as ws:
        ws.send(json.dumps({"action": "ping"}))
        ws.recv(timeout=10)
    session_id = Api(dev, "alice").create_session()["session_id"]
    Api(dev, "alice").http.delete(f"/api/v1/sessions/{session_id}")
    ask_openai(dev, "alice")
    names = {function.name for function in dev.stack.functions.values()}
    wait_for(lambda: names <= logs.sources())  # the cleanup, from the stream, a moment later


def test_the_context_carries_the_functions_name_and_memory(
    dev: DevServer, alice: Api, logs: Logs
) -> None:
    """Powertools logs the Lambda context of each invocation: it is the stack's function."""
    session_id = alice.create_session()["session_id"]
    chat(dev, "alice", session_id, "context?")
    [function] = [f for f in dev.stack.functions.values() if f.name.endswith("-websocket")]

    def logged_turns() -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for source, line in logs.lines
            if source == function.name and line.startswith("{") and "chat turn stored" in line
        ]

    # The function logs the turn after posting the end frame, and its output reaches the
    # dev server's log through a pipe: it may arrive a moment after the frame.
    records = wait_for(logged_turns)
    assert records[-1]["function_name"] == function.name
    assert records[-1]["function_memory_size"] == str(function.memory_size)
    assert records[-1]["function_arn"].endswith(f":function:{function.name}")
