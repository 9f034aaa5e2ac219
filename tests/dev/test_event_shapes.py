"""The events the functions receive from the dev server have the shapes API Gateway sends,
as recorded in ``shared/events``: the same fields, at every level the code reads."""

from __future__ import annotations

import json
import time
from typing import Any

from devserver.server import DevServer
from tests.support.dev_server import DEV_GROUP, Api, websocket
from tests.support.events import load_event

pytestmark = DEV_GROUP


def latest(dev: DevServer, suffix: str, where: Any) -> dict[str, Any]:
    assert dev.functions is not None
    for name, event in reversed(dev.functions.recent_events):
        if name.endswith(suffix) and where(event):
            return event
    raise AssertionError(f"no {suffix} event matched")


def assert_shape(event: dict[str, Any], sample: dict[str, Any], *, extra: set[str]) -> None:
    assert set(event) == set(sample) | (extra & set(event)), set(event) ^ set(sample)
    context, sample_context = event["requestContext"], sample["requestContext"]
    assert set(sample_context) <= set(context), set(sample_context) - set(context)
    assert set(context) - set(sample_context) <= {"authorizer", "messageId"}


def test_rest_events(dev: DevServer, alice: Api) -> None:
    alice.http.get("/api/v1/sessions", params={"limit": "5"})
    event = latest(dev, "-main", lambda e: e.get("resource") == "/api/v1/sessions")
    sample = load_event("rest-proxy-request")
    assert set(event) == set(sample)
    assert set(event["requestContext"]) == set(sample["requestContext"])
    assert set(event["requestContext"]["identity"]) == set(sample["requestContext"]["identity"])
    assert event["multiValueQueryStringParameters"] == {"limit": ["5"]}
    assert event["requestContext"]["authorizer"]["principalId"] == "alice"
    assert event["requestContext"]["authorizer"]["user_id"] == "alice"  # the context, passed on
    token = latest(dev, "-jwt-authorizer", lambda e: e.get("type") == "TOKEN")
    assert set(token) == set(load_event("rest-token-authorizer"))
    assert token["methodArn"].endswith(f"/{dev.stack.rest.stage}/GET/api/v1/sessions")


def test_websocket_events(dev: DevServer) -> None:
    with websocket(dev, "alice") as ws:
        ws.send(json.dumps({"action": "ping"}))
        ws.recv(timeout=10)
    authorizer = latest(dev, "-jwt-authorizer", lambda e: e.get("type") == "REQUEST")
    sample = load_event("websocket-connect-authorizer-request")
    assert set(authorizer) == set(sample)
    assert set(authorizer["requestContext"]) == set(sample["requestContext"])
    connection_id = authorizer["requestContext"]["connectionId"]

    def of_connection(route: str) -> Any:
        return lambda e: (
            e["requestContext"].get("routeKey") == route
            and (e["requestContext"]["connectionId"] == connection_id)
        )

    query = {"queryStringParameters", "multiValueQueryStringParameters"}
    connect = latest(dev, "-websocket", of_connection("$connect"))
    assert_shape(connect, load_event("websocket-connect"), extra=query)
    assert connect["requestContext"]["authorizer"]["principalId"] == "alice"
    message = latest(dev, "-websocket", of_connection("$default"))
    assert_shape(message, load_event("websocket-message"), extra=set())
    assert json.loads(message["body"]) == {"action": "ping"}

    deadline = time.monotonic() + 10
    while True:
        try:
            disconnect = latest(dev, "-websocket", of_connection("$disconnect"))
            break
        except AssertionError:
            assert time.monotonic() < deadline, "no $disconnect event"
            time.sleep(0.05)
    assert_shape(disconnect, load_event("websocket-disconnect"), extra=set())
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1000
