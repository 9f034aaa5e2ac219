"""A loopback fake of the API Gateway WebSocket management API (``apigatewaymanagementapi``).

moto's own mock of this API concatenates every frame posted to a connection into one byte
string (so frame boundaries are lost) and treats every connection as live forever, so it can
neither show what was sent frame by frame nor answer 410 GoneException. This fake records each
frame and can make a connection go away after a number of frames.

Routes (``stage`` may be any path prefix, usually the API stage, e.g. ``v1``):

* ``POST   /{stage}/@connections/{connectionId}``  post_to_connection: records the frame
* ``GET    /{stage}/@connections/{connectionId}``  get_connection
* ``DELETE /{stage}/@connections/{connectionId}``  delete_connection: later calls answer 410

Every connection id is live until it is deleted or made gone (the fake never sees ``$connect``).
Like the real API, a frame over 128 KiB answers 413 PayloadTooLargeException.

``latency_ms`` makes every call take that long, as an in-region HTTPS round trip does (5-40 ms);
:meth:`WsManagementFake.frame_times` tells when each accepted frame's POST was answered
(``time.monotonic``), that is when the sender learned it was delivered.

Usage::

    import boto3
    from fakes.connections import WsManagementFake

    with WsManagementFake(stage="v1") as ws:
        monkeypatch.setenv(Env.WEBSOCKET_CALLBACK_URL, ws.callback_url)  # http://127.0.0.1:P/v1
        ws.gone("conn-2", after=3)      # conn-2 accepts 3 more frames, then answers 410
        ws.latency_ms = 15              # every call now takes 15 ms
        client = boto3.client("apigatewaymanagementapi", endpoint_url=ws.callback_url)
        client.post_to_connection(ConnectionId="conn-1", Data=b'{"type": "chunk"}')
        assert ws.frames("conn-1") == [{"type": "chunk"}]
        # after 3 frames to conn-2: client.exceptions.GoneException
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

from fakes.loopback import LoopbackServer, Request, Response, error_response, json_response

MAX_PAYLOAD_BYTES = 128 * 1024
_ROUTE = re.compile(r"^(?P<stage>/.*)?/@connections/(?P<id>[^/]+)$")

WsMethod = Literal["POST", "GET", "DELETE"]


@dataclass(frozen=True)
class WsRequest:
    """One management-API call the fake received, whatever it answered."""

    method: WsMethod
    stage: str  # the path before /@connections, without slashes at either end ("v1")
    connection_id: str  # URL-decoded
    status: int


class WsManagementFake(LoopbackServer):
    """Fake API Gateway management endpoint; see the module docstring."""

    def __init__(self, stage: str = "v1") -> None:
        super().__init__()
        self.stage = stage
        self._lock = threading.Lock()
        self._frames: defaultdict[str, list[bytes]] = defaultdict(list)
        self._frame_times: defaultdict[str, list[float]] = defaultdict(list)
        self.latency_ms: float = 0
        self.on_frame: Callable[[str, bytes], None] | None = None  # called as each is accepted
        self._frames_left: dict[str, int] = {}  # connection id -> frames accepted before Gone
        self._deleted: list[str] = []
        self._requests: list[WsRequest] = []
        self._connected_at = datetime.now(UTC)

    @property
    def callback_url(self) -> str:
        """What the stack passes as the callback URL: ``http://127.0.0.1:<port>/<stage>``."""
        return f"{self.url}/{self.stage}"

    def gone(self, connection_id: str, after: int = 0) -> None:
        """Accept ``after`` more frames on ``connection_id``, then answer 410 GoneException."""
        with self._lock:
            self._frames_left[connection_id] = after

    def raw_frames(self, connection_id: str) -> list[bytes]:
        """The accepted frames posted to ``connection_id``, oldest first."""
        with self._lock:
            return list(self._frames.get(connection_id, []))

    def frame_times(self, connection_id: str) -> list[float]:
        """When each accepted frame of ``connection_id`` was answered, oldest first."""
        with self._lock:
            return list(self._frame_times.get(connection_id, []))

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        """The accepted frames of ``connection_id``, each JSON-decoded."""
        decoded = []
        for frame in self.raw_frames(connection_id):
            try:
                decoded.append(json.loads(frame))
            except json.JSONDecodeError as error:
                raise ValueError(f"frame to {connection_id} is not JSON: {frame!r}") from error
        return decoded

    @property
    def deleted(self) -> list[str]:
        """Connection ids closed through delete_connection, in order."""
        with self._lock:
            return list(self._deleted)

    @property
    def requests(self) -> list[WsRequest]:
        """A snapshot of every call received, oldest first."""
        with self._lock:
            return list(self._requests)

    def handle(self, request: Request) -> Response:
        match = _ROUTE.match(request.path)
        if match is None or request.method not in ("POST", "GET", "DELETE"):
            return error_response(404, "NotFoundException", f"{request.method} {request.path}")
        connection_id = unquote(match["id"])
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        with self._lock:
            response = self._answer(request, connection_id)
            stage = (match["stage"] or "").strip("/")
            self._requests.append(WsRequest(request.method, stage, connection_id, response.status))
        if self.on_frame is not None and request.method == "POST" and response.status == 200:
            self.on_frame(connection_id, request.body)
        return response

    def _is_gone(self, connection_id: str) -> bool:
        return connection_id in self._deleted or self._frames_left.get(connection_id) == 0

    def _answer(self, request: Request, connection_id: str) -> Response:
        """Called with the lock held."""
        if self._is_gone(connection_id):
            return error_response(410, "GoneException", f"connection {connection_id} is gone")
        if request.method == "DELETE":
            self._deleted.append(connection_id)
            return Response(204)
        if request.method == "GET":
            return self._connection(request)
        if len(request.body) > MAX_PAYLOAD_BYTES:
            return error_response(413, "PayloadTooLargeException", "Message too long")
        self._frames[connection_id].append(request.body)
        self._frame_times[connection_id].append(time.monotonic())
        if connection_id in self._frames_left:
            self._frames_left[connection_id] -= 1
        return Response(200)

    def _connection(self, request: Request) -> Response:
        return json_response(
            {
                "connectedAt": self._connected_at.isoformat(),
                "lastActiveAt": datetime.now(UTC).isoformat(),
                "identity": {
                    "sourceIp": "127.0.0.1",
                    "userAgent": request.headers.get("user-agent", ""),
                },
            }
        )
