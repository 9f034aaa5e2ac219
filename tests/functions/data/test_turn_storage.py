"""Every turn stored once or visibly not at all, under faults between the functions and
DynamoDB: a proxy in front of moto fails a chosen request, loses its reply after applying it,
or lets a DELETE land just before it. After every fault the session's ``message_count``
equals the messages stored, and nothing is left in a deleted session."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from fakes.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake
from fakes.dynamodb_faults import (
    DynamoFaults,
    Match,
    routed_through_faults,
    transaction_putting,
)
from fakes.moto import MotoServer
from functions.contract import Env
from functions.core.settings import get_settings
from functions.data.turns import TURN_ATTEMPTS, Store
from functions.main.settings import Settings
from tests.functions.conftest import SessionCleanup
from tests.functions.helpers import (
    USER_A,
    Rest,
    WebSocket,
    stored_messages,
    stored_session,
)

QUESTION = transaction_putting("user")
ANSWER = transaction_putting("assistant")


@pytest.fixture
def faults(
    app_env: dict[str, str], moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DynamoFaults]:
    with routed_through_faults(moto_server.url, monkeypatch, attempts=1) as proxy:
        yield proxy


def _consistent(session_id: str) -> list[dict]:
    """The invariant: the count is the number of stored messages, seqs 1..count."""
    items = stored_messages(session_id)
    session = stored_session(session_id)
    assert session is not None
    assert int(session["message_count"]["N"]) == len(items)
    assert sorted(int(item["seq"]["N"]) for item in items) == list(range(1, len(items) + 1))
    return items


def _post(rest: Rest, session_id: str, content: str = "hi"):
    return rest.call("POST", f"/sessions/{session_id}/messages", body={"content": content})


def test_a_question_write_that_keeps_failing_stores_nothing_and_calls_no_model(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.fail(QUESTION, times=TURN_ATTEMPTS)
    response = _post(rest, session_id)
    response.assert_error(503, "throttled")
    assert response.headers["retry-after"]
    assert _consistent(session_id) == []
    assert bedrock.requests_for(CONVERSE) == []


def test_a_failed_question_write_is_retried(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.fail(QUESTION, times=2)
    assert _post(rest, session_id).status == 200
    assert [item["role"]["S"] for item in _consistent(session_id)] == ["user", "assistant"]


def test_a_failed_answer_write_is_retried_and_stored_once(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    bedrock.reply = "Paris."
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.fail(ANSWER, times=2)
    response = _post(rest, session_id)
    assert response.status == 200, response.text
    items = _consistent(session_id)
    assert [item["content"]["S"] for item in items] == ["hi", "Paris."]
    assert len(bedrock.requests_for(CONVERSE)) == 1  # paid once, kept


def test_an_answer_write_whose_reply_is_lost_is_stored_once(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    bedrock.reply = "Paris."
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.lose_reply(ANSWER)  # applied, but the function is told it failed
    response = _post(rest, session_id)
    assert response.status == 200, response.text
    items = _consistent(session_id)
    assert [item["role"]["S"] for item in items] == ["user", "assistant"]


def test_a_question_write_whose_reply_is_lost_is_not_stored_twice(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    """The transaction applied but the reply was lost: the retry finds its own question in the
    slot and goes on, instead of storing the question a second time."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.lose_reply(QUESTION)
    response = _post(rest, session_id)
    assert response.status == 200, response.text
    assert [item["role"]["S"] for item in _consistent(session_id)] == ["user", "assistant"]


