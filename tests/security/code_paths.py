"""Run every code path of the main, WebSocket, OpenAI-compatible and session cleanup functions,
each with the credentials of a moto IAM user that carries that function's synthesized
statements, against a moto server that enforces IAM; record what each function called and which
variables it read.

The cleanup function is driven as its event source mapping drives it: the mapping's poller
reads the sessions table's stream with the cleanup function's credentials (its role, in AWS),
passes the ``REMOVE`` records to the handler, and sends a failed batch to the failure queue;
those calls are the mapping's, recorded apart from the code's.

Everything the functions see comes from the synthesized stack: their environment variables
(table names, models, knowledge base, the callback URL of this stack's WebSocket stage), the
tables' names and the statements. Bedrock runtime and agent runtime and the WebSocket
management API are the loopback fakes, which enforce nothing; DynamoDB and bedrock-agent
(``ListKnowledgeBases``) are moto's, enforced.

The run happens once per environment and process (:func:`enforced_run`); the tests assert on
its :class:`Run`.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from starlette.testclient import TestClient

from fakes.bedrock import BedrockFake, model_like_deltas
from fakes.connections import WsManagementFake
from fakes.dynamodb_streams import StreamReader, lambda_event
from functions.cleanup import handler as cleanup_handler
from functions.contract import (
    CLEANUP,
    CONNECTIONS,
    FUNCTIONS,
    MAIN,
    MESSAGES,
    OPENAI_API,
    OPENAI_BASE_PATH,
    OPENAI_KNOWLEDGE_BASE_HEADER,
    OPENAI_SESSION_HEADER,
    REQUEST_CONTEXT_HEADER,
    SESSIONS,
    WEBSOCKET,
    Env,
    attachment_key,
    attachments_prefix,
)
from functions.core import aws
from functions.core.settings import get_settings
from functions.data.pagination import derived_key
from functions.openai_api.app import app as openai_app
from tests.functions.helpers import (
    USER_A,
    HttpResponse,
    LambdaContext,
    Rest,
    WebSocket,
    authorizer_context,
)
from tests.security.enforcing_moto import (
    Credentials,
    Setup,
    enforcing_moto,
    setup,
    setup_budget,
)
from tests.security.iam import Call
from tests.security.recording import environment_reads, recording_session
from tests.security.synthesized import Stack, Statement, contract_env_names, synthesized

# Variables that would send boto3 elsewhere or change how it signs (a session token would
# turn the user's key into a temporary credential moto does not know).
_FOREIGN = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_MAX_ATTEMPTS")
# Tried with every user right after the setup budget: granted to no function.
NEVER_GRANTED = ("dynamodb:Scan", "dynamodb:DeleteTable")
_NO_SESSION = "00000000-0000-4000-8000-000000000000"
# Put in the kept session by main, read by the WebSocket and OpenAI-compatible functions.
_WS_ATTACHMENT = "00000000-0000-4000-8000-00000000a77a"
_EXPIRED_SESSION = "11111111-1111-4111-8111-111111111111"  # the cleanup run's orphan maker


@dataclass(frozen=True)
class Step:
    """One code path of one function and whether it succeeded."""

    function: str
    name: str
    ok: bool
    detail: str = ""


@dataclass
class FunctionRun:
    """What one function's code did under its own credentials."""

    calls: list[Call] = field(default_factory=list)
    environment_reads: set[str] = field(default_factory=set)
    # What AWS's event source mapping did with the function's role (stream, failure queue).
    mapping_calls: list[Call] = field(default_factory=list)


@dataclass
class Run:
    """One environment's run: each step's outcome, what each function did, and what moto
    answered to the actions no policy grants."""

    stack: Stack
    steps: list[Step] = field(default_factory=list)
    functions: dict[str, FunctionRun] = field(default_factory=dict)
    # (function, action) -> the error moto answered, or "" when it allowed the call.
    refusals: dict[tuple[str, str], str] = field(default_factory=dict)


