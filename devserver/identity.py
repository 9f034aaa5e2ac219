"""The dev server's identity provider: one signing key kept in the state folder, so that
``make dev-token`` (another process, maybe before or after a restart) signs tokens the running
issuer publishes, shaped as the stack's authorizer expects them.

The issuer URL is fixed (``http://127.0.0.1:${DEV_OIDC_PORT:-3002}``) because it is each
token's ``iss``, which the authorizer compares byte for byte. The shape (which claim holds the
user, the client, the scopes, the tenant; ``typ``) follows the stack's ``JWT_AUDIENCE`` and
``JWT_VALIDATION`` as the authorizer itself parses them, so a stack that demands, say, Entra
tokens for one tenant and client with given scopes gets such tokens locally: what a correctly
configured identity provider would issue, not a way around the rules.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes.oidc import SigningKey

KEY_FILE = "oidc-signing-key.pem"
KID = "dev-server"
DEFAULT_AUDIENCE = "ai-assistant-cli-local"
TOKEN_LIFETIME_SECONDS = 12 * 3600  # a working day, so a dev token outlives a coffee break


def signing_key(state_dir: Path) -> SigningKey:
    """The dev server's RSA key, created (readable by its owner only) on first use."""
    path = state_dir / KEY_FILE
    if not path.is_file():
        state_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
    return SigningKey(KID, "RS256", _private_key(path.read_bytes()))


@functools.lru_cache(maxsize=4)
def _private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """The key ``pem`` holds, parsed once per process: parsing checks the RSA key, 40 ms of
    CPU, and the server reads the key for every token it mints. Keyed by the file's bytes, so a
    replaced key file is read anew."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{KEY_FILE} holds a {type(key).__name__}, not an RSA private key")
    return key


def issuer_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


DEV_CLIENT_ID = "ai-assistant-dev-client"
DEV_TENANT_ID = "dev-tenant"
BASE_SCOPES = ("openid", "profile", "email")


@dataclass(frozen=True)
class TokenShape:
    """What the stack's authorizer accepts, beyond issuer, signature and lifetime."""

    audience: str = DEFAULT_AUDIENCE
    user_claims: tuple[str, ...] = ("sub",)  # each set to the user
    claims: Mapping[str, Any] = field(default_factory=lambda: {"scope": " ".join(BASE_SCOPES)})
    typ: str = "JWT"
    scope_claim: str = "scope"  # the claim among ``claims`` that holds the scopes

    @classmethod
    def for_authorizer(cls, environment: Mapping[str, str]) -> TokenShape:
        """The shape for an authorizer with this (resolved) environment, read by the
        authorizer's own settings parser and provider profiles."""
        from functions.authorizer.profiles import ACCESS_TOKEN_USE
        from functions.authorizer.settings import Settings

        settings = Settings.from_env(environment)
        profile = settings.profile
        scopes = [*BASE_SCOPES, *settings.required_scopes]
        scopes += [*settings.read_scopes, *settings.chat_scopes]
        claims: dict[str, Any] = {profile.permission_claims[0]: " ".join(dict.fromkeys(scopes))}
        if settings.allowed_client_ids or profile.client_required:
            clients = sorted(settings.allowed_client_ids or {DEV_CLIENT_ID})
            claims[profile.client_claims[0]] = clients[0]
        if profile.tenant_claim:
            claims[profile.tenant_claim] = sorted(settings.allowed_tenant_ids or {DEV_TENANT_ID})[0]
        if profile.token_use_required:
            claims["token_use"] = ACCESS_TOKEN_USE
        return cls(
            audience=settings.audience or DEFAULT_AUDIENCE,
            user_claims=tuple(dict.fromkeys(("sub", *profile.user_id_claims))),
            claims=claims,
            typ="at+jwt" if settings.require_access_token_typ else "JWT",
            scope_claim=profile.permission_claims[0],
        )

    def with_scopes(self, scopes: Sequence[str]) -> TokenShape:
        """The same shape carrying exactly ``scopes`` (a token with fewer rights than the
        stack's routes ask for, to try a refusal)."""
        return replace(self, claims={**self.claims, self.scope_claim: " ".join(scopes)})

    def to_json(self) -> dict[str, Any]:
        return {
            "audience": self.audience,
            "user_claims": list(self.user_claims),
            "claims": dict(self.claims),
            "typ": self.typ,
            "scope_claim": self.scope_claim,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TokenShape:
        return cls(
            audience=document["audience"],
            user_claims=tuple(document["user_claims"]),
            claims=dict(document["claims"]),
            typ=document["typ"],
            scope_claim=document.get("scope_claim", "scope"),
        )


def mint(
    key: SigningKey,
    issuer: str,
    user: str,
    shape: TokenShape,
    lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
) -> str:
    """A JWT for ``user``, as the identity provider the stack trusts would sign it."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": shape.audience,
        "iat": now,
        "exp": now + lifetime_seconds,
        "email": f"{user}@example.com",
        "preferred_username": user,
        **shape.claims,
    }
    claims |= dict.fromkeys(shape.user_claims, user)
    return key.sign(claims, {"typ": shape.typ})
