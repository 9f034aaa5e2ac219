"""REST TOKEN events: the policy shape, the context, and every way the header can be wrong."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from fakes.oidc import LocalIssuer, SigningKey
from functions.authorizer.handler import handler
from functions.contract import REST_ROUTES
from tests.functions.authorizer.helpers import (
    REST_ARN,
    REST_WILDCARD,
    bearer_event,
    denied,
    token_event,
)


def allow(resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}],
    }


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_valid_token_gets_an_allow_for_every_route_of_the_stage(
    env: LocalIssuer, key_name: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    token = env.token(key)

    response = handler(bearer_event(token), None)

    assert response == {
        "principalId": "user-123",
        "policyDocument": allow(REST_WILDCARD),
        "context": {
            "user_id": "user-123",
            "email": "ada@example.com",
            "username": "ada",
            "scope": "openid profile",
        },
    }


def test_the_wildcard_covers_every_rest_route_and_only_this_api_stage(env: LocalIssuer) -> None:
    """API Gateway caches the decision per token, so it must hold for every route of the stage."""
    resource = handler(bearer_event(env.token()), None)["policyDocument"]["Statement"][0][
        "Resource"
    ]
    prefix = "arn:aws:execute-api:us-east-1:123456789012:abcdef123"

    assert fnmatchcase(REST_ARN, resource)
    for route in REST_ROUTES:
        path = route.full_path.replace("{session_id}", "3f2a")
        assert fnmatchcase(f"{prefix}/v1/{route.method}{path}", resource)
    assert not fnmatchcase(f"{prefix}/prod/GET/api/v1/sessions", resource)
    assert not fnmatchcase(REST_ARN.replace("abcdef123", "otherapi1"), resource)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_any_case_of_bearer_is_accepted(env: LocalIssuer, scheme: str) -> None:
    response = handler(token_event(f"{scheme} {env.token()}"), None)

    assert response["principalId"] == "user-123"


def test_context_holds_only_the_claims_present_all_as_strings(env: LocalIssuer) -> None:
    token = env.token(email=None, scope=None, **{"cognito:username": None})

    response = handler(bearer_event(token), None)

    assert response["context"] == {"user_id": "user-123"}


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"username": "access-user"}, {"username": "access-user"}),
        ({"preferred_username": "oidc-user"}, {"username": "oidc-user"}),
        ({"username": "first", "preferred_username": "later"}, {"username": "first"}),
        ({"scp": ["read", "write"]}, {"scope": "read write"}),
        ({"scp": "read"}, {"scope": "read"}),
        ({"email": 42, "username": ["not", "a", "string"]}, {}),
    ],
)
def test_claim_mapping(env: LocalIssuer, claims: dict[str, Any], expected: dict[str, str]) -> None:
    """username: ``username``, then ``cognito:username``, then ``preferred_username``; scope:
    ``scope``, else ``scp`` (string or list); non-string values are left out."""
    bare = {"email": None, "scope": None, "cognito:username": None}
    token = env.token(**(bare | claims))

    context = handler(bearer_event(token), None)["context"]

    assert context == {"user_id": "user-123", **expected}
    assert all(isinstance(value, str) for value in context.values())


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc.def.ghi",
        "Bearer a.b.c extra",
        "garbage",
        "Bearer garbage",
        "Bearer not.a.jwt",
        "Bearer ....",
    ],
)
def test_malformed_authorization_is_denied(env: LocalIssuer, authorization: str) -> None:
    with denied():
        handler(token_event(authorization), None)
    assert env.jwks_fetches == 0  # nothing structurally invalid reaches the identity provider


def test_a_bare_token_without_the_bearer_scheme_is_denied(env: LocalIssuer) -> None:
    with denied():
        handler(token_event(env.token()), None)


def test_missing_authorization_token_is_denied(env: LocalIssuer) -> None:
    event = bearer_event(env.token())
    del event["authorizationToken"]

    with denied():
        handler(event, None)


@pytest.mark.parametrize("value", [None, 42, ["Bearer x"], {"token": "x"}])
def test_non_string_authorization_token_is_denied(env: LocalIssuer, value: object) -> None:
    with denied():
        handler(token_event(value), None)


def test_a_100_kb_token_is_denied_even_when_validly_signed(env: LocalIssuer) -> None:
    token = env.token(padding="x" * 100_000)
    assert len(token) > 100_000

    with denied():
        handler(bearer_event(token), None)
    assert env.jwks_fetches == 0


@pytest.mark.parametrize(
    "event",
    [None, "Bearer x", [], 42, {}, {"type": "TOKEN"}],
    ids=["none", "string", "list", "int", "empty", "no-method-arn"],
)
def test_events_that_are_not_authorizer_events_are_denied(event: object, env: LocalIssuer) -> None:
    with denied():
        handler(event, None)


@pytest.mark.parametrize(
    "method_arn",
    [
        "",
        "not-an-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        "arn:aws:execute-api:us-east-1:123456789012:abcdef123",
        "arn:aws:execute-api:us-east-1:123456789012:abcdef123/v1",
        "arn:aws:execute-api:us-east-1:12345:abcdef123/v1/GET/x",
        "arn:aws:execute-api:us-east-1:123456789012:*/v1/GET/x",
    ],
)
def test_malformed_method_arn_is_denied(env: LocalIssuer, method_arn: str) -> None:
    event = bearer_event(env.token())
    event["methodArn"] = method_arn

    with denied():
        handler(event, None)
    assert env.jwks_fetches == 0


def test_unknown_event_type_is_denied(env: LocalIssuer) -> None:
    event = bearer_event(env.token())
    event["type"] = "COGNITO"

    with denied():
        handler(event, None)


def test_other_partitions_keep_their_partition(env: LocalIssuer) -> None:
    event = bearer_event(env.token())
    event["methodArn"] = REST_ARN.replace("arn:aws:", "arn:aws-cn:").replace(
        "us-east-1", "cn-north-1"
    )

    resource = handler(event, None)["policyDocument"]["Statement"][0]["Resource"]

    assert resource == REST_WILDCARD.replace("arn:aws:", "arn:aws-cn:").replace(
        "us-east-1", "cn-north-1"
    )