@pytest.mark.parametrize("fault", ["fail", "lose_reply"])
def test_any_single_dynamodb_fault_leaves_the_session_consistent(
    rest: Rest,
    bedrock: BedrockFake,
    faults: DynamoFaults,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inject the fault at each DynamoDB request of a turn in turn (GetItem, Query, both
    transactions), then check the invariant and that the model was called at most once.

    The answer-slot limit is off: a lease write that fails holds its slot until the lease
    runs out, by design, and that is tested with the same faults in data/test_quota.py.
    The budget writes stay in the turn."""
    monkeypatch.setenv(Env.USER_MAX_CONCURRENT_ANSWERS, "0")
    get_settings.cache_clear()
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    assert _post(rest, session_id).status == 200
    seen_before = len(faults.operations)
    assert _post(rest, session_id).status == 200
    requests_in_a_turn = len(faults.operations) - seen_before
    for index in range(requests_in_a_turn):
        getattr(faults, fault)(_nth_request(index))
        calls_before = len(bedrock.requests_for(CONVERSE))
        response = _post(rest, session_id, f"question {index}")
        assert response.status in (200, 404, 503), response.text
        assert len(bedrock.requests_for(CONVERSE)) - calls_before <= 1
        _consistent(session_id)


def test_a_session_deleted_before_the_question_is_not_billed(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.before(QUESTION, lambda: _delete(rest, session_id))
    _post(rest, session_id).assert_error(404, "not_found")
    assert bedrock.requests_for(CONVERSE) == []
    assert stored_messages(session_id) == []


def test_a_session_deleted_during_the_turn_keeps_nothing(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults, session_cleanup: SessionCleanup
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.before(ANSWER, lambda: _delete(rest, session_id))
    _post(rest, session_id).assert_error(404, "not_found")
    assert stored_session(session_id) is None
    session_cleanup.drain()
    assert stored_messages(session_id) == []  # the answer never landed; the question is gone


def test_a_streamed_turn_whose_session_is_deleted_midway_says_not_found(
    rest: Rest,
    ws: WebSocket,
    bedrock: BedrockFake,
    faults: DynamoFaults,
    session_cleanup: SessionCleanup,
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    faults.before(ANSWER, lambda: _delete(rest, session_id))
    payload = {"action": "sendMessage", "session_id": session_id, "content": "hi"}
    assert ws.send(connection_id, payload) == {"statusCode": 200}
    frames = ws.frames(connection_id)
    assert (frames[-1]["type"], frames[-1]["code"]) == ("error", "not_found")
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == 1
    session_cleanup.drain()
    assert stored_messages(session_id) == []


def test_an_expired_session_can_still_be_deleted_by_its_owner(rest: Rest) -> None:
    import boto3

    from tests.functions.helpers import table

    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    boto3.client("dynamodb").update_item(
        TableName=table("SESSIONS_TABLE_NAME"),
        Key={"session_id": {"S": session_id}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    rest.call("GET", f"/sessions/{session_id}").assert_error(404, "not_found")
    assert rest.call("DELETE", f"/sessions/{session_id}").status == 204
    assert stored_session(session_id) is None


def test_two_concurrent_turns_and_a_concurrent_delete_many_times_over(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults, session_cleanup: SessionCleanup
) -> None:
    """Whatever the interleaving: a surviving session is consistent with both turns complete,
    a deleted one leaves nothing, and no turn whose session was gone called the model."""
    bedrock.reply = lambda body: "re: " + body["messages"][-1]["content"][0]["text"]
    for _ in range(15):
        session_id = rest.create_session(knowledge_base_id=None)["session_id"]
        start = threading.Barrier(3)

        def turn(n: int, session_id: str = session_id, start: threading.Barrier = start) -> int:
            start.wait()
            return _post(rest, session_id, f"q{n}").status

        def delete(session_id: str = session_id, start: threading.Barrier = start) -> int:
            start.wait()
            time.sleep(random.uniform(0, 0.05))  # land anywhere in the turns' writes
            return rest.call("DELETE", f"/sessions/{session_id}").status

        with ThreadPoolExecutor(max_workers=3) as pool:
            turns = [pool.submit(turn, n) for n in range(2)]
            deleted = pool.submit(delete)
            statuses = [future.result() for future in turns]
        assert deleted.result() == 204
        assert set(statuses) <= {200, 404}
        assert stored_session(session_id) is None
        session_cleanup.drain()
        assert stored_messages(session_id) == []
    survivors = rest.create_session(knowledge_base_id=None)["session_id"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda n: _post(rest, survivors, f"q{n}").status, range(2))) == [
            200,
            200,
        ]
    assert len(_consistent(survivors)) == 4


def _nth_request(index: int) -> Match:
    """Matches the request ``index`` (0-based) from now on, whatever it is."""
    counter = iter(range(10_000))
    return lambda operation, body: next(counter) == index


def _delete(rest: Rest, session_id: str) -> None:
    """DELETE the session as another container would, from another thread."""
    outcome: list[int] = []
    other = threading.Thread(
        target=lambda: outcome.append(rest.call("DELETE", f"/sessions/{session_id}").status)
    )
    other.start()
    other.join()
    assert outcome == [204]


def test_another_users_turn_in_the_session_is_not_found(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    """Another user cannot take a turn in the session, even with its id."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    response = rest.call(
        "POST", f"/sessions/{session_id}/messages", body={"content": "hi"}, user="user-b"
    )
    response.assert_error(404, "not_found")
    assert _consistent(session_id) == []
    assert bedrock.requests_for(CONVERSE) == []


