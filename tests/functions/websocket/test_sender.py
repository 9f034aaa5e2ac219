"""The WebSocket frame sender on its own: ordering, coalescing, pacing, splitting, failures and
the context its thread runs in. A scripted management client stands in for boto3 so a test can
hold a POST in flight and see exactly what the sender does meanwhile."""

from __future__ import annotations

import contextvars
import itertools
import json
import threading
import time
from functools import partial
from typing import Any

import pytest
from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core import xray_recorder
from botocore.exceptions import ClientError

from functions.core.observability import tracer
from functions.websocket import frames
from functions.websocket.frames import MAX_FRAME_BYTES
from functions.websocket.sender import Poster, StreamSender

HOLD_SECONDS = 5  # how long a held POST waits at most, so a broken sender fails, not hangs
LONG_INTERVAL = 3600.0  # a flush interval no test may wait out


class ScriptedClient:
    """``post_to_connection`` that records frames, can hold a numbered POST until released,
    and can answer 410 from a given POST on."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.started: list[float] = []  # when each POST began (time.monotonic)
        self.in_flight = threading.Event()
        self._holds: dict[int, threading.Event] = {}
        self._gone_from: int | None = None
        self._lock = threading.Lock()
        self.calls = 0

    def hold(self, post_number: int) -> threading.Event:
        """Hold POST ``post_number`` (1-based) until the returned event is set."""
        release = threading.Event()
        self._holds[post_number] = release
        return release

    def gone_from(self, post_number: int) -> None:
        self._gone_from = post_number

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        with self._lock:
            self.calls += 1
            number = self.calls
        self.started.append(time.monotonic())
        if self._gone_from is not None and number >= self._gone_from:
            raise ClientError(
                {"Error": {"Code": "GoneException", "Message": "gone"}}, "PostToConnection"
            )
        release = self._holds.get(number)
        if release is not None:
            self.in_flight.set()
            assert release.wait(HOLD_SECONDS), f"POST {number} was never released"
        self.raw.append(Data)
        self.frames.append(json.loads(Data))


def _sender(client: ScriptedClient, interval: float) -> tuple[StreamSender, Poster]:
    poster = Poster(client, "conn-1")
    return StreamSender(poster, partial(frames.chunks, "s", "m"), interval), poster


def _texts(received: list[dict[str, Any]]) -> list[str]:
    return [frame["content"] for frame in received if frame["type"] == "chunk"]


def _closed_within(sender: StreamSender, seconds: float) -> bool:
    closer = threading.Thread(target=sender.close, daemon=True)
    closer.start()
    closer.join(seconds)
    return not closer.is_alive()


def test_first_text_goes_out_at_once_and_text_meanwhile_is_coalesced() -> None:
    client = ScriptedClient()
    release = client.hold(2)  # the first chunk's POST stays in flight
    sender, _ = _sender(client, interval=0)
    with sender:
        sender.send(frames.start("s", "m"))
        sender.write("first ")
        assert client.in_flight.wait(HOLD_SECONDS)  # posted without any second delta
        for word in ("a ", "b ", "c "):
            sender.write(word)  # returns at once although a POST is in flight
        release.set()
        sender.send({"type": "end"})
    assert [frame["type"] for frame in client.frames] == ["start", "chunk", "chunk", "end"]
    assert _texts(client.frames) == ["first ", "a b c "]


def test_text_frames_are_at_least_one_flush_interval_apart() -> None:
    """Measured on the sender's own clock: the reading it paced each text POST by is the last
    one it took before that POST (a timestamp in the client could be taken a GIL switch
    later)."""
    readings: list[float] = []

    def clock() -> float:
        readings.append(time.monotonic())
        return readings[-1]

    class Stamping(ScriptedClient):
        def __init__(self) -> None:
            super().__init__()
            self.paced_at: list[float] = []

        def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
            self.paced_at.append(readings[-1])
            super().post_to_connection(ConnectionId=ConnectionId, Data=Data)

    client = Stamping()
    interval = 0.15
    poster = Poster(client, "conn-1")
    sender = StreamSender(poster, partial(frames.chunks, "s", "m"), interval, clock=clock)
    with sender:
        for number in range(40):
            sender.write(f"w{number} ")
            time.sleep(0.01)
        time.sleep(2 * interval)  # the last text goes out by the interval, not by closing
    assert "".join(_texts(client.frames)) == "".join(f"w{n} " for n in range(40))
    assert len(client.paced_at) < 40  # coalesced
    gaps = [later - earlier for earlier, later in itertools.pairwise(client.paced_at)]
    assert min(gaps) >= interval


def test_end_flushes_pending_text_at_once_instead_of_waiting_out_the_interval() -> None:
    client = ScriptedClient()
    sender, _ = _sender(client, LONG_INTERVAL)
    sender.__enter__()
    sender.write("first ")
    sender.write("second ")  # must wait an hour... unless the end flushes it
    sender.send({"type": "end"})
    assert _closed_within(sender, HOLD_SECONDS)
    assert "".join(_texts(client.frames)) == "first second "
    assert client.frames[-1] == {"type": "end"}


def test_closing_flushes_pending_text_at_once() -> None:
    client = ScriptedClient()
    sender, _ = _sender(client, LONG_INTERVAL)
    sender.__enter__()
    sender.write("first ")
    sender.write("second ")
    assert _closed_within(sender, HOLD_SECONDS)
    assert "".join(_texts(client.frames)) == "first second "


def test_coalesced_text_is_split_to_the_frame_limit() -> None:
    client = ScriptedClient()
    release = client.hold(1)
    sender, _ = _sender(client, interval=0)
    pieces = ["x" * 10_000 for _ in range(9)] + ["漢" * 20_000]
    with sender:
        sender.write("head ")
        assert client.in_flight.wait(HOLD_SECONDS)
        for piece in pieces:
            sender.write(piece)
        release.set()
    assert max(len(raw) for raw in client.raw) <= MAX_FRAME_BYTES
    assert "".join(_texts(client.frames)) == "head " + "".join(pieces)
    assert len(client.frames) > 3  # 150 KB of text needs several frames


def test_gone_stops_posting_but_never_blocks_the_writer() -> None:
    client = ScriptedClient()
    client.gone_from(2)
    sender, poster = _sender(client, interval=0)
    with sender:
        sender.send(frames.start("s", "m"))
        for number in range(200):
            sender.write(f"w{number} ")
        sender.send({"type": "end"})
    assert poster.gone
    assert not poster.open
    assert [frame["type"] for frame in client.frames] == ["start"]
    assert client.calls == 2  # the POST that answered 410, and none after it


def test_the_sender_thread_runs_in_the_callers_context_and_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Context variables (Powertools' thread-safe keys) and the X-Ray entity carry over, so
    the POSTs are traced inside the invocation's segment."""
    request = contextvars.ContextVar("request", default="none")
    request.set("req-42")
    seen: dict[str, Any] = {}

    class Recording(ScriptedClient):
        def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
            seen["request"] = request.get()
            seen["entity"] = xray_recorder.get_trace_entity()
            seen["thread"] = threading.current_thread().name
            super().post_to_connection(ConnectionId=ConnectionId, Data=Data)

    monkeypatch.setattr(tracer, "disabled", False)
    enabled = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    segment = xray_recorder.begin_segment("websocket-test", sampling=0)  # nothing is emitted
    try:
        sender, _ = _sender(Recording(), interval=0)
        with sender:
            sender.write("traced")
    finally:
        xray_recorder.end_segment()
        global_sdk_config.set_sdk_enabled(enabled)
    assert seen["thread"] == "frame-sender"
    assert seen["request"] == "req-42"
    assert seen["entity"] is segment
