"""The EMF metrics the stack's alarms watch, emitted by the functions under the names and the
dimensions the alarms read (tests/compute/test_stack.py checks the alarm side)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from fakes.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake
from functions.contract import MODEL_DIMENSION, SERVICE_DIMENSION, Env, Metric
from tests.functions.helpers import Rest, WebSocket, dynamodb_throttled


def _documents(out: str) -> list[dict[str, Any]]:
    """Every EMF document printed, each checked against this function's namespace and
    ``service`` dimension (what the stack sets and the alarms and dashboard read), and against
    the dimensions the contract gives its metrics."""
    documents = []
    for line in out.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == os.environ[Env.POWERTOOLS_METRICS_NAMESPACE]
            assert document[SERVICE_DIMENSION] == os.environ[Env.POWERTOOLS_SERVICE_NAME]
            names = {metric["Name"] for metric in directive["Metrics"]}
            per_model = names & set(Metric.PER_MODEL)
            assert per_model in (set(), names), "per-model and service metrics mixed"
            expected = [SERVICE_DIMENSION, MODEL_DIMENSION] if per_model else [SERVICE_DIMENSION]
            assert sorted(directive["Dimensions"][0]) == sorted(expected)
            documents.append(document)
    return documents


def _emitted(out: str) -> dict[str, float]:
    """Every EMF metric printed, summed by name (see :func:`_documents`)."""
    totals: dict[str, float] = {}
    for document in _documents(out):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


@pytest.mark.usefixtures("single_attempt")
def test_a_throttled_model_call_is_counted_on_both_transports(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutations caught: the metric dropped, emitted under another name, counted for
    DynamoDB's throttling too."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    capsys.readouterr()
    bedrock.throttle(1, operation=CONVERSE)
    rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"}).assert_error(
        503, "throttled"
    )
    assert _emitted(capsys.readouterr().out).get(Metric.MODEL_THROTTLED) == 1
    bedrock.throttle(1, operation=CONVERSE_STREAM)
    ws.send(connection_id, {"action": "sendMessage", "session_id": session_id, "content": "hi"})
    assert ws.frames(connection_id)[-1]["code"] == "throttled"
    assert _emitted(capsys.readouterr().out).get(Metric.MODEL_THROTTLED) == 1
    bedrock.break_stream(after_chunks=1, error_type="throttlingException")  # mid-stream
    ws.send(connection_id, {"action": "sendMessage", "session_id": session_id, "content": "hi"})
    assert ws.frames(connection_id)[-1]["code"] == "throttled"
    assert _emitted(capsys.readouterr().out).get(Metric.MODEL_THROTTLED) == 1


@pytest.mark.usefixtures("single_attempt")
def test_dynamodb_throttling_is_not_model_throttling(
    rest: Rest, bedrock: BedrockFake, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    capsys.readouterr()
    with dynamodb_throttled("GetItem"):
        response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"})
    response.assert_error(503, "throttled")
    assert Metric.MODEL_THROTTLED not in _emitted(capsys.readouterr().out)


def test_other_model_failures_are_not_counted_as_throttling(
    rest: Rest, bedrock: BedrockFake, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    capsys.readouterr()
    bedrock.fail(400, "ValidationException", "bad request", CONVERSE)
    rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"}).assert_error(
        502, "upstream_error"
    )
    assert Metric.MODEL_THROTTLED not in _emitted(capsys.readouterr().out)


def test_every_stored_answer_is_counted_per_model_on_both_transports(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake, capsys: pytest.CaptureFixture[str]
) -> None:
    """Turns, tokens and statuses carry the model the turn used, whatever the transport.
    Mutations caught: a metric dropped or renamed, counted on one transport only, the model
    dimension missing, a failed or incomplete answer counted as complete."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    capsys.readouterr()
    bedrock.reply = "one two three"
    assert (
        rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"}).status == 200
    )
    ws.send(connection_id, {"action": "sendMessage", "session_id": session_id, "content": "hi"})
    bedrock.stop_reason = "max_tokens"
    ws.send(connection_id, {"action": "sendMessage", "session_id": session_id, "content": "more"})
    bedrock.fail(400, "ValidationException", "bad request", CONVERSE)
    rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "x"}).assert_error(
        502, "upstream_error"
    )
    out = capsys.readouterr().out
    turns = [doc for doc in _documents(out) if Metric.CHAT_TURNS in doc]
    model = os.environ[Env.BEDROCK_MODELS].split(",")[0]
    assert [doc[MODEL_DIMENSION] for doc in turns] == [model] * 4
    totals = _emitted(out)
    assert totals[Metric.CHAT_TURNS] == 4
    assert totals[Metric.OUTPUT_TOKENS] == 9
    assert totals[Metric.INCOMPLETE_ANSWERS] == 1
    assert totals[Metric.FAILED_ANSWERS] == 1
    assert totals[Metric.INPUT_TOKENS] > 0


def test_each_rating_is_counted_per_model_with_the_contracts_dimensions(
    rest: Rest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutations caught: a feedback metric emitted on the service-wide document (no model), or
    under the other rating's name."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    answer = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "hi"})
    path = f"/sessions/{session_id}/messages/{answer.json['message']['message_id']}/feedback"
    capsys.readouterr()
    for rating in ("down", "up", "up"):
        assert rest.call("PUT", path, body={"rating": rating}).status == 200
    out = capsys.readouterr().out
    model = os.environ[Env.BEDROCK_MODELS].split(",")[0]
    rated = [doc for doc in _documents(out) if MODEL_DIMENSION in doc]
    assert [doc[MODEL_DIMENSION] for doc in rated] == [model] * 3
    assert _emitted(out) == {Metric.POSITIVE_FEEDBACK: 2, Metric.NEGATIVE_FEEDBACK: 1}
