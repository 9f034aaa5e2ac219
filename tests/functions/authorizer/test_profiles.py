"""Provider profiles, token kinds, scopes, clients, tenants and per-route scopes, with tokens
signed by the local issuer (any claim set, including ones no real provider would send)."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from fakes.oidc import AUDIENCE, LocalIssuer
from functions.authorizer.handler import handler
from functions.authorizer.settings import Settings
from functions.authorizer.verifier import MAX_CONTEXT_FIELD_CHARS
from functions.contract import (
    AUTHORIZED_ROUTES,
    OPENAI_ROUTES,
    ROUTE_ACCESS,
    WEBSOCKET_CONNECT_ACCESS,
    Env,
)
from functions.core.identity import caller_from
from functions.core.settings import ConfigurationError
from tests.functions.authorizer.helpers import REST_ARN, bearer_event, connect_event, set_rules

PROFILES = ("generic", "cognito", "okta", "entra", "identity_center")
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
# A valid access token's own claims per profile (on top of the issuer's iss/sub/aud/exp...).
ACCESS = {
    "generic": {"client_id": "web"},
    "cognito": {"client_id": "web", "token_use": "access"},
    "okta": {"cid": "web", "uid": "00u1"},
    "entra": {"azp": "web", "oid": "oid-1", "tid": TENANT},
    "identity_center": {"client_id": "web"},
}
CLIENT_CLAIM = {
    "generic": "client_id",
    "cognito": "client_id",
    "okta": "cid",
    "entra": "azp",
    "identity_center": "client_id",
}


def allowed(token: str, event: dict[str, Any] | None = None) -> dict[str, Any] | None:
    try:
        return handler(event or bearer_event(token), None)
    except Exception as error:
        assert type(error) is Exception
        assert error.args == ("Unauthorized",)
        return None


@pytest.fixture(params=PROFILES)
def profile(
    request: pytest.FixtureRequest, env: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> str:
    set_rules(monkeypatch, provider=request.param)
    return request.param


def access(env: LocalIssuer, profile: str, **claims: Any) -> str:
    return env.token(**(ACCESS[profile] | claims))


# --- audience -------------------------------------------------------------------------------------


def test_aud_of_another_api_is_denied_whatever_the_client(env: LocalIssuer, profile: str) -> None:
    """Audience confusion: a client id equal to the audience must not rescue a foreign aud."""
    claim = CLIENT_CLAIM[profile]
    assert allowed(access(env, profile))
    assert not allowed(access(env, profile, aud="https://other.example.test", **{claim: AUDIENCE}))
    assert not allowed(
        access(env, profile, aud=["https://other.example.test"], **{claim: AUDIENCE})
    )
    assert not allowed(access(env, profile, aud=[], **{claim: AUDIENCE}))
    assert not allowed(access(env, profile, aud=42, **{claim: AUDIENCE}))


def test_without_aud_the_client_is_the_audience(env: LocalIssuer, profile: str) -> None:
    """The Cognito access-token case; identity_center requires an aud."""
    claim = CLIENT_CLAIM[profile]
    ours = access(env, profile, aud=None, **{claim: AUDIENCE})
    foreign = access(env, profile, aud=None, **{claim: "someone-else"})

    assert bool(allowed(ours)) is (profile != "identity_center")
    assert not allowed(foreign)


@pytest.mark.parametrize("claim", ["azp", "cid", "appid"])
def test_generic_takes_every_client_claim_when_aud_is_absent(env: LocalIssuer, claim: str) -> None:
    assert allowed(env.token(aud=None, **{claim: AUDIENCE}))


# --- token kind -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token_use", ["id", "refresh", "", 1, None])
def test_token_use_other_than_access_is_denied(
    env: LocalIssuer, profile: str, token_use: object
) -> None:
    token = access(env, profile)
    assert allowed(token)
    if token_use is None:  # absent: fine, except where the profile requires it
        token = access(env, profile, token_use=None)
        assert bool(allowed(token)) is (profile != "cognito")
    else:
        assert not allowed(access(env, profile, token_use=token_use))


def test_a_cognito_id_token_is_denied_with_the_client_id_as_audience(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ID token as a bearer, as Cognito sends it: aud = the app client, token_use id."""
    id_token = {"aud": AUDIENCE, "token_use": "id", "cognito:username": "ada"}
    for provider in ("generic", "cognito"):
        set_rules(monkeypatch, provider=provider)
        assert not allowed(env.token(**id_token))


