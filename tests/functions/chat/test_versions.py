"""Regenerating the last answer and editing the last question over REST: each is a new turn at
the end of the session whose question ``replaces`` the last one; the replaced pair is kept with
``superseded_by`` and leaves the history the model is sent."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fakes.bedrock import CONVERSE, BedrockFake
from functions.contract import Env
from tests.functions.helpers import Rest, stored_messages, stored_session


def _post(rest: Rest, session_id: str, **body: Any) -> Any:
    return rest.call("POST", f"/sessions/{session_id}/messages", body=body)


def _asked(rest: Rest, session_id: str, content: str) -> str:
    """Take a turn; the message_id of its question."""
    assert _post(rest, session_id, content=content).status == 200
    return _listed(rest, session_id)[-2]["message_id"]


def _listed(rest: Rest, session_id: str) -> list[dict[str, Any]]:
    response = rest.call("GET", f"/sessions/{session_id}/messages")
    assert response.status == 200, response.text
    return response.json["messages"]


def _consistent(session_id: str) -> list[dict[str, Any]]:
    items = stored_messages(session_id)
    session = stored_session(session_id)
    assert session is not None
    assert int(session["message_count"]["N"]) == len(items)
    return items


@pytest.fixture
def session_id(rest: Rest, bedrock: BedrockFake) -> str:
    answers = itertools.count(1)
    bedrock.reply = lambda body: f"answer {next(answers)}"
    return rest.create_session(knowledge_base_id=None)["session_id"]


def test_regenerate_answers_the_same_question_again_and_keeps_the_old_version(
    rest: Rest, bedrock: BedrockFake, session_id: str
) -> None:
    first = _asked(rest, session_id, "Capital of France?")
    response = _post(rest, session_id, replaces=first)
    assert response.status == 200, response.text
    answer = response.json["message"]
    assert (answer["seq"], answer["content"], answer["version"]) == (4, "answer 2", 2)
    listed = _listed(rest, session_id)
    assert [
        (m["seq"], m["role"], m["content"], m["version"], m["replaces"], m["superseded_by"])
        for m in listed
    ] == [
        (1, "user", "Capital of France?", 1, None, listed[2]["message_id"]),
        (2, "assistant", "answer 1", 1, None, listed[2]["message_id"]),
        (3, "user", "Capital of France?", 2, first, None),
        (4, "assistant", "answer 2", 2, None, None),
    ]
    assert bedrock.requests_for(CONVERSE)[-1].body["messages"] == [
        {"role": "user", "content": [{"text": "Capital of France?"}]}
    ]  # not the replaced turn: the model sees the question once
    _consistent(session_id)


def test_edit_answers_the_new_question_and_history_holds_only_the_current_branch(
    rest: Rest, bedrock: BedrockFake, session_id: str
) -> None:
    _asked(rest, session_id, "one")
    second = _asked(rest, session_id, "two")
    response = _post(rest, session_id, replaces=second, content="two, edited")
    assert response.status == 200, response.text
    edited = _listed(rest, session_id)[-2]["message_id"]
    _asked(rest, session_id, "three")
    assert bedrock.requests_for(CONVERSE)[-1].body["messages"] == [
        {"role": "user", "content": [{"text": "one"}]},
        {"role": "assistant", "content": [{"text": "answer 1"}]},
        {"role": "user", "content": [{"text": "two, edited"}]},
        {"role": "assistant", "content": [{"text": "answer 3"}]},
        {"role": "user", "content": [{"text": "three"}]},
    ]
    current = [m["content"] for m in _listed(rest, session_id) if not m["superseded_by"]]
    assert current == ["one", "answer 1", "two, edited", "answer 3", "three", "answer 4"]
    assert len(_consistent(session_id)) == 8
    # the edited version is itself replaceable no more: a later turn followed it
    _post(rest, session_id, replaces=edited).assert_error(409, "conflict")


def test_a_version_of_a_version_counts_on(rest: Rest, session_id: str) -> None:
    replaces = _asked(rest, session_id, "q")
    for version in (2, 3):
        assert _post(rest, session_id, replaces=replaces).json["message"]["version"] == version
        replaces = _listed(rest, session_id)[-2]["message_id"]
    assert [m["superseded_by"] is None for m in _listed(rest, session_id)] == [False] * 4 + [
        True
    ] * 2


def test_only_the_last_question_can_be_replaced(
    rest: Rest, bedrock: BedrockFake, session_id: str
) -> None:
    older = _asked(rest, session_id, "one")
    last = _asked(rest, session_id, "two")
    answer = _listed(rest, session_id)[-1]["message_id"]
    calls = len(bedrock.requests_for(CONVERSE))
    _post(rest, session_id, replaces=older).assert_error(409, "conflict")
    _post(rest, session_id, replaces=answer).assert_error(409, "conflict")
    _post(rest, session_id, replaces="no-such-message").assert_error(404, "not_found")
    assert _post(rest, session_id, replaces=last).status == 200
    _post(rest, session_id, replaces=last).assert_error(409, "conflict")  # superseded now
    assert len(bedrock.requests_for(CONVERSE)) == calls + 1
    assert len(_consistent(session_id)) == 6


def test_a_message_of_another_session_or_user_is_not_found(
    rest: Rest, bedrock: BedrockFake, session_id: str
) -> None:
    question = _asked(rest, session_id, "mine")
    other = rest.create_session(knowledge_base_id=None)["session_id"]
    _post(rest, other, replaces=question).assert_error(404, "not_found")
    theirs = rest.create_session(user="user-b", knowledge_base_id=None)["session_id"]
    response = rest.call(
        "POST", f"/sessions/{session_id}/messages", body={"replaces": question}, user="user-b"
    )
    response.assert_error(404, "not_found")
    response = rest.call(
        "POST", f"/sessions/{theirs}/messages", body={"replaces": question}, user="user-b"
    )
    response.assert_error(404, "not_found")
    assert len(_consistent(session_id)) == 2
    assert len(bedrock.requests_for(CONVERSE)) == 1


def test_an_answer_still_generating_cannot_be_replaced(rest: Rest, session_id: str) -> None:
    import boto3

    from tests.functions.helpers import table

    question = _asked(rest, session_id, "q")
    boto3.client("dynamodb").delete_item(  # the slot as it is while its turn runs
        TableName=table(Env.MESSAGES_TABLE),
        Key={"session_id": {"S": session_id}, "seq": {"N": "2"}},
    )
    response = _post(rest, session_id, replaces=question)
    assert "still being generated" in response.assert_error(409, "conflict")["message"]


def test_a_replaced_turn_whose_answer_slot_was_abandoned_is_repaired_and_replaceable(
    rest: Rest, session_id: str
) -> None:
    """The repair works on a replacing turn as on any: its abandoned slot gets the marker
    (with the turn's version), after which the turn can be replaced again."""
    import boto3

    from tests.functions.helpers import table

    first = _asked(rest, session_id, "q")
    assert _post(rest, session_id, replaces=first).status == 200
    client, messages = boto3.client("dynamodb"), table(Env.MESSAGES_TABLE)
    client.delete_item(TableName=messages, Key={"session_id": {"S": session_id}, "seq": {"N": "4"}})
    client.update_item(  # the replacing turn's invocation is past its deadline
        TableName=messages,
        Key={"session_id": {"S": session_id}, "seq": {"N": "3"}},
        UpdateExpression="SET answer_by = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    listed = _listed(rest, session_id)
    assert [(m["seq"], m["status"], m["stop_reason"], m["version"]) for m in listed[2:]] == [
        (3, "complete", None, 2),
        (4, "failed", "abandoned", 2),
    ]
    response = _post(rest, session_id, replaces=listed[2]["message_id"])
    assert response.status == 200, response.text
    assert response.json["message"]["version"] == 3
    assert len(_consistent(session_id)) == 6


def test_regenerating_a_failed_answer_keeps_the_failure_as_the_old_version(
    rest: Rest, bedrock: BedrockFake, session_id: str, single_attempt: None
) -> None:
    """Unlike the retry without ``replaces`` (which fills the failed slot in place), a
    regenerate is a new version even after a failure; a regenerated answer that fails is a
    ``failed`` marker of its own version."""
    bedrock.throttle(1, operation=CONVERSE)
    _post(rest, session_id, content="q").assert_error(503, "throttled")
    question = _listed(rest, session_id)[0]["message_id"]
    bedrock.throttle(1, operation=CONVERSE)
    _post(rest, session_id, replaces=question).assert_error(503, "throttled")
    listed = _listed(rest, session_id)
    assert [(m["role"], m["status"], m["version"]) for m in listed] == [
        ("user", "complete", 1),
        ("assistant", "failed", 1),
        ("user", "complete", 2),
        ("assistant", "failed", 2),
    ]
    assert [bool(m["superseded_by"]) for m in listed] == [True, True, False, False]
    # the retry of the failed version 2 without replaces reuses it, as for any failed turn
    assert _post(rest, session_id, content="q").status == 200
    assert [m["status"] for m in _listed(rest, session_id)][-1] == "complete"
    assert len(_consistent(session_id)) == 4


def test_a_regenerate_is_budgeted_like_any_turn(rest: Rest, session_id: str) -> None:
    question = _asked(rest, session_id, "q")
    before = rest.call("GET", "/usage").json["periods"][0]
    assert _post(rest, session_id, replaces=question).status == 200
    after = rest.call("GET", "/usage").json["periods"][0]
    assert after["turns"] == before["turns"] + 1
    assert after["used"] > before["used"]


def test_two_concurrent_regenerates_one_wins(
    rest: Rest, bedrock: BedrockFake, session_id: str
) -> None:
    question = _asked(rest, session_id, "q")
    start = threading.Barrier(2)

    def regenerate(_: int) -> int:
        start.wait()
        return _post(rest, session_id, replaces=question).status

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(regenerate, range(2)))
    assert statuses == [200, 409]
    items = _consistent(session_id)
    assert len(items) == 4
    assert [("superseded_by" in item) for item in items] == [True, True, False, False]


def test_a_regenerate_with_an_idempotency_key_is_replayed(
    rest: Rest, bedrock: BedrockFake, session_id: str
) -> None:
    question = _asked(rest, session_id, "q")
    keyed: dict[str, Any] = {
        "headers": {"Idempotency-Key": "regenerate-1"},
        "body": {"replaces": question},
    }
    path = f"/sessions/{session_id}/messages"
    first = rest.call("POST", path, **keyed)
    assert first.status == 200, first.text
    calls = len(bedrock.requests_for(CONVERSE))
    again = rest.call("POST", path, **keyed)
    assert (again.status, again.json) == (200, first.json)
    assert len(bedrock.requests_for(CONVERSE)) == calls
    assert len(_consistent(session_id)) == 4
    other = {**keyed, "body": {"replaces": question, "content": "edited"}}
    rest.call("POST", path, **other).assert_error(422, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"replaces": None}, "body.replaces"),
        ({"content": None, "replaces": "x"}, "body.content"),
        ({"replaces": ""}, "body.replaces"),
        ({"replaces": "x" * 129}, "body.replaces"),
        ({"replaces": 3}, "body.replaces"),
        ({"replaces": "x", "content": " "}, "body.content"),
    ],
)
def test_bad_replaces_bodies_are_400(
    rest: Rest, bedrock: BedrockFake, session_id: str, body: dict[str, Any], field: str
) -> None:
    error = _post(rest, session_id, **body).assert_error(400, "bad_request")
    assert any(detail["field"].startswith(field) for detail in error["details"]), error
    assert bedrock.requests_for(CONVERSE) == []