def _probe(operation: str, table: str) -> dict[str, Any]:
    """Valid parameters for ``operation`` on the connections table, so only IAM can refuse
    it; were it wrongly allowed, it would touch nothing but a probe item."""
    key = {CONNECTIONS.hash_key.name: {"S": "iam-probe"}}
    params: dict[str, dict[str, Any]] = {
        "Scan": {"TableName": table},
        "DeleteTable": {"TableName": table},
        "GetItem": {"TableName": table, "Key": key},
        "PutItem": {"TableName": table, "Item": key},
        "DeleteItem": {"TableName": table, "Key": key},
        "UpdateItem": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "SET probe = :p",
            "ExpressionAttributeValues": {":p": {"S": "x"}},
        },
        "Query": {
            "TableName": table,
            "KeyConditionExpression": f"{CONNECTIONS.hash_key.name} = :k",
            "ExpressionAttributeValues": {":k": {"S": "iam-probe"}},
        },
        "BatchWriteItem": {"RequestItems": {table: [{"DeleteRequest": {"Key": key}}]}},
        # No API of its own: IAM's action for a transaction's condition check.
        "ConditionCheckItem": {
            "TransactItems": [
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": key,
                        "ConditionExpression": "attribute_not_exists(probe)",
                    }
                }
            ]
        },
    }
    assert operation in params, f"no probe for dynamodb:{operation}; add one to _probe"
    return params[operation]


# Stream actions, probed on the sessions table's stream; params as valid as a probe can know.
_STREAM_PROBES: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "ListStreams": lambda table, _: {"TableName": table},
    "DescribeStream": lambda _, stream: {"StreamArn": stream},
    "GetShardIterator": lambda _, stream: {
        "StreamArn": stream,
        "ShardId": "shardId-00000000000000000000-iamprobe",
        "ShardIteratorType": "TRIM_HORIZON",
    },
    "GetRecords": lambda _, stream: {"ShardIterator": f"{stream}|1|iam-probe"},
}


def user_client(
    url: str, region: str, credentials: Credentials, service: str = "dynamodb"
) -> BaseClient:
    """A client of ``service`` signing with one function's key."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
    )


def refusal(client: BaseClient, table: str, action: str) -> str:
    """Try DynamoDB ``action`` on ``table``: the error answered, or "" if it was allowed."""
    operation = action.removeprefix("dynamodb:")
    return _answer(client, operation, _probe(operation, table))


def _answer(client: BaseClient, operation: str, params: dict[str, Any]) -> str:
    # ConditionCheckItem is no API of its own: it is authorized inside TransactWriteItems.
    api = "TransactWriteItems" if operation == "ConditionCheckItem" else operation
    try:
        getattr(client, xform_name(api))(**params)
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        return f"{status} {error.response['Error'].get('Message', '')}"
    return ""


class _Steps:
    """Runs one function's steps, recording each outcome instead of stopping at the first."""

    def __init__(self, run: Run, function: str) -> None:
        self._run = run
        self._function = function

    def check(self, name: str, action: Callable[[], Any], ok: Callable[[Any], bool]) -> Any:
        """The step's result when ``ok`` accepts it, else None (and the step is failed)."""
        try:
            result = action()
            passed = ok(result)
        except Exception as error:  # a failed path is a result the tests report
            self._run.steps.append(Step(self._function, name, False, repr(error)))
            return None
        detail = "" if passed else _describe(result)
        self._run.steps.append(Step(self._function, name, passed, detail))
        return result if passed else None


def _describe(result: Any) -> str:
    if isinstance(result, HttpResponse):
        return f"{result.status} {result.text}"
    return repr(result)


def _status(expected: int) -> Callable[[Any], bool]:
    return lambda response: response.status == expected


