"""The WebSocket API on 127.0.0.1, emulating API Gateway WebSocket in front of the stack's
functions, and its management API (``@connections``, the double in :mod:`fakes.connections`).

What API Gateway does and this does too: ``$connect`` runs the REQUEST authorizer (the token in
the ``Authorization`` header or ``?token=``, as the function reads it) and refuses the upgrade
with 401 when it raises ``Unauthorized``, 403 when its policy does not allow ``$connect``, 500
when it fails, then runs the ``$connect`` integration, whose non-2xx status refuses the
connection too; messages are routed by the stack's route selection expression (``$default``
when no route matches) with the real event shapes and connection ids, and the authorizer's
context on every event; ``$disconnect`` runs when either side closes; a failed integration
sends the client ``{"message": "Internal server error", ...}`` as API Gateway does. The
management API delivers ``POST``/``GET``/``DELETE @connections/{id}`` to the connection's socket
and answers 410 ``GoneException`` for a closed connection and 413 over 128 KB.

Limits, as documented refusals: a client frame over 32 KB, or a message over 128 KB (a message
may arrive as several frames, which are put together as API Gateway does), closes the
connection with 1009; a connection idle for 10 minutes, or open for 2 hours, is closed with
1001 (``Going away``).

Not emulated: route throttling, IAM on the management API (no SigV4 check), route responses.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from devserver.lambda_pool import ACCOUNT_ID, FunctionError, InvocationError, Lambda
from devserver.rest_gateway import policy_allows
from devserver.stack import WebSocketApi
from fakes.connections import WsManagementFake
from functions.contract import MAX_WEBSOCKET_FRAME_BYTES, MAX_WEBSOCKET_MESSAGE_BYTES

MAX_FRAME_BYTES = MAX_WEBSOCKET_FRAME_BYTES
IDLE_TIMEOUT_SECONDS = 10 * 60
MAX_CONNECTION_SECONDS = 2 * 60 * 60
API_ID = "devwsapi"

Log = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """API Gateway's WebSocket quotas; tests shorten the clocks."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    max_message_bytes: int = MAX_WEBSOCKET_MESSAGE_BYTES
    idle_seconds: float = IDLE_TIMEOUT_SECONDS
    max_seconds: float = MAX_CONNECTION_SECONDS


@dataclass
class _Connection:
    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: float
    authorizer: dict[str, Any] | None
    socket: ServerConnection | None = None
    last_active: float = field(default_factory=time.time)


def new_connection_id() -> str:
    """Shaped like API Gateway's (``BFHPhfCWIAMCKlQ=``): base64 of 10 random bytes."""
    return base64.b64encode(os.urandom(10)).decode()


def _now() -> tuple[str, int]:
    now = datetime.now(UTC)
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(now.timestamp() * 1000)


