"""API Gateway's WebSocket management API (``apigatewaymanagementapi``, ``@connections``): the
one double of it, for the tests and for ``make dev``.

moto's own mock of this API concatenates every frame posted to a connection into one byte
string (so frame boundaries are lost) and treats every connection as live forever, so it can
neither show what was sent frame by frame nor answer 410 GoneException. This fake records each
frame and can make a connection go away after a number of frames.

Routes (``stage`` is the API stage, e.g. ``v1``; another stage answers 404):

* ``POST   /{stage}/@connections/{connectionId}``  post_to_connection: records the frame
* ``GET    /{stage}/@connections/{connectionId}``  get_connection
* ``DELETE /{stage}/@connections/{connectionId}``  delete_connection: later calls answer 410

Where the frames go is its :class:`Connections`: by default nowhere, and every connection id is
live until it is deleted or made gone (the tests' fake never sees ``$connect``); the dev
server's WebSocket gateway passes itself, so frames reach the clients' sockets and a closed
socket answers 410 as API Gateway does. Like the real API, a frame over 128 KiB answers 413
PayloadTooLargeException.

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
from typing import Any, Literal, Protocol
from urllib.parse import unquote

from fakes.loopback import LoopbackServer, Request, Response, error_response, json_response

MAX_PAYLOAD_BYTES = 128 * 1024
_ROUTE = re.compile(r"^/(?P<stage>[^/]*)/@connections/(?P<id>[^/]+)$")

WsMethod = Literal["POST", "GET", "DELETE"]


@dataclass(frozen=True)
class WsRequest:
    """One management-API call the fake received, whatever it answered."""

    method: WsMethod
    stage: str  # the path before /@connections, without slashes ("v1")
    connection_id: str  # URL-decoded
    status: int


class Connections(Protocol):
    """The clients behind the API: what a call reaches once the fake has accepted it."""

    def post(self, connection_id: str, data: bytes) -> bool:
        """Send ``data`` to the client; False if the connection is gone."""
        ...

    def close(self, connection_id: str) -> bool:
        """Close the connection; False if it is gone already."""
        ...

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        """``get_connection``'s answer (``connectedAt``, ``lastActiveAt``, ``identity``), or
        None if the connection is gone."""
        ...


class WsManagementFake(LoopbackServer):
    """Fake API Gateway management endpoint; see the module docstring."""

    def __init__(
        self,
        stage: str = "v1",
        *,
        connections: Connections | None = None,
        port: int = 0,
        record: bool = True,
    ) -> None:
        """``record=False`` keeps no frames nor requests: a long ``make dev`` session would
        otherwise hold every frame it ever sent."""
        super().__init__(port)
        self.stage = stage
        self.connections = connections
        self.record = record
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
        if (
            match is None
            or match["stage"] != self.stage
            or request.method not in ("POST", "GET", "DELETE")
        ):
            return error_response(404, "NotFoundException", f"{request.method} {request.path}")
        connection_id = unquote(match["id"])
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        response = self._answer(request, connection_id)
        if self.record:
            with self._lock:
                self._requests.append(
                    WsRequest(request.method, self.stage, connection_id, response.status)
                )
        if self.on_frame is not None and request.method == "POST" and response.status == 200:
            self.on_frame(connection_id, request.body)
        return response

    def _answer(self, request: Request, connection_id: str) -> Response:
        gone = error_response(410, "GoneException", f"connection {connection_id} is gone")
        too_large = request.method == "POST" and len(request.body) > MAX_PAYLOAD_BYTES
        with self._lock:
            if connection_id in self._deleted or self._frames_left.get(connection_id) == 0:
                return gone
            if request.method == "POST" and not too_large and connection_id in self._frames_left:
                self._frames_left[connection_id] -= 1  # taken now: concurrent posts count too
        if request.method == "DELETE":
            return self._delete(connection_id) or gone
        if request.method == "GET":
            description = self._describe(request, connection_id)
            return gone if description is None else json_response(description)
        if too_large:
            return error_response(413, "PayloadTooLargeException", "Message too long")
        return self._post(connection_id, request.body) or gone

    def _delete(self, connection_id: str) -> Response | None:
        if self.connections is not None and not self.connections.close(connection_id):
            return None
        with self._lock:
            self._deleted.append(connection_id)
        return Response(204)

    def _post(self, connection_id: str, data: bytes) -> Response | None:
        """Sent outside the lock: delivering to a client's socket may take a while, and the
        other connections' frames must not wait for it."""
        if self.connections is not None and not self.connections.post(connection_id, data):
            return None
        if self.record:
            with self._lock:
                self._frames[connection_id].append(data)
                self._frame_times[connection_id].append(time.monotonic())
        return Response(200)

    def _describe(self, request: Request, connection_id: str) -> dict[str, Any] | None:
        """Without clients, a stand-in: connected when the fake started, from this host."""
        if self.connections is not None:
            return self.connections.describe(connection_id)
        return {
            "connectedAt": self._connected_at.isoformat(),
            "lastActiveAt": datetime.now(UTC).isoformat(),
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": request.headers.get("user-agent", ""),
            },
        }
