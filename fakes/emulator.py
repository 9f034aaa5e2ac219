"""moto on one address, with the AWS APIs the stacks need that moto lacks added first.

Run as ``python -m fakes.emulator --host 127.0.0.1 --port 4566`` (``--port 0``: any
free port). It prints one line, ``emulator ready on http://<host>:<port>``, once the server
answers, then serves until SIGINT or SIGTERM. Terraform's AWS provider, pointed at that URL for
every service (``endpoints``), applies the synthesized stacks against it, code signing
included (:mod:`fakes.lambda_signing`), and AWS's public Lambda Web Adapter layers
(:mod:`fakes.public_layers`).

The extensions are installed in this process before moto's server builds its URL table,
which is why this is a process of its own rather than the tests' shared in-process moto.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import httpx

from fakes import lambda_signing, public_layers
from fakes.moto import MotoServer

READY = "emulator ready on"


def start(host: str, port: int) -> MotoServer:
    """Install the extensions, start moto on ``host:port``; returns it once it answers."""
    lambda_signing.install()
    public_layers.install()
    # One request at a time (MotoServer is serialized): moto's backends are not thread-safe,
    # and the provider sends up to -parallelism requests at once.
    server = MotoServer(host, port).start()
    httpx.get(f"{server.url}/moto-api/data.json", timeout=10).raise_for_status()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = start(args.host, args.port)
    print(f"{READY} {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
