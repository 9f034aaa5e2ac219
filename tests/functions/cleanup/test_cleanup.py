"""The session cleanup function against moto, fed with records read from moto's own stream of
the sessions table (fakes/dynamodb_streams.py), as the event source mapping would deliver them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from fakes.dynamodb_streams import StreamReader, as_ttl_expiry, enable_stream, lambda_event
from functions.cleanup import handler as cleanup
from functions.contract import Env, attachment_key, attachments_prefix
from functions.core import aws
from tests.functions.helpers import LambdaContext, dynamodb_throttled

PAGE = 25  # BatchWriteItem's limit: 260 messages take 11 batches and several query pages


@pytest.fixture
def fails_at_once(cleanup_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per call, so that a throttled batch fails at once: adaptive retries of a
    fresh client would wait about 2 s for a send token first."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
def cleanup_env(moto_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto with the sessions table's stream on (KEYS_ONLY, as the stack sets it); yields the
    stream's ARN. Each test is a fresh container: no cached client or repository. Its
    DynamoDB calls get botocore's default attempts, as deployed: with one attempt, a moto
    answer held past the 2 s read timeout by a loaded machine failed a record (a fresh clone's
    run, 2026-12-07)."""
    arn = enable_stream(boto3.client("dynamodb"), moto_env[Env.SESSIONS_TABLE])
    aws.reset_clients()
    cleanup.messages.cache_clear()
    cleanup.attachments.cache_clear()
    yield arn
    aws.reset_clients()
    cleanup.messages.cache_clear()
    cleanup.attachments.cache_clear()


class Tables:
    """Writes sessions and messages the way the main function's items look (keys only matter
    here), and counts what is left."""

    def __init__(self, env: dict[str, str]) -> None:
        self.client = boto3.client("dynamodb")
        self.sessions = env[Env.SESSIONS_TABLE]
        self.messages = env[Env.MESSAGES_TABLE]

    def session(self, session_id: str, messages: int) -> None:
        self.client.put_item(
            TableName=self.sessions,
            Item={
                "session_id": {"S": session_id},
                "user_id": {"S": "user-a"},
                "last_activity": {"S": "2026-01-01T00:00:00.000000Z"},
                "expires_at": {"N": "1"},
            },
        )
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "session_id": {"S": session_id},
                        "seq": {"N": str(seq)},
                        "content": {"S": f"turn {seq}"},
                    }
                }
            }
            for seq in range(1, messages + 1)
        ]
        for start in range(0, len(items), PAGE):
            self.client.batch_write_item(RequestItems={self.messages: items[start : start + PAGE]})

    def touch(self, session_id: str) -> None:
        self.client.update_item(
            TableName=self.sessions,
            Key={"session_id": {"S": session_id}},
            UpdateExpression="SET title = :title",
            ExpressionAttributeValues={":title": {"S": "renamed"}},
        )

    def remove(self, session_id: str) -> None:
        self.client.delete_item(TableName=self.sessions, Key={"session_id": {"S": session_id}})

    def count(self, session_id: str) -> int:
        paginator = self.client.get_paginator("query")
        return sum(
            page["Count"]
            for page in paginator.paginate(
                TableName=self.messages,
                KeyConditionExpression="session_id = :s",
                ExpressionAttributeValues={":s": {"S": session_id}},
                Select="COUNT",
            )
        )


@pytest.fixture
def tables(moto_env: dict[str, str], cleanup_env: str) -> Tables:
    return Tables(moto_env)


@pytest.fixture
def stream(cleanup_env: str) -> StreamReader:
    return StreamReader(boto3.client("dynamodbstreams"), cleanup_env)


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return cleanup.handler(event, LambdaContext(function_name="test-session-cleanup"))


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """What the handler logged: each record's message and level with its extra keys."""
    keys = ("session_id", "cause", "deleted", "event_id")
    return [
        {"message": r.getMessage(), "level": r.levelname}
        | {key: getattr(r, key) for key in keys if hasattr(r, key)}
        for r in caplog.records
    ]


def emitted(output: str) -> dict[str, float]:
    """The EMF metrics Powertools printed, summed by name."""
    metrics: dict[str, float] = {}
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" in document:
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                name = definition["Name"]
                values = document[name] if isinstance(document[name], list) else [document[name]]
                metrics[name] = metrics.get(name, 0) + sum(values)
    return metrics


def removals(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if record["eventName"] == "REMOVE"]


