"""The OpenAI-compatible API for ``make dev``: its ASGI app under uvicorn, started by the same
``run.sh`` the Lambda Web Adapter runs, in a process of its own with the function's environment,
that ends with the dev server however that ends (:mod:`devserver.tied`).

Deployed, the adapter turns each invocation into an HTTP request to that uvicorn, adding API
Gateway's request context (``x-amzn-request-context``, with the authorizer's answer) and the
Lambda context (``x-amzn-lambda-context``, with the invocation's deadline), and streams the
response back as it is written. :meth:`OpenAIApp.forward` does the same for the dev REST
gateway, which authorizes the request first (:mod:`devserver.rest_gateway`).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fakes.process import stop_process
from functions.contract import LAMBDA_CONTEXT_HEADER, OPENAI_API, REQUEST_CONTEXT_HEADER

ROOT = Path(__file__).resolve().parent.parent
RUN_SCRIPT = ROOT / "functions" / OPENAI_API.key / "run.sh"
# Started through it, so that uvicorn ends with the dev server even when that is killed outright.
TIED = Path(__file__).resolve().parent / "tied.py"
READY_TIMEOUT_SECONDS = 30
# Headers that are the hop's own, not the request's (RFC 9110 section 7.6.1), and the two the
# adapter sets, which a client must never be able to set itself.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
)
_ADAPTER_HEADERS = frozenset({REQUEST_CONTEXT_HEADER, LAMBDA_CONTEXT_HEADER})

LogLine = Callable[[str], None]


@dataclass(frozen=True)
class Upstream:
    """The app's answer: status, headers, and the body as it arrives."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]
    streamed: bool  # no Content-Length: relay piece by piece


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OpenAIApp:
    """``run.sh`` in a child process on a free port of 127.0.0.1."""

    def __init__(self, env: Mapping[str, str], timeout_seconds: int, log: LogLine) -> None:
        self.port = free_port()
        self.timeout_seconds = timeout_seconds  # the function's: each request's deadline
        self._log = log
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        self._env = {
            **env,
            "PORT": str(self.port),
            "PATH": path,
            "PYTHONPATH": str(ROOT),
            # X-Ray is not emulated (as for the Lambda workers): the SDK would only complain.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> OpenAIApp:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(TIED), str(os.getpid()), "/bin/sh", str(RUN_SCRIPT)],
            cwd=ROOT,
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(
            target=self._relay_output, args=(self._process.stdout,), daemon=True
        ).start()
        self._wait_ready()
        return self

    def _relay_output(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            self._log(line.rstrip("\n"))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"{RUN_SCRIPT} exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{RUN_SCRIPT} did not listen on {self.port} in time")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, grace_seconds=5)

    def forward(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        request_context: Mapping[str, Any],
    ) -> Upstream:
        """Send the request on as the adapter would, and return the answer as it arrives."""
        deadline_ms = int((time.time() + self.timeout_seconds) * 1000)
        sent = [
            (name, value)
            for name, value in headers
            if name.lower() not in _HOP_HEADERS | _ADAPTER_HEADERS
        ]
        sent += [
            (REQUEST_CONTEXT_HEADER, json.dumps(request_context)),
            (LAMBDA_CONTEXT_HEADER, json.dumps({"deadline": deadline_ms})),
            ("Content-Length", str(len(body))),
        ]
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=self.timeout_seconds
        )
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in sent:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        streamed = response.getheader("Content-Length") is None
        return Upstream(
            response.status,
            [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_HEADERS],
            _pieces(response, connection),
            streamed,
        )


def _pieces(
    response: http.client.HTTPResponse, connection: http.client.HTTPConnection
) -> Iterator[bytes]:
    """The body as uvicorn writes it: ``read1`` returns what has arrived, without waiting to
    fill a buffer."""
    try:
        while piece := response.read1(65536):
            yield piece
    finally:
        connection.close()
