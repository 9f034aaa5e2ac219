"""``python -m devserver``: serve the synthesized stack on 127.0.0.1 until Ctrl-C (``make dev``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from devserver.lambda_pool import UnrunnablePackage
from devserver.model import DEFAULT_CHUNK_DELAY_SECONDS, DEFAULT_FIRST_DELTA_SECONDS
from devserver.server import DEFAULT_STATE_DIR, ROOT, DevServer, Settings
from devserver.stack import StackError, stack_file


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="make dev", description=__doc__)
    parser.add_argument(
        "--env",
        default=os.environ.get("COMPUTE_DEV_ENV") or "dev",
        help="the environment whose synthesized stack to serve (COMPUTE_DEV_ENV, default dev)",
    )
    parser.add_argument("--stacks-dir", type=Path, default=ROOT / "cdktf.out" / "stacks")
    parser.add_argument("--rest-port", type=int, default=_port("DEV_REST_PORT", 3000))
    parser.add_argument("--ws-port", type=int, default=_port("DEV_WS_PORT", 3001))
    parser.add_argument("--oidc-port", type=int, default=_port("DEV_OIDC_PORT", 3002))
    parser.add_argument("--management-port", type=int, default=_port("DEV_MANAGEMENT_PORT", 3003))
    parser.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        help="use this DynamoDB endpoint (e.g. DynamoDB Local) instead of a local moto server",
    )
    parser.add_argument(
        "--bedrock",
        choices=("local", "aws"),
        default="local",
        help="local: a deterministic model on loopback; aws: real Bedrock, your credentials",
    )
    parser.add_argument(
        "--model-chunk-ms",
        type=float,
        default=DEFAULT_CHUNK_DELAY_SECONDS * 1000,
        help="milliseconds between two words of the local model's answer",
    )
    parser.add_argument(
        "--model-first-ms",
        type=float,
        default=DEFAULT_FIRST_DELTA_SECONDS * 1000,
        help="milliseconds before the local model's first word",
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    return Settings(
        stack_path=stack_file(args.stacks_dir, args.env),
        rest_port=args.rest_port,
        ws_port=args.ws_port,
        oidc_port=args.oidc_port,
        management_port=args.management_port,
        state_dir=args.state_dir,
        dynamodb_endpoint=args.dynamodb_endpoint,
        bedrock=args.bedrock,
        chunk_delay=args.model_chunk_ms / 1000,
        first_delta=args.model_first_ms / 1000,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    # The servers' own errors (a failed handshake handler, moto) print as "<logger> | ...".
    logging.basicConfig(level=logging.WARNING, format="%(name)s | %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = DevServer(settings)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        server.start()
    except (UnrunnablePackage, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # most likely a port in use: say which setting moves it
        print(
            f"error: {error} (is another make dev running? DEV_REST_PORT, DEV_WS_PORT, "
            "DEV_OIDC_PORT and DEV_MANAGEMENT_PORT choose other ports)",
            file=sys.stderr,
        )
        return 2
    try:
        print(server.banner(), flush=True)
        stop.wait()
        print("stopping...", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
