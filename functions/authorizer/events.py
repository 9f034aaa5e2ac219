"""Reading the bearer token and method ARN out of API Gateway authorizer events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from functions.authorizer.errors import InvalidToken, MalformedEvent
from functions.authorizer.policy import MethodArn

_BEARER = re.compile(r"bearer[ \t]+(?P<token>\S+)", re.IGNORECASE)
QUERY_PARAMETER = "token"  # browsers cannot set headers on a WebSocket handshake


@dataclass(frozen=True)
class AuthorizerRequest:
    """What the authorizer needs from an event: the raw token and where it is being used."""

    token: str
    method_arn: MethodArn

    @classmethod
    def from_event(cls, event: object) -> AuthorizerRequest:
        """Accept REST ``TOKEN`` events and WebSocket ``$connect`` ``REQUEST`` events.

        The method ARN is checked first: a malformed event never costs a JWKS lookup.
        """
        if not isinstance(event, dict):
            raise MalformedEvent("event is not a JSON object")
        arn = event.get("methodArn")
        if not isinstance(arn, str):
            raise MalformedEvent("event has no methodArn")
        method_arn = MethodArn.parse(arn)
        kind = event.get("type")
        if kind == "TOKEN":
            return cls(_token_event_token(event), method_arn)
        if kind == "REQUEST":
            return cls(_request_event_token(event), method_arn)
        raise MalformedEvent(f"unsupported authorizer event type {str(kind)[:20]!r}")


def _token_event_token(event: dict[str, Any]) -> str:
    """A TOKEN event carries the Authorization header value, which must be ``Bearer <jwt>``."""
    value = event.get("authorizationToken")
    if not isinstance(value, str) or not value.strip():
        raise InvalidToken("authorizationToken is missing or empty")
    match = _BEARER.fullmatch(value.strip())
    if match is None:
        raise InvalidToken("authorizationToken is not 'Bearer <token>'")
    return match["token"]


def _request_event_token(event: dict[str, Any]) -> str:
    """The ``Authorization`` header (any name case, ``Bearer`` optional), else ``?token=``."""
    header = _header_token(_mapping(event.get("headers"), "headers"))
    if header is not None:
        return header
    query = _mapping(event.get("queryStringParameters"), "queryStringParameters")
    value = query.get(QUERY_PARAMETER)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InvalidToken("no Authorization header and no token query parameter")


def _header_token(headers: dict[str, Any]) -> str | None:
    values = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == "authorization"]
    value = values[0] if values else None
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    match = _BEARER.fullmatch(value)
    if match is not None:
        return match["token"]
    if any(char.isspace() for char in value):
        raise InvalidToken("Authorization header is neither 'Bearer <token>' nor a bare token")
    return value


def _mapping(value: object, name: str) -> dict[str, Any]:
    """API Gateway sends ``null`` for an empty header or query map."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent(f"{name} is not an object")
    return value
