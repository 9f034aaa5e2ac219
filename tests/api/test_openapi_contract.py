"""The REST API against its own OpenAPI document, fuzzed by Schemathesis in-process.

Schemathesis generates requests for every operation of ``app.openapi()`` and sends them to the
ASGI app, whose repositories use the moto server and whose chat turns use the Bedrock fake.
Its three phases run: the document's examples (it has none), the deterministic coverage phase
(boundary values, missing and mistyped fields, wrong media types, undocumented methods) and
the Hypothesis fuzzing phase, each with valid and invalid data. Every response must

* not be a server error (``not_a_server_error``), and
* match the document (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``): a documented status, the
  documented media type, the documented headers, a body matching the documented schema; error
  responses included, since every route documents its errors;
* and reject what the document says is invalid (``negative_data_rejection``): bad input gets a
  documented 4xx, never a 2xx.

The generated values are aimed at seeded data half the time (:func:`aim_at_seeded_data`), so
200s are checked as well as 404s, and some requests meet AWS in trouble (:func:`trouble_for`),
so the documented 503 (with ``Retry-After``) and 502 (a refusing model, an unreachable
DynamoDB) are checked too; only then is a 5xx the
right answer. A second, smaller run goes without an authorizer context and checks the 401s.

Checks that do not apply here are left out on purpose:

* ``positive_data_acceptance``: a request valid by the document may still be refused: the
  model must be one of the deployment's ``BEDROCK_MODELS`` and the session must exist and be
  the caller's, which no schema can say.
* ``ignored_auth`` and ``missing_required_header`` on ``Authorization``: the bearer token is
  API Gateway's business (its authorizer checks it); the function trusts only the authorizer's
  context in the Lambda event. So the generated requests carry no ``Authorization`` header
  (``with-security-parameters = false``) and :data:`ANONYMOUS` covers the "no identity" path.
* the stateful checks (``use_after_free``, ``ensure_resource_availability``): they need
  OpenAPI links, which the document does not declare; tests/functions covers those flows.

Identity comes from API Gateway's authorizer context in the Lambda event, which Mangum puts in
the ASGI scope; :func:`behind_api_gateway` plays that part.
"""

from __future__ import annotations

import enum
import socket
import zlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fakes.bedrock import CONVERSE, BedrockFake
from functions.core import aws
from functions.main.app import app
from tests.api.conftest import Seeded
from tests.functions.helpers import MODELS, USER_A, Rest, authorizer_context, dynamodb_throttled
from tests.support.events import load_event

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SEED = 20240601
# What every response must satisfy, whatever state AWS is in.
CONFORMANCE_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
CHECKS = [not_a_server_error, *CONFORMANCE_CHECKS]


def _schema(max_examples: int, *, coverage: bool) -> schemathesis.BaseSchema:
    """The app's own document, with a bounded, reproducible generation (same seed, same run)."""
    return schemathesis.openapi.from_dict(
        app.openapi(),
        config=schemathesis.Config.from_dict(
            {
                "seed": SEED,
                "generation": {
                    "max-examples": max_examples,
                    "deterministic": True,
                    "with-security-parameters": False,
                },
                "phases": {"coverage": {"enabled": coverage}},
            }
        ),
    )


authenticated_schema = _schema(30, coverage=True)
# Without an identity every authorized route stops at the same 401: a few examples show it.
anonymous_schema = _schema(8, coverage=False)


def behind_api_gateway(asgi: ASGIApp, user: str | None) -> ASGIApp:
    """``asgi`` as Mangum runs it: the REST proxy event in ``scope["aws.event"]``, with the
    authorizer's context for ``user``, or the recorded event's empty one when ``user`` is None.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            event = load_event("rest-proxy-request")
            event["httpMethod"] = event["requestContext"]["httpMethod"] = scope["method"]
            event["path"] = event["requestContext"]["path"] = scope["path"]
            if user is not None:
                event["requestContext"]["authorizer"] = authorizer_context(user)
            scope = {**scope, "aws.event": event}
        await asgi(scope, receive, send)

    return wrapped


AUTHENTICATED = behind_api_gateway(app, USER_A)
ANONYMOUS = behind_api_gateway(app, None)


def _pick(value: object, salt: str, choices: int) -> int:
    """A number below ``choices`` derived from ``value`` alone: the deterministic coverage phase
    gets the same mix as the fuzzing phase, and a rerun of the seed sends the same requests."""
    return zlib.crc32(f"{salt}:{value!r}".encode("utf-8", "surrogatepass")) % choices


def _choose(generated: object, pool: tuple[str, ...]) -> object:
    """Half the time one of ``pool`` instead of ``generated``."""
    pick = _pick(generated, "choose", 2 * len(pool))
    return pool[pick // 2] if pick % 2 else generated


def aim_at_seeded_data(case: schemathesis.Case, seeded: Seeded) -> None:
    """Make valid generated values sometimes name what exists: a random session id is always
    a 404 and a random model id always a 400, which would hide every other answer.

    Only components generated as valid are touched, so a request built to be invalid stays so.
    """
    meta = case.meta
    if meta is None:
        return
    path = case.path_parameters
    if "session_id" in path and not meta.is_negative_at(ParameterLocation.PATH):
        pool = (*seeded.session_ids, seeded.foreign_session_id)
        path["session_id"] = _choose(path["session_id"], pool)
    if "message_id" in path and not meta.is_negative_at(ParameterLocation.PATH):
        path["message_id"] = _choose(path["message_id"], seeded.message_ids)
    query = case.query
    if query and "next_token" in query and not meta.is_negative_at(ParameterLocation.QUERY):
        pool = (seeded.messages_token,) if "session_id" in path else (seeded.sessions_token,)
        if case.path.endswith("/export"):
            pool = (seeded.export_token,)
        query["next_token"] = _choose(query["next_token"], pool)
    body = case.body
    if (
        isinstance(body, dict)
        and "model_id" in body
        and not meta.is_negative_at(ParameterLocation.BODY)
    ):
        body["model_id"] = _choose(body["model_id"], MODELS)


class Trouble(enum.Enum):
    NONE = "none"
    DYNAMODB_THROTTLED = "dynamodb-throttled"  # documented: 503 with Retry-After
    MODEL_REFUSES = "model-refuses"  # documented: 502 (only chat turns call the model)
    DYNAMODB_UNREACHABLE = "dynamodb-unreachable"  # documented: 502 dependency_unreachable


def trouble_for(case: schemathesis.Case) -> Trouble:
    """One request in eight meets a throttled DynamoDB, one in eight a model that refuses
    every call and one in eight a DynamoDB nothing listens for, so those documented answers are
    checked too. Decided on the generated request, before :func:`aim_at_seeded_data` puts this
    run's session ids in it."""
    body = None if isinstance(case.body, NotSet) else case.body
    pick = _pick((case.path_parameters, case.query, body), "trouble", 8)
    troubles = {
        0: Trouble.DYNAMODB_THROTTLED,
        1: Trouble.MODEL_REFUSES,
        2: Trouble.DYNAMODB_UNREACHABLE,
    }
    return troubles.get(pick, Trouble.NONE)


