"""The dev server's event source mapping delivers as Lambda's does: filter, batch size,
partial failures, bisection, bounded retries and the failure destination. Driven against moto's
real stream of a table, with a function that fails on purpose."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devserver.lambda_pool import FunctionError
from devserver.stack import StackError, StreamMapping
from devserver.streams import StreamPoller, TtlSweeper, matches
from fakes.dynamodb_streams import TTL_USER_IDENTITY
from fakes.moto import MotoServer, aws_env
from functions.contract import SESSIONS
from tests.support.dev_server import DEV_GROUP
from tests.support.moto_server import create_table

pytestmark = DEV_GROUP


def mapping(**overrides: Any) -> StreamMapping:
    settings: dict[str, Any] = {
        "function": "cleanup",
        "table": "sessions",
        "batch_size": 3,
        "starting_position": "TRIM_HORIZON",
        "patterns": ({"eventName": ["REMOVE"]},),
        "report_batch_item_failures": True,
        "bisect_batch_on_function_error": True,
        "maximum_retry_attempts": 2,
        "maximum_record_age_seconds": 3600,
        "failure_destination": "p-dev-cleanup-failures",
    }
    return StreamMapping(**(settings | overrides))


class Function:
    """Records every batch; fails the records (or whole invocations) it is told to."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failing: set[str] = set()  # session ids reported as batch item failures
        self.crashing: set[str] = set()  # session ids whose batch makes the invocation fail

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        ids = [r["dynamodb"]["Keys"]["session_id"]["S"] for r in event["Records"]]
        self.batches.append(ids)
        if self.crashing & set(ids):
            raise FunctionError({"errorType": "Exception", "errorMessage": "boom"})
        failures = [
            {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
            for r in event["Records"]
            if r["dynamodb"]["Keys"]["session_id"]["S"] in self.failing
        ]
        return {"batchItemFailures": failures}


@pytest.fixture
def table(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A table of its own with a stream. moto's state is the process's, shared with the dev
    server's moto in this worker, so nothing is reset: the name is new instead."""
    for variable, value in aws_env(moto_server.url).items():
        monkeypatch.setenv(variable, value)
    name = f"streams-{uuid.uuid4().hex[:8]}"
    arn = create_table(boto3.client("dynamodb"), SESSIONS, name, stream_view_type="KEYS_ONLY")
    assert arn is not None
    yield name, arn


def poller(table: tuple[str, str], function: Function, **overrides: Any) -> StreamPoller:
    name, arn = table
    lines: list[str] = []
    return StreamPoller(
        mapping(**overrides), name, arn, boto3.client("dynamodbstreams"), function, lines.append
    )


def put_and_remove(table: tuple[str, str], ids: list[str]) -> None:
    client = boto3.client("dynamodb")
    for session_id in ids:
        client.put_item(
            TableName=table[0],
            Item={"session_id": {"S": session_id}, "user_id": {"S": "u"}, "expires_at": {"N": "9"}},
        )
    for session_id in ids:
        client.delete_item(TableName=table[0], Key={"session_id": {"S": session_id}})


def test_only_removals_go_to_the_function_in_batches_of_its_size(table: tuple[str, str]) -> None:
    function = Function()
    put_and_remove(table, ["a", "b", "c", "d"])
    assert poller(table, function).poll() == 4
    assert function.batches == [["a", "b", "c"], ["d"]]


def test_a_reported_failure_is_retried_from_that_record(table: tuple[str, str]) -> None:
    function = Function()
    function.failing = {"b"}
    put_and_remove(table, ["a", "b", "c"])
    delivering = poller(table, function)
    delivering.poll()
    assert function.batches == [["a", "b", "c"], ["b", "c"], ["b", "c"]]  # 2 retries
    [failure] = delivering.failures
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 2


def test_a_failed_invocation_is_bisected_until_the_failing_record_is_alone(
    table: tuple[str, str],
) -> None:
    function = Function()
    function.crashing = {"c"}
    put_and_remove(table, ["a", "b", "c"])
    delivering = poller(table, function, maximum_retry_attempts=5)
    delivering.poll()
    assert function.batches[:3] == [["a", "b", "c"], ["a"], ["b", "c"]]
    assert ["c"] in function.batches
    assert [f["DDBStreamBatchInfo"]["batchSize"] for f in delivering.failures] == [1]


def test_a_delivered_record_is_not_delivered_again(table: tuple[str, str]) -> None:
    function = Function()
    put_and_remove(table, ["a"])
    delivering = poller(table, function)
    delivering.poll()
    delivering.poll()
    assert function.batches == [["a"]]


def test_ttl_removals_carry_dynamodb_s_identity(table: tuple[str, str]) -> None:
    client = boto3.client("dynamodb")
    client.put_item(
        TableName=table[0],
        Item={"session_id": {"S": "old"}, "user_id": {"S": "u"}, "expires_at": {"N": "1"}},
    )
    sweeper = TtlSweeper(client, {table[0]: ("expires_at", ("session_id",))})
    assert sweeper.sweep() == 1
    seen: list[dict[str, Any]] = []
    name, arn = table
    StreamPoller(
        mapping(), name, arn, boto3.client("dynamodbstreams"), seen.append, print, sweeper=sweeper
    ).poll()
    assert [event["Records"][0]["userIdentity"] for event in seen] == [TTL_USER_IDENTITY]


def test_filter_patterns_of_values_match_and_others_are_refused() -> None:
    assert matches({"eventName": ["REMOVE"]}, {"eventName": "REMOVE"})
    assert not matches({"eventName": ["REMOVE"]}, {"eventName": "INSERT"})
    nested = {"dynamodb": {"Keys": {"id": {"S": "x"}}}}
    assert matches({"dynamodb": {"Keys": {"id": {"S": ["x"]}}}}, nested)
    with pytest.raises(StackError):
        matches({"eventName": [{"prefix": "RE"}]}, {"eventName": "REMOVE"})