@pytest.mark.parametrize("profile_name", ["cognito", "okta", "entra"])
def test_tokens_without_the_providers_client_claim_are_not_access_tokens(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, profile_name: str
) -> None:
    set_rules(monkeypatch, provider=profile_name)
    claim = CLIENT_CLAIM[profile_name]
    assert allowed(access(env, profile_name))
    assert not allowed(access(env, profile_name, **{claim: None}))


@pytest.mark.parametrize(
    ("typ", "ok"),
    [("at+jwt", True), ("application/at+jwt", True), ("AT+JWT", True), ("JWT", False),
     (None, False), ("", False), (["at+jwt"], False)],
)  # fmt: skip
def test_required_access_token_typ(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, typ: object, ok: bool
) -> None:
    token = env.keys[0].sign(env.claims(), headers={"typ": typ})
    assert allowed(token)  # off by default: Cognito and Entra do not send at+jwt
    set_rules(monkeypatch, require_access_token_typ=True)

    assert bool(allowed(token)) is ok


# --- scopes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        ({"scope": "openid a b"}, True),
        ({"scope": "a"}, False),  # partial
        ({"scope": None}, False),  # missing
        ({"scope": None, "scp": "a b"}, True),  # Entra: space-separated
        ({"scope": None, "scp": ["b", "a"]}, True),  # Okta: a list
        ({"scope": None, "scp": ["a b"]}, False),  # list items are whole scopes
        ({"scope": "a", "scp": ["b"]}, True),  # union of both claims
        ({"scope": ["a", "b"]}, True),
        ({"scope": None, "roles": ["a", "b"]}, False),  # roles are not scopes here
    ],
)
def test_generic_required_scopes(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, claims: dict[str, Any], ok: bool
) -> None:
    set_rules(monkeypatch, required_scopes=["a", "b"])

    assert bool(allowed(env.token(**claims))) is ok


@pytest.mark.parametrize(
    ("profile_name", "claims", "ok"),
    [
        ("cognito", {"scope": "a b"}, True),
        ("cognito", {"scope": None, "scp": "a b"}, False),  # Cognito has only scope
        ("okta", {"scope": None, "scp": ["a", "b"]}, True),
        ("okta", {"scope": "a b"}, False),  # Okta has only scp
        ("entra", {"scope": None, "scp": "a b"}, True),  # delegated permissions
        ("entra", {"scope": None, "roles": ["a", "b"]}, True),  # application permissions
        ("entra", {"scope": None, "scp": "a", "roles": ["b"]}, True),
        ("entra", {"scope": "a b"}, False),
    ],
)
def test_profile_required_scopes(
    env: LocalIssuer,
    monkeypatch: pytest.MonkeyPatch,
    profile_name: str,
    claims: dict[str, Any],
    ok: bool,
) -> None:
    set_rules(monkeypatch, provider=profile_name)
    set_rules(monkeypatch, required_scopes=["a", "b"])

    assert bool(allowed(access(env, profile_name, **claims))) is ok


# --- clients and tenants --------------------------------------------------------------------------


