"""panva's ``oidc-provider`` (OpenID Certified), run from node_modules on 127.0.0.1.

Tokens come from the provider's own endpoints: ``client_credentials`` JWT access tokens for a
resource indicator, and the authorization-code flow's access and ID tokens (login and consent
are completed by ``launcher.mjs``, the HTTP client here only follows the redirects). Restarting
with other keys on the same port is a key rotation under the same issuer URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from fakes.oidc import SigningKey
from fakes.process import stop_process

LAUNCHER = Path(__file__).with_name("launcher.mjs")
REPO_ROOT = Path(__file__).resolve().parents[4]
PACKAGE = REPO_ROOT / "node_modules" / "oidc-provider" / "package.json"
START_TIMEOUT_SECONDS = 20.0

API = "https://assistant.example.test"  # this API's resource indicator: the audience
API_ES256 = "https://assistant-es.example.test"  # the same API, ES256-signed tokens
OTHER_API = "https://other.example.test"  # another API of the same issuer
READ, CHAT = "assistant/read", "assistant/chat"
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
REDIRECT_URI = "http://127.0.0.1:1/callback"  # never contacted: the code is read off the redirect
SECRET = "s3cret-for-tests-only-0123456789abcdef"

# Clients per shape (see launcher.mjs). "web-app" is the client id the audience confusion uses.
SHAPES = ("generic", "cognito", "okta", "entra")


def client_id(shape: str, name: str = "web-app") -> str:
    return name if shape == "generic" else f"{shape}-{name}"


def _clients() -> list[dict[str, Any]]:
    clients = []
    for shape in SHAPES:
        for name in ("web-app", "other-app"):
            clients.append(
                {
                    "client_id": client_id(shape, name),
                    "client_secret": SECRET,
                    "grant_types": ["client_credentials", "authorization_code"],
                    "response_types": ["code"],
                    "redirect_uris": [REDIRECT_URI],
                    "shape": shape,
                }
            )
    return clients


def private_jwk(key: SigningKey) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(key.alg)
    return algorithm.to_jwk(key.private_key, as_dict=True) | {
        "kid": key.kid,
        "alg": key.alg,
        "use": "sig",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, for tests that describe what the provider sent (never for trust)."""
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


@dataclass
class Tokens:
    access_token: str
    id_token: str | None = None


@dataclass
class RealProvider:
    keys: list[SigningKey]
    port: int = field(default_factory=free_port)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _process: subprocess.Popen[str] | None = None
    _folder: tempfile.TemporaryDirectory[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RealProvider:
        node = shutil.which("node")
        if node is None or not PACKAGE.exists():
            raise RuntimeError(
                f"oidc-provider needs node and {PACKAGE} (npm ci installs it from "
                "package-lock.json)"
            )
        self._folder = tempfile.TemporaryDirectory(prefix="oidc-provider-")
        config = Path(self._folder.name) / "config.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "keys": [private_jwk(key) for key in self.keys],
                    "resources": {
                        API: {"scope": f"{READ} {CHAT}", "alg": "RS256"},
                        API_ES256: {"scope": f"{READ} {CHAT}", "alg": "ES256"},
                        OTHER_API: {"scope": "other/admin", "alg": "RS256"},
                    },
                    "clients": _clients(),
                    "tenant_id": TENANT,
                    "accounts": self.accounts,
                }
            )
        )
        self._process = subprocess.Popen(
            [node, str(LAUNCHER), str(config)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self._process is not None and self._process.stdout is not None
            for line in self._process.stdout:
                self.output.append(line)
                if line.startswith("ready "):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError("oidc-provider did not start:\n" + "".join(self.output))
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, grace_seconds=10)
            self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def restart(self, keys: list[SigningKey]) -> None:
        """The same issuer (same port) with other signing keys: a key rotation."""
        self.stop()
        self.keys = keys
        self.start()

    # --- the provider's own endpoints ----------------------------------------------------------

    def _token_request(self, client: str, form: dict[str, str]) -> dict[str, Any]:
        response = httpx.post(f"{self.issuer}/token", data=form, auth=(client, SECRET), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def client_credentials(self, client: str, resource: str = API, scope: str = READ) -> str:
        """A JWT access token for ``resource`` from the client_credentials grant."""
        answer = self._token_request(
            client, {"grant_type": "client_credentials", "resource": resource, "scope": scope}
        )
        return answer["access_token"]

    def authorization_code(
        self,
        client: str,
        resource: str = API,
        scope: str = f"{READ} {CHAT}",
        login: str = "ada",
    ) -> Tokens:
        """Run the authorization-code flow (PKCE S256) as ``login``; return both tokens."""
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        params = {
            "client_id": client,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": f"openid email {scope}",
            "resource": resource,
            "login_hint": login,
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        with httpx.Client(base_url=self.issuer, follow_redirects=False, timeout=10) as browser:
            response = browser.get("/auth", params=params)
            for _ in range(10):
                assert response.status_code in (302, 303), response.text
                location = response.headers["location"]
                if location.startswith(REDIRECT_URI):
                    break
                response = browser.get(location)
            else:
                raise AssertionError("the authorization flow did not reach the redirect URI")
        query = parse_qs(urlsplit(location).query)
        assert "code" in query, query
        answer = self._token_request(
            client,
            {
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                "resource": resource,
            },
        )
        return Tokens(answer["access_token"], answer.get("id_token"))


@contextmanager
def running(keys: list[SigningKey], **options: Any) -> Iterator[RealProvider]:
    provider = RealProvider(keys=keys, **options).start()
    try:
        yield provider
    finally:
        provider.stop()
