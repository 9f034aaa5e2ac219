"""Claim checks and forgeries: every rejected token ends in exactly Exception("Unauthorized")."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization

from fakes.oidc import AUDIENCE, LocalIssuer, SigningKey, b64url
from functions.authorizer.errors import InvalidToken
from functions.authorizer.handler import handler
from functions.authorizer.keys import JwksStore
from functions.authorizer.settings import Settings
from functions.contract import Env
from tests.functions.authorizer.helpers import (
    bearer_event,
    denied,
    hs256_forgery,
    unsigned,
    with_header,
    with_payload,
)


def ago(seconds: int) -> int:
    """A NumericDate relative to the moment the test runs (not to when it was collected)."""
    return int(time.time()) - seconds


def ahead(seconds: int) -> int:
    return int(time.time()) + seconds


def allowed(token: str) -> bool:
    """True for an Allow; a denial must be the exact 401 exception."""
    try:
        return handler(bearer_event(token), None)["policyDocument"]["Statement"][0]["Effect"] == (
            "Allow"
        )
    except Exception as error:
        assert type(error) is Exception
        assert error.args == ("Unauthorized",)
        return False


class TestLifetime:
    """exp, nbf and iat are enforced with 60 s of leeway: 30 s off passes, 90 s off does not."""

    @pytest.mark.parametrize("expired", [90, 600])
    def test_expired(self, env: LocalIssuer, expired: int) -> None:
        assert not allowed(env.token(iat=ago(3600), exp=ago(expired)))

    def test_expired_within_the_leeway_is_accepted(self, env: LocalIssuer) -> None:
        assert allowed(env.token(iat=ago(600), exp=ago(30)))

    def test_missing_exp(self, env: LocalIssuer) -> None:
        assert not allowed(env.token(exp=None))

    @pytest.mark.parametrize("exp", ["tomorrow", float("inf"), float("nan"), [2_000_000_000]])
    def test_exp_that_is_not_a_number(self, env: LocalIssuer, exp: object) -> None:
        assert not allowed(env.token(exp=exp))

    @pytest.mark.parametrize("early", [90, 600])
    def test_nbf_beyond_the_leeway(self, env: LocalIssuer, early: int) -> None:
        assert not allowed(env.token(nbf=ahead(early)))

    def test_nbf_within_the_leeway_is_accepted(self, env: LocalIssuer) -> None:
        assert allowed(env.token(nbf=ahead(30)))

    @pytest.mark.parametrize("early", [90, 600])
    def test_iat_in_the_future_beyond_the_leeway(self, env: LocalIssuer, early: int) -> None:
        assert not allowed(env.token(iat=ahead(early)))

    def test_iat_within_the_leeway_is_accepted(self, env: LocalIssuer) -> None:
        assert allowed(env.token(iat=ahead(30)))


class TestIssuerAndAudience:
    @pytest.mark.parametrize(
        "iss", ["https://evil.example.com", "http://127.0.0.1:1", None, 42, ["x"]]
    )
    def test_wrong_or_missing_issuer(self, env: LocalIssuer, iss: object) -> None:
        assert not allowed(env.token(iss=iss))

    def test_issuer_with_an_extra_trailing_slash(self, env: LocalIssuer) -> None:
        assert not allowed(env.token(iss=env.url + "/"))

    @pytest.mark.parametrize("aud", ["another-client", ["another-client", "third"], None, 42])
    def test_wrong_or_missing_audience(self, env: LocalIssuer, aud: object) -> None:
        assert not allowed(env.token(aud=aud))

    def test_audience_in_an_aud_list(self, env: LocalIssuer) -> None:
        assert allowed(env.token(aud=["another-client", AUDIENCE]))

    def test_audience_as_client_id_of_an_access_token(self, env: LocalIssuer) -> None:
        """Cognito access tokens name the app client in ``client_id`` and have no ``aud``."""
        assert allowed(env.token(aud=None, client_id=AUDIENCE, token_use="access"))

    def test_wrong_client_id(self, env: LocalIssuer) -> None:
        assert not allowed(env.token(aud=None, client_id="another-client"))

    def test_without_a_configured_audience_any_audience_is_accepted(
        self, env: LocalIssuer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(Env.JWT_AUDIENCE)

        assert allowed(env.token(aud="whatever"))
        assert allowed(env.token(aud=None))


class TestSubject:
    @pytest.mark.parametrize("sub", [None, "", "   ", 42, ["user-123"]])
    def test_missing_empty_or_non_string_sub(self, env: LocalIssuer, sub: object) -> None:
        assert not allowed(env.token(sub=sub))


class TestForgeries:
    def test_alg_none(self, env: LocalIssuer, rsa_key: SigningKey) -> None:
        claims = env.claims()
        assert not allowed(unsigned(claims, rsa_key.kid))
        assert not allowed(unsigned(claims, rsa_key.kid, signature="c2lnbmF0dXJl"))

    @pytest.mark.parametrize("encoding", ["pem", "jwk-json"])
    def test_hs256_signed_with_the_public_key(
        self, env: LocalIssuer, rsa_key: SigningKey, encoding: str
    ) -> None:
        public = rsa_key.private_key.public_key()
        secret = (
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if encoding == "pem"
            else json.dumps(rsa_key.public_jwk()).encode()
        )

        assert not allowed(hs256_forgery(env.claims(), secret, rsa_key.kid))

    def test_tampered_payload(self, env: LocalIssuer) -> None:
        token = env.token()
        assert allowed(token)

        assert not allowed(with_payload(token, env.claims(sub="admin")))

    def test_header_swapped_to_another_algorithm(
        self, env: LocalIssuer, rsa_key: SigningKey, ec_key: SigningKey
    ) -> None:
        token = env.token(rsa_key)

        assert not allowed(with_header(token, {"alg": "ES256", "kid": ec_key.kid}))
        assert not allowed(with_header(token, {"alg": "ES256", "kid": rsa_key.kid}))
        assert not allowed(with_header(token, {"alg": "RS512", "kid": rsa_key.kid}))

    def test_unknown_kid(self, env: LocalIssuer) -> None:
        assert not allowed(env.keys[0].sign(env.claims(), headers={"kid": "no-such-key"}))

    @pytest.mark.parametrize("kid", [None, "", 42])
    def test_missing_or_invalid_kid(self, env: LocalIssuer, kid: object) -> None:
        assert not allowed(env.keys[0].sign(env.claims(), headers={"kid": kid}))

    @pytest.mark.parametrize("attacker", ["attacker_rsa_key", "attacker_ec_key"])
    def test_right_kid_wrong_key(
        self, env: LocalIssuer, attacker: str, request: pytest.FixtureRequest
    ) -> None:
        key: SigningKey = request.getfixturevalue(attacker)
        assert key.kid in {published.kid for published in env.keys}

        assert not allowed(env.token(key))

    def test_symmetric_keys_in_the_jwks_are_never_used(
        self, env: LocalIssuer, rsa_key: SigningKey, ec_key: SigningKey
    ) -> None:
        """A JWKS ``oct`` key must not turn into an HMAC secret an attacker could guess."""
        secret = b"s" * 32
        oct_key = {"kty": "oct", "kid": "shared", "alg": "HS256", "k": b64url(secret)}
        env.extra_jwks.append(oct_key)

        assert allowed(env.token(rsa_key))
        assert not allowed(hs256_forgery(env.claims(), secret, "shared"))
        with pytest.raises(InvalidToken):  # not even looked up: it is filtered out on load
            JwksStore(Settings(env.url)).signing_key("shared")


def test_denial_reasons_are_logged_without_the_token(
    env: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    token = env.token(exp=ago(600), iat=ago(3600))
    caplog.set_level(logging.INFO, logger="functions.authorizer")

    with denied():
        handler(bearer_event(token), SimpleNamespace(aws_request_id="req-42"))

    record = json.loads(caplog.records[-1].getMessage())
    assert record["message"] == "unauthorized"
    assert record["request_id"] == "req-42"
    assert "ExpiredSignatureError" in record["reason"]
    for part in token.split("."):
        assert part not in caplog.text


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b"[]",  # JSON, but not an object
        b"\x80",  # not UTF-8
        b'{"alg": "RS256", "kid": 7}',  # kid must be a string
        b'{"alg": "RS256", "kid": "k", "crit": ["exp"]}',  # an extension no one implements
    ],
    ids=["not-json", "not-an-object", "not-utf8", "kid-not-a-string", "unsupported-crit"],
)
def test_malformed_headers_are_invalid_tokens_denied_before_any_key_lookup(
    env: LocalIssuer, caplog: pytest.LogCaptureFixture, header: bytes
) -> None:
    """PyJWT parses the header; whatever it rejects is the client's bad token (INFO, not the
    ERROR of an unexpected failure), and no signing key is fetched for it."""
    _, payload, signature = env.token().split(".")
    token = f"{b64url(header)}.{payload}.{signature}"
    caplog.set_level(logging.INFO, logger="functions.authorizer")

    with denied():
        handler(bearer_event(token), None)

    record = caplog.records[-1]
    assert record.levelno == logging.INFO
    assert json.loads(record.getMessage())["reason"].startswith("unreadable header: ")
    assert sum(env.requests.values()) == 0
