"""The EMF metrics the stack's alarms watch, emitted by the functions under the names and the
dimensions the alarms read (tests/compute/test_stack.py checks the alarm side)."""

from __future__ import annotations

import json
import os

import pytest

from devserver.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake
from functions.shared.contract import Env, Metric
from tests.functions.helpers import Rest, WebSocket, dynamodb_throttled


def _emitted(out: str) -> dict[str, float]:
    """Every EMF metric printed, summed by name, checked against this function's namespace
    and ``service`` dimension (what the stack sets and the alarms read)."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == os.environ[Env.POWERTOOLS_METRICS_NAMESPACE]
            assert directive["Dimensions"] == [["service"]]
            assert document["service"] == os.environ[Env.POWERTOOLS_SERVICE_NAME]
            for metric in directive["Metrics"]:
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    document[metric["Name"]]
                )
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
