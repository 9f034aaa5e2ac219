"""Opaque, tamper-proof ``next_token`` values for paginated listings.

A token carries DynamoDB's ``LastEvaluatedKey`` so the next query resumes where the last one
stopped. Handing that key to clients verbatim would let them edit it, e.g. swap in another user's
id to page through someone else's sessions, so the payload is signed with HMAC-SHA256 and binds
the listing it belongs to: its kind, the caller's user id and the scope (the session id for
messages). A token that was altered, forged, or issued for another caller or listing is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from functions.shared.errors import BadRequest

_VERSION = 1
MAX_TOKEN_LENGTH = 4096


class TokenSigner:
    """Encodes and verifies ``next_token`` values with one secret key."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the pagination key must not be empty")
        self._key = key

    def encode(self, kind: str, user_id: str, scope: str, last_key: dict[str, Any]) -> str:
        payload = json.dumps(
            {"v": _VERSION, "k": kind, "u": user_id, "s": scope, "e": last_key},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._sign(payload))}"

    def decode(self, token: str, kind: str, user_id: str, scope: str) -> dict[str, Any]:
        """The ``ExclusiveStartKey`` a token stands for; :class:`BadRequest` if it is not ours."""
        payload = self._verified_payload(token)
        try:
            claims = json.loads(payload)
        except ValueError:
            claims = None
        expected = {"v": _VERSION, "k": kind, "u": user_id, "s": scope}
        if (
            not isinstance(claims, dict)
            or any(claims.get(name) != value for name, value in expected.items())
            or not isinstance(claims.get("e"), dict)
        ):
            raise BadRequest("next_token does not belong to this listing")
        return claims["e"]

    def _verified_payload(self, token: str) -> bytes:
        invalid = BadRequest("next_token is invalid")
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise invalid
        encoded_payload, encoded_signature = token.split(".")
        try:
            payload = _b64decode(encoded_payload)
            signature = _b64decode(encoded_signature)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid
        return payload

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
