"""Feedback on answers through the main handler: stored on the answer, shown in the listing,
counted per model; ownership, validation and DynamoDB faults like the other routes."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import boto3
import pytest

from fakes.bedrock import CONVERSE, BedrockFake
from functions.contract import MODEL_DIMENSION, Env, Metric
from functions.core import aws
from functions.domain.models import MAX_FEEDBACK_COMMENT_CHARS
from tests.functions.helpers import (
    MODELS,
    USER_B,
    Rest,
    dynamodb_throttled,
    seed_history,
    stored_messages,
)

UNKNOWN = "0b515f04-62f1-415e-a225-f6913c371fab"


def _turn(rest: Rest, session_id: str, content: str = "hi") -> dict[str, Any]:
    response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": content})
    assert response.status == 200, response.text
    return response.json["message"]


def _path(session_id: str, message_id: str) -> str:
    return f"/sessions/{session_id}/messages/{message_id}/feedback"


def _answered(rest: Rest, **session: Any) -> tuple[str, dict[str, Any]]:
    session_id = rest.create_session(knowledge_base_id=None, **session)["session_id"]
    return session_id, _turn(rest, session_id)


def _ratings(out: str) -> list[tuple[str, str]]:
    """(metric, model) of every feedback metric printed as EMF, in order."""
    documents = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    names = (Metric.POSITIVE_FEEDBACK, Metric.NEGATIVE_FEEDBACK)
    return [
        (name, document[MODEL_DIMENSION])
        for document in documents
        for name in names
        if document.get(name) == [1.0]
    ]


def test_feedback_is_stored_on_the_answer_and_shown_in_the_listing(rest: Rest) -> None:
    session_id, answer = _answered(rest)
    body = {"rating": "down", "category": "inaccurate", "comment": "Wrong year."}
    response = rest.call("PUT", _path(session_id, answer["message_id"]), body=body)
    assert response.status == 200, response.text
    stored = response.json
    assert {key: stored[key] for key in body} == body
    assert stored["given_at"].endswith("Z")

    listed = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    assert [message["feedback"] for message in listed] == [None, stored]
    item = next(i for i in stored_messages(session_id) if i["seq"]["N"] == str(answer["seq"]))
    assert item["feedback_at"] == {"S": stored["given_at"]}
    assert item["feedback"]["M"]["rating"] == {"S": "down"}


def test_a_second_put_replaces_the_first_and_counts_the_new_rating(
    rest: Rest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Idempotent by nature; each PUT counts its rating, per model. Mutations caught: a
    rating counted under the other name, without the model, or not at all."""
    session_id, answer = _answered(rest, model_id=MODELS[1])
    path = _path(session_id, answer["message_id"])
    capsys.readouterr()
    first = rest.call("PUT", path, body={"rating": "up", "comment": "Thanks"})
    assert first.status == 200, first.text
    second = rest.call("PUT", path, body={"rating": "down"})
    assert second.status == 200, second.text
    assert (second.json["rating"], second.json["category"], second.json["comment"]) == (
        "down",
        None,
        None,
    )
    listed = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    assert listed[1]["feedback"] == second.json
    assert _ratings(capsys.readouterr().out) == [
        (Metric.POSITIVE_FEEDBACK, MODELS[1]),
        (Metric.NEGATIVE_FEEDBACK, MODELS[1]),
    ]


def test_the_answers_own_model_is_counted_even_after_the_session_changed_model(
    rest: Rest, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id, answer = _answered(rest, model_id=MODELS[0])
    patched = rest.call("PATCH", f"/sessions/{session_id}", body={"model_id": MODELS[1]})
    assert patched.status == 200
    capsys.readouterr()
    assert (
        rest.call("PUT", _path(session_id, answer["message_id"]), body={"rating": "up"}).status
        == 200
    )
    assert _ratings(capsys.readouterr().out) == [(Metric.POSITIVE_FEEDBACK, MODELS[0])]


def test_an_answer_stored_before_models_were_recorded_counts_the_sessions_model(
    rest: Rest, capsys: pytest.CaptureFixture[str]
) -> None:
    session_id = rest.create_session(model_id=MODELS[1])["session_id"]
    seed_history(session_id, 2, lambda seq: f"turn {seq}")  # items without model_id
    listed = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    capsys.readouterr()
    response = rest.call("PUT", _path(session_id, listed[1]["message_id"]), body={"rating": "up"})
    assert response.status == 200, response.text
    assert _ratings(capsys.readouterr().out) == [(Metric.POSITIVE_FEEDBACK, MODELS[1])]


def test_questions_and_failed_answers_cannot_be_rated(rest: Rest, bedrock: BedrockFake) -> None:
    session_id, _ = _answered(rest)
    question = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"][0]
    error = rest.call(
        "PUT", _path(session_id, question["message_id"]), body={"rating": "up"}
    ).assert_error(409, "conflict")
    assert "question" in error["message"]
    bedrock.fail(400, "ValidationException", "bad request", CONVERSE)
    rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "x"}).assert_error(
        502, "upstream_error"
    )
    failed = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"][-1]
    assert failed["status"] == "failed"
    error = rest.call(
        "PUT", _path(session_id, failed["message_id"]), body={"rating": "down"}
    ).assert_error(409, "conflict")
    assert "failed" in error["message"]
    assert all("feedback" not in item for item in stored_messages(session_id))


