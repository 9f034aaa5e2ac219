"""Building authorizer events from the recorded samples, forging tokens, and checking denials."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from fakes.oidc import b64url, b64url_json
from functions.contract import Env
from tests.support.events import load_event

REST_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/v1/GET/api/v1/sessions"
REST_WILDCARD = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/v1/*/*"
WEBSOCKET_ARN = "arn:aws:execute-api:us-east-1:533568316194:c5jwxq709g/production/$connect"
WEBSOCKET_WILDCARD = "arn:aws:execute-api:us-east-1:533568316194:c5jwxq709g/production/*"


def token_event(authorization: Any) -> dict[str, Any]:
    """The recorded REST TOKEN event with ``authorizationToken`` replaced."""
    event = load_event("rest-token-authorizer")
    event["authorizationToken"] = authorization
    return event


def bearer_event(token: str) -> dict[str, Any]:
    return token_event(f"Bearer {token}")


def connect_event(
    *, header: str | None = None, query: str | None = None, header_name: str = "Authorization"
) -> dict[str, Any]:
    """The recorded WebSocket ``$connect`` REQUEST event carrying the given token.

    The sample's own ``Authorization`` value is removed first, so only what the test passes is
    present, in ``headers``/``multiValueHeaders`` and ``queryStringParameters`` as API Gateway
    would send it.
    """
    event = load_event("websocket-connect-authorizer-request")
    for section in ("headers", "multiValueHeaders"):
        event[section].pop("Authorization")
    if header is not None:
        event["headers"][header_name] = header
        event["multiValueHeaders"][header_name] = [header]
    if query is not None:
        event["queryStringParameters"] = {"token": query}
        event["multiValueQueryStringParameters"] = {"token": [query]}
    return event


@contextmanager
def denied() -> Iterator[None]:
    """Expect exactly ``Exception("Unauthorized")``: the only error API Gateway maps to a 401."""
    with pytest.raises(Exception) as raised:  # the exact type is checked below
        yield
    assert type(raised.value) is Exception
    assert raised.value.args == ("Unauthorized",)


class FakeClock:
    """A monotonic clock the test moves by hand, injected into the verifier."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def hs256_forgery(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token keyed with ``secret``, built by hand (PyJWT refuses public keys as secrets).

    This is the classic algorithm-confusion attack: sign with the issuer's *public* key and hope
    the verifier feeds that key to HMAC.
    """
    signing_input = (
        f"{b64url_json({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64url_json(claims)}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned(claims: dict[str, Any], kid: str, signature: str = "") -> str:
    """An ``alg: none`` token, with an empty signature or a made-up one."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64url_json(header)}.{b64url_json(claims)}.{signature}"


def with_payload(token: str, claims: dict[str, Any]) -> str:
    """``token`` with its payload replaced and the original signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url_json(claims)}.{signature}"


def with_header(token: str, header: dict[str, Any]) -> str:
    """``token`` with its header replaced and the original signature kept."""
    _, payload, signature = token.split(".")
    return f"{b64url_json(header)}.{payload}.{signature}"


def set_rules(monkeypatch: pytest.MonkeyPatch, **rules: Any) -> None:
    """Merge ``rules`` into ``JWT_VALIDATION`` (keys ``contract.VALIDATION_KEYS``), as the stack
    writes it; a value of None removes a key."""
    current = json.loads(os.environ.get(Env.JWT_VALIDATION) or "{}")
    current.update(rules)
    current = {key: value for key, value in current.items() if value is not None}
    monkeypatch.setenv(Env.JWT_VALIDATION, json.dumps(current))
