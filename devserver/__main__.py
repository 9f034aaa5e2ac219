"""``python -m devserver``: serve the synthesized stack on 127.0.0.1 until Ctrl-C (``make dev``).

It stops cleanly, every worker, temporary folder and ``.dev/endpoints.json`` removed, on Ctrl-C
(SIGINT), SIGTERM and SIGHUP (the terminal closed). The workers run in sessions of their own, so
a terminal's signals reach only this process, which stops them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from devserver.lambda_pool import LogSink, UnrunnablePackage, print_log
from devserver.model import DEFAULT_CHUNK_DELAY_SECONDS, DEFAULT_FIRST_DELTA_SECONDS
from devserver.quiet import QuietLog
from devserver.server import DEFAULT_STATE_DIR, ROOT, DevServer, Settings
from devserver.stack import StackError, stack_file
from fakes.knowledge_base import CorpusError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_CHECK_SECONDS = 0.2


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def parse_args(argv: list[str] | None = None) -> tuple[Settings, bool]:
    """The settings, and whether to be quiet."""
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
    parser.add_argument(
        "--kb-dir",
        type=Path,
        metavar="PATH",
        help="serve the stack's knowledge base from this folder's .md and .txt files "
        "(default: a small built-in corpus, with the local model)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only warnings, errors and one line with the endpoints",
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--package-cache",
        type=Path,
        metavar="PATH",
        help="where the function packages are kept extracted between runs "
        "(default: packages/ in the state folder)",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        stack_path=stack_file(args.stacks_dir, args.env),
        rest_port=args.rest_port,
        ws_port=args.ws_port,
        oidc_port=args.oidc_port,
        management_port=args.management_port,
        state_dir=args.state_dir,
        package_cache=args.package_cache,
        dynamodb_endpoint=args.dynamodb_endpoint,
        bedrock=args.bedrock,
        chunk_delay=args.model_chunk_ms / 1000,
        first_delta=args.model_first_ms / 1000,
        kb_dir=args.kb_dir,
    )
    return settings, args.quiet


def on_stop_signals(stop: threading.Event) -> None:
    """Each stop signal ends the wait in :func:`main`; a hang-up first points stdout and stderr
    at /dev/null, since the terminal they wrote to is gone and writing would fail."""

    def stopping(signum: int, _: object) -> None:
        if signum == signal.SIGHUP:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), sys.stdout.fileno())
                os.dup2(devnull.fileno(), sys.stderr.fileno())
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, stopping)


def say(text: str) -> None:
    """Print for the person at the terminal, if there still is one."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    stop = threading.Event()
    on_stop_signals(stop)
    settings, quiet = parse_args(argv)
    # The servers' own errors (a failed handshake handler, moto) print as "<logger> | ...".
    logging.basicConfig(level=logging.WARNING, format="%(name)s | %(message)s")
    log: LogSink = QuietLog(print_log) if quiet else print_log
    try:
        server = DevServer(settings, log=log)
    except (StackError, CorpusError) as error:
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
        if not stop.is_set():
            say(server.ready_line() if quiet else server.banner())
        # In slices: Python runs a signal's handler in the main thread, but the kernel may
        # deliver the signal to any thread, and then an untimed wait is never interrupted.
        while not stop.wait(SIGNAL_CHECK_SECONDS):
            continue
        say("stopping...")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
