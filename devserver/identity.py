"""The dev server's identity provider: one signing key kept in the state folder, so that
``make dev-token`` (another process, maybe before or after a restart) signs tokens the running
issuer publishes.

The issuer URL is fixed (``http://127.0.0.1:${DEV_OIDC_PORT:-3002}``) because it is each
token's ``iss``, which the authorizer compares byte for byte.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devserver.oidc import SigningKey

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
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return SigningKey(KID, "RS256", private_key)


def issuer_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def mint(
    key: SigningKey,
    issuer: str,
    user: str,
    audience: str,
    lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
) -> str:
    """An ID-token-shaped JWT for ``user`` (its ``sub``), as an identity provider would sign."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": user,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime_seconds,
        "email": f"{user}@example.com",
        "preferred_username": user,
        "scope": "openid profile email",
    }
    return key.sign(claims)
