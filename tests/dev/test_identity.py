"""The dev server's signing key (``devserver/identity.py``): created once, parsed once per
process, and read anew when the file holds another key."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devserver import identity


def _verifies(token: str, key: identity.SigningKey) -> bool:
    public = key.private_key.public_key()
    try:
        jwt.decode(token, public, algorithms=["RS256"], options={"verify_aud": False})
    except jwt.InvalidTokenError:
        return False
    return True


def test_the_key_is_made_once_and_parsed_once(tmp_path: Path) -> None:
    first = identity.signing_key(tmp_path)
    assert (tmp_path / identity.KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert identity.signing_key(tmp_path).private_key is first.private_key


def test_a_replaced_key_file_is_read_anew(tmp_path: Path) -> None:
    old = identity.signing_key(tmp_path)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / identity.KEY_FILE).write_bytes(pem)
    new = identity.signing_key(tmp_path)
    token = identity.mint(new, "http://127.0.0.1:1", "alice", identity.TokenShape())
    assert _verifies(token, new)
    assert not _verifies(token, old)


def test_a_key_file_that_holds_no_rsa_key_is_refused_by_name(tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / identity.KEY_FILE).write_bytes(pem)
    with pytest.raises(ValueError, match=f"{identity.KEY_FILE} holds a .*not an RSA private key"):
        identity.signing_key(tmp_path)
