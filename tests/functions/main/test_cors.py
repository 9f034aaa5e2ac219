"""CORS: the REST API sends preflights (unauthenticated OPTIONS methods) to the main function,
which answers them for the origins the stack configures and adds the same headers to real
responses, errors included. Origins come from CORS_ALLOWED_ORIGINS (tests/functions/__init__)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functions.helpers import Rest

ALLOWED = "https://app.example.com"


def with_headers(event: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    event["headers"] = {**event["headers"], **headers}
    event["multiValueHeaders"] = {
        **event["multiValueHeaders"],
        **{name: [value] for name, value in headers.items()},
    }
    return event


def preflight(rest: Rest, origin: str, method: str = "POST") -> Any:
    event = rest.event("OPTIONS", "/sessions", user=None)
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    return rest.invoke(with_headers(event, headers))


def test_preflight_from_an_allowed_origin(app_env: dict[str, str], rest: Rest) -> None:
    response = preflight(rest, ALLOWED)
    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://app.example.com"])
def test_preflight_from_another_origin_is_refused(
    app_env: dict[str, str], rest: Rest, origin: str
) -> None:
    response = preflight(rest, origin)
    assert response.status == 400
    assert "access-control-allow-origin" not in response.headers


def test_responses_and_errors_carry_the_origin(app_env: dict[str, str], rest: Rest) -> None:
    ok = rest.invoke(with_headers(rest.event("GET", "/health", user=None), {"Origin": ALLOWED}))
    assert ok.status == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    denied = rest.invoke(
        with_headers(rest.event("GET", "/sessions", user=None), {"Origin": ALLOWED})
    )
    denied.assert_error(401, "unauthorized")
    assert denied.headers["access-control-allow-origin"] == ALLOWED
