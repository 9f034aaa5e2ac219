"""moto on one address, with the AWS APIs the stacks need that moto lacks added first.

Run as ``python -m fakes.emulator --host 127.0.0.1 --port 4566`` (``--port 0``: any
free port). It prints one line, ``emulator ready on http://<host>:<port>``, once the server
answers, then serves until SIGINT or SIGTERM. With ``--request-log FILE`` it appends one JSON
line per answered request (:class:`RequestLog`). Terraform's AWS provider, pointed at that URL for
every service (``endpoints``), applies the synthesized stacks against it, code signing
included (:mod:`fakes.lambda_signing`), and AWS's public Lambda Web Adapter layers
(:mod:`fakes.public_layers`).

The extensions are installed in this process before moto's server builds its URL table,
which is why this is a process of its own rather than the tests' shared in-process moto.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from fakes import lambda_signing, public_layers
from fakes.moto import Answered, MotoServer, Observer

READY = "emulator ready on"


# The service a SigV4-signed request is for, from its credential scope: Terraform sends every
# service to the one address, and query-protocol actions (IAM, STS) are in the body.
SIGNED_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
ERROR_EXCERPT = 300  # characters of an error answer's body kept in the log


class RequestLog:
    """One JSON line per answered request, for a failed ``terraform apply`` to show what the
    provider asked and what it got: the service, method, path and target; the SDK's
    invocation id and attempt (``amz-sdk-invocation-id``, ``amz-sdk-request``), which tell a
    retry of one call from a second call; the client's connection; the status and, for an
    error, the start of its body; how long the request queued and how long moto took."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()  # cheroot answers on several threads
        self._started = time.monotonic()

    def __call__(self, answered: Answered) -> None:
        environ = answered.environ
        scope = SIGNED_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        record: dict[str, Any] = {
            "at": round(time.monotonic() - self._started, 3),
            "service": scope.group(1) if scope else None,
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING") or None,
            "target": environ.get("HTTP_X_AMZ_TARGET"),
            "invocation": environ.get("HTTP_AMZ_SDK_INVOCATION_ID"),
            "attempt": environ.get("HTTP_AMZ_SDK_REQUEST"),
            "client": f"{environ.get('REMOTE_ADDR')}:{environ.get('REMOTE_PORT')}",
            "status": answered.status,
            "waited_ms": round(answered.waited * 1000, 1),
            "took_ms": round(answered.took * 1000, 1),
        }
        if answered.status >= 400:
            body = b"".join(answered.body).decode(errors="replace")
            record["error"] = body[:ERROR_EXCERPT]
        line = json.dumps(record) + "\n"
        with self._lock:
            self._file.write(line)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def start(host: str, port: int, observe: Observer | None = None) -> MotoServer:
    """Install the extensions, start moto on ``host:port``; returns it once it answers."""
    lambda_signing.install()
    public_layers.install()
    # One request at a time (MotoServer is serialized): moto's backends are not thread-safe,
    # and the provider sends up to -parallelism requests at once.
    server = MotoServer(host, port, observe).start()
    httpx.get(f"{server.url}/moto-api/data.json", timeout=10).raise_for_status()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--request-log", type=Path, help="append one JSON line per answered request to this file"
    )
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log = RequestLog(args.request_log) if args.request_log else None
    server = start(args.host, args.port, log)
    print(f"{READY} {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        if log is not None:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