def main_paths(run: Run, models: tuple[str, ...]) -> str | None:
    """Every REST route of the main function; returns a session for the WebSocket run."""
    steps, rest = _Steps(run, MAIN.key), Rest(LambdaContext())
    steps.check("GET /health", lambda: rest.call("GET", "/health", user=None), _status(200))
    created = steps.check(
        "POST /sessions",
        lambda: rest.call("POST", "/sessions", body={"title": "least privilege"}),
        _status(201),
    )
    session = created.json["session_id"] if created else _NO_SESSION
    path = f"/sessions/{session}"
    steps.check(
        "GET /sessions",
        lambda: rest.call("GET", "/sessions"),
        lambda r: r.status == 200 and session in {s["session_id"] for s in r.json["sessions"]},
    )
    # A listing of two pages: the first signs a next_token, the second verifies it, which
    # derives the token key from the stack's pagination key (kms:GenerateMac).
    second = steps.check(
        "POST /sessions (a second, to page through)",
        lambda: rest.call("POST", "/sessions", body={}),
        _status(201),
    )
    untitled = second.json["session_id"] if second else _NO_SESSION
    steps.check(
        "POST /sessions/{id}/messages (an untitled session: names it)",
        lambda: rest.call("POST", f"/sessions/{untitled}/messages", body={"content": "Hi"}),
        lambda r: r.status == 200 and bool(r.json["title"]),
    )
    first_page = steps.check(
        "GET /sessions?limit=1 (signs a next_token)",
        lambda: rest.call("GET", "/sessions", query={"limit": "1"}),
        lambda r: r.status == 200 and bool(r.json["next_token"]),
    )
    token = first_page.json["next_token"] if first_page else "none"
    steps.check(
        "GET /sessions?next_token (verifies it)",
        lambda: rest.call("GET", "/sessions", query={"limit": "1", "next_token": token}),
        lambda r: r.status == 200 and len(r.json["sessions"]) == 1,
    )
    steps.check("GET /sessions/{id}", lambda: rest.call("GET", path), _status(200))
    # Switch to the last configured model: in prod, a cross-region inference profile.
    steps.check(
        "PATCH /sessions/{id}",
        lambda: rest.call("PATCH", path, body={"title": "renamed", "model_id": models[-1]}),
        _status(200),
    )
    steps.check(
        "POST /sessions/{id}/messages",
        lambda: rest.call("POST", f"{path}/messages", body={"content": "Hello?"}),
        _status(200),
    )
    listed = steps.check(
        "GET /sessions/{id}/messages",
        lambda: rest.call("GET", f"{path}/messages"),
        lambda r: r.status == 200 and len(r.json["messages"]) == 2,
    )
    question = listed.json["messages"][0]["message_id"] if listed else "none"
    steps.check(
        "POST /sessions/{id}/messages with replaces (regenerate)",
        lambda: rest.call("POST", f"{path}/messages", body={"replaces": question}),
        lambda r: r.status == 200 and r.json["message"]["version"] == 2,
    )
    answer = listed.json["messages"][1]["message_id"] if listed else _NO_SESSION
    steps.check(
        "PUT /sessions/{id}/messages/{message_id}/feedback",
        lambda: rest.call("PUT", f"{path}/messages/{answer}/feedback", body={"rating": "up"}),
        lambda r: r.status == 200 and r.json["rating"] == "up",
    )
    steps.check(
        "GET /sessions/{id}/export (two pages)",
        lambda: rest.call("GET", f"{path}/export", query={"format": "md", "limit": "1"}),
        lambda r: r.status == 200 and 'rel="next"' in r.headers["link"],
    )
    keyed = {"headers": {"Idempotency-Key": "least-privilege"}, "body": {"content": "Again?"}}
    for attempt in ("first", "repeat"):
        steps.check(
            f"POST /sessions/{{id}}/messages with an Idempotency-Key ({attempt})",
            lambda: rest.call("POST", f"{path}/messages", **keyed),
            _status(200),
        )
    steps.check(
        "POST /sessions/{id}/messages with an Idempotency-Key, failing (releases it)",
        lambda: rest.call(
            "POST",
            f"/sessions/{_NO_SESSION}/messages",
            headers={"Idempotency-Key": "least-privilege-failing"},
            body={"content": "Again?"},
        ),
        _status(404),
    )
    attachment_upload(run, steps, rest, path)
    steps.check("GET /knowledge-bases", lambda: rest.call("GET", "/knowledge-bases"), _status(200))
    steps.check(
        "GET /usage",
        lambda: rest.call("GET", "/usage"),
        lambda r: r.status == 200 and r.json["periods"][0]["turns"] > 0,
    )
    steps.check("DELETE /sessions/{id}", lambda: rest.call("DELETE", path), _status(204))
    kept = steps.check(
        "POST /sessions (kept for the WebSocket run)",
        lambda: rest.call("POST", "/sessions", body={}),
        _status(201),
    )
    if not kept:
        return None
    kept_id = kept.json["session_id"]
    # An attachment for the WebSocket's sendMessage (whose role may read but not put one).
    aws.client("s3").put_object(
        Bucket=os.environ[Env.ATTACHMENTS_BUCKET],
        Key=attachment_key(kept_id, _WS_ATTACHMENT),
        Body=b"a,b\n1,2\n",
        ContentType="text/csv",
        Metadata={"name": "table.csv"},
    )
    return kept_id