class WebSocketGateway:
    """The WebSocket stage on ``ws://127.0.0.1:<port>/<stage>``, plus its management API."""

    def __init__(
        self,
        api: WebSocketApi,
        functions: Lambda,
        region: str,
        *,
        port: int = 0,
        management_port: int = 0,
        limits: Limits = Limits(),
        log: Log | None = None,
    ) -> None:
        self.api = api
        self.functions = functions
        self.region = region
        self.limits = limits
        self._port = port
        self._log = log or (lambda line: None)
        self._connections: dict[str, _Connection] = {}
        self._pending: dict[ServerConnection, _Connection] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        # The same @connections double the tests use, delivering to this gateway's sockets.
        self.management = WsManagementFake(
            api.stage, connections=self, port=management_port, record=False
        )

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> WebSocketGateway:
        """Accept connections. Start :attr:`management` first: its URL is in the functions'
        environment, which must be set before they can serve."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> Server:
        return await serve(
            self._handle,
            "127.0.0.1",
            self._port,
            process_request=self._process_request,
            max_size=(self.limits.max_message_bytes, self.limits.max_frame_bytes),
            ping_interval=None,  # API Gateway answers pings but sends none
            server_header=None,
        )

    def stop(self) -> None:
        self.management.stop()
        if not self._thread.is_alive():
            return
        if self._server is not None:
            server = self._server

            async def close() -> None:
                server.close()
                await server.wait_closed()

            with contextlib.suppress(TimeoutError):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/{self.api.stage}"

    @property
    def callback_url(self) -> str:
        """What the function gets in ``WEBSOCKET_CALLBACK_URL`` (the stage's https URL)."""
        return f"{self.management.url}/{self.api.stage}"

    # ---- $connect ------------------------------------------------------------------------

    async def _process_request(
        self, socket: ServerConnection, request: WsRequest
    ) -> WsResponse | None:
        parts = urlsplit(request.path)
        if parts.path.rstrip("/") != f"/{self.api.stage}":
            return _refuse(socket, HTTPStatus.FORBIDDEN, "Forbidden")
        remote = socket.remote_address
        connection = _Connection(
            connection_id=new_connection_id(),
            source_ip=str(remote[0]) if remote else "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            connected_at=time.time(),
            authorizer=None,
        )
        headers = list(request.headers.raw_items())
        query = parse_qsl(parts.query, keep_blank_values=True)
        route = self.api.routes.get("$connect")
        if route is not None and route.authorizer is not None:
            refusal = await self._authorize(socket, route.authorizer, connection, headers, query)
            if refusal is not None:
                return refusal
        if route is not None and route.function is not None:
            event = self._connect_event(connection, headers, query)
            try:
                result = await asyncio.to_thread(self.functions.invoke, route.function, event)
            except InvocationError:
                return _refuse(socket, HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")
            status = result.get("statusCode", 200) if isinstance(result, dict) else 200
            if not 200 <= int(status) < 300:
                return _refuse(socket, HTTPStatus(int(status)), HTTPStatus(int(status)).phrase)
        with self._lock:
            self._pending[socket] = connection
        return None

    async def _authorize(
        self,
        socket: ServerConnection,
        function: str,
        connection: _Connection,
        headers: list[tuple[str, str]],
        query: list[tuple[str, str]],
    ) -> WsResponse | None:
        method_arn = (
            f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{API_ID}/{self.api.stage}/$connect"
        )
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            **_header_fields(headers),
            "queryStringParameters": dict(query),
            "multiValueQueryStringParameters": _multi(query),
            "stageVariables": {},
            "requestContext": self._request_context(connection, "$connect", "CONNECT"),
        }
        try:
            result = await asyncio.to_thread(self.functions.invoke, function, event)
        except FunctionError as error:
            if error.message == "Unauthorized":
                return _refuse(socket, HTTPStatus.UNAUTHORIZED, "Unauthorized")
            return _refuse(socket, HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")
        except InvocationError:
            return _refuse(socket, HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")
        policy = result.get("policyDocument") if isinstance(result, dict) else None
        if not isinstance(policy, dict) or not policy_allows(policy, method_arn):
            return _refuse(socket, HTTPStatus.FORBIDDEN, "Forbidden")
        connection.authorizer = {
            **(result.get("context") or {}),
            "principalId": str(result.get("principalId", "")),
            "integrationLatency": 0,
        }
        return None

    def _request_context(
        self, connection: _Connection, route_key: str, event_type: str
    ) -> dict[str, Any]:
        request_time, epoch = _now()
        request_id = base64.b64encode(os.urandom(10)).decode()
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": request_time,
            "messageDirection": "IN",
            "stage": self.api.stage,
            "connectedAt": int(connection.connected_at * 1000),
            "requestTimeEpoch": epoch,
            "identity": {"sourceIp": connection.source_ip},
            "requestId": request_id,
            "domainName": f"127.0.0.1:{self.port}",
            "connectionId": connection.connection_id,
            "apiId": API_ID,
        }
        if connection.authorizer is not None:
            context["authorizer"] = dict(connection.authorizer)
        return context

    def _connect_event(
        self,
        connection: _Connection,
        headers: list[tuple[str, str]],
        query: list[tuple[str, str]],
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            **_header_fields(headers),
            "requestContext": self._request_context(connection, "$connect", "CONNECT"),
            "isBase64Encoded": False,
        }
        if query:
            event["queryStringParameters"] = dict(query)
            event["multiValueQueryStringParameters"] = _multi(query)
        return event

    # ---- an open connection --------------------------------------------------------------

    async def _handle(self, socket: ServerConnection) -> None:
        with self._lock:
            connection = self._pending.pop(socket)
            connection.socket = socket
            self._connections[connection.connection_id] = connection
        self._log(f"$connect {connection.connection_id}")
        tasks: set[asyncio.Task[None]] = set()
        deadline = connection.connected_at + self.limits.max_seconds
        try:
            while True:
                idle_until = connection.last_active + self.limits.idle_seconds
                wait = min(idle_until, deadline) - time.time()
                if wait <= 0:
                    await socket.close(1001, "Going away")
                    break
                try:
                    message = await asyncio.wait_for(socket.recv(), timeout=wait)
                except TimeoutError:
                    continue  # the loop decides whether a limit was reached
                connection.last_active = time.time()
                task = asyncio.create_task(self._dispatch(connection, message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.pop(connection.connection_id, None)
            await self._disconnect(connection, socket)

    async def _dispatch(self, connection: _Connection, message: str | bytes) -> None:
        route_key = self._route_key(message)
        route = self.api.routes.get(route_key) if route_key else None
        request_context = self._request_context(connection, route_key or "", "MESSAGE")
        request_context["messageId"] = base64.b64encode(os.urandom(10)).decode()
        if route is None or route.function is None:
            await self._send_error(connection, "Forbidden", request_context["requestId"])
            return
        if isinstance(message, bytes):
            body, encoded = base64.b64encode(message).decode(), True
        else:
            body, encoded = message, False
        event = {"requestContext": request_context, "body": body, "isBase64Encoded": encoded}
        try:
            await asyncio.to_thread(self.functions.invoke, route.function, event)
        except InvocationError:
            await self._send_error(
                connection, "Internal server error", request_context["requestId"]
            )

    def _route_key(self, message: str | bytes) -> str | None:
        """The route the selection expression (``$request.body.<field>``) picks, else
        ``$default``; None when neither exists."""
        expression = self.api.route_selection_expression
        if expression.startswith("$request.body.") and isinstance(message, str):
            try:
                value: Any = json.loads(message)
                for part in expression.removeprefix("$request.body.").split("."):
                    value = value.get(part) if isinstance(value, dict) else None
            except ValueError:
                value = None
            if isinstance(value, str) and value in self.api.routes and not value.startswith("$"):
                return value
        return "$default" if "$default" in self.api.routes else None

    async def _send_error(self, connection: _Connection, message: str, request_id: str) -> None:
        frame = {
            "message": message,
            "connectionId": connection.connection_id,
            "requestId": request_id,
        }
        if connection.socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await connection.socket.send(json.dumps(frame))

    async def _disconnect(self, connection: _Connection, socket: ServerConnection) -> None:
        route = self.api.routes.get("$disconnect")
        self._log(f"$disconnect {connection.connection_id}")
        if route is None or route.function is None:
            return
        context = self._request_context(connection, "$disconnect", "DISCONNECT")
        context["disconnectStatusCode"] = socket.close_code or 1006
        context["disconnectReason"] = socket.close_reason or ""
        event = {
            "headers": {"Host": f"127.0.0.1:{self.port}", "x-api-key": "", "X-Forwarded-For": ""},
            "multiValueHeaders": {
                "Host": [f"127.0.0.1:{self.port}"],
                "x-api-key": [""],
                "X-Forwarded-For": [""],
            },
            "requestContext": context,
            "isBase64Encoded": False,
        }
        try:
            await asyncio.to_thread(self.functions.invoke, route.function, event)
        except InvocationError as error:
            self._log(f"$disconnect {connection.connection_id} failed: {error}")

    # ---- for the management API (called from its threads) --------------------------------

    def post(self, connection_id: str, data: bytes) -> bool:
        """Send ``data`` to the client; False if the connection is gone."""
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or connection.socket is None:
            return False
        try:
            payload: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        socket = connection.socket
        try:
            asyncio.run_coroutine_threadsafe(socket.send(payload), self._loop).result(30)
        except ConnectionClosed:
            return False
        connection.last_active = time.time()
        return True

    def close(self, connection_id: str) -> bool:
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None or connection.socket is None:
            return False
        socket = connection.socket
        asyncio.run_coroutine_threadsafe(socket.close(1000, "Going away"), self._loop)
        return True

    def connection_ids(self) -> list[str]:
        """The open connections, oldest first (what API Gateway would list in its logs)."""
        with self._lock:
            return list(self._connections)

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None:
            return None
        return {
            "connectedAt": datetime.fromtimestamp(connection.connected_at, UTC).isoformat(),
            "lastActiveAt": datetime.fromtimestamp(connection.last_active, UTC).isoformat(),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
        }


def _refuse(socket: ServerConnection, status: HTTPStatus, message: str) -> WsResponse:
    response = socket.respond(status, json.dumps({"message": message}))
    response.headers["Content-Type"] = "application/json"
    return response


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return multi


def _header_fields(headers: list[tuple[str, str]]) -> Mapping[str, Any]:
    return {"headers": dict(headers), "multiValueHeaders": _multi(headers)}
