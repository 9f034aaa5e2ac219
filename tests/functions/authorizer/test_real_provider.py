"""The authorizer against a real, independent OpenID Connect provider: panva's oidc-provider
(OpenID Certified), started from node_modules on 127.0.0.1 (tests/.../real_provider).

Every token here comes from the provider's own token endpoint: client-credentials JWT access
tokens for a resource indicator, and the authorization-code flow's access and ID tokens. Each
profile gets tokens shaped like its provider's (claim names, header typ), so the same checks
run for generic, cognito, okta and entra: audience confusion (a foreign aud whose client is
the audience), ID tokens sent as bearer tokens, required scopes, allowed clients and tenants,
and the claim mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from fakes.oidc import SigningKey
from functions.authorizer.handler import handler
from functions.authorizer.settings import Settings
from functions.authorizer.verifier import TokenVerifier
from functions.contract import REST_ROUTES, ROUTE_ACCESS, Env
from tests.functions.authorizer.helpers import REST_ARN, FakeClock, bearer_event, connect_event
from tests.functions.authorizer.real_provider import (
    API,
    API_ES256,
    CHAT,
    OTHER_API,
    READ,
    SHAPES,
    TENANT,
    RealProvider,
    client_id,
    running,
    unverified,
)

OTHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture(scope="module")
def provider() -> Iterator[RealProvider]:
    keys = [SigningKey.rsa("rsa-real-1"), SigningKey.ec("ec-real-1")]
    with running(keys, accounts={"ada": {"groups": ["Admins", "Sales Team"]}}) as started:
        yield started


def configure(monkeypatch: pytest.MonkeyPatch, issuer: str, **settings: str) -> None:
    """The authorizer's environment as the stack sets it; unnamed settings are the defaults.
    Scopes and clients are space- and comma-separated here, lists in ``JWT_VALIDATION``."""
    monkeypatch.setenv(Env.JWT_ISSUER, issuer)
    monkeypatch.setenv(Env.JWKS_URL, "")
    monkeypatch.setenv(Env.JWT_AUDIENCE, settings.pop("audience", ""))
    rules: dict[str, Any] = {"provider": settings.pop("provider", "generic")}
    for key in ("required_scopes", "read_scopes", "chat_scopes"):
        rules[key] = settings.pop(key, "").split()
    for key in ("allowed_client_ids", "allowed_tenant_ids"):
        rules[key] = [item for item in settings.pop(key, "").split(",") if item]
    rules["require_access_token_typ"] = settings.pop("require_typ", "") == "true"
    assert not settings, f"unknown settings {settings}"
    monkeypatch.setenv(Env.JWT_VALIDATION, json.dumps(rules))


def outcome(token: str, event: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The handler's answer, or None for exactly the 401 exception."""
    try:
        return handler(event or bearer_event(token), None)
    except Exception as error:
        assert type(error) is Exception
        assert error.args == ("Unauthorized",)
        return None


# Every profile; identity_center takes a generic provider's tokens (docs/identity-providers.md).
PROFILE_NAMES = (*SHAPES, "identity_center")


def profile(shape: str) -> str:
    return shape  # each shape of the launcher is the profile of the same name


def shape_of(profile_name: str) -> str:
    return "generic" if profile_name == "identity_center" else profile_name


