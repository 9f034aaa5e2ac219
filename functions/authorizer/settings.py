"""Authorizer settings, read from the environment variables the stack sets (``contract.Env``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from functions.authorizer.errors import ConfigurationError
from functions.authorizer.profiles import DEFAULT_PROFILE, PROFILES, Profile
from functions.shared.contract import CHAT, READ, Env

DISCOVERY_PATH = "/.well-known/openid-configuration"
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


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
class Settings:
    """What the authorizer trusts. Frozen and hashable, so it can key the per-container cache.

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
                f"{Env.JWT_PROVIDER} {self.provider!r} is not one of {sorted(PROFILES)}"
            )
        for name, scopes in (
            (Env.JWT_REQUIRED_SCOPES, self.required_scopes),
            (Env.JWT_READ_SCOPES, self.read_scopes),
            (Env.JWT_CHAT_SCOPES, self.chat_scopes),
        ):
            bad = [scope for scope in scopes if not SCOPE_TOKEN.fullmatch(scope)]
            if bad:
                raise ConfigurationError(f"{name} has invalid scope tokens {bad}")
        if self.allowed_tenant_ids is not None and self.profile.tenant_claim is None:
            raise ConfigurationError(
                f"{Env.JWT_ALLOWED_TENANT_IDS} is set, but profile {self.provider!r} has no "
                "tenant claim"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the variables; blank optional ones count as unset."""
        typ = environ.get(Env.JWT_REQUIRE_ACCESS_TOKEN_TYP, "").strip().lower()
        if typ not in _TRUE | _FALSE:
            raise ConfigurationError(
                f"{Env.JWT_REQUIRE_ACCESS_TOKEN_TYP} must be true or false, got {typ[:20]!r}"
            )
        return cls(
            issuer=environ.get(Env.JWT_ISSUER, "").strip(),
            audience=environ.get(Env.JWT_AUDIENCE, "").strip() or None,
            jwks_url=environ.get(Env.JWKS_URL, "").strip() or None,
            provider=environ.get(Env.JWT_PROVIDER, "").strip() or DEFAULT_PROFILE,
            required_scopes=_words(environ.get(Env.JWT_REQUIRED_SCOPES, "")),
            read_scopes=_words(environ.get(Env.JWT_READ_SCOPES, "")),
            chat_scopes=_words(environ.get(Env.JWT_CHAT_SCOPES, "")),
            allowed_client_ids=_set(environ.get(Env.JWT_ALLOWED_CLIENT_IDS, "")),
            allowed_tenant_ids=_set(environ.get(Env.JWT_ALLOWED_TENANT_IDS, "")),
            require_access_token_typ=typ in _TRUE,
        )

    @property
    def profile(self) -> Profile:
        return PROFILES[self.provider]

    @property
    def route_scopes(self) -> dict[str, tuple[str, ...]]:
        """Scopes per kind of route (``contract.READ``/``CHAT``), only for kinds that have any."""
        kinds = {READ: self.read_scopes, CHAT: self.chat_scopes}
        return {kind: scopes for kind, scopes in kinds.items() if scopes}

    @property
    def discovery_url(self) -> str:
        """OpenID Connect discovery document: issuer + well-known path, without a double slash."""
        return self.issuer.rstrip("/") + DISCOVERY_PATH


def _words(value: str) -> tuple[str, ...]:
    """A space-separated list, in order, each once."""
    return tuple(dict.fromkeys(value.split()))


def _set(value: str) -> frozenset[str] | None:
    """A comma-separated set; empty means unset (None), not "nothing allowed"."""
    items = frozenset(item.strip() for item in value.split(",") if item.strip())
    return items or None