def attachment_upload(run: Run, steps: _Steps, rest: Rest, path: str) -> None:
    """POST .../attachments signs a form (no AWS call); S3 authorizes the upload it allows as
    ``s3:PutObject`` on the form's bucket and key with main's credentials, so that is the call
    recorded for main, read off the signed form itself."""
    declared = {"name": "notes.md", "content_type": "text/markdown", "size": 12}
    answer = steps.check(
        "POST /sessions/{id}/attachments",
        lambda: rest.call("POST", f"{path}/attachments", body=declared),
        lambda r: r.status == 200 and r.json["upload"]["fields"]["key"].startswith("sessions/"),
    )
    if not answer:
        return
    upload = answer.json["upload"]
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    [bucket] = [c["bucket"] for c in policy["conditions"] if isinstance(c, dict) and "bucket" in c]
    params = {"Bucket": bucket, "Key": upload["fields"]["key"]}
    run.functions[MAIN.key].calls.append(Call("s3", "s3", "PutObject", params, upload["url"]))
    # The upload itself, as the form allows it (the enforcing moto does not take form POSTs):
    # with main's credentials, which this run is under.
    aws.client("s3").put_object(
        **params, Body=b"# Notes\nHi!\n", ContentType="text/markdown", Metadata={"name": "notes.md"}
    )
    steps.check(
        "POST /sessions/{id}/messages with an attachment (read from S3)",
        lambda: rest.call(
            "POST",
            f"{path}/messages",
            body={"content": "Summarize", "attachments": [answer.json["attachment_id"]]},
        ),
        _status(200),
    )


def websocket_paths(
    run: Run, management: WsManagementFake, bedrock: BedrockFake, session: str | None
) -> None:
    """$connect, a streamed answer twice (user from the event, then from the connection
    record), an answer cancelled mid-stream, ping, $disconnect."""
    steps, ws = _Steps(run, WEBSOCKET.key), WebSocket(LambdaContext(), management)
    connection = ws.new_connection_id()
    accepted = {"statusCode": 200}.__eq__

    def frames_of(send: Callable[[], Any]) -> Callable[[], list[str]]:
        def call() -> list[str]:
            before = len(ws.frames(connection))
            assert send() == {"statusCode": 200}
            return [frame["type"] for frame in ws.frames(connection)[before:]]

        return call

    def streamed(types: list[str]) -> bool:
        return types[:1] == ["start"] and types[-1:] == ["end"]

    def titled(types: list[str]) -> bool:
        """The untitled session's first answer, then its title (the title model's call)."""
        return types[:1] == ["start"] and types[-2:] == ["end", "title"]

    message = {"action": "sendMessage", "session_id": session or _NO_SESSION, "content": "Hi"}
    steps.check("$connect", lambda: ws.connect(connection, USER_A), accepted)
    steps.check(
        "sendMessage (user in the event; names the session)",
        frames_of(lambda: ws.send(connection, message, user=USER_A)),
        titled,
    )
    steps.check(
        "sendMessage (user of the connection)",
        frames_of(lambda: ws.send(connection, message)),
        streamed,
    )
    steps.check(
        "sendMessage with an attachment (read from S3)",
        frames_of(lambda: ws.send(connection, {**message, "attachments": [_WS_ATTACHMENT]})),
        streamed,
    )
    steps.check(
        "sendMessage with replaces (edit of the last question)",
        frames_of(lambda: ws.send(connection, _edit_last(message))),
        streamed,
    )
    keyed = {**message, "idempotency_key": "least-privilege"}
    steps.check(
        "sendMessage with an idempotency_key",
        frames_of(lambda: ws.send(connection, keyed)),
        streamed,
    )
    steps.check(
        "sendMessage with an idempotency_key (replayed)",
        frames_of(lambda: ws.send(connection, keyed)),
        streamed,
    )
    steps.check(
        "sendMessage with an idempotency_key, failing (releases it)",
        frames_of(
            lambda: ws.send(
                connection,
                {**keyed, "session_id": _NO_SESSION, "idempotency_key": "least-privilege-failing"},
            )
        ),
        ["error"].__eq__,
    )
    steps.check(
        "sendMessage, then cancel from another invocation (interrupted)",
        lambda: _cancelled_answer(ws, management, bedrock, connection, message),
        ("incomplete", "interrupted").__eq__,
    )
    steps.check("ping", frames_of(lambda: ws.send(connection, {"action": "ping"})), ["pong"].__eq__)
    steps.check("$disconnect", lambda: ws.disconnect(connection), accepted)
    steps.check(
        "$connect (left open for DELETE /me)",
        lambda: ws.connect(ws.new_connection_id(), USER_A),
        accepted,
    )


