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
    """Neither URLs given nor a running dev server found; the message says what to do."""

    def __init__(self, why: str = "no dev server is running") -> None:
        super().__init__(why)
        self.why = why

    def __str__(self) -> str:
        return f"{self.why}; or pass REST_URL/WS_URL/TOKEN (--rest-url, --ws-url, --token)"


def checked(connection: Connection, client: AssistantClient) -> dict[str, Any]:
    """The health answer of ``client``'s server. A dev server found through its endpoints file
    that does not answer has stopped: :class:`NoServer`. A wrong URL is ``wrong_url``."""
    try:
        return client.health()
    except ApiError as error:
        if connection.local and error.kind == "unavailable":
            raise NoServer(
                f"no dev server is running at {connection.rest_url}: start `make dev`"
            ) from None
        raise


def resolve(args: argparse.Namespace) -> Connection:
    """The given URLs and token, completed from the running dev server; :class:`NoServer`."""
    if args.rest_url is not None and args.ws_url is not None:
        return Connection(args.rest_url, args.ws_url, args.token, local=False)
    rest, ws, token = local_dev_server(args.state_dir, args.user)
    return Connection(args.rest_url or rest, args.ws_url or ws, args.token or token, local=True)


def local_dev_server(state_dir: Path, user: str) -> tuple[str, str, str]:
    """The running dev server's URLs and a token for ``user`` from its key (the dev server's
    own reader of its endpoints file, which checks that the server is alive)."""
    from devserver import endpoints, identity  # the dev server's files; only for local use

    try:
        found = endpoints.running(state_dir)
    except endpoints.NoDevServer as error:
        raise NoServer(str(error)) from None
    key = identity.signing_key(state_dir)
    shape = identity.TokenShape.from_json(found.token_shape)
    token = identity.mint(key, found.issuer, user, shape)
    return found.rest_url, found.ws_url, token


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
