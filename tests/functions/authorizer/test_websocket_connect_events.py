"""WebSocket ``$connect`` REQUEST events: token from the Authorization header or ``?token=``."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from fakes.oidc import LocalIssuer
from functions.authorizer.handler import handler
from tests.functions.authorizer.helpers import (
    WEBSOCKET_ARN,
    WEBSOCKET_WILDCARD,
    connect_event,
    denied,
)


@pytest.mark.parametrize("header_name", ["Authorization", "authorization", "AUTHORIZATION"])
@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", ""])
def test_authorization_header_any_name_case_with_or_without_bearer(
    env: LocalIssuer, header_name: str, scheme: str
) -> None:
    event = connect_event(header=scheme + env.token(), header_name=header_name)

    response = handler(event, None)

    assert response["principalId"] == "user-123"
    assert response["context"]["user_id"] == "user-123"


def test_token_query_parameter(env: LocalIssuer) -> None:
    response = handler(connect_event(query=env.token()), None)

    assert response == {
        "principalId": "user-123",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": WEBSOCKET_WILDCARD}
            ],
        },
        "context": {
            "user_id": "user-123",
            "email": "ada@example.com",
            "username": "ada",
            "scope": "openid profile",
        },
    }


def test_the_wildcard_covers_connect_of_this_stage_only(env: LocalIssuer) -> None:
    resource = handler(connect_event(query=env.token()), None)["policyDocument"]["Statement"][0]
    assert fnmatchcase(WEBSOCKET_ARN, resource["Resource"])
    assert not fnmatchcase(WEBSOCKET_ARN.replace("/production/", "/staging/"), resource["Resource"])


def test_the_header_wins_over_the_query_parameter(env: LocalIssuer) -> None:
    with denied():
        handler(connect_event(header="Bearer garbage", query=env.token()), None)

    response = handler(connect_event(header=env.token(), query="garbage"), None)
    assert response["principalId"] == "user-123"


def test_an_empty_header_falls_back_to_the_query_parameter(env: LocalIssuer) -> None:
    response = handler(connect_event(header="  ", query=env.token()), None)

    assert response["principalId"] == "user-123"


@pytest.mark.parametrize(
    ("header", "query"),
    [
        (None, None),
        ("", None),
        (None, ""),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("garbage", None),
        (None, "garbage"),
    ],
)
def test_missing_or_malformed_tokens_are_denied(
    env: LocalIssuer, header: str | None, query: str | None
) -> None:
    with denied():
        handler(connect_event(header=header, query=query), None)


def test_null_headers_are_tolerated(env: LocalIssuer) -> None:
    """API Gateway sends ``null`` rather than ``{}`` when a request has no headers or query."""
    event = connect_event(query=env.token())
    event["headers"] = event["multiValueHeaders"] = None

    assert handler(event, None)["principalId"] == "user-123"


def test_null_query_without_a_header_is_denied(env: LocalIssuer) -> None:
    event = connect_event()
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None

    with denied():
        handler(event, None)


def test_non_object_headers_are_denied(env: LocalIssuer) -> None:
    event = connect_event(query=env.token())
    event["headers"] = ["Authorization", env.token()]

    with denied():
        handler(event, None)
