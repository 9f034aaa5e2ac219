"""The issuer's signing keys: located by OIDC discovery, fetched by PyJWKClient, cached here.

PyJWKClient does the fetching and parsing (http(s) only, no redirects, JSON-object check, only
``use: sig`` keys with a ``kid``). Its own cache and unknown-``kid`` cooldown are switched off
(``cache_jwk_set=False``) and replaced by ``JwksStore`` because:

- they read ``time.monotonic()`` directly, so tests cannot step past the refetch interval;
- its cooldown only gates unknown-``kid`` refreshes, not retries after a failed fetch;
- its cache forgets the keys on expiry even when the refetch fails, so a short identity
  provider outage would deny every user.

``JwksStore`` keeps one invariant that is easy to check: at most one request to the identity
provider per ``refetch_interval`` per container, whatever tokens arrive.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

from functions.authorizer.errors import InvalidToken, KeysUnavailable
from functions.authorizer.logs import log
from functions.authorizer.settings import Settings, require_secure_url

Clock = Callable[[], float]

ALGORITHMS = ("RS256", "ES256")  # fixed allow-list; never derived from the token
KEY_TYPES = frozenset({"RSA", "EC"})  # never "oct": a symmetric key would make HMAC forgeable
HTTP_TIMEOUT_SECONDS = 3.0
KEYS_MAX_AGE_SECONDS = 300.0  # picks up revoked keys; new keys arrive sooner via unknown kids
REFETCH_INTERVAL_SECONDS = 60.0
MAX_DISCOVERY_BYTES = 64 * 1024
_FETCH_ERRORS = (jwt.PyJWTError, OSError, ValueError, http.client.HTTPException)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn redirects into errors, as PyJWKClient does: keys come from the configured host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_json_object(url: str, timeout: float) -> dict[str, Any]:
    """GET ``url`` and return its JSON object, or raise ``KeysUnavailable`` saying why."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            body = response.read(MAX_DISCOVERY_BYTES + 1)
    except (OSError, http.client.HTTPException) as error:
        raise KeysUnavailable(f"cannot fetch {url}: {error}") from error
    if len(body) > MAX_DISCOVERY_BYTES:
        raise KeysUnavailable(f"{url} returned more than {MAX_DISCOVERY_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise KeysUnavailable(f"{url} did not return JSON: {error}") from error
    if not isinstance(document, dict):
        raise KeysUnavailable(f"{url} did not return a JSON object")
    return document


def discover_jwks_url(settings: Settings, timeout: float) -> str:
    """Read ``jwks_uri`` from the issuer's discovery document.

    The document must name the configured issuer (OpenID Connect Discovery 1.0, section 4.3):
    a mismatch means tokens could never verify, and saying so here beats a 401 per request.
    """
    document = fetch_json_object(settings.discovery_url, timeout)
    if document.get("issuer") != settings.issuer:
        raise KeysUnavailable(
            f"discovery names issuer {document.get('issuer')!r}, expected {settings.issuer!r}"
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise KeysUnavailable("discovery document has no jwks_uri")
    return require_secure_url(jwks_uri, "jwks_uri")


def is_verification_key(key: jwt.PyJWK) -> bool:
    """Asymmetric keys bound to an allowed algorithm; anything else in the JWKS is ignored."""
    return key.key_type in KEY_TYPES and key.algorithm_name in ALGORITHMS


class JwksStore:
    """Signing keys by ``kid``, kept for the container's life and refetched sparingly.

    Keys are fetched on first use, again after ``max_age`` (stale keys stay in use if that fails),
    and again when a token names an unknown ``kid`` (key rotation). Every fetch attempt, failed or
    not, closes the gate for ``refetch_interval``: a flood of random ``kid``s or an outage costs
    the identity provider at most one request per interval per container.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = time.monotonic,
        http_timeout: float = HTTP_TIMEOUT_SECONDS,
        max_age: float = KEYS_MAX_AGE_SECONDS,
        refetch_interval: float = REFETCH_INTERVAL_SECONDS,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._http_timeout = http_timeout
        self._max_age = max_age
        self._refetch_interval = refetch_interval
        self._client: jwt.PyJWKClient | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = threading.Lock()

    def signing_key(self, kid: str) -> jwt.PyJWK:
        """The verification key named ``kid``, or ``InvalidToken`` if the issuer has none."""
        with self._lock:
            now = self._clock()
            if self._loaded_at is None:
                self._load(now)
            elif now - self._loaded_at >= self._max_age:
                self._reload_keeping_stale(now)
            key = self._keys.get(kid)
            if key is None:
                self._reload_keeping_stale(now)
                key = self._keys.get(kid)
            if key is None:
                raise InvalidToken(f"the issuer has no usable signing key with kid {kid!r}")
            return key

    def _may_fetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._refetch_interval

    def _load(self, now: float) -> None:
        """Replace the cached keys with a fresh fetch, if the gate is open."""
        if not self._may_fetch(now):
            raise KeysUnavailable(
                f"no signing keys yet and the last attempt was under "
                f"{self._refetch_interval:.0f} s ago"
            )
        self._last_attempt = now
        client = self._jwks_client()
        try:
            fetched = client.get_signing_keys()
        except _FETCH_ERRORS as error:
            raise KeysUnavailable(f"cannot load the JWKS from {client.uri}: {error}") from error
        keys = {key.key_id: key for key in fetched if is_verification_key(key) and key.key_id}
        if not keys:
            raise KeysUnavailable(f"the JWKS at {client.uri} has no {'/'.join(ALGORITHMS)} keys")
        self._keys = keys
        self._loaded_at = now

    def _reload_keeping_stale(self, now: float) -> None:
        """Refresh if the gate is open; on failure keep serving the keys we already have."""
        if not self._may_fetch(now):
            return
        try:
            self._load(now)
        except KeysUnavailable as error:
            log(error.log_level, "JWKS refresh failed; keeping the cached keys", reason=str(error))

    def _jwks_client(self) -> jwt.PyJWKClient:
        """The PyJWKClient for the JWKS URL, discovering it on first use (success is kept)."""
        if self._client is None:
            url = self._settings.jwks_url or discover_jwks_url(self._settings, self._http_timeout)
            self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=self._http_timeout)
        return self._client