def test_another_users_answer_and_unknown_messages_are_404(rest: Rest) -> None:
    session_id, answer = _answered(rest)
    other_id, other_answer = _answered(rest)
    for path in (
        _path(session_id, UNKNOWN),
        _path(UNKNOWN, answer["message_id"]),
        _path(other_id, answer["message_id"]),  # an answer of another session of the caller
        _path(session_id, "x" * 3000),
    ):
        rest.call("PUT", path, body={"rating": "up"}).assert_error(404, "not_found")
    response = rest.call(
        "PUT", _path(session_id, answer["message_id"]), user=USER_B, body={"rating": "up"}
    )
    response.assert_error(404, "not_found")
    assert all("feedback" not in item for item in stored_messages(session_id))
    assert other_answer["message_id"] != answer["message_id"]


BAD_BODIES = [
    {},
    {"rating": "meh"},
    {"rating": "UP"},
    {"rating": None},
    {"rating": "up", "category": "rude"},
    {"rating": "up", "comment": "x" * (MAX_FEEDBACK_COMMENT_CHARS + 1)},
    {"rating": "up", "comment": 5},
    {"rating": "up", "stars": 5},
    [],
    "up",
    None,
]


def test_bad_bodies_are_400_and_store_nothing(rest: Rest) -> None:
    session_id, answer = _answered(rest)
    path = _path(session_id, answer["message_id"])
    for body in BAD_BODIES:
        rest.call("PUT", path, body=body).assert_error(400, "bad_request")
    lone_surrogate = '{"rating": "up", "comment": "\\ud800"}'
    rest.call("PUT", path, raw_body=lone_surrogate).assert_error(400, "bad_request")
    assert all("feedback" not in item for item in stored_messages(session_id))
    longest = {"rating": "up", "comment": "x" * MAX_FEEDBACK_COMMENT_CHARS, "category": "other"}
    assert rest.call("PUT", path, body=longest).status == 200


@pytest.mark.usefixtures("single_attempt")
@pytest.mark.parametrize("operation", ["Query", "UpdateItem"])
def test_dynamodb_throttling_is_503(rest: Rest, operation: str) -> None:
    session_id, answer = _answered(rest)
    with dynamodb_throttled(operation):
        response = rest.call("PUT", _path(session_id, answer["message_id"]), body={"rating": "up"})
    response.assert_error(503, "throttled")
    assert int(response.headers["retry-after"]) > 0
    assert all("feedback" not in item for item in stored_messages(session_id))


def test_unreachable_dynamodb_is_502(rest: Rest, monkeypatch: pytest.MonkeyPatch) -> None:
    session_id, answer = _answered(rest)
    with socket.socket() as closed:  # bound, never listening: every connect is refused
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv(
            "AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{closed.getsockname()[1]}"
        )
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        aws.reset_clients()
        try:
            response = rest.call(
                "PUT", _path(session_id, answer["message_id"]), body={"rating": "up"}
            )
        finally:
            aws.reset_clients()
    response.assert_error(502, "dependency_unreachable")


def test_a_message_removed_after_it_was_found_is_404(rest: Rest) -> None:
    """The UpdateItem is conditional: it never creates an item (the session's cleanup may
    remove the answer between the lookup and the write)."""
    session_id, answer = _answered(rest)
    table = os.environ[Env.MESSAGES_TABLE]
    client = boto3.client("dynamodb")

    def remove_answer(**_: Any) -> None:
        client.delete_item(
            TableName=table, Key={"session_id": {"S": session_id}, "seq": {"N": str(answer["seq"])}}
        )

    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb.UpdateItem", remove_answer, unique_id="test-remove")
    try:
        response = rest.call("PUT", _path(session_id, answer["message_id"]), body={"rating": "up"})
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", unique_id="test-remove")
    response.assert_error(404, "not_found")
    assert [item["seq"]["N"] for item in stored_messages(session_id)] == ["1"]
