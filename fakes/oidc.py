"""A real OpenID Connect issuer on 127.0.0.1 for tests and ``make dev``: discovery and JWKS over
HTTP.

It counts every request by path, so tests can prove how often the authorizer reaches the identity
provider, and can be switched to failing or slow answers to play an outage.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from fakes.loopback import QuietHTTPServer

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/keys/jwks.json"
AUDIENCE = "cli-client"
TOKEN_LIFETIME_SECONDS = 300


@dataclass(frozen=True)
class SigningKey:
    """A private key with the ``kid`` and algorithm it signs under."""

    kid: str
    alg: str
    private_key: PrivateKeyTypes

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK, the way identity providers publish it."""
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return jwk | {"kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """Sign ``claims`` as they are, even malformed ones (``jwt.encode`` would refuse some).

        ``headers`` override the default ``alg``/``typ``/``kid``; a ``None`` value removes one.
        """
        header = {"alg": self.alg, "typ": "JWT", "kid": self.kid} | (headers or {})
        header = {name: value for name, value in header.items() if value is not None}
        signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
        algorithm = jwt.get_algorithm_by_name(self.alg)
        return f"{signing_input}.{b64url(algorithm.sign(signing_input.encode(), self.private_key))}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class LocalIssuer:
    """Serves ``{issuer}/.well-known/openid-configuration`` and the JWKS it points to.

    ``path`` puts the issuer below the root, as Cognito (``/us-east-1_pool``) or Auth0 (a
    trailing ``/``) do.
    """

    keys: list[SigningKey]
    path: str = ""
    status: int = 200  # set to 5xx to play an outage
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)  # published as they are
    raw_jwks: bytes | None = None  # served instead of the JWKS, to play a broken provider
    delay: float = 0.0  # seconds to wait before answering, to play a hanging provider
    requests: Counter[str] = field(default_factory=Counter)
    _server: QuietHTTPServer | None = None

    def start(self, port: int = 0) -> LocalIssuer:
        """Serve on ``port`` (0: a free one). ``make dev`` uses a fixed port, because the
        issuer URL is in every token it has handed out."""
        self._server = QuietHTTPServer(("127.0.0.1", port), _handler_for(self))
        threading.Thread(target=self._server.serve_forever, args=(0.005,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def origin(self) -> str:
        assert self._server is not None, "start() the issuer first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The issuer identifier: what goes in JWT_ISSUER and in the tokens' ``iss``."""
        return self.origin + self.path

    @property
    def jwks_url(self) -> str:
        return self.origin + self.path.rstrip("/") + JWKS_PATH

    @property
    def jwks_fetches(self) -> int:
        return self.requests[self.path.rstrip("/") + JWKS_PATH]

    @property
    def discovery_fetches(self) -> int:
        return self.requests[self.path.rstrip("/") + DISCOVERY_PATH]

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": sorted({key.alg for key in self.keys}),
        } | self.discovery_overrides

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys] + self.extra_jwks}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A valid claim set for this issuer; an override of ``None`` removes the claim."""
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "user-123",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "email": "ada@example.com",
            "cognito:username": "ada",
            "scope": "openid profile",
        } | overrides
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: SigningKey | None = None, **overrides: Any) -> str:
        """A token signed by one of the published keys (the first by default)."""
        return (key or self.keys[0]).sign(self.claims(**overrides))

    def answer(self, path: str) -> tuple[int, bytes]:
        """Status and body for a GET of ``path``, counting the request."""
        self.requests[path] += 1
        time.sleep(self.delay)
        base = self.path.rstrip("/")
        if self.status != 200:
            return self.status, b'{"error": "unavailable"}'
        if path == base + JWKS_PATH and self.raw_jwks is not None:
            return 200, self.raw_jwks
        documents = {base + DISCOVERY_PATH: self.discovery_document, base + JWKS_PATH: self.jwks}
        if path not in documents:
            return 404, b'{"error": "not found"}'
        return 200, json.dumps(documents[path]()).encode()


def _handler_for(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body are two sends (see fakes.loopback)

        def do_GET(self) -> None:
            status, body = issuer.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler
