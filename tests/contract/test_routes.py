"""API Gateway's routes, as synthesized, against the routes the code serves.

The REST tree is rebuilt from ``aws_api_gateway_resource`` parent links and compared with
the routes of the two apps behind it: the main app (``functions.main.app.app``, through all its
routers) under ``API_BASE_PATH``, and the OpenAI-compatible app (``functions.openai_api.app``)
under ``OPENAI_BASE_PATH``. Whether a main route needs an authorizer is read from the code (does
it depend on ``current_user``?), not from the contract, so the two sides are judged
independently; every OpenAI-compatible route needs one, since that app reads its caller only
from the request context the authorizer fills in.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from functions.contract import (
    API_BASE_PATH,
    AUTHORIZER,
    MAIN,
    OPENAI_API,
    OPENAI_BASE_PATH,
    WEBSOCKET,
    WEBSOCKET_ROUTES,
)
from functions.main.app import app
from functions.main.deps import current_user
from functions.openai_api.app import app as openai_app
from tests.compute.synth import STACKS
from tests.security.synthesized import Stack

pytestmark = STACKS

_RESOURCE = re.compile(r"\$\{aws_api_gateway_resource\.([\w-]+)\.id\}")
_ROOT = re.compile(r"\$\{aws_api_gateway_rest_api\.([\w-]+)\.root_resource_id\}")
CORS_PREFLIGHT = "OPTIONS"  # answered by the app's CORS middleware, not by a route


def resource_path(stack: Stack, reference: str) -> str:
    """The full path of an API Gateway resource, from its ``${...id}`` reference."""
    if _ROOT.fullmatch(reference):
        return "/"
    match = _RESOURCE.fullmatch(reference)
    assert match, f"not a resource of this stack: {reference}"
    resource = stack.resources("aws_api_gateway_resource")[match[1]]
    parent = resource_path(stack, resource["parent_id"])
    return parent.rstrip("/") + "/" + resource["path_part"]


def gateway_methods(stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, path) -> the synthesized ``aws_api_gateway_method``, CORS excluded."""
    methods: dict[tuple[str, str], dict[str, Any]] = {}
    for method in stack.resources("aws_api_gateway_method").values():
        if method["http_method"] != CORS_PREFLIGHT:
            key = (method["http_method"], resource_path(stack, method["resource_id"]))
            assert key not in methods, f"{key} is declared twice"
            methods[key] = method
    return methods


def app_routes(served_by: Any = app) -> dict[tuple[str, str], RouteContext]:
    """(HTTP method, full path) -> the route, through every included router."""
    return {
        (method, route.path): route
        for route in iter_route_contexts(served_by.routes)
        if isinstance(route.original_route, APIRoute)
        for method in route.methods or ()
    }


def is_openai(path: str) -> bool:
    return path.startswith(OPENAI_BASE_PATH + "/")


def needs_caller(dependant: Dependant) -> bool:
    """Whether a route (through any dependency) needs the authenticated caller."""
    return any(
        dependency.call is current_user or needs_caller(dependency)
        for dependency in dependant.dependencies
    )


def test_every_gateway_route_is_served_by_the_app(stack: Stack) -> None:
    """Mutations caught: a route renamed in API Gateway (``/session``) or in the app, a method
    added to the gateway that the app does not serve (it would answer 404/405)."""
    served = set(app_routes()) | set(app_routes(openai_app))
    missing = set(gateway_methods(stack)) - served
    assert not missing, f"API Gateway exposes routes the app does not serve: {sorted(missing)}"


def test_every_app_route_is_exposed_by_the_gateway(stack: Stack) -> None:
    """Mutations caught: a new FastAPI route nobody added to the stack (unreachable), a route
    declared outside the API's base path."""
    routes = app_routes()
    outside = [key for key in routes if not key[1].startswith(API_BASE_PATH + "/")]
    assert not outside, f"routes outside {API_BASE_PATH}: {outside}"
    openai_routes = app_routes(openai_app)
    outside = [key for key in openai_routes if not is_openai(key[1])]
    assert not outside, f"OpenAI-compatible routes outside {OPENAI_BASE_PATH}: {outside}"
    missing = (set(routes) | set(openai_routes)) - set(gateway_methods(stack))
    assert not missing, f"the apps serve routes API Gateway does not expose: {sorted(missing)}"


