"""Drive the real handlers with the recorded API Gateway events, changing only path, body,
query, identity and ids, and read back what they answered."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from fakes.connections import WsManagementFake
from functions.contract import API_BASE_PATH, Env
from functions.core import aws
from functions.main.handler import handler as main_handler
from functions.websocket.handler import handler as websocket_handler
from tests.support.events import load_event

MODELS = ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0")
DEFAULT_KNOWLEDGE_BASE_ID = "KBDEFAULT1"
# The session title model of the tests that turn titles on (conftest.titles_on): none of the
# chat models, so what is used is the setting.
TITLE_MODEL = "amazon.nova-micro-v1:0"
USER_A = "user-a"
USER_B = "user-b"
_NO_BODY = object()


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that Powertools and the handlers read.

    The remaining time counts down from ``timeout_ms`` since the context was made, as Lambda's
    does from the invocation's start.
    """

    function_name: str = "ai-assistant-test-main"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:ai-assistant-test-main"
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_ms: int = 30_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(int(self.timeout_ms - 1000 * (time.monotonic() - self.started)), 0)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text) if self.text else None

    def assert_error(self, status: int, code: str) -> dict[str, Any]:
        """The response is the one error shape with this status and code; returns ``error``."""
        assert self.status == status, (self.status, self.text)
        body = self.json
        assert set(body) == {"error"}, body
        error = body["error"]
        assert error["code"] == code, error
        assert isinstance(error["message"], str)
        assert error["message"]
        assert set(error) <= {"code", "message", "details", "quota"}
        return error


def _ensure_event_loop() -> None:
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def authorizer_context(user_id: str) -> dict[str, Any]:
    """``requestContext.authorizer`` as API Gateway passes our authorizer's answer on."""
    return {"principalId": user_id, "user_id": user_id, "integrationLatency": 0}


