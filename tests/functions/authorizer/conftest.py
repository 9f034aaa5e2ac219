"""Fixtures: signing keys, a running local issuer, and the environment pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fakes.oidc import AUDIENCE, LocalIssuer, SigningKey
from functions.contract import Env
from tests.functions.authorizer.helpers import FakeClock


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-2026")


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey.ec("ec-2026")


@pytest.fixture(scope="session")
def attacker_rsa_key(rsa_key: SigningKey) -> SigningKey:
    """Another RSA key that claims the issuer's ``kid``: the right kid with the wrong key."""
    return SigningKey.rsa(rsa_key.kid)


@pytest.fixture(scope="session")
def attacker_ec_key(ec_key: SigningKey) -> SigningKey:
    return SigningKey.ec(ec_key.kid)


@pytest.fixture
def issuer(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[LocalIssuer]:
    """A fresh issuer per test: a new port, so a new issuer URL and a cold verifier cache."""
    running = LocalIssuer(keys=[rsa_key, ec_key]).start()
    yield running
    running.stop()


@pytest.fixture
def make_issuer(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[Callable[..., LocalIssuer]]:
    """Start extra issuers (e.g. below a path); all are stopped after the test."""
    started: list[LocalIssuer] = []

    def make(**options: Any) -> LocalIssuer:
        started.append(LocalIssuer(keys=[rsa_key, ec_key], **options).start())
        return started[-1]

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def env(issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> LocalIssuer:
    """The authorizer's environment as the stack sets it, pointing at ``issuer``."""
    monkeypatch.setenv(Env.JWT_ISSUER, issuer.url)
    monkeypatch.setenv(Env.JWT_AUDIENCE, AUDIENCE)
    monkeypatch.delenv(Env.JWKS_URL, raising=False)
    monkeypatch.delenv(Env.JWT_VALIDATION, raising=False)
    return issuer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
