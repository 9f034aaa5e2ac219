"""Opaque, tamper-proof ``next_token`` values for paginated listings.

A token carries DynamoDB's ``LastEvaluatedKey`` so the next query resumes where the last one
stopped. Handing that key to clients verbatim would let them edit it, e.g. swap in another user's
id to page through someone else's sessions, so the payload is signed with HMAC-SHA256 and binds
the listing it belongs to: its kind, the caller's user id and the scope (the session id for
messages). A token that was altered, forged, or issued for another caller or listing is rejected.

The signing key is not in the function's environment (where it would sit in Terraform state and
in every ``GetFunctionConfiguration`` answer): it is derived from a KMS HMAC key, whose material
never leaves KMS, as ``GenerateMac(KEY_DERIVATION_MESSAGE, HMAC_SHA_256)``. KMS's MAC is
deterministic for a key and a message, so every container derives the same signing key and a
token issued by one verifies in any other. The derivation costs one KMS call per container, made
on the first token a listing signs or verifies, never at a cold start, and kept for the
container's life (:func:`derived_key`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from typing import Any

from functions.core import aws
from functions.domain.errors import BadRequest

_VERSION = 1
MAX_TOKEN_LENGTH = 4096
# What GenerateMac signs to derive the token key. Versioned: changing it derives another key,
# which invalidates every outstanding next_token (clients then start their listing over), so
# a new derivation is a deliberate change of this label, never a side effect.
KEY_DERIVATION_MESSAGE = b"ai-assistant-cli/pagination-token-key/v1"
MAC_ALGORITHM = "HMAC_SHA_256"


class KmsDerivedKey:
    """The token signing key of one KMS HMAC key, derived on first use and then kept.

    Callable, so :class:`TokenSigner` asks for it only when it signs or verifies: a listing
    that fits in one page, and every route that lists nothing, costs no KMS call.
    """

    def __init__(self, key_arn: str, kms: Callable[[], Any] | None = None) -> None:
        if not key_arn:
            raise ValueError("the pagination key ARN must not be empty")
        self.key_arn = key_arn
        self._kms = kms or (lambda: aws.client("kms"))
        self._lock = threading.Lock()
        self._key: bytes | None = None

    def __call__(self) -> bytes:
        key = self._key
        if key is None:
            with self._lock:  # one GenerateMac even if threads ask together
                if self._key is None:
                    self._key = self._derive()
                key = self._key
        return key

    def _derive(self) -> bytes:
        answer = self._kms().generate_mac(
            KeyId=self.key_arn, Message=KEY_DERIVATION_MESSAGE, MacAlgorithm=MAC_ALGORITHM
        )
        mac: bytes = answer["Mac"]
        if not mac:
            raise ValueError(f"GenerateMac on {self.key_arn} returned an empty MAC")
        return mac


@functools.cache
def derived_key(key_arn: str) -> KmsDerivedKey:
    """This container's derived key for ``key_arn``: ``Store`` is built per request, the key
    once per container (``derived_key.cache_clear()`` starts a new one, as tests do)."""
    return KmsDerivedKey(key_arn)


class TokenSigner:
    """Encodes and verifies ``next_token`` values with one secret key, given as bytes or as a
    callable that produces it when first needed (:class:`KmsDerivedKey`)."""

    def __init__(self, key: bytes | Callable[[], bytes]) -> None:
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
        key = self._key if isinstance(self._key, bytes) else self._key()
        return hmac.new(key, payload, hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def required(signer: TokenSigner | None) -> TokenSigner:
    """The signer a listing needs; a function deployed without a pagination key has none."""
    if signer is None:
        raise RuntimeError("listing needs a pagination key; this function has none")
    return signer