@contextmanager
def clients_with(**variables: str) -> Iterator[None]:
    """The functions' AWS clients built again with ``variables`` in their environment, and
    again without them afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        aws.reset_clients()
        try:
            yield
        finally:
            patch.undo()
            aws.reset_clients()


def single_attempt() -> AbstractContextManager[None]:
    """No botocore retry while a fault is on: a throttled or refused call fails at once, not
    after backoff. Only then: the other requests, and the seeding, keep the retry a deployed
    function has, so a call that the loaded test machine slowed past DynamoDB's 2 s read
    timeout is retried, as it would be, rather than answered 503. Fresh clients before and
    after (a throttled client's adaptive rate limiter would slow the next calls)."""
    return clients_with(AWS_MAX_ATTEMPTS="1")


@contextmanager
def dynamodb_unreachable() -> Iterator[None]:
    """The functions' DynamoDB endpoint on a port that refuses every connection."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening
        port = closed.getsockname()[1]
        with clients_with(AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{port}"):
            yield


@contextmanager
def aws_in(trouble: Trouble, bedrock: BedrockFake) -> Iterator[frozenset[int]]:
    """Yields the server errors that are the right answer in that trouble, rather than a bug."""
    if trouble is Trouble.DYNAMODB_THROTTLED:
        with single_attempt(), dynamodb_throttled():
            yield frozenset({503})
    elif trouble is Trouble.DYNAMODB_UNREACHABLE:
        with single_attempt(), dynamodb_unreachable():
            yield frozenset({502})
    elif trouble is Trouble.MODEL_REFUSES:
        bedrock.fail(400, "ValidationException", "refused", operation=CONVERSE, times=None)
        try:
            yield frozenset({502})
        finally:
            bedrock.reset()
    else:
        yield frozenset()


# The seeded data is shared by an operation's examples on purpose: what one request changes
# (a renamed or deleted session) is what the next one finds, as for a real client.
shared_world = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@authenticated_schema.parametrize()
@shared_world
def test_authenticated_requests_match_the_document(
    case: schemathesis.Case, seeded: Seeded, bedrock: BedrockFake
) -> None:
    trouble = trouble_for(case)
    aim_at_seeded_data(case, seeded)
    with aws_in(trouble, bedrock) as expected_server_errors:
        checks = CONFORMANCE_CHECKS if expected_server_errors else CHECKS
        response = case.call_and_validate(app=AUTHENTICATED, checks=checks)
    assert response.status_code < 500 or response.status_code in expected_server_errors


@anonymous_schema.parametrize()
@shared_world
def test_anonymous_requests_match_the_document(case: schemathesis.Case, seeded: Seeded) -> None:
    aim_at_seeded_data(case, seeded)
    case.call_and_validate(app=ANONYMOUS, checks=CHECKS)


@pytest.mark.parametrize(
    ("method", "path", "body_schema"),
    [
        ("POST", "/sessions", "SessionCreate"),
        ("PATCH", "/sessions/{id}", "SessionUpdate"),
        ("POST", "/sessions/{id}/messages", "MessageCreate"),
    ],
)
def test_null_is_documented_exactly_where_it_is_accepted(
    rest: Rest, method: str, path: str, body_schema: str
) -> None:
    """Schemathesis sends a documented null as valid data and only expects a 4xx for an
    undocumented one; this pins the reverse too, which its checks cannot (see the module
    docstring on ``positive_data_acceptance``)."""
    properties = app.openapi()["components"]["schemas"][body_schema]["properties"]
    session_id = rest.create_session()["session_id"]
    for name, field in properties.items():
        documented = any(branch.get("type") == "null" for branch in field.get("anyOf", []))
        response = rest.call(method, path.format(id=session_id), body={name: None})
        assert (response.status < 400) == documented, (name, response.status, response.text)
