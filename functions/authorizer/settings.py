"""The authorizer's settings: the identity provider it trusts and the rules its tokens must meet.

Read from the variables the stack sets (``contract.Env``); any fault raises the shared
``ConfigurationError``, on which the handler denies every request."""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from functions.authorizer.profiles import DEFAULT_PROFILE, PROFILES, Profile
from functions.contract import CHAT, READ, VALIDATION_KEYS, Env
from functions.core.settings import ConfigurationError, FunctionSettings, optional

DISCOVERY_PATH = "/.well-known/openid-configuration"


def is_scope_token(value: str) -> bool:
    """RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). No regex: compiling
    one at import would cost every cold start, and scopes are checked once per container."""
    return bool(value) and all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in value)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1: hosts no one else on the network can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure_url(url: str, what: str) -> str:
    """Return ``url`` if it is https, or plain http on a loopback host (local runs and tests).

    Signing keys fetched over plain http from anywhere else could be swapped by anyone on the
    network path, and with them every identity.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise ConfigurationError(f"{what} {url!r} is not an absolute URL")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return url
    raise ConfigurationError(f"{what} must be https (http only on loopback hosts), got {url!r}")


@dataclass(frozen=True)
class Settings(FunctionSettings):
    """What the authorizer trusts.

    ``issuer`` is compared byte for byte with the tokens' ``iss`` (keep its trailing slash if the
    provider's has one); ``audience`` None means any audience is accepted.
    """

    issuer: str
    audience: str | None = None
    jwks_url: str | None = None
    provider: str = DEFAULT_PROFILE
    required_scopes: tuple[str, ...] = ()  # every token must carry all of them
    read_scopes: tuple[str, ...] = ()  # and these for contract.READ routes
    chat_scopes: tuple[str, ...] = ()  # and these for contract.CHAT routes and $connect
    allowed_client_ids: frozenset[str] | None = None  # None: any client
    allowed_tenant_ids: frozenset[str] | None = None  # None: any tenant
    require_access_token_typ: bool = False

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigurationError(
                f"{Env.JWT_ISSUER} is empty, so no token can be trusted: denying every request"
            )
        require_secure_url(self.issuer, Env.JWT_ISSUER)
        parts = urlsplit(self.issuer)
        if parts.query or parts.fragment:
            raise ConfigurationError(f"{Env.JWT_ISSUER} must not have a query or fragment")
        if self.jwks_url is not None:
            require_secure_url(self.jwks_url, Env.JWKS_URL)
        if self.provider not in PROFILES:
            raise ConfigurationError(
                f"{Env.JWT_VALIDATION}: provider {self.provider!r} is not one of {sorted(PROFILES)}"
            )
        for name, scopes in (
            ("required_scopes", self.required_scopes),
            ("read_scopes", self.read_scopes),
            ("chat_scopes", self.chat_scopes),
        ):
            bad = [scope for scope in scopes if not is_scope_token(scope)]
            if bad:
                raise ConfigurationError(f"{Env.JWT_VALIDATION}: {name} has invalid scopes {bad}")
        if self.allowed_tenant_ids is not None and self.profile.tenant_claim is None:
            raise ConfigurationError(
                f"{Env.JWT_VALIDATION}: allowed_tenant_ids is set, but profile "
                f"{self.provider!r} has no tenant claim"
            )

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        """Blank optional variables count as unset. ``JWT_VALIDATION`` is a JSON object
        (``contract.VALIDATION_KEYS``); empty means every default."""
        rules = _validation(optional(env, Env.JWT_VALIDATION))
        return cls(
            issuer=optional(env, Env.JWT_ISSUER) or "",  # empty: __post_init__ says why it fails
            audience=optional(env, Env.JWT_AUDIENCE),
            jwks_url=optional(env, Env.JWKS_URL),
            provider=rules.get("provider") or DEFAULT_PROFILE,
            required_scopes=tuple(dict.fromkeys(rules.get("required_scopes", ()))),
            read_scopes=tuple(dict.fromkeys(rules.get("read_scopes", ()))),
            chat_scopes=tuple(dict.fromkeys(rules.get("chat_scopes", ()))),
            allowed_client_ids=frozenset(rules.get("allowed_client_ids", ())) or None,
            allowed_tenant_ids=frozenset(rules.get("allowed_tenant_ids", ())) or None,
            require_access_token_typ=rules.get("require_access_token_typ", False),
        )

    @property
    def profile(self) -> Profile:
        return PROFILES[self.provider]

    @functools.cached_property
    def route_scopes(self) -> dict[str, tuple[str, ...]]:
        """Scopes per kind of route (``contract.READ``/``CHAT``), only for kinds that have any."""
        kinds = {READ: self.read_scopes, CHAT: self.chat_scopes}
        return {kind: scopes for kind, scopes in kinds.items() if scopes}

    @property
    def discovery_url(self) -> str:
        """OpenID Connect discovery document: issuer + well-known path, without a double slash."""
        return self.issuer.rstrip("/") + DISCOVERY_PATH


def _validation(raw: str | None) -> dict[str, Any]:
    """``JWT_VALIDATION`` parsed and type-checked: any fault denies every request."""
    if raw is None:
        return {}
    try:
        rules = json.loads(raw)
    except ValueError as error:
        raise ConfigurationError(f"{Env.JWT_VALIDATION} is not JSON: {error}") from None
    if not isinstance(rules, dict):
        raise ConfigurationError(f"{Env.JWT_VALIDATION} is not a JSON object")
    unknown = sorted(set(rules) - set(VALIDATION_KEYS))
    if unknown:
        raise ConfigurationError(f"{Env.JWT_VALIDATION} has unknown keys {unknown}")
    for key, value in rules.items():
        if key == "provider":
            ok = isinstance(value, str)
        elif key == "require_access_token_typ":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, list) and all(isinstance(item, str) and item for item in value)
        if not ok:
            raise ConfigurationError(f"{Env.JWT_VALIDATION}: {key} has the wrong type")
    return rules