@pytest.mark.parametrize("count", [0, 1, 30, 260])
def test_a_removed_session_loses_every_message_and_no_other(
    tables: Tables, stream: StreamReader, count: int, capsys, caplog
) -> None:
    """Mutations caught: deleting only the first query page or batch (30, 260), deleting by
    the wrong key, a metric that does not count what was deleted."""
    tables.session("gone", count)
    tables.session("kept", 3)
    tables.remove("gone")
    records = stream.read()
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "REMOVE"]
    capsys.readouterr()

    assert invoke(lambda_event(records, stream.arn)) == {"batchItemFailures": []}

    assert tables.count("gone") == 0
    assert tables.count("kept") == 3
    assert emitted(capsys.readouterr().out) == {
        "MessagesDeleted": count,
        "AttachmentsDeleted": 0,
        "SessionsCleaned": 1,
    }
    [done] = [log for log in logged(caplog) if log.get("session_id") == "gone"]
    assert (done["cause"], done["deleted"]) == ("delete", count)


def test_inserts_and_modifications_delete_nothing(tables: Tables, stream: StreamReader) -> None:
    """The mapping filters to REMOVE, but the handler must not rely on it. Mutations caught:
    a handler that deletes the messages of every session it hears about."""
    tables.session("live", 5)
    tables.touch("live")
    records = stream.read()
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]

    assert invoke(lambda_event(records, stream.arn)) == {"batchItemFailures": []}
    assert tables.count("live") == 5


def test_a_replayed_record_deletes_nothing_more_and_succeeds(
    tables: Tables, stream: StreamReader, capsys
) -> None:
    """Lambda delivers at least once, and retries the records after a failed one."""
    tables.session("gone", 40)
    tables.session("kept", 2)
    tables.remove("gone")
    event = lambda_event(removals(stream.read()), stream.arn)
    assert invoke(event) == {"batchItemFailures": []}
    capsys.readouterr()

    assert invoke(event) == {"batchItemFailures": []}

    assert (tables.count("gone"), tables.count("kept")) == (0, 2)
    assert emitted(capsys.readouterr().out) == {
        "MessagesDeleted": 0,
        "AttachmentsDeleted": 0,
        "SessionsCleaned": 1,
    }


@pytest.mark.usefixtures("fails_at_once")
def test_a_throttled_record_is_a_batch_item_failure_and_the_others_succeed(
    tables: Tables, stream: StreamReader, capsys, caplog
) -> None:
    """DynamoDB throttles the batch deletes of one session: only its record is reported (by
    its sequence number), the next session is still cleaned, and Lambda's retry of the
    reported record finishes the job. Mutations caught: a handler that swallows the error
    (the record would never be retried), one that fails the whole batch."""
    tables.session("throttled", 30)
    tables.session("fine", 30)
    tables.remove("throttled")
    tables.remove("fine")
    records = removals(stream.read())
    event = lambda_event(records, stream.arn)
    throttled_sequence = records[0]["dynamodb"]["SequenceNumber"]

    def for_throttled(request: Any) -> bool:
        return b'"throttled"' in (request.body or b"")

    with dynamodb_throttled("BatchWriteItem", when=for_throttled) as attempts:
        response = invoke(event)
    assert attempts, "the throttle never applied"
    assert response == {"batchItemFailures": [{"itemIdentifier": throttled_sequence}]}
    assert (tables.count("throttled"), tables.count("fine")) == (30, 0)
    assert emitted(capsys.readouterr().out)["SessionCleanupFailures"] == 1
    errors = [log for log in logged(caplog) if log["level"] == "ERROR"]
    assert [log["session_id"] for log in errors] == ["throttled"]

    retry = {
        "Records": [
            r for r in event["Records"] if r["dynamodb"]["SequenceNumber"] >= throttled_sequence
        ]
    }
    assert invoke(retry) == {"batchItemFailures": []}
    assert tables.count("throttled") == 0


@pytest.mark.usefixtures("fails_at_once")
def test_a_batch_whose_every_record_fails_is_a_function_error(
    tables: Tables, stream: StreamReader
) -> None:
    """Nothing succeeded, so the invocation fails: Lambda retries (bisecting the batch) and the
    Errors alarm sees it."""
    tables.session("throttled", 3)
    tables.remove("throttled")
    event = lambda_event(removals(stream.read()), stream.arn)
    with dynamodb_throttled("BatchWriteItem"), pytest.raises(BatchProcessingError):
        invoke(event)
    assert tables.count("throttled") == 3


def test_a_ttl_expiry_is_handled_like_a_delete_and_logged_as_one(
    tables: Tables, stream: StreamReader, caplog
) -> None:
    """DynamoDB's TTL removes the item with a Service identity; the messages go the same way.
    Mutations caught: a handler that skips service-made removals (the orphans this function
    exists for), or one that cannot tell the two apart in its logs."""
    tables.session("expired", 12)
    tables.session("deleted", 2)
    tables.remove("expired")
    tables.remove("deleted")
    expired, deleted = removals(stream.read())

    event = lambda_event([as_ttl_expiry(expired), deleted], stream.arn)
    assert event["Records"][0]["userIdentity"] == {
        "type": "Service",
        "principalId": "dynamodb.amazonaws.com",
    }
    assert invoke(event) == {"batchItemFailures": []}

    assert (tables.count("expired"), tables.count("deleted")) == (0, 0)
    causes = {log["session_id"]: log["cause"] for log in logged(caplog) if "cause" in log}
    assert causes == {"expired": "ttl", "deleted": "delete"}


