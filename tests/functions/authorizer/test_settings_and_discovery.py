"""Settings from the environment, the https rule, the empty issuer, and OIDC discovery."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from fakes.oidc import AUDIENCE, LocalIssuer
from functions.authorizer.handler import handler
from functions.authorizer.settings import Settings
from functions.contract import Env
from functions.core.settings import ConfigurationError
from tests.functions.authorizer.helpers import bearer_event, denied


def warnings(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "functions.authorizer" and record.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(
    "issuer",
    [
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf",
        "https://tenant.auth0.com/",
        "http://127.0.0.1:8080",
        "http://127.42.0.9",
        "http://localhost:9000/realms/dev",
        "http://[::1]:8080",
    ],
)
def test_https_or_loopback_http_issuers_are_accepted(issuer: str) -> None:
    assert Settings(issuer).issuer == issuer


@pytest.mark.parametrize(
    "issuer",
    [
        "http://example.com",
        "http://10.0.0.8",
        "http://127.0.0.1.evil.example",
        "http://localhost@evil.example",
        "ftp://127.0.0.1",
        "example.com",
        "https://",
        "https://issuer.example.com?tenant=a",
        "https://issuer.example.com#x",
    ],
)
def test_insecure_or_malformed_issuers_are_rejected(issuer: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings(issuer)


def test_insecure_jwks_url_is_rejected() -> None:
    with pytest.raises(ConfigurationError):
        Settings("https://issuer.example.com", jwks_url="http://keys.example.com/jwks.json")


@pytest.mark.parametrize(
    ("issuer", "discovery"),
    [
        ("https://idp.example.com", "https://idp.example.com/.well-known/openid-configuration"),
        ("https://idp.example.com/", "https://idp.example.com/.well-known/openid-configuration"),
        (
            "https://idp.example.com/t/",
            "https://idp.example.com/t/.well-known/openid-configuration",
        ),
    ],
)
def test_discovery_url_handles_a_trailing_slash(issuer: str, discovery: str) -> None:
    assert Settings(issuer).discovery_url == discovery


def test_from_env_reads_the_contract_variables_and_treats_blank_as_unset() -> None:
    settings = Settings.from_env(
        {Env.JWT_ISSUER: " https://idp.example.com ", Env.JWT_AUDIENCE: "", Env.JWKS_URL: "  "}
    )

    assert settings == Settings("https://idp.example.com", audience=None, jwks_url=None)


@pytest.mark.parametrize("configured", ["", "   ", None])
def test_empty_issuer_denies_everything_and_says_why(
    env: LocalIssuer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    configured: str | None,
) -> None:
    token = env.token()
    if configured is None:
        monkeypatch.delenv(Env.JWT_ISSUER)
    else:
        monkeypatch.setenv(Env.JWT_ISSUER, configured)

    for _ in range(2):
        with denied():
            handler(bearer_event(token), None)

    logged = warnings(caplog)
    assert len(logged) == 2  # every invocation says why
    assert all(Env.JWT_ISSUER in record["reason"] for record in logged)
    assert sum(env.requests.values()) == 0


def test_plain_http_issuer_off_loopback_is_refused_without_any_request(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(Env.JWT_ISSUER, "http://idp.example.com")

    with denied():
        handler(bearer_event(env.token(iss="http://idp.example.com")), None)

    assert "https" in warnings(caplog)[-1]["reason"]


def test_jwks_url_override_skips_discovery(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Env.JWKS_URL, env.jwks_url)

    assert handler(bearer_event(env.token()), None)["principalId"] == "user-123"
    assert env.discovery_fetches == 0
    assert env.jwks_fetches == 1


def test_without_override_discovery_is_read_once(env: LocalIssuer) -> None:
    for _ in range(3):
        handler(bearer_event(env.token()), None)

    assert env.discovery_fetches == 1
    assert env.jwks_fetches == 1


@pytest.mark.parametrize("path", ["/us-east-1_AbCdEf", "/tenant/"])
def test_issuers_below_a_path_with_or_without_trailing_slash(
    make_issuer: Callable[..., LocalIssuer], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Cognito issuers carry the pool id as a path; Auth0 issuers end in a slash."""
    issuer = make_issuer(path=path)
    monkeypatch.setenv(Env.JWT_ISSUER, issuer.url)
    monkeypatch.setenv(Env.JWT_AUDIENCE, AUDIENCE)

    assert handler(bearer_event(issuer.token()), None)["principalId"] == "user-123"
    assert issuer.discovery_fetches == 1


def test_discovery_naming_another_issuer_is_refused(
    env: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    env.discovery_overrides["issuer"] = "https://someone-else.example.com"

    with denied():
        handler(bearer_event(env.token()), None)

    assert "someone-else" in warnings(caplog)[-1]["reason"]
    assert env.jwks_fetches == 0


@pytest.mark.parametrize("jwks_uri", ["http://keys.example.com/jwks.json", "", None, 42])
def test_discovery_with_an_unusable_jwks_uri_is_refused(env: LocalIssuer, jwks_uri: object) -> None:
    env.discovery_overrides["jwks_uri"] = jwks_uri

    with denied():
        handler(bearer_event(env.token()), None)
    assert env.jwks_fetches == 0