@pytest.mark.usefixtures("single_attempt")
def test_a_retry_after_a_503_reuses_the_stored_question(rest: Rest, bedrock: BedrockFake) -> None:
    bedrock.reply = "Paris."
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.throttle(1, operation=CONVERSE)
    _post(rest, session_id, "Capital of France?").assert_error(503, "throttled")
    retry = _post(rest, session_id, "Capital of France?")
    assert retry.status == 200, retry.text
    items = _consistent(session_id)
    assert [(i["role"]["S"], i["content"]["S"], i["status"]["S"] if "status" in i else None)
            for i in items] == [
        ("user", "Capital of France?", None),
        ("assistant", "Paris.", "complete"),
    ]  # fmt: skip
    last = bedrock.requests_for(CONVERSE)[-1]
    assert last.body["messages"] == [
        {"role": "user", "content": [{"text": "Capital of France?"}]}
    ]  # the model sees the question once


@pytest.mark.usefixtures("single_attempt")
def test_a_streamed_retry_after_a_throttled_frame_reuses_the_stored_question(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    payload = {"action": "sendMessage", "session_id": session_id, "content": "hi"}
    bedrock.throttle(1, operation=CONVERSE_STREAM)
    ws.send(connection_id, payload)
    ws.send(connection_id, payload)
    frames = ws.frames(connection_id)
    assert frames[0]["code"] == "throttled"
    assert frames[-1]["type"] == "end"
    assert [i["role"]["S"] for i in _consistent(session_id)] == ["user", "assistant"]


@pytest.mark.usefixtures("single_attempt")
def test_a_different_question_after_a_failure_is_a_new_turn(
    rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.throttle(1, operation=CONVERSE)
    _post(rest, session_id, "first").assert_error(503, "throttled")
    assert _post(rest, session_id, "second").status == 200
    items = _consistent(session_id)
    assert [(i["role"]["S"], i["content"]["S"]) for i in items][::2] == [
        ("user", "first"),
        ("user", "second"),
    ]
    assert items[1]["status"]["S"] == "failed"


def _connections_of(user: str) -> list[str]:
    import boto3

    from tests.functions.helpers import table

    items = boto3.client("dynamodb").scan(TableName=table("CONNECTIONS_TABLE_NAME"))["Items"]
    return [i["connection_id"]["S"] for i in items if i["user_id"]["S"] == user]


def test_delete_me_removes_every_session_message_and_connection_of_the_caller_only(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake, session_cleanup: SessionCleanup
) -> None:
    mine = [rest.create_session(knowledge_base_id=None)["session_id"] for _ in range(3)]
    theirs = rest.create_session(user="user-b", knowledge_base_id=None)["session_id"]
    for session_id in [*mine[:2], theirs]:
        user = "user-b" if session_id == theirs else "user-a"
        response = rest.call(
            "POST", f"/sessions/{session_id}/messages", body={"content": "hi"}, user=user
        )
        assert response.status == 200
    for _ in range(2):
        ws.open()
    ws.connect(ws.new_connection_id(), "user-b")
    assert len(_connections_of("user-a")) == 2

    assert rest.call("DELETE", "/me").status == 204
    session_cleanup.drain()

    for session_id in mine:
        assert stored_session(session_id) is None
        assert stored_messages(session_id) == []
    assert _connections_of("user-a") == []
    assert rest.call("GET", "/sessions").json["sessions"] == []
    assert len(_consistent(theirs)) == 2  # another user's data is untouched
    assert len(_connections_of("user-b")) == 1
    assert rest.call("DELETE", "/me").status == 204  # nothing left: still done


def test_an_interrupted_delete_me_is_finished_by_calling_it_again(
    rest: Rest,
    ws: WebSocket,
    bedrock: BedrockFake,
    faults: DynamoFaults,
    session_cleanup: SessionCleanup,
) -> None:
    sessions = [rest.create_session(knowledge_base_id=None)["session_id"] for _ in range(4)]
    for session_id in sessions:
        assert _post(rest, session_id).status == 200
    ws.open()
    faults.fail(_nth_matching("DeleteItem", 3))  # the third session's delete fails
    rest.call("DELETE", "/me").assert_error(503, "throttled")
    assert any(stored_session(session_id) for session_id in sessions)
    assert rest.call("DELETE", "/me").status == 204
    session_cleanup.drain()
    for session_id in sessions:
        assert stored_session(session_id) is None
        assert stored_messages(session_id) == []
    assert _connections_of("user-a") == []


def _nth_matching(operation_name: str, n: int) -> Match:
    seen = iter(range(1, 10_000))

    def match(operation: str, body: dict) -> bool:
        return operation == operation_name and next(seen) == n

    return match


def _last_question(session_id: str) -> str:
    questions = [i for i in stored_messages(session_id) if i["role"]["S"] == "user"]
    return max(questions, key=lambda item: int(item["seq"]["N"]))["message_id"]["S"]


def _regenerate(rest: Rest, session_id: str, replaces: str):
    body = {"replaces": replaces}
    return rest.call("POST", f"/sessions/{session_id}/messages", body=body)


def _version(item: dict) -> int:
    return int(item.get("version", {"N": "1"})["N"])  # absent on a first version


def _current(items: list[dict]) -> list[dict]:
    """The current branch: at most one version of each turn is not superseded."""
    current = [item for item in items if "superseded_by" not in item]
    replaced = {item["replaces"]["S"] for item in current if "replaces" in item}
    assert all(item["message_id"]["S"] not in replaced for item in current)
    return current


def test_a_regenerate_whose_transaction_keeps_failing_stores_nothing(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    assert _post(rest, session_id).status == 200
    question = _last_question(session_id)
    faults.fail(QUESTION, times=TURN_ATTEMPTS)
    _regenerate(rest, session_id, question).assert_error(503, "throttled")
    items = _consistent(session_id)
    assert len(items) == 2
    assert _current(items) == items  # nothing superseded: the old version still stands
    assert len(bedrock.requests_for(CONVERSE)) == 1


def test_a_regenerate_whose_reply_is_lost_is_stored_once(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    assert _post(rest, session_id).status == 200
    question = _last_question(session_id)
    faults.lose_reply(QUESTION)  # applied, but the function is told it failed
    response = _regenerate(rest, session_id, question)
    assert response.status == 200, response.text
    items = _consistent(session_id)
    assert [("superseded_by" in item, _version(item)) for item in items] == [
        (True, 1),
        (True, 1),
        (False, 2),
        (False, 2),
    ]


@pytest.mark.parametrize("fault", ["fail", "lose_reply"])
def test_any_single_dynamodb_fault_on_a_regenerate_leaves_the_session_consistent(
    rest: Rest,
    bedrock: BedrockFake,
    faults: DynamoFaults,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As for a plain turn: the fault at each DynamoDB request of a regenerate in turn; the
    count equals the stored messages, one version of each turn is current, and the model was
    called at most once."""
    monkeypatch.setenv(Env.USER_MAX_CONCURRENT_ANSWERS, "0")
    get_settings.cache_clear()
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    assert _post(rest, session_id).status == 200
    question = _last_question(session_id)
    seen_before = len(faults.operations)
    assert _regenerate(rest, session_id, question).status == 200
    requests_in_a_regenerate = len(faults.operations) - seen_before
    for index in range(requests_in_a_regenerate):
        question = _last_question(session_id)
        getattr(faults, fault)(_nth_request(index))
        calls_before = len(bedrock.requests_for(CONVERSE))
        response = _regenerate(rest, session_id, question)
        assert response.status in (200, 503), response.text
        assert len(bedrock.requests_for(CONVERSE)) - calls_before <= 1
        assert len(_current(_consistent(session_id))) == 2


def test_a_repair_that_loses_to_the_answer_returns_the_answer_without_reading_it(
    rest: Rest,
) -> None:
    """The slot was read empty, but the answer landed before the marker: the marker's put is
    refused, and the refusal carries the answer, so the repair reads nothing more (main's
    role has no GetItem on messages) and lists the answer, not a failure."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    assert _post(rest, session_id).status == 200
    store = Store.from_settings(get_settings(Settings))
    session = store.sessions.get(USER_A, session_id)
    question, answer = store.messages.last(session_id, 2)
    calls: list[str] = []
    store.sessions.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    stale = dataclasses.replace(question, answer_by=0)  # its turn's deadline long past
    repaired = store.repair(USER_A, session, [stale], to_end=True)
    assert [m.message_id for m in repaired] == [question.message_id, answer.message_id]
    assert repaired[1].status == "complete"
    assert calls == ["TransactWriteItems"]
    assert [item["status"]["S"] for item in _consistent(session_id)[1:]] == ["complete"]
