"""The ``cancel`` action through the dev server, with a plain WebSocket client (the websockets
library, not the chat client): the API Gateway emulation delivers the cancel as its own
invocation, possibly in another worker, while the first one streams."""

from __future__ import annotations

import json
import uuid
from typing import Any

from devserver.server import DevServer
from fakes.bedrock import Pacing
from tests.support.dev_server import DEV_GROUP, Api, frames_until_end, websocket

pytestmark = DEV_GROUP


def _send(ws: Any, session_id: str, key: str) -> None:
    payload = {
        "action": "sendMessage",
        "session_id": session_id,
        "content": "go",
        "idempotency_key": key,
    }
    ws.send(json.dumps(payload))


def test_a_cancel_stops_the_answer_and_its_end_frame_says_so(dev: DevServer, model: Any) -> None:
    model.pacing = Pacing(first_delta_s=0.1, deltas_per_second=10)  # about six seconds
    api = Api(dev, "chat-victor")
    session_id = api.create_session()["session_id"]
    key = str(uuid.uuid4())
    with websocket(dev, "chat-victor") as ws:
        _send(ws, session_id, key)
        start = json.loads(ws.recv(timeout=20))
        assert (start["type"], start["idempotency_key"]) == ("start", key)
        first_chunk = json.loads(ws.recv(timeout=20))
        assert first_chunk["type"] == "chunk"
        ws.send(json.dumps({"action": "cancel", "message_id": start["message_id"]}))
        frames = [first_chunk, *frames_until_end(ws)]
        end = frames[-1]
        assert (end["type"], end["status"], end["stop_reason"]) == (
            "end",
            "incomplete",
            "interrupted",
        )
        ws.send(json.dumps({"action": "cancel", "message_id": start["message_id"]}))
        late = json.loads(ws.recv(timeout=20))
    assert (late["type"], late["code"], late["message_id"]) == (
        "error",
        "conflict",
        start["message_id"],
    )
    text = "".join(frame["content"] for frame in frames if frame["type"] == "chunk")
    stored = api.messages(session_id)[-1]
    assert (stored["status"], stored["stop_reason"], stored["content"]) == (
        "incomplete",
        "interrupted",
        text,
    )
    full = model.reply({"messages": [{"role": "user", "content": [{"text": "go"}]}]})
    assert text and len(text) < len(full)


def test_someone_elses_answer_cannot_be_cancelled(dev: DevServer, model: Any) -> None:
    model.pacing = Pacing(first_delta_s=0.1, deltas_per_second=40)
    owner = Api(dev, "chat-walter")
    session_id = owner.create_session()["session_id"]
    with websocket(dev, "chat-walter") as ws, websocket(dev, "chat-xena") as intruder:
        _send(ws, session_id, "k-1")
        start = json.loads(ws.recv(timeout=20))
        intruder.send(json.dumps({"action": "cancel", "message_id": start["message_id"]}))
        refused = json.loads(intruder.recv(timeout=20))
        end = frames_until_end(ws)[-1]
    assert (refused["code"], refused["message_id"]) == ("not_found", start["message_id"])
    assert (end["status"], end["stop_reason"]) == ("complete", "end_turn")