def _edit_last(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as an edit of its session's last question, read from the table as the
    function would (its credentials; a Query it is granted anyway)."""
    items = aws.client("dynamodb").query(
        TableName=os.environ[MESSAGES.env],
        KeyConditionExpression="session_id = :session",
        ExpressionAttributeValues={":session": {"S": message["session_id"]}},
        ScanIndexForward=False,
        Limit=2,
    )["Items"]
    question = next((item for item in items if item["role"]["S"] == "user"), None)
    replaces = question["message_id"]["S"] if question else "none"
    return {**message, "content": "Hi, edited", "replaces": replaces}


def _cancelled_answer(
    ws: WebSocket,
    management: WsManagementFake,
    bedrock: BedrockFake,
    connection: str,
    message: dict[str, Any],
) -> tuple[str, str]:
    """A long answer, paced like a model, streaming in an invocation of its own while another
    cancels it once its first chunk is out (the record's write, then the streaming side's
    looks); the status and stop reason of its ``end`` frame."""
    first_chunk = threading.Event()

    def on_frame(_: str, body: bytes) -> None:
        if b'"type":"chunk"' in body:
            first_chunk.set()

    management.on_frame = on_frame
    bedrock.stream_chunks = model_like_deltas(1000, seed=5)
    bedrock.pace(first_delta_ms=50, deltas_per_second=100)  # ten seconds of answer
    before = len(ws.frames(connection))
    streaming = threading.Thread(target=ws.send, args=(connection, message))
    streaming.start()
    try:
        assert first_chunk.wait(30), "the answer never started"
        [start] = [f for f in ws.frames(connection)[before:] if f["type"] == "start"]
        cancel = {"action": "cancel", "message_id": start["message_id"]}
        assert ws.send(connection, cancel) == {"statusCode": 200}
    finally:
        streaming.join(60)
        management.on_frame = None
        bedrock.pacing, bedrock.stream_chunks = None, None
    end = ws.frames(connection)[-1]
    return end.get("status"), end.get("stop_reason")


def openai_paths(
    run: Run,
    bedrock: BedrockFake,
    models: tuple[str, ...],
    session: str | None,
    knowledge_base: str | None,
) -> None:
    """Both routes of the OpenAI-compatible app, called as the Lambda Web Adapter calls it:
    stateless and in a stored session, one body and a stream, an Idempotency-Key first and
    repeated, and grounded on the knowledge base where the stack has one."""
    steps = _Steps(run, OPENAI_API.key)
    client = TestClient(openai_app, raise_server_exceptions=False)
    context = {
        "stage": "v1",
        "requestId": "least-privilege",
        "authorizer": authorizer_context(USER_A),
    }
    caller = {REQUEST_CONTEXT_HEADER: json.dumps(context)}
    url = f"{OPENAI_BASE_PATH}/chat/completions"

    def ask(stream: bool, **headers: str) -> Callable[[], Any]:
        body = {"model": models[0], "messages": [{"role": "user", "content": "Hello?"}]}
        return lambda: client.post(url, json={**body, "stream": stream}, headers=caller | headers)

    def answered(response: Any) -> bool:
        if response.status_code != 200:
            return False
        if response.headers["content-type"].startswith("text/event-stream"):
            return (
                response.text.rstrip().endswith("data: [DONE]") and '"error"' not in response.text
            )
        return bool(response.json()["choices"][0]["message"]["content"])

    steps.check(
        "GET /v1/models",
        lambda: client.get(f"{OPENAI_BASE_PATH}/models", headers=caller),
        lambda r: r.status_code == 200 and [m["id"] for m in r.json()["data"]] == list(models),
    )
    steps.check("POST /v1/chat/completions (stateless)", ask(False), answered)
    steps.check("POST /v1/chat/completions (stateless, streamed)", ask(True), answered)
    bound = {OPENAI_SESSION_HEADER: session or _NO_SESSION}
    steps.check("POST /v1/chat/completions (in a session)", ask(False, **bound), answered)
    parts = [
        {"type": "text", "text": "Sum it"},
        {"type": "file", "file": {"file_id": _WS_ATTACHMENT}},
    ]
    with_file = {"model": models[0], "messages": [{"role": "user", "content": parts}]}
    steps.check(
        "POST /v1/chat/completions (in a session, with a file part read from S3)",
        lambda: client.post(url, json=with_file, headers=caller | bound),
        answered,
    )
    for attempt in ("first", "repeat"):
        keyed = bound | {"Idempotency-Key": "least-privilege-openai"}
        steps.check(
            f"POST /v1/chat/completions (in a session, streamed, Idempotency-Key, {attempt})",
            ask(True, **keyed),
            answered,
        )
    bedrock.fail(400, "ValidationException", operation="converse")
    steps.check(
        "POST /v1/chat/completions (Idempotency-Key, the model refusing: releases it)",
        ask(False, **{"Idempotency-Key": "least-privilege-failing"}),
        lambda r: r.status_code == 502 and r.json()["error"]["code"] == "upstream_error",
    )
    if knowledge_base:
        grounded = {OPENAI_KNOWLEDGE_BASE_HEADER: knowledge_base}
        steps.check(
            "POST /v1/chat/completions (on the knowledge base)", ask(False, **grounded), answered
        )


def main_final_paths(run: Run) -> None:
    """After the WebSocket run, which leaves a session and a connection of the user behind:
    DELETE /me removes both."""
    steps, rest = _Steps(run, MAIN.key), Rest(LambdaContext())
    steps.check("DELETE /me", lambda: rest.call("DELETE", "/me"), _status(204))
    steps.check(
        "GET /sessions (after DELETE /me)",
        lambda: rest.call("GET", "/sessions"),
        lambda r: r.status == 200 and r.json["sessions"] == [],
    )


def _orphan_messages(
    client: BaseClient, sessions: str, messages: str, session: str, count: int
) -> None:
    """A session with ``count`` messages whose item is then removed, as TTL would (with the
    main function's credentials, which may put messages but not batch-delete them)."""
    key = {SESSIONS.hash_key.name: {"S": session}}
    client.put_item(TableName=sessions, Item={**key, "user_id": {"S": USER_A}})
    for seq in range(1, count + 1):
        item = {**key, "seq": {"N": str(seq)}, "content": {"S": "old"}}
        client.put_item(TableName=messages, Item=item)
    client.delete_item(TableName=sessions, Key=key)


def cleanup_paths(run: Run, created: Setup, url: str, main: BaseClient) -> None:
    """Every session removed so far (DELETE /sessions/{id}, DELETE /me) and one whose item
    goes now with its messages left behind, as DynamoDB's TTL leaves them (written and
    removed with main's credentials: not the cleanup's doing), reach the handler through the
    stream as the mapping delivers them; then the mapping's on-failure path sends a batch
    description to the failure queue."""
    steps, stack = _Steps(run, CLEANUP.key), run.stack
    record = run.functions[CLEANUP.key]
    keys = created.credentials[CLEANUP.key]
    # The mapping's poller: the function's credentials, recorded apart from the code's calls.
    mapping = recording_session(record.mapping_calls)

    def mapping_client(service: str) -> BaseClient:
        return mapping.client(
            service,
            endpoint_url=url,
            region_name=stack.region,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
        )

    tables = stack.table_names()
    sessions, messages = tables[SESSIONS.env], tables[MESSAGES.env]
    session = _EXPIRED_SESSION
    _orphan_messages(main, sessions, messages, session, count=30)
    [bucket] = stack.bucket_names()
    uploads = user_client(url, stack.region, created.credentials[MAIN.key], "s3")
    for name in ("a.txt", "b.png"):  # as clients upload them, with main's signed forms
        uploads.put_object(Bucket=bucket, Key=attachment_key(session, name), Body=b"x")
    streams = mapping_client("dynamodbstreams")

    def removals() -> dict[str, Any]:
        [listed] = streams.list_streams(TableName=sessions)["Streams"]
        records = StreamReader(streams, listed["StreamArn"]).read()
        removed = [r for r in records if r["eventName"] == "REMOVE"]  # the mapping's filter
        assert len(removed) >= 2, [r["eventName"] for r in records]
        return lambda_event(removed, listed["StreamArn"])

    def left() -> int:
        return main.query(
            TableName=messages,
            KeyConditionExpression="session_id = :s",
            ExpressionAttributeValues={":s": {"S": session}},
            Select="COUNT",
        )["Count"]

    steps.check("the removed session's messages are left behind", left, (30).__eq__)
    event = steps.check("poll the sessions stream (mapping)", removals, bool)
    steps.check(
        "REMOVE records",
        lambda: cleanup_handler.handler(event or {"Records": []}, LambdaContext()),
        {"batchItemFailures": []}.__eq__,
    )

    steps.check("the removed session's messages are gone", left, (0).__eq__)

    def attachments_left() -> int:
        listed = uploads_lister.list_objects_v2(Bucket=bucket, Prefix=attachments_prefix(session))
        return int(listed.get("KeyCount", 0))

    uploads_lister = user_client(url, stack.region, keys, "s3")  # the cleanup may list them
    steps.check("the removed session's attachments are gone", attachments_left, (0).__eq__)
    failure = {"DDBStreamBatchInfo": {"shardId": "shardId-1", "batchSize": 1}}
    [queue] = created.queues.values()
    steps.check(
        "on-failure destination (mapping)",
        lambda: mapping_client("sqs").send_message(QueueUrl=queue, MessageBody=str(failure)),
        lambda answer: bool(answer.get("MessageId")),
    )


def _become(
    patch: pytest.MonkeyPatch,
    variables: Mapping[str, str],
    record: FunctionRun,
) -> None:
    """Make this process look like one function's Lambda container: exactly its variables
    (plus the endpoints and its key), fresh caches, and a recording boto3 session."""
    endpoints = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]
    for name in (*contract_env_names(), *_FOREIGN, *endpoints):
        patch.delenv(name, raising=False)
    for name, value in variables.items():
        patch.setenv(name, value)
    get_settings.cache_clear()
    aws.reset_clients()
    derived_key.cache_clear()
    cleanup_handler.messages.cache_clear()
    cleanup_handler.attachments.cache_clear()
    # The container's boto3 session, created fresh so it reads this function's credentials.
    patch.setattr(aws, "_session", recording_session(record.calls))


def _run(stack: Stack) -> Run:
    run = Run(stack)
    users = {spec.key: stack.statements(spec) for spec in FUNCTIONS}
    queues, buckets = stack.queue_names(), stack.bucket_names()
    with (
        enforcing_moto(
            setup_budget(len(users), len(queues), len(buckets)), stack.mac_keys()
        ) as url,
        BedrockFake() as bedrock,
        WsManagementFake(stage=stack.websocket_stage().name) as management,
        pytest.MonkeyPatch.context() as patch,
    ):
        created = setup(
            url,
            stack.region,
            stack.table_names(),
            users,
            stream_view_types=stack.stream_view_types(),
            queues=queues,
            buckets=buckets,
        )
        credentials = created.credentials
        clients = {key: user_client(url, stack.region, keys) for key, keys in credentials.items()}
        probed = stack.table_names()[CONNECTIONS.env]
        for key, client in clients.items():  # the first requests after the budget
            for action in NEVER_GRANTED:
                run.refusals[key, action] = refusal(client, probed, action)
        endpoints = {
            "AWS_ENDPOINT_URL": url,
            "AWS_DEFAULT_REGION": stack.region,
            "AWS_REGION": stack.region,
            **bedrock.env(),
        }
        session = None
        for spec in (MAIN, WEBSOCKET):
            record = run.functions[spec.key] = FunctionRun()
            variables = stack.environment(spec, websocket_callback_url=management.callback_url)
            _become(patch, {**variables, **endpoints, **credentials[spec.key].env()}, record)
            with environment_reads() as reads:
                if spec is MAIN:
                    session = main_paths(run, tuple(stack.config.bedrock_models))
                else:
                    websocket_paths(run, management, bedrock, session)
            record.environment_reads = set(reads)
        record = run.functions[OPENAI_API.key] = FunctionRun()
        variables = stack.environment(OPENAI_API, websocket_callback_url="")
        _become(patch, {**variables, **endpoints, **credentials[OPENAI_API.key].env()}, record)
        with environment_reads() as reads:
            models = tuple(stack.config.bedrock_models)
            knowledge_base = stack.config.knowledge_base_id or None
            openai_paths(run, bedrock, models, session, knowledge_base)
        record.environment_reads = set(reads)
        record = run.functions[MAIN.key]
        variables = stack.environment(MAIN, websocket_callback_url=management.callback_url)
        _become(patch, {**variables, **endpoints, **credentials[MAIN.key].env()}, record)
        with environment_reads() as reads:
            main_final_paths(run)
        record.environment_reads |= set(reads)
        record = run.functions[CLEANUP.key] = FunctionRun()
        _become(
            patch,
            {**stack.environment(CLEANUP, ""), **endpoints, **credentials[CLEANUP.key].env()},
            record,
        )
        with environment_reads() as reads:
            cleanup_paths(run, created, url, clients[MAIN.key])
        record.environment_reads = set(reads)
        _refuse_the_others_actions(run, url, created, probed, users)
    get_settings.cache_clear()
    aws.reset_clients()
    return run


def _refuse_the_others_actions(
    run: Run,
    url: str,
    created: Setup,
    table: str,
    users: Mapping[str, list[Statement]],
) -> None:
    """What one function may do on DynamoDB (tables, streams) or SQS but another may not is
    refused to the other."""
    region = run.stack.region
    granted = {
        key: {a for s in statements for a in s.actions if a.startswith(("dynamodb:", "sqs:"))}
        for key, statements in users.items()
    }
    anyone = set().union(*granted.values())
    sessions = run.stack.table_names()[SESSIONS.env]
    stream = created.streams.get(SESSIONS.env, "")
    for key, keys in created.credentials.items():
        dynamodb = user_client(url, region, keys)
        for action in sorted(anyone - granted[key]):
            service, operation = action.split(":")
            if service == "sqs":
                params = {"QueueUrl": next(iter(created.queues.values())), "MessageBody": "{}"}
                answer = _answer(user_client(url, region, keys, "sqs"), operation, params)
            elif operation in _STREAM_PROBES:
                client = user_client(url, region, keys, "dynamodbstreams")
                answer = _answer(client, operation, _STREAM_PROBES[operation](sessions, stream))
            else:
                answer = refusal(dynamodb, table, action)
            run.refusals[key, action] = answer


@functools.cache
def enforced_run(environment: str) -> Run:
    """The run for ``dev`` or ``prod``, once per process."""
    return _run(synthesized(environment))
