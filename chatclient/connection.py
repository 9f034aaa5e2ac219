"""Which deployment to talk to, as whom: the command line's options, or the running dev server.

Shared by ``make chat`` (``python -m chatclient``) and ``make smoke`` (``python -m
chatclient.smoke``), each under its own name in its usage and error messages.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatclient.client import ApiError, AssistantClient

ROOT = Path(__file__).resolve().parent.parent
DEV_STATE = ROOT / ".dev"
NO_SERVER = (
    "no dev server is running; start `make dev` or pass REST_URL/WS_URL/TOKEN "
    "(--rest-url, --ws-url, --token)"
)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rest-url", help="the REST stage URL, e.g. https://…/v1")
    parser.add_argument("--ws-url", help="the WebSocket stage URL, e.g. wss://…/v1")
    parser.add_argument(
        "--token",
        default=os.environ.get("AI_ASSISTANT_TOKEN") or None,
        help="a bearer token (default: $AI_ASSISTANT_TOKEN; the dev server's own otherwise)",
    )
    parser.add_argument("--user", default="developer", help="dev server only: the token's user")
    parser.add_argument("--state-dir", type=Path, default=DEV_STATE, help=argparse.SUPPRESS)


@dataclass(frozen=True)
class Connection:
    rest_url: str
    ws_url: str
    token: str | None
    local: bool  # found through the dev server's endpoints file, not given

    def client(self) -> AssistantClient:
        return AssistantClient(self.rest_url, self.ws_url, self.token)


class NoServer(Exception):
    """Neither URLs given nor a dev server found (no endpoints file, or nothing listening at
    the URLs it names)."""

    def __init__(self, rest_url: str | None = None) -> None:
        super().__init__(rest_url)
        self.rest_url = rest_url

    def __str__(self) -> str:
        if self.rest_url is None:
            return NO_SERVER
        return NO_SERVER.replace("running", f"running at {self.rest_url}", 1)


def checked(connection: Connection, client: AssistantClient) -> dict[str, Any]:
    """The health answer of ``client``'s server. A dev server found through its endpoints file
    that does not answer has stopped: :class:`NoServer`. A wrong URL is ``wrong_url``."""
    try:
        return client.health()
    except ApiError as error:
        if connection.local and error.kind == "unavailable":
            raise NoServer(connection.rest_url) from None
        raise


def resolve(args: argparse.Namespace) -> Connection:
    """The given URLs and token, completed from the running dev server; :class:`NoServer`."""
    if args.rest_url is not None and args.ws_url is not None:
        return Connection(args.rest_url, args.ws_url, args.token, local=False)
    local = local_dev_server(args.state_dir, args.user)
    if local is None:
        raise NoServer
    rest, ws, token = local
    return Connection(args.rest_url or rest, args.ws_url or ws, args.token or token, local=True)


def local_dev_server(state_dir: Path, user: str) -> tuple[str, str, str] | None:
    """The running dev server's URLs (written at its start) and a token from its key."""
    path = state_dir / "endpoints.json"
    if not path.is_file():
        return None
    endpoints = json.loads(path.read_text())
    from devserver import identity  # the dev server's signing key; only for local use

    key = identity.signing_key(state_dir)
    shape = identity.TokenShape.from_json(endpoints["token_shape"])
    token = identity.mint(key, endpoints["issuer"], user, shape)
    return endpoints["rest_url"], endpoints["ws_url"], token


def token_subject(token: str | None) -> str | None:
    """The ``sub`` claim of a JWT, read without checking it (the server checks it): to show
    who the client is talking as."""
    if not token:
        return None
    parts = token.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return str(subject) if subject is not None else None