def test_a_record_without_the_session_key_fails_alone(tables: Tables, stream: StreamReader) -> None:
    """A malformed record is retried and, in the end, lands in the failure queue; it never
    deletes anything else."""
    tables.session("gone", 4)
    tables.remove("gone")
    [record] = removals(stream.read())
    broken = json.loads(json.dumps(record, default=str))
    broken["dynamodb"]["Keys"] = {}
    broken["dynamodb"]["SequenceNumber"] = "1"
    response = invoke(lambda_event([broken, record], stream.arn))
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert tables.count("gone") == 0


class Bucket:
    """The attachments bucket: objects under a session's prefix, as uploads leave them."""

    def __init__(self, env: dict[str, str]) -> None:
        self.client = boto3.client("s3")
        self.name = env[Env.ATTACHMENTS_BUCKET]

    def upload(self, session_id: str, count: int) -> None:
        for index in range(count):
            key = attachment_key(session_id, f"file-{index}")
            self.client.put_object(Bucket=self.name, Key=key, Body=b"x")

    def count(self, session_id: str) -> int:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.name, Prefix=attachments_prefix(session_id))
        return sum(len(page.get("Contents", [])) for page in pages)


@pytest.fixture
def bucket(moto_env: dict[str, str], cleanup_env: str) -> Bucket:
    return Bucket(moto_env)


def test_a_removed_session_loses_its_attachments_and_no_other(
    tables: Tables, bucket: Bucket, stream: StreamReader, capsys: pytest.CaptureFixture[str]
) -> None:
    """More than one DeleteObjects batch (1,000 keys) and several list pages; a session whose
    id is the other's prefix keeps its own."""
    tables.session("gone", 1)
    tables.session("gone-too-not", 1)
    bucket.upload("gone", 1_005)
    bucket.upload("gone-too-not", 2)
    tables.remove("gone")
    assert invoke(lambda_event(removals(stream.read()), stream.arn)) == {"batchItemFailures": []}
    assert bucket.count("gone") == 0
    assert bucket.count("gone-too-not") == 2
    assert emitted(capsys.readouterr().out)["AttachmentsDeleted"] == 1_005


def test_a_session_without_attachments_is_cleaned_as_before(
    tables: Tables, bucket: Bucket, stream: StreamReader
) -> None:
    tables.session("plain", 3)
    tables.remove("plain")
    assert invoke(lambda_event(removals(stream.read()), stream.arn)) == {"batchItemFailures": []}
    assert (tables.count("plain"), bucket.count("plain")) == (0, 0)


@contextmanager
def delete_errors(failing: Callable[[list[str]], list[str]]) -> Iterator[list[list[str]]]:
    """DeleteObjects answers 200 with per-key errors (as S3 does under SlowDown) for the keys
    ``failing`` picks from each request's; yields the keys of each request sent."""
    sent: list[list[str]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append([item["Key"] for item in params["Delete"]["Objects"]])

    def report(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Errors"] = [{"Key": key, "Code": "SlowDown"} for key in failing(sent[-1])]

    events = cleanup.attachments()._client.meta.events
    events.register("provide-client-params.s3.DeleteObjects", record, unique_id="t-record")
    events.register("after-call.s3.DeleteObjects", report, unique_id="t-report")
    try:
        yield sent
    finally:
        events.unregister("provide-client-params.s3.DeleteObjects", unique_id="t-record")
        events.unregister("after-call.s3.DeleteObjects", unique_id="t-report")


def test_keys_s3_failed_to_delete_are_sent_again_alone(
    tables: Tables, bucket: Bucket, stream: StreamReader
) -> None:
    tables.session("slow", 1)
    bucket.upload("slow", 3)
    tables.remove("slow")
    event = lambda_event(removals(stream.read()), stream.arn)
    with delete_errors(lambda keys: keys[1:]) as sent:
        assert invoke(event) == {"batchItemFailures": []}
    assert [len(keys) for keys in sent] == [3, 2, 1]
    assert sent[1] == sent[0][1:] and sent[2] == sent[1][1:]


def test_keys_that_keep_failing_fail_the_record_for_a_retry(
    tables: Tables, bucket: Bucket, stream: StreamReader
) -> None:
    tables.session("stuck", 1)
    bucket.upload("stuck", 2)
    tables.remove("stuck")
    event = lambda_event(removals(stream.read()), stream.arn)
    with delete_errors(lambda keys: keys) as sent, pytest.raises(BatchProcessingError):
        invoke(event)
    assert len(sent) == 5  # DELETE_ATTEMPTS, then the record is left to Lambda's retry
    assert invoke(event) == {"batchItemFailures": []}
    assert bucket.count("stuck") == 0
