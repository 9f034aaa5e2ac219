"""Token verification: signature, algorithm, issuer, audience, lifetime and subject."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

from functions.authorizer.errors import InvalidToken
from functions.authorizer.keys import (
    ALGORITHMS,
    HTTP_TIMEOUT_SECONDS,
    Clock,
    JwksStore,
)
from functions.authorizer.settings import Settings

LEEWAY_SECONDS = 60  # clock skew allowed on exp, nbf and iat
# Real access and ID tokens are a few KB; API Gateway caps headers near 10 KB anyway. Anything
# longer is rejected before any decoding work.
MAX_TOKEN_CHARS = 16 * 1024
REQUIRED_CLAIMS = ("exp", "iss", "sub")
# JWS compact serialization: three base64url segments. The signature may be empty so that
# `alg: none` tokens are reported as such rather than as garbage.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# First present claim wins: Cognito access tokens, Cognito ID tokens, then the OIDC standard.
USERNAME_CLAIMS = ("username", "cognito:username", "preferred_username")


@dataclass(frozen=True)
class Identity:
    """Who a verified token speaks for, as handed to the backend in the authorizer context."""

    subject: str
    email: str | None = None
    username: str | None = None
    scope: str | None = None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Identity:
        """Map verified claims; optional ones are kept only when they are non-empty strings."""
        return cls(
            subject=claims["sub"],
            email=_text(claims.get("email")),
            username=next(filter(None, (_text(claims.get(c)) for c in USERNAME_CLAIMS)), None),
            scope=_scope(claims),
        )

    def context(self) -> dict[str, str]:
        """The API Gateway authorizer context: ``user_id`` plus the optional fields present."""
        optional = {"email": self.email, "username": self.username, "scope": self.scope}
        return {"user_id": self.subject} | {k: v for k, v in optional.items() if v is not None}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _scope(claims: dict[str, Any]) -> str | None:
    """OAuth ``scope`` (space-separated), else ``scp`` (a string, or a list as Okta/Entra send)."""
    scope = _text(claims.get("scope"))
    if scope:
        return scope
    scp = claims.get("scp")
    if isinstance(scp, list):
        return _text(" ".join(item for item in scp if isinstance(item, str) and item))
    return _text(scp)


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header alone, for choosing the key.

    ``jwt.get_unverified_header`` would parse (and character-check) all three segments, which
    ``jwt.decode`` then does again; on a warm container that doubled the cost of a verification.
    The caller has already matched the token against the compact-JWS pattern, and
    ``jwt.decode`` still checks everything.
    """
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error) as error:
        raise InvalidToken(f"unreadable header: {type(error).__name__}") from None
    if not isinstance(header, dict):
        raise InvalidToken("unreadable header: not a JSON object")
    return header


class TokenVerifier:
    """Verifies bearer JWTs from one issuer; one instance per container keeps the JWKS warm."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.monotonic,
        http_timeout: float = HTTP_TIMEOUT_SECONDS,
    ) -> None:
        self.settings = settings
        self._keys = JwksStore(settings, clock=clock, http_timeout=http_timeout)

    def verify(self, token: str) -> Identity:
        """Return the token's identity, or raise a ``Denied`` error that says why not.

        Cheap structural checks run first, so garbage never costs a JWKS lookup.
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken(f"token is {len(token)} characters, over {MAX_TOKEN_CHARS}")
        if not _COMPACT_JWS.fullmatch(token):
            raise InvalidToken("token is not a compact JWS (three base64url segments)")
        kid = self._kid(token)
        claims = self._decode(token, self._keys.signing_key(kid))
        self._check_audience(claims)
        if not isinstance(claims["sub"], str) or not claims["sub"].strip():
            raise InvalidToken("sub is empty")
        return Identity.from_claims(claims)

    @staticmethod
    def _kid(token: str) -> str:
        """The header's ``kid``, after refusing any algorithm outside the allow-list."""
        header = _unverified_header(token)
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("header has no kid")
        return kid

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        """Check signature, issuer and lifetime, and return the claims.

        The key is always a ``PyJWK`` bound to its own asymmetric algorithm, never bytes that
        HMAC could use as a secret.
        """
        try:
            return jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                issuer=self.settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_aud": False,  # checked below: `aud` or an access token's `client_id`
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(f"{type(error).__name__}: {error}") from None

    def _check_audience(self, claims: dict[str, Any]) -> None:
        """With an audience configured, ``aud`` must contain it or ``client_id`` must equal it.

        Cognito access tokens carry no ``aud``, only the app client in ``client_id``.
        """
        audience = self.settings.audience
        if audience is None:
            return
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in audiences and claims.get("client_id") != audience:
            raise InvalidToken("token is not meant for this audience")