# --- the audience rule -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", PROFILE_NAMES)
def test_access_token_for_this_api_is_allowed(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    configure(monkeypatch, provider.issuer, audience=API, provider=profile(shape))
    token = provider.client_credentials(client_id(shape_of(shape)))

    assert outcome(token) is not None


@pytest.mark.parametrize("shape", PROFILE_NAMES)
def test_a_token_for_another_api_is_denied_although_its_client_is_the_audience(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """Audience confusion: aud names another API, the client is the configured audience."""
    client = client_id(shape_of(shape))
    token = provider.client_credentials(client, resource=OTHER_API, scope="other/admin")
    _, claims = unverified(token)
    assert claims["aud"] == OTHER_API
    configure(monkeypatch, provider.issuer, audience=client, provider=profile(shape))

    assert outcome(token) is None


def test_generic_defect_reproduction_the_client_id_equals_the_audience(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact token of the report: aud another API, client_id web-app = JWT_AUDIENCE."""
    token = provider.client_credentials("web-app", resource=OTHER_API, scope="other/admin")
    _, claims = unverified(token)
    assert (claims["aud"], claims["client_id"]) == (OTHER_API, "web-app")
    configure(monkeypatch, provider.issuer, audience="web-app")

    assert outcome(token) is None


def test_es256_access_tokens_are_verified(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, provider.issuer, audience=API_ES256)
    token = provider.client_credentials("web-app", resource=API_ES256)
    assert unverified(token)[0]["alg"] == "ES256"

    assert outcome(token) is not None


# --- token kind ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["cognito", "okta", "entra"])
def test_id_tokens_are_denied_even_with_the_client_id_as_audience(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """ID tokens as bearers. The audience is the client id (how Cognito must be configured), so
    the ID token's aud matches; its kind gives it away: Cognito's token_use "id", and no client
    claim where Okta (cid) and Entra (azp/appid) always put one in access tokens."""
    client = client_id(shape_of(shape))
    tokens = provider.authorization_code(client)
    assert tokens.id_token is not None
    assert unverified(tokens.id_token)[1]["aud"] == client
    configure(monkeypatch, provider.issuer, audience=client, provider=profile(shape))

    assert outcome(tokens.id_token) is None


def test_generic_id_tokens_are_denied_by_typ_or_by_audience(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oidc-provider sends typ at+jwt on access tokens and no typ on ID tokens."""
    tokens = provider.authorization_code("web-app")
    assert tokens.id_token is not None
    assert unverified(tokens.access_token)[0]["typ"] == "at+jwt"
    assert "typ" not in unverified(tokens.id_token)[0]

    configure(monkeypatch, provider.issuer, audience="web-app", require_typ="true")
    assert outcome(tokens.id_token) is None
    configure(monkeypatch, provider.issuer, audience=API)  # the API's own identifier
    assert outcome(tokens.id_token) is None
    assert outcome(tokens.access_token) is not None
    configure(monkeypatch, provider.issuer, audience=API, require_typ="true")
    assert outcome(tokens.access_token) is not None
    configure(monkeypatch, provider.issuer, audience=API, provider="identity_center")
    assert outcome(tokens.id_token) is None
    assert outcome(tokens.access_token) is not None


def test_typ_requirement_denies_providers_that_send_jwt(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entra-shaped tokens say typ JWT: with the requirement on they are denied."""
    token = provider.client_credentials(client_id("entra"))
    assert unverified(token)[0]["typ"] == "JWT"
    configure(monkeypatch, provider.issuer, audience=API, provider="entra", require_typ="true")

    assert outcome(token) is None


# --- scopes --------------------------------------------------------------------------------------


SCOPE_CASES = [
    (READ, READ, True),  # present
    (f"{READ} {CHAT}", f"{CHAT} {READ}", True),  # all present, any order
    (READ, CHAT, False),  # missing
    (READ, f"{READ} {CHAT}", False),  # partial
]


@pytest.mark.parametrize("shape", PROFILE_NAMES)
@pytest.mark.parametrize("case", SCOPE_CASES, ids=["present", "all", "missing", "partial"])
def test_required_scopes(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch, shape: str, case: tuple
) -> None:
    """scope (generic, cognito), scp list (okta), roles of an app-only token (entra)."""
    granted, required, allowed = case
    token = provider.client_credentials(client_id(shape_of(shape)), scope=granted)
    configure(
        monkeypatch,
        provider.issuer,
        audience=API,
        provider=profile(shape),
        required_scopes=required,
    )

    assert (outcome(token) is not None) is allowed


@pytest.mark.parametrize("shape", PROFILE_NAMES)
def test_required_scopes_of_user_tokens(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """Delegated (user) tokens: scope, scp list (okta), scp string (entra)."""
    token = provider.authorization_code(client_id(shape_of(shape)), scope=READ).access_token
    for required, allowed in ((READ, True), (CHAT, False), (f"{READ} {CHAT}", False)):
        configure(
            monkeypatch,
            provider.issuer,
            audience=API,
            provider=profile(shape),
            required_scopes=required,
        )
        assert (outcome(token) is not None) is allowed, required


def test_per_route_scopes_with_a_read_only_token(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only token's policy covers the read routes only, whichever route it came for."""
    token = provider.client_credentials("web-app", scope=READ)
    configure(monkeypatch, provider.issuer, audience=API, read_scopes=READ, chat_scopes=CHAT)
    answer = outcome(token)
    assert answer is not None
    resources = answer["policyDocument"]["Statement"][0]["Resource"]
    prefix = REST_ARN.split("/v1/")[0] + "/v1/"
    for route in REST_ROUTES:
        if not route.authorized:
            continue
        arn = f"{prefix}{route.method}{route.full_path.replace('{session_id}', 's-1')}"
        covered = any(fnmatchcase(arn, resource) for resource in resources)
        assert covered is (ROUTE_ACCESS[(route.method, route.path)] == "read"), arn
    assert outcome(token, connect_event(header=f"Bearer {token}")) is None  # $connect is chat


# --- clients and tenants -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", PROFILE_NAMES)
def test_allowed_and_foreign_clients(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    ours = provider.client_credentials(client_id(shape_of(shape)))
    foreign = provider.client_credentials(client_id(shape_of(shape), "other-app"))
    configure(
        monkeypatch,
        provider.issuer,
        audience=API,
        provider=profile(shape),
        allowed_client_ids=f"{client_id(shape_of(shape))},some-third-app",
    )

    assert outcome(ours) is not None
    assert outcome(foreign) is None


def test_allowed_and_foreign_tenants(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = provider.client_credentials(client_id("entra"))
    assert unverified(token)[1]["tid"] == TENANT

    configure(
        monkeypatch, provider.issuer, audience=API, provider="entra", allowed_tenant_ids=TENANT
    )
    assert outcome(token) is not None
    configure(
        monkeypatch,
        provider.issuer,
        audience=API,
        provider="entra",
        allowed_tenant_ids=OTHER_TENANT,
    )
    assert outcome(token) is None


# --- claim mapping -------------------------------------------------------------------------------

USER_CONTEXTS = {
    "generic": {"user_id": "ada", "client_id": "web-app"},
    "identity_center": {"user_id": "ada", "client_id": "web-app"},
    "cognito": {"user_id": "ada", "client_id": "cognito-web-app", "username": "ada"},
    "okta": {
        "user_id": "00u-ada",
        "subject": "ada",
        "client_id": "okta-web-app",
        "groups": '["Admins","Sales Team"]',
    },
    "entra": {
        "user_id": "oid-ada",
        "subject": "ada",
        "client_id": "entra-web-app",
        "tenant_id": TENANT,
        "groups": '["Admins","Sales Team"]',
    },
}


@pytest.mark.parametrize("shape", PROFILE_NAMES)
def test_user_token_claims_reach_the_context(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    token = provider.authorization_code(client_id(shape_of(shape))).access_token
    configure(monkeypatch, provider.issuer, audience=API, provider=profile(shape))

    answer = outcome(token)

    assert answer is not None
    expected = USER_CONTEXTS[shape] | {"scope": f"{READ} {CHAT}"}
    assert answer["context"] == expected
    assert answer["principalId"] == expected["user_id"]


def test_entra_app_only_token_maps_roles_and_the_service_principal(
    provider: RealProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = provider.client_credentials(client_id("entra"), scope=f"{READ} {CHAT}")
    configure(monkeypatch, provider.issuer, audience=API, provider="entra")

    answer = outcome(token)

    assert answer is not None
    assert answer["context"] == {
        "user_id": "sp-entra-web-app",
        "subject": "entra-web-app",
        "client_id": "entra-web-app",
        "tenant_id": TENANT,
        "roles": f'["{READ}","{CHAT}"]',
    }


# --- key rotation --------------------------------------------------------------------------------


def test_key_rotation_by_restarting_the_provider_with_new_keys() -> None:
    """Same issuer URL, new keys: the new kid is fetched once the refetch gate opens, and the
    retired key's tokens stop verifying once the JWKS no longer lists it."""
    old, new = SigningKey.rsa("rsa-gen-1"), SigningKey.rsa("rsa-gen-2")
    with running([old]) as provider:
        clock = FakeClock()
        verifier = TokenVerifier(Settings(provider.issuer, audience=API), clock=clock)
        before = provider.client_credentials("web-app")
        assert verifier.verify(before).client_id == "web-app"

        provider.restart([new])
        after = provider.client_credentials("web-app")
        assert unverified(after)[0]["kid"] == "rsa-gen-2"
        assert verifier.verify(before).user_id == "web-app"  # still cached: not yet refetched
        clock.advance(61)
        assert verifier.verify(after).user_id == "web-app"  # unknown kid -> one refetch
        with pytest.raises(Exception, match="no usable signing key"):
            verifier.verify(before)