def test_allowed_clients(env: LocalIssuer, profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_rules(monkeypatch, allowed_client_ids=["web", "cli"])
    claim = CLIENT_CLAIM[profile]

    assert allowed(access(env, profile))
    assert allowed(access(env, profile, **{claim: "cli"}))
    assert not allowed(access(env, profile, **{claim: "foreign"}))
    assert not allowed(access(env, profile, **{claim: None}))


def test_entra_v1_names_the_client_in_appid(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_rules(monkeypatch, provider="entra")
    set_rules(monkeypatch, allowed_client_ids=["web"])
    v1 = access(env, "entra", azp=None, appid="web", ver="1.0")

    assert allowed(v1)["context"]["client_id"] == "web"


def test_tenants(env: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    set_rules(monkeypatch, provider="entra")
    assert allowed(access(env, "entra", tid="any-tenant"))  # no allow-list: any tenant
    assert not allowed(access(env, "entra", tid=None))  # but Entra tokens always carry one
    set_rules(monkeypatch, allowed_tenant_ids=[TENANT])

    assert allowed(access(env, "entra"))
    assert not allowed(access(env, "entra", tid="72f988bf-86f1-41af-91ab-2d7cd011db47"))


# --- claim mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_name", "claims", "context"),
    [
        (
            "generic",
            {"client_id": "web", "groups": ["g1"], "roles": ["r1"], "scope": "a b"},
            {"user_id": "user-123", "client_id": "web", "groups": '["g1"]', "roles": '["r1"]',
             "scope": "a b"},
        ),
        (
            "cognito",
            {"client_id": "web", "token_use": "access", "username": "ada",
             "cognito:groups": ["admins"], "scope": "a"},
            {"user_id": "user-123", "client_id": "web", "username": "ada",
             "groups": '["admins"]', "scope": "a"},
        ),
        (
            "okta",
            {"cid": "web", "uid": "00u1", "scp": ["a", "b"], "groups": ["Sales Team"],
             "scope": None},
            {"user_id": "00u1", "subject": "user-123", "client_id": "web", "scope": "a b",
             "groups": '["Sales Team"]'},
        ),
        (
            "okta",  # client credentials: no uid, sub is the client
            {"cid": "web", "sub": "web", "scp": ["a"], "scope": None},
            {"user_id": "web", "client_id": "web", "scope": "a"},
        ),
        (
            "entra",
            {"azp": "web", "oid": "oid-1", "tid": TENANT, "scp": "a b", "roles": ["Admin"],
             "groups": ["g-1"], "scope": None},
            {"user_id": "oid-1", "subject": "user-123", "client_id": "web", "tenant_id": TENANT,
             "scope": "a b", "roles": '["Admin"]', "groups": '["g-1"]'},
        ),
    ],
)  # fmt: skip
def test_claims_reach_the_context_and_the_functions(
    env: LocalIssuer,
    monkeypatch: pytest.MonkeyPatch,
    profile_name: str,
    claims: dict[str, Any],
    context: dict[str, str],
) -> None:
    set_rules(monkeypatch, provider=profile_name)
    bare = {"email": None, "cognito:username": None}
    answer = allowed(env.token(**(bare | claims)))

    assert answer is not None
    assert answer["context"] == context
    assert answer["principalId"] == context["user_id"]
    caller = caller_from({"requestContext": {"authorizer": answer["context"]}})
    assert caller is not None
    assert caller.user_id == context["user_id"]
    assert caller.client_id == context.get("client_id")
    assert " ".join(caller.scopes) == context.get("scope", "")
    assert list(caller.groups) == json.loads(context.get("groups", "[]"))
    assert list(caller.roles) == json.loads(context.get("roles", "[]"))


def test_entra_without_oid_is_denied(env: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    set_rules(monkeypatch, provider="entra")
    assert not allowed(access(env, "entra", oid=None))
    assert not allowed(access(env, "entra", oid=""))


def test_long_group_lists_are_cut_to_the_limit_and_flagged(env: LocalIssuer) -> None:
    groups = [f"00000000-0000-0000-0000-{n:012d}" for n in range(200)]  # Entra's maximum

    context = allowed(env.token(groups=groups, roles=["r"]))["context"]

    kept = json.loads(context["groups"])
    assert len(context["groups"]) <= MAX_CONTEXT_FIELD_CHARS
    assert kept == groups[: len(kept)]
    assert 0 < len(kept) < len(groups)
    assert context["truncated"] == "groups"
    assert context["roles"] == '["r"]'
    assert all(isinstance(value, str) for value in context.values())
    caller = caller_from({"requestContext": {"authorizer": context}})
    assert caller is not None and caller.truncated == ("groups",)


# --- per-route scopes -----------------------------------------------------------------------------

PREFIX = REST_ARN.split("/v1/")[0] + "/v1/"


def route_arns() -> dict[str, str]:
    arns = {}
    for route in AUTHORIZED_ROUTES:
        path = route.full_path.replace("{session_id}", "3f2a-b")
        arns[f"{PREFIX}{route.method}{path}"] = ROUTE_ACCESS[(route.method, route.path)]
    return arns


def covers(policy: dict[str, Any], arn: str) -> bool:
    resources = policy["policyDocument"]["Statement"][0]["Resource"]
    resources = [resources] if isinstance(resources, str) else resources
    return any(fnmatchcase(arn, resource) for resource in resources)


@pytest.mark.parametrize(
    ("scope", "kinds"),
    [("read chat", {"read", "chat"}), ("read", {"read"}), ("chat", {"chat"}), ("other", set())],
)
def test_a_cached_policy_never_opens_a_route_that_needs_more(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, scope: str, kinds: set[str]
) -> None:
    """API Gateway caches the first answer for a token and checks every later route against it.

    Whichever route comes first, the policy is the same and covers exactly the routes whose
    scopes the token has; a token with neither is denied outright.
    """
    set_rules(monkeypatch, read_scopes=["read"])
    set_rules(monkeypatch, chat_scopes=["chat"])
    token = env.token(scope=scope)
    arns = route_arns()
    assert set(arns.values()) == {"read", "chat"}

    policies = []
    for first in arns:
        event = bearer_event(token)
        event["methodArn"] = first
        policies.append(allowed(token, event))
    if not kinds:
        assert policies == [None] * len(arns)
        return
    assert all(policy == policies[0] for policy in policies)
    for arn, kind in arns.items():
        assert covers(policies[0], arn) is (kind in kinds), arn
    assert not covers(policies[0], f"{PREFIX}GET/api/v1/unknown") or kinds == {"read", "chat"}
    assert not covers(policies[0], f"{PREFIX}POST/v1/completions") or kinds == {"read", "chat"}
    assert not covers(policies[0], REST_ARN.replace("/v1/", "/prod/"))


def test_only_chat_scopes_configured(env: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read routes need nothing extra when only chat scopes are configured."""
    set_rules(monkeypatch, chat_scopes=["chat"])
    policy = allowed(env.token(scope="openid"))

    assert policy is not None
    for arn, kind in route_arns().items():
        assert covers(policy, arn) is (kind == "read")


@pytest.mark.parametrize(("scope", "ok"), [("chat", True), ("read", False), ("read chat", True)])
def test_websocket_connect_needs_the_connect_scopes(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, scope: str, ok: bool
) -> None:
    assert WEBSOCKET_CONNECT_ACCESS == "chat"
    set_rules(monkeypatch, read_scopes=["read"])
    set_rules(monkeypatch, chat_scopes=["chat"])

    assert bool(allowed("", connect_event(query=env.token(scope=scope)))) is ok


def test_every_authorized_route_has_an_access_kind() -> None:
    authorized = {(route.method, route.path) for route in AUTHORIZED_ROUTES}
    assert set(ROUTE_ACCESS) == authorized
    assert len(authorized) == len(AUTHORIZED_ROUTES)  # no two bases share a relative path
    assert {route.full_path for route in OPENAI_ROUTES} <= {
        route.full_path for route in AUTHORIZED_ROUTES
    }
    assert set(ROUTE_ACCESS.values()) == {"read", "chat"}


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        '{"provider": "auth0"}',
        '{"required_scopes": ["a \\"b\\""]}',
        '{"read_scopes": ["a b"]}',
        '{"chat_scopes": [""]}',
        '{"required_scopes": "a"}',
        '{"allowed_client_ids": [1]}',
        '{"allowed_tenant_ids": ["9188040d-6c67-4c5b-b112-36a304b66dad"]}',  # generic: no tid
        '{"require_access_token_typ": "true"}',
        '{"require_typ": true}',
        "[]",
        "not json",
    ],
)
def test_bad_settings_deny_every_request(
    env: LocalIssuer, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    token = env.token()
    assert allowed(token)
    monkeypatch.setenv(Env.JWT_VALIDATION, value)

    assert not allowed(token)
    with pytest.raises(ConfigurationError):
        Settings.from_env({Env.JWT_ISSUER: env.url, Env.JWT_VALIDATION: value})


def test_settings_from_env_parse_the_rules() -> None:
    settings = Settings.from_env(
        {
            Env.JWT_ISSUER: "https://login.microsoftonline.com/t/v2.0",
            Env.JWT_VALIDATION: json.dumps(
                {
                    "provider": "entra",
                    "required_scopes": ["a", "b", "a"],
                    "allowed_client_ids": ["x", "y"],
                    "allowed_tenant_ids": [],
                    "require_access_token_typ": True,
                }
            ),
        }
    )

    assert settings.required_scopes == ("a", "b")
    assert settings.allowed_client_ids == frozenset({"x", "y"})
    assert settings.allowed_tenant_ids is None
    assert settings.require_access_token_typ is True
    assert Settings.from_env({Env.JWT_ISSUER: "https://idp.example.com"}) == Settings(
        "https://idp.example.com"
    )
