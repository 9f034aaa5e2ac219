"""The loopback HTTP server the AWS fakes and the dev server run on, and the restJson error format
botocore parses."""

from __future__ import annotations

import json
import socket
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

_POLL_SECONDS = 0.01  # how often serve_forever checks for shutdown(); the default 0.5 s slows tests


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # raw (still percent-encoded), without the query string
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    """An answer; with ``stream``, the body goes out piece by piece as the iterator yields
    (chunked transfer encoding), as AWS sends event streams, and ``body`` is ignored."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None


class Abort(Exception):
    """Raised by a response stream: drop the connection there, mid-body, as a network reset."""


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def error_response(status: int, error_type: str, message: str) -> Response:
    """An AWS restJson error: botocore takes the code from ``x-amzn-ErrorType``."""
    return Response(
        status,
        json.dumps({"message": message}).encode(),
        {"Content-Type": "application/json", "x-amzn-ErrorType": error_type},
    )


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hangs up early
    (a worker killed at its timeout, a client gone mid-answer): that is not a server error.

    Its listen backlog is as long as the system allows: connections that arrive while the
    accept loop waits for a core queue up, as at an AWS endpoint, where ``socketserver``'s 5
    dropped the rest and their clients retried after a second."""

    daemon_threads = True
    request_queue_size = socket.SOMAXCONN

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1:<free port> in a daemon thread; subclasses answer.

    A bug in a fake answers 500 InternalServerException carrying the traceback, so the test
    fails with the cause instead of hanging.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port  # 0: a free port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; only valid between start() and stop()."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use start() or `with`")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._httpd = QuietHTTPServer(("127.0.0.1", self._port), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": _POLL_SECONDS}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _safe_handle(self, request: Request) -> Response:
        try:
            return self.handle(request)
        except Exception:  # any bug of the fake reaches the test as a 500
            return error_response(500, "InternalServerException", traceback.format_exc())


def _handler_class(owner: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two sends; without TCP_NODELAY, Nagle's algorithm holds
        # the body of a kept-alive connection until the client's delayed ACK (~40 ms a call).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=urlsplit(self.path).path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
            )
            response = owner._safe_handle(request)
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if response.stream is None:
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for piece in response.stream:
                    if piece:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
            except Abort:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

    return Handler
