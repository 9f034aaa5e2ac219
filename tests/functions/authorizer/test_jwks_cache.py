"""The JWKS cache: one fetch per warm container, and at most one refetch per 60 s.

Handler-level tests use the real clock (a warm container); verifier-level tests inject a
``FakeClock`` to step past the refetch interval and the cache lifetime.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket

import pytest

from fakes.oidc import AUDIENCE, LocalIssuer, SigningKey
from functions.authorizer.errors import Denied, InvalidToken, KeysUnavailable
from functions.authorizer.handler import handler
from functions.authorizer.keys import KEYS_MAX_AGE_SECONDS, REFETCH_INTERVAL_SECONDS
from functions.authorizer.settings import Settings
from functions.authorizer.verifier import TokenVerifier
from functions.contract import Env
from tests.functions.authorizer.helpers import FakeClock, bearer_event, denied


def random_kid_token(issuer: LocalIssuer) -> str:
    return issuer.keys[0].sign(issuer.claims(), headers={"kid": secrets.token_hex(8)})


@pytest.fixture
def verifier(env: LocalIssuer, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(Settings(env.url, audience=AUDIENCE), clock=clock)


class TestWarmContainer:
    def test_100_valid_verifications_cost_one_jwks_fetch(
        self, env: LocalIssuer, rsa_key: SigningKey, ec_key: SigningKey
    ) -> None:
        tokens = [env.token(rsa_key if n % 2 else ec_key, sub=f"user-{n}") for n in range(100)]

        principals = [handler(bearer_event(token), None)["principalId"] for token in tokens]

        assert principals == [f"user-{n}" for n in range(100)]
        assert env.jwks_fetches == 1
        assert env.discovery_fetches == 1

    def test_100_random_kid_tokens_cost_at_most_two_fetches(self, env: LocalIssuer) -> None:
        handler(bearer_event(env.token()), None)

        for _ in range(100):
            with denied():
                handler(bearer_event(random_kid_token(env)), None)

        assert env.jwks_fetches <= 2
        assert handler(bearer_event(env.token()), None)["principalId"] == "user-123"
        assert env.jwks_fetches <= 2


class TestRefetchGate:
    def test_unknown_kids_refetch_at_most_once_per_interval(
        self, env: LocalIssuer, verifier: TokenVerifier, clock: FakeClock
    ) -> None:
        verifier.verify(env.token())
        assert env.jwks_fetches == 1

        clock.advance(REFETCH_INTERVAL_SECONDS)
        for _ in range(100):
            with pytest.raises(InvalidToken):
                verifier.verify(random_kid_token(env))
        assert env.jwks_fetches == 2

        clock.advance(REFETCH_INTERVAL_SECONDS - 0.1)
        with pytest.raises(InvalidToken):
            verifier.verify(random_kid_token(env))
        assert env.jwks_fetches == 2

        clock.advance(0.1)
        with pytest.raises(InvalidToken):
            verifier.verify(random_kid_token(env))
        assert env.jwks_fetches == 3

    def test_a_cold_flood_of_random_kids_costs_one_fetch(
        self, env: LocalIssuer, verifier: TokenVerifier
    ) -> None:
        for _ in range(100):
            with pytest.raises(InvalidToken):
                verifier.verify(random_kid_token(env))

        assert env.jwks_fetches == 1

    def test_a_rotated_key_is_picked_up_once_the_gate_reopens(
        self, env: LocalIssuer, verifier: TokenVerifier, clock: FakeClock
    ) -> None:
        verifier.verify(env.token())
        new_key = SigningKey.ec("ec-2027")
        env.keys.append(new_key)
        token = env.token(new_key)

        with pytest.raises(InvalidToken):
            verifier.verify(token)  # the keys were fetched just now: no refetch yet
        clock.advance(REFETCH_INTERVAL_SECONDS)

        assert verifier.verify(token).subject == "user-123"
        assert env.jwks_fetches == 2


class TestCacheLifetime:
    def test_keys_are_refetched_after_max_age_and_removed_keys_stop_working(
        self, env: LocalIssuer, verifier: TokenVerifier, clock: FakeClock, ec_key: SigningKey
    ) -> None:
        ec_token = env.token(ec_key)
        verifier.verify(ec_token)
        env.keys.remove(ec_key)

        clock.advance(KEYS_MAX_AGE_SECONDS - 1)
        verifier.verify(ec_token)
        assert env.jwks_fetches == 1

        clock.advance(1)
        with pytest.raises(InvalidToken):
            verifier.verify(ec_token)
        assert env.jwks_fetches == 2
        assert verifier.verify(env.token()).subject == "user-123"

    def test_an_outage_after_max_age_keeps_the_cached_keys(
        self,
        env: LocalIssuer,
        verifier: TokenVerifier,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        verifier.verify(env.token())
        env.status = 503
        clock.advance(KEYS_MAX_AGE_SECONDS)

        assert verifier.verify(env.token()).subject == "user-123"
        assert verifier.verify(env.token()).subject == "user-123"
        assert env.jwks_fetches == 2  # one failed attempt, then the gate holds
        assert "keeping the cached keys" in caplog.text

        clock.advance(REFETCH_INTERVAL_SECONDS)
        verifier.verify(env.token())
        assert env.jwks_fetches == 3


class TestIdentityProviderDown:
    def test_5xx_means_unauthorized(self, env: LocalIssuer) -> None:
        env.status = 503

        with denied():
            handler(bearer_event(env.token()), None)

    def test_nothing_listening_means_unauthorized(
        self, env: LocalIssuer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv(Env.JWT_ISSUER, closed)

        with denied():
            handler(bearer_event(env.token(iss=closed)), None)

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"[1, 2]",
            b'"keys"',
            b'{"keys": []}',
            b'{"keys": "x"}',
            b'{"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB"}]}',
            b'{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}',
        ],
    )
    def test_a_broken_jwks_document_means_unauthorized(
        self, env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, body: bytes
    ) -> None:
        env.raw_jwks = body
        monkeypatch.setenv(Env.JWKS_URL, env.jwks_url)

        with denied():
            handler(bearer_event(env.token()), None)

    def test_a_hanging_provider_is_cut_off_by_the_timeout(self, env: LocalIssuer) -> None:
        """The provider would answer, correctly, after 2 s: only the 0.2 s timeout makes this
        fail, so the failure itself shows the timeout applies (no wall-clock assertion)."""
        env.delay = 2.0
        verifier = TokenVerifier(Settings(env.url, audience=AUDIENCE), http_timeout=0.2)

        with pytest.raises(KeysUnavailable, match="timed out"):
            verifier.verify(env.token())

    def test_a_cold_failure_is_not_retried_before_the_interval(
        self, env: LocalIssuer, verifier: TokenVerifier, clock: FakeClock
    ) -> None:
        env.status = 503
        for _ in range(10):
            with pytest.raises(KeysUnavailable):
                verifier.verify(env.token())
        assert sum(env.requests.values()) == 1

        env.status = 200
        clock.advance(REFETCH_INTERVAL_SECONDS)
        assert verifier.verify(env.token()).subject == "user-123"

    def test_outage_reasons_are_logged_as_warnings(
        self, env: LocalIssuer, caplog: pytest.LogCaptureFixture
    ) -> None:
        env.status = 503

        with denied():
            handler(bearer_event(env.token()), None)

        record = caplog.records[-1]
        assert record.levelno == logging.WARNING
        assert "503" in json.loads(record.getMessage())["reason"]


def test_every_denial_is_a_denied_subclass(env: LocalIssuer, verifier: TokenVerifier) -> None:
    """The verifier's own errors carry the reason the handler logs."""
    with pytest.raises(Denied):
        verifier.verify(random_kid_token(env))
