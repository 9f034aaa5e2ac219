"""CORS: the REST API sends preflights (unauthenticated OPTIONS methods) to the main function,
which answers them for the origins the stack configures and adds the same headers to real
responses, errors included. Origins come from CORS_ALLOWED_ORIGINS (tests/functions/__init__)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.contract import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, REST_ROUTES, Route
from functions.main.app import app
from tests.functions.helpers import Rest

ALLOWED = "https://app.example.com"


def with_headers(event: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    event["headers"] = {**event["headers"], **headers}
    event["multiValueHeaders"] = {
        **event["multiValueHeaders"],
        **{name: [value] for name, value in headers.items()},
    }
    return event


def preflight(
    rest: Rest,
    origin: str,
    method: str = "POST",
    path: str = "/sessions",
    request_headers: str = "authorization,content-type",
) -> Any:
    event = rest.event("OPTIONS", path, user=None)
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": request_headers,
    }
    return rest.invoke(with_headers(event, headers))


def listed(header: str) -> set[str]:
    """The names of a comma-separated header list, lower-cased."""
    return {name.strip().lower() for name in header.split(",")}


def documented_headers() -> tuple[set[str], set[str]]:
    """The request headers the OpenAPI document names (bearer ``Authorization`` and JSON
    bodies' ``Content-Type`` included) and the response headers it promises."""
    request = {"authorization", "content-type"}
    response: set[str] = set()
    for operations in app.openapi()["paths"].values():
        for operation in operations.values():
            request |= {
                parameter["name"].lower()
                for parameter in operation.get("parameters", [])
                if parameter["in"] == "header"
            }
            for answer in operation["responses"].values():
                response |= {name.lower() for name in answer.get("headers", {})}
    return request, response


def test_the_cors_lists_cover_every_documented_header() -> None:
    """Mutation caught: a header added to the API (a parameter, a response header) but not to
    contract.CORS_*: browsers would refuse the request or hide the header from scripts."""
    request, response = documented_headers()
    assert "idempotency-key" in request and "retry-after" in response
    assert request <= {name.lower() for name in CORS_ALLOW_HEADERS}
    assert response <= {name.lower() for name in CORS_EXPOSE_HEADERS}


@pytest.mark.parametrize("route", REST_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_a_preflight_with_every_documented_header_succeeds_on_every_route(
    app_env: dict[str, str], rest: Rest, route: Route
) -> None:
    path = route.path.replace("{session_id}", "0b515f04-62f1-415e-a225-f6913c371fab")
    asked = ",".join(name.lower() for name in CORS_ALLOW_HEADERS)
    response = preflight(rest, ALLOWED, route.method, path, asked)
    assert response.status == 200, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert route.method in response.headers["access-control-allow-methods"]
    allowed = listed(response.headers["access-control-allow-headers"])
    assert {name.lower() for name in CORS_ALLOW_HEADERS} <= allowed


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


def test_retry_after_is_exposed_to_browsers(app_env: dict[str, str], rest: Rest) -> None:
    response = rest.invoke(
        with_headers(rest.event("GET", "/sessions", user=None), {"Origin": ALLOWED})
    )
    assert "retry-after" in listed(response.headers["access-control-expose-headers"])
