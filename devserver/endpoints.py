"""Where a running dev server is found: ``.dev/endpoints.json``, written when it has started and
removed when it stops, and the one reader every client calls (:func:`running`).

A dev server killed without its cleanup (SIGKILL, a crash, a machine that slept through it)
leaves the file behind. So the file names the server's process, and :func:`running` trusts it
only while that process is alive and its REST port accepts connections; otherwise it raises
:class:`NoDevServer`, whose message says what is wrong and what to do, instead of a client
meeting "connection refused" at a stale URL.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENDPOINTS_FILE = "endpoints.json"
CONNECT_TIMEOUT_SECONDS = 1.0
START_HINT = "start one with `make dev`"


class NoDevServer(Exception):
    """No dev server answers at what the state folder says; the message is for people."""


@dataclass(frozen=True)
class Endpoints:
    """What clients need of a running dev server."""

    rest_url: str
    openai_base_url: str  # the OpenAI-compatible API's base URL (the stage URL + /v1)
    ws_url: str
    issuer: str
    token_shape: dict[str, Any]
    pid: int  # the dev server's process


def path(state_dir: Path) -> Path:
    return state_dir / ENDPOINTS_FILE


def write(state_dir: Path, endpoints: Endpoints) -> None:
    path(state_dir).write_text(json.dumps(asdict(endpoints), indent=2) + "\n", encoding="utf-8")


def remove(state_dir: Path) -> None:
    path(state_dir).unlink(missing_ok=True)


def running(state_dir: Path) -> Endpoints:
    """The endpoints of the dev server that is running now, or :class:`NoDevServer` saying
    why there is none: no file, an unreadable one, its process gone, its port refusing."""
    file = path(state_dir)
    try:
        endpoints = Endpoints(**json.loads(file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise NoDevServer(f"no dev server is running (there is no {file}): {START_HINT}") from None
    except (OSError, ValueError, TypeError) as error:
        raise NoDevServer(
            f"no dev server is running: {file} is not a dev server's endpoints file ({error}); "
            f"{START_HINT}, which rewrites it"
        ) from None
    if not alive(endpoints.pid):
        raise NoDevServer(
            f"no dev server is running: {file} is left from one that stopped without cleaning "
            f"up (its process {endpoints.pid} is gone); {START_HINT}"
        )
    if not _accepting(endpoints.rest_url):
        raise NoDevServer(
            f"the dev server (process {endpoints.pid}) does not accept connections at "
            f"{endpoints.rest_url}: it may still be starting or be stopping; wait for its "
            f"banner, or {START_HINT} again"
        )
    return endpoints


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts: it cannot be checked further)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _accepting(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 80), CONNECT_TIMEOUT_SECONDS
        ):
            return True
    except OSError:
        return False