def test_authorization_matches_what_each_route_needs(stack: Stack) -> None:
    """Routes that need the caller use the JWT authorizer (CUSTOM, TOKEN on the authorizer
    function); the others (health) are open.

    Mutations caught: health behind the authorizer (the public health check breaks), a
    session route without it (the app answers 401 to everyone), an authorizer that invokes
    the wrong function."""
    routes = app_routes()
    authorizer_uri = f"${{aws_lambda_function.{stack.function_id(AUTHORIZER)}.invoke_arn}}"
    methods = gateway_methods(stack)
    assert methods
    for key, method in methods.items():
        if not is_openai(key[1]) and not needs_caller(routes[key].dependant):
            assert method["authorization"] == "NONE", key
            continue
        assert method["authorization"] == "CUSTOM", key
        authorizer_id = re.fullmatch(
            r"\$\{aws_api_gateway_authorizer\.([\w-]+)\.id\}", method["authorizer_id"]
        )
        assert authorizer_id, method["authorizer_id"]
        authorizer = stack.resources("aws_api_gateway_authorizer")[authorizer_id[1]]
        assert authorizer["authorizer_uri"] == authorizer_uri
    open_routes = {key for key, route in routes.items() if not needs_caller(route.dependant)}
    assert open_routes == {("GET", f"{API_BASE_PATH}/health")}


def test_every_rest_method_invokes_its_function(stack: Stack) -> None:
    """Every method is a Lambda proxy integration: of the main function, preflights included
    (the app's CORS middleware answers them on any path), except the OpenAI-compatible routes,
    which stream from their own function (``response-streaming-invocations``, ``STREAM``).

    Mutations caught: a route wired to the WebSocket function, a non-proxy integration (the
    app would never see the path), a streamed route buffered (the answer would arrive whole)
    or pointed at main."""
    main_uri = f"${{aws_lambda_function.{stack.function_id(MAIN)}.invoke_arn}}"
    openai_arn = f"aws_lambda_function.{stack.function_id(OPENAI_API)}.arn"
    integrations = {
        (i["resource_id"], i["http_method"]): i
        for i in stack.resources("aws_api_gateway_integration").values()
    }
    streamed = 0
    for id_, method in stack.resources("aws_api_gateway_method").items():
        http_method = f"${{aws_api_gateway_method.{id_}.http_method}}"
        integration = integrations.get((method["resource_id"], http_method))
        assert integration, f"no integration for {id_}"
        assert integration["type"] == "AWS_PROXY"
        path = resource_path(stack, method["resource_id"])
        if is_openai(path) and method["http_method"] != CORS_PREFLIGHT:
            streamed += 1
            assert integration.get("response_transfer_mode") == "STREAM", id_
            assert openai_arn in integration["uri"], integration["uri"]
            assert "/response-streaming-invocations" in integration["uri"], integration["uri"]
        else:
            assert integration["uri"] == main_uri, id_
            assert integration.get("response_transfer_mode", "BUFFERED") == "BUFFERED", id_
    assert streamed == len(app_routes(openai_app))


def test_websocket_routes_reach_the_websocket_function(stack: Stack) -> None:
    """The WebSocket API has exactly the contract's routes, all on the websocket function,
    ``$connect`` behind the authorizer function. Mutations caught: a missing ``$default``
    (messages would be dropped), ``$connect`` without the authorizer."""
    routes = {r["route_key"]: r for r in stack.resources("aws_apigatewayv2_route").values()}
    assert set(routes) == set(WEBSOCKET_ROUTES)
    websocket_uri = f"${{aws_lambda_function.{stack.function_id(WEBSOCKET)}.invoke_arn}}"
    authorizer_uri = f"${{aws_lambda_function.{stack.function_id(AUTHORIZER)}.invoke_arn}}"
    for key, route in routes.items():
        target = re.fullmatch(
            r"integrations/\$\{aws_apigatewayv2_integration\.([\w-]+)\.id\}", route["target"]
        )
        assert target, route["target"]
        integration = stack.resources("aws_apigatewayv2_integration")[target[1]]
        assert (integration["integration_type"], integration["integration_uri"]) == (
            "AWS_PROXY",
            websocket_uri,
        )
        if key == "$connect":
            authorizer_id = re.fullmatch(
                r"\$\{aws_apigatewayv2_authorizer\.([\w-]+)\.id\}", route["authorizer_id"]
            )
            assert authorizer_id, route
            authorizer = stack.resources("aws_apigatewayv2_authorizer")[authorizer_id[1]]
            assert authorizer["authorizer_uri"] == authorizer_uri
