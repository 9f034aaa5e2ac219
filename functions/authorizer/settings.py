"""Authorizer settings, read from the environment variables the stack sets (``contract.Env``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from functions.authorizer.errors import ConfigurationError
from functions.shared.contract import Env

DISCOVERY_PATH = "/.well-known/openid-configuration"


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the three variables; blank optional ones count as unset."""
        return cls(
            issuer=environ.get(Env.JWT_ISSUER, "").strip(),
            audience=environ.get(Env.JWT_AUDIENCE, "").strip() or None,
            jwks_url=environ.get(Env.JWKS_URL, "").strip() or None,
        )

    @property
    def discovery_url(self) -> str:
        """OpenID Connect discovery document: issuer + well-known path, without a double slash."""
        return self.issuer.rstrip("/") + DISCOVERY_PATH