class Rest:
    """Calls the main handler with the recorded REST proxy event."""

    def __init__(self, context: LambdaContext) -> None:
        self.context = context

    def event(
        self,
        method: str,
        path: str,
        *,
        user: str | None = USER_A,
        body: Any = _NO_BODY,
        raw_body: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        event = load_event("rest-proxy-request")
        for name, value in (headers or {}).items():
            event["headers"][name] = value
            event["multiValueHeaders"][name] = [value]
        full_path = API_BASE_PATH + path
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = event["resource"] = full_path
        event["requestContext"]["path"] = event["requestContext"]["resourcePath"] = full_path
        event["queryStringParameters"] = dict(query) if query else None
        event["multiValueQueryStringParameters"] = (
            {name: [value] for name, value in query.items()} if query else None
        )
        if raw_body is not None:
            event["body"] = raw_body
        else:
            event["body"] = None if body is _NO_BODY else json.dumps(body)
        if user is not None:
            event["requestContext"]["authorizer"] = authorizer_context(user)
        return event

    def invoke(self, event: dict[str, Any]) -> HttpResponse:
        """Run the handler; from another thread (another container, in a concurrency test)
        with an event loop of that thread's own, as each Lambda process has."""
        if threading.current_thread() is not threading.main_thread():
            _ensure_event_loop()
        result = main_handler(event, self.context)
        headers = {name.lower(): value for name, value in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name.lower()] = ",".join(values)
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return HttpResponse(result["statusCode"], headers, body)

    def call(self, method: str, path: str, **kwargs: Any) -> HttpResponse:
        return self.invoke(self.event(method, path, **kwargs))

    def create_session(self, user: str = USER_A, **body: Any) -> dict[str, Any]:
        response = self.call("POST", "/sessions", user=user, body=body)
        assert response.status == 201, response.text
        return response.json


class WebSocket:
    """Calls the WebSocket handler with the recorded connect/message/disconnect events."""

    def __init__(self, context: LambdaContext, management: WsManagementFake) -> None:
        self.context = context
        self.management = management

    @staticmethod
    def new_connection_id() -> str:
        """Shaped like API Gateway's ids (base64, with ``=``), which need URL-encoding."""
        return base64.b64encode(os.urandom(10)).decode()

    def connect(self, connection_id: str, user: str | None = USER_A) -> dict[str, Any]:
        event = load_event("websocket-connect")
        event["requestContext"]["connectionId"] = connection_id
        if user is not None:
            event["requestContext"]["authorizer"] = authorizer_context(user)
        return websocket_handler(event, self.context)

    def disconnect(self, connection_id: str) -> dict[str, Any]:
        event = load_event("websocket-disconnect")
        event["requestContext"]["connectionId"] = connection_id
        return websocket_handler(event, self.context)

    def send(self, connection_id: str, payload: Any, *, user: str | None = None) -> dict[str, Any]:
        """A client frame to ``$default``; ``payload`` is JSON-encoded unless it is a string.

        ``user`` adds the authorizer context to the event, as API Gateway may; by default the
        function finds the user through the connection recorded at ``$connect``.
        """
        event = load_event("websocket-message")
        event["requestContext"]["routeKey"] = "$default"
        event["requestContext"]["connectionId"] = connection_id
        event["body"] = payload if isinstance(payload, str) else json.dumps(payload)
        if user is not None:
            event["requestContext"]["authorizer"] = authorizer_context(user)
        return websocket_handler(event, self.context)

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        return self.management.frames(connection_id)

    def open(self, user: str = USER_A) -> str:
        """Connect a new connection as ``user``; returns its id."""
        connection_id = self.new_connection_id()
        assert self.connect(connection_id, user) == {"statusCode": 200}
        return connection_id


def table(env_name: str) -> str:
    return os.environ[env_name]


def _dynamodb() -> Any:
    """The tests' own DynamoDB client, for the endpoint the environment names now.

    One per endpoint rather than one per call: tests poll the tables while a forked function
    runs, and building a client each time costs tens of milliseconds of CPU that the function
    under its countdown needs, and takes botocore's and the import system's locks in a thread
    of the process that forks it.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    return _dynamodb_at(endpoint)


@functools.cache
def _dynamodb_at(endpoint: str | None) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint)


def seed_history(session_id: str, turns: int, text: Callable[[int], str]) -> None:
    """Write ``turns`` alternating turns straight into DynamoDB, in the layout the store uses.

    Seeding only: 1,000 appends through the counter would take seconds against moto. Reading,
    paging and the model's context are all exercised through the real code afterwards.
    """
    client = _dynamodb()
    table = os.environ[Env.MESSAGES_TABLE]
    requests = [
        {
            "PutRequest": {
                "Item": {
                    "session_id": {"S": session_id},
                    "seq": {"N": str(seq)},
                    "message_id": {"S": str(uuid.uuid4())},
                    "role": {"S": "user" if seq % 2 else "assistant"},
                    "content": {"S": text(seq)},
                    "created_at": {"S": "2025-01-01T00:00:00.000000Z"},
                }
            }
        }
        for seq in range(1, turns + 1)
    ]
    for start in range(0, len(requests), 25):
        pending = {table: requests[start : start + 25]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
    client.update_item(
        TableName=os.environ[Env.SESSIONS_TABLE],
        Key={"session_id": {"S": session_id}},
        UpdateExpression="SET message_count = :count",
        ExpressionAttributeValues={":count": {"N": str(turns)}},
    )


def stored_messages(session_id: str) -> list[dict[str, Any]]:
    """Every item of a session in the messages table, read directly (not through the code)."""
    client = _dynamodb()
    paginator = client.get_paginator("query")
    items: list[dict[str, Any]] = []
    for page in paginator.paginate(
        TableName=table(Env.MESSAGES_TABLE),
        KeyConditionExpression="session_id = :s",
        ExpressionAttributeValues={":s": {"S": session_id}},
    ):
        items.extend(page["Items"])
    return items


def stored_session(session_id: str) -> dict[str, Any] | None:
    client = _dynamodb()
    return client.get_item(
        TableName=table(Env.SESSIONS_TABLE), Key={"session_id": {"S": session_id}}
    ).get("Item")


class RawBody:
    """The raw-stream interface botocore reads a response body through."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@contextmanager
def dynamodb_throttled(
    operation: str = "*", when: Callable[[AWSPreparedRequest], bool] | None = None
) -> Iterator[list[str]]:
    """Make DynamoDB answer ``operation`` (``"*"``: every call) as a throttled table does;
    with ``when``, only the requests it accepts (the others go to moto as usual).

    moto cannot throttle, so a ``before-send`` hook on the functions' own DynamoDB client
    answers in the service's place with the wire response DynamoDB sends: HTTP 400 with
    ``ProvisionedThroughputExceededException``. Everything after the socket is real botocore:
    parsing, the adaptive retry policy and its backoff, the final ``ClientError``. Yields the
    list of operations that were answered that way, one per attempt.
    """
    attempts: list[str] = []
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded.",
        }
    ).encode()

    def answer(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if when is not None and not when(request):
            return None
        attempts.append(request.headers["X-Amz-Target"].decode().split(".")[-1])
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "throttled"}
        return AWSResponse(request.url, 400, headers, RawBody(body))

    events = aws.client("dynamodb").meta.events
    event_name = "before-send.dynamodb" + ("" if operation == "*" else f".{operation}")
    events.register(event_name, answer, unique_id="test-throttle")
    try:
        yield attempts
    finally:
        events.unregister(event_name, unique_id="test-throttle")
