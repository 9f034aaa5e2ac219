"""Token verification: signature, algorithm, issuer, lifetime, token kind, audience, subject,
client, tenant and scopes, and the identity the provider's profile maps the claims to."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
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
from functions.authorizer.profiles import ACCESS_TOKEN_TYPS, ACCESS_TOKEN_USE
from functions.authorizer.settings import Settings
from functions.contract import AuthorizerContext as Ctx

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
# Our bound on each list or scope value in the authorizer context (API Gateway passes the
# context to the backend in the request; Entra alone can send 200 group ids). Items that do
# not fit are dropped whole and the field is named in the context's `truncated`.
MAX_CONTEXT_FIELD_CHARS = 2048


@dataclass(slots=True)
class Identity:
    """Who a verified token speaks for, as handed to the backend in the authorizer context.

    Built once per request, so not frozen: a frozen dataclass sets each of these fields through
    ``object.__setattr__``, about 2 us per token here (the warm-path budget is a few us).
    """

    user_id: str
    subject: str
    email: str | None = None
    username: str | None = None
    scopes: tuple[str, ...] = ()  # the profile's scope claims, for the context
    permissions: frozenset[str] = frozenset()  # what required scopes are checked against
    client_id: str | None = None
    tenant_id: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def has_scopes(self, scopes: Iterable[str]) -> bool:
        return self.permissions.issuperset(scopes)

    def context(self) -> dict[str, str]:
        """The API Gateway authorizer context (``contract.AuthorizerContext``): strings only,
        ``user_id`` plus the optional fields present."""
        context = {Ctx.USER_ID: self.user_id}
        truncated = []
        optional = {
            Ctx.SUBJECT: self.subject if self.subject != self.user_id else None,
            Ctx.EMAIL: self.email,
            Ctx.USERNAME: self.username,
            Ctx.CLIENT_ID: self.client_id,
            Ctx.TENANT_ID: self.tenant_id,
        }
        context.update({k: v[:MAX_CONTEXT_FIELD_CHARS] for k, v in optional.items() if v})
        if self.scopes:
            kept = _fit(self.scopes, " ".join)
            context[Ctx.SCOPE] = " ".join(kept)
            if len(kept) < len(self.scopes):
                truncated.append(Ctx.SCOPE)
        for name, items in ((Ctx.GROUPS, self.groups), (Ctx.ROLES, self.roles)):
            if items:
                kept = _fit(items, _json_list)
                context[name] = _json_list(kept)
                if len(kept) < len(items):
                    truncated.append(name)
        if truncated:
            context[Ctx.TRUNCATED] = " ".join(truncated)
        return context


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items), ensure_ascii=False, separators=(",", ":"))


def _fit(items: Sequence[str], render: Callable[[Sequence[str]], str]) -> Sequence[str]:
    """The longest prefix of ``items`` whose rendering fits ``MAX_CONTEXT_FIELD_CHARS``.

    Linear: each item's share of the rendering (itself, one separator, the list's brackets)
    is measured once, rather than re-rendering ever longer prefixes.
    """
    if len(render(items)) <= MAX_CONTEXT_FIELD_CHARS:
        return items
    used = len(render([])) - 1  # brackets of a JSON list (the join of nothing is 0 chars)
    kept: list[str] = []
    for item in items:
        used += len(render([item])) - len(render([])) + 1  # the item and its separator
        if used > MAX_CONTEXT_FIELD_CHARS:
            break
        kept.append(item)
    return kept


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_text(claims: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = claims.get(name)
        if value and isinstance(value, str):
            return value
    return None


def _strings(claims: dict[str, Any], names: tuple[str, ...], *, split: bool) -> tuple[str, ...]:
    """The union, in order, of claims that are strings (space-separated when ``split``: OAuth
    ``scope``, Entra's ``scp``) or lists of strings (Okta's ``scp``, ``groups``, ``roles``)."""
    found: dict[str, None] = {}
    for name in names:
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            items = value.split() if split else [value]
        elif isinstance(value, list):
            items = [item for item in value if isinstance(item, str)]
        else:
            continue
        found.update(dict.fromkeys(item for item in items if item.strip()))
    return tuple(found)


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header alone, for choosing the key, parsed and checked by PyJWT (base64url,
    a JSON object, ``kid`` and ``crit``); ``jwt.decode`` then verifies the whole token.

    PyJWT gets the header segment with an empty payload and signature: it checks each segment
    character by character, and ``jwt.decode`` checks them all again, so handing it the whole
    token cost about 35 us per verification, 2.3x the floor of ``make bench``'s warm verify
    (target 2x) instead of 1.8x.
    """
    try:
        return jwt.get_unverified_header(token.partition(".")[0] + "..")
    except jwt.PyJWTError as error:
        raise InvalidToken(f"unreadable header: {type(error).__name__}: {error}") from None


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
        self._profile = settings.profile
        self._keys = JwksStore(settings, clock=clock, http_timeout=http_timeout)

    def verify(self, token: str) -> Identity:
        """Return the token's identity, or raise a ``Denied`` error that says why not.

        Cheap structural checks run first, so garbage never costs a JWKS lookup.
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken(f"token is {len(token)} characters, over {MAX_TOKEN_CHARS}")
        if not _COMPACT_JWS.fullmatch(token):
            raise InvalidToken("token is not a compact JWS (three base64url segments)")
        kid = self._kid(_unverified_header(token))
        claims = self._decode(token, self._keys.signing_key(kid))
        self._check_token_use(claims)
        if not isinstance(claims["sub"], str) or not claims["sub"].strip():
            raise InvalidToken("sub is empty")
        identity = self._identity(claims)
        self._check_audience(claims, identity.client_id)
        self._check_client(identity.client_id)
        self._check_tenant(identity.tenant_id)
        required = self.settings.required_scopes
        if required and not identity.has_scopes(required):
            missing = [scope for scope in required if scope not in identity.permissions]
            raise InvalidToken(f"token lacks the required scopes {missing}")
        return identity

    def _kid(self, header: dict[str, Any]) -> str:
        """The header's ``kid``, after refusing any algorithm outside the allow-list (and, when
        required, any ``typ`` other than RFC 9068's access-token type)."""
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("header has no kid")
        if self.settings.require_access_token_typ:
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPS:
                raise InvalidToken(f"typ {str(typ)[:40]!r} is not at+jwt: not an access token")
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
                    "verify_aud": False,  # checked below: `aud`, or the client when it has none
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(f"{type(error).__name__}: {error}") from None

    def _check_token_use(self, claims: dict[str, Any]) -> None:
        """Cognito says what a token is for in ``token_use``: only ``access`` is a bearer token
        (an ID token names the client as its audience, so it would pass the audience check)."""
        if "token_use" in claims:
            if claims["token_use"] != ACCESS_TOKEN_USE:
                raise InvalidToken(f"token_use {str(claims['token_use'])[:20]!r} is not access")
        elif self._profile.token_use_required:
            raise InvalidToken("token has no token_use (profile cognito requires access)")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        """Map verified claims through the profile; optional ones are kept only when they are
        non-empty strings (or lists of them)."""
        profile = self._profile
        user_id = _first_text(claims, profile.user_id_claims)
        if user_id is None or not user_id.strip():
            raise InvalidToken(f"token has no user id ({' or '.join(profile.user_id_claims)})")
        client_id = _first_text(claims, profile.client_claims)
        if client_id is None and profile.client_required:
            names = " or ".join(profile.client_claims)
            raise InvalidToken(f"token has no {names}: not a {profile.name} access token")
        tenant = None
        if profile.tenant_claim is not None:
            tenant = _text(claims.get(profile.tenant_claim))
            if tenant is None:
                raise InvalidToken(f"token has no {profile.tenant_claim} (tenant)")
        scopes = _strings(claims, profile.scope_claims, split=True)
        if profile.permission_claims != profile.scope_claims:
            permissions = frozenset(_strings(claims, profile.permission_claims, split=True))
        else:
            permissions = frozenset(scopes)
        return Identity(
            user_id=user_id,
            subject=claims["sub"],
            email=_text(claims.get("email")),
            username=_first_text(claims, USERNAME_CLAIMS),
            scopes=scopes,
            permissions=permissions,
            client_id=client_id,
            tenant_id=tenant,
            groups=_strings(claims, profile.group_claims, split=False),
            roles=_strings(claims, profile.role_claims, split=False),
        )

    def _check_audience(self, claims: dict[str, Any], client_id: str | None) -> None:
        """With an audience configured, ``aud`` (a string or a list) must contain it.

        Only a token without ``aud`` may name us through its client instead (``client_id``, or
        the profile's equivalent): Cognito access tokens carry no ``aud``, only the app client.
        A token whose ``aud`` names another API is for that API, whoever its client is.
        """
        audience = self.settings.audience
        if audience is None:
            return
        if "aud" in claims:
            aud = claims["aud"]
            audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if audience not in audiences:
                raise InvalidToken("token is not meant for this audience")
        elif self._profile.aud_required:
            raise InvalidToken(f"token has no aud (profile {self.settings.provider} requires one)")
        elif client_id != audience:
            raise InvalidToken("token has no aud and its client is not this audience")

    def _check_client(self, client_id: str | None) -> None:
        allowed = self.settings.allowed_client_ids
        if allowed is not None and client_id not in allowed:
            raise InvalidToken(f"client {str(client_id)[:64]!r} is not allowed")

    def _check_tenant(self, tenant_id: str | None) -> None:
        allowed = self.settings.allowed_tenant_ids
        if allowed is not None and tenant_id not in allowed:
            raise InvalidToken(f"tenant {str(tenant_id)[:64]!r} is not allowed")
