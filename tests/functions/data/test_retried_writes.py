"""Conditional writes that botocore retries after their reply was lost: the retry finds the
first attempt's item and must take it as its own, not as someone else's (a 500 on a created
session, a 409 on the request's own idempotency claim, an error logged for a release that
worked, a 404 for a delete that worked).

Each test loses the reply of exactly one write through the fault proxy, with botocore's retry
on as in Lambda; the turns' and the usage table's writes have their own such tests
(``test_turn_storage.py``, ``test_quota.py``), and the titles' write its own in
``chat/test_titles.py``.

The other side of a claim's id: an idempotency claim whose lease ran out, after a repeat took
its key over, neither releases nor stores over the holder (the stale-claim tests, which call
the store directly with their own clock).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
import pytest

from fakes.bedrock import CONVERSE, BedrockFake
from fakes.dynamodb_faults import DynamoFaults, operation_on
from functions.contract import Env
from functions.data.idempotency import Claim, IdempotencyStore
from functions.domain.errors import InProgress
from tests.functions.helpers import USER_B, Rest, stored_messages, table

REQUEST = {"content": "hi"}


def _sessions(rest: Rest) -> list[dict[str, Any]]:
    return rest.call("GET", "/sessions").json["sessions"]


def test_a_created_session_whose_reply_was_lost_is_created_once(
    rest: Rest, retrying_faults: DynamoFaults
) -> None:
    retrying_faults.lose_reply(operation_on("PutItem", table(Env.SESSIONS_TABLE)))
    created = rest.call("POST", "/sessions", body={"title": "Trip"})
    assert created.status == 201, created.text
    assert ("lose_reply", "PutItem") in retrying_faults.injected
    assert retrying_faults.operations.count("PutItem") == 2  # botocore's retry did run
    assert [session["session_id"] for session in _sessions(rest)] == [created.json["session_id"]]
    stored = rest.call("GET", f"/sessions/{created.json['session_id']}")
    assert stored.json == created.json


@pytest.mark.parametrize("write", ["PutItem", "UpdateItem"], ids=["claim", "result"])
def test_a_lost_reply_on_an_idempotency_write_runs_the_request_once(
    rest: Rest,
    bedrock: BedrockFake,
    retrying_faults: DynamoFaults,
    caplog: pytest.LogCaptureFixture,
    write: str,
) -> None:
    """The retried claim, or the retried write of the result, meets the request's own claim
    id: no 409 for the request's own claim, the result stored without a warning that it was
    not, and the key then replays it as for any request."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    retrying_faults.lose_reply(operation_on(write, table(Env.IDEMPOTENCY_TABLE)))
    headers = {"Idempotency-Key": "key-1"}
    path = f"/sessions/{session_id}/messages"
    first = rest.call("POST", path, body={"content": "hi"}, headers=headers)
    assert first.status == 200, first.text
    assert ("lose_reply", write) in retrying_faults.injected
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    again = rest.call("POST", path, body={"content": "hi"}, headers=headers)
    assert again.json == first.json
    assert len(bedrock.requests_for(CONVERSE)) == 1
    assert len(stored_messages(session_id)) == 2


def test_a_lost_reply_on_an_idempotent_session_create_replays_that_session(
    rest: Rest, retrying_faults: DynamoFaults
) -> None:
    retrying_faults.lose_reply(operation_on("PutItem", table(Env.IDEMPOTENCY_TABLE)))
    headers = {"Idempotency-Key": "create-1"}
    first = rest.call("POST", "/sessions", body={"title": "t"}, headers=headers)
    assert first.status == 201, first.text
    again = rest.call("POST", "/sessions", body={"title": "t"}, headers=headers)
    assert again.json == first.json
    assert len(_sessions(rest)) == 1


def test_a_lost_reply_on_a_release_still_frees_the_key(
    rest: Rest,
    bedrock: BedrockFake,
    retrying_faults: DynamoFaults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The request fails, its release is applied but answered 500, and botocore's retry of
    the delete finds nothing: the key is free, and no failure is logged."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.fail(400, "ValidationException", "refused", CONVERSE)  # not retried by botocore
    retrying_faults.lose_reply(operation_on("DeleteItem", table(Env.IDEMPOTENCY_TABLE)))
    headers = {"Idempotency-Key": "key-1"}
    path = f"/sessions/{session_id}/messages"
    caplog.clear()
    failed = rest.call("POST", path, body={"content": "hi"}, headers=headers)
    assert failed.status == 502, failed.text
    assert ("lose_reply", "DeleteItem") in retrying_faults.injected
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    retry = rest.call("POST", path, body={"content": "hi"}, headers=headers)
    assert retry.status == 200, retry.text
    assert len(bedrock.requests_for(CONVERSE)) == 2


def test_a_release_leaves_a_claim_that_took_the_key_over(app_env: dict[str, str]) -> None:
    """An attempt whose lease ran out lost the key to a repeat; when it then fails, its
    release must not free the key under the repeat, which still runs."""
    store = _idempotency_store()
    stale, current, now = _stale_and_current(store)
    assert current.claim_id != stale.claim_id
    store.release(stale)
    with pytest.raises(InProgress):
        store.claim("user-a", "messages", "key-1", REQUEST, now=now, lease_seconds=60)
    store.release(current)
    retry = store.claim("user-a", "messages", "key-1", REQUEST, now=now + 1, lease_seconds=60)
    assert isinstance(retry, Claim)


def _stale_and_current(store: IdempotencyStore) -> tuple[Claim, Claim, int]:
    """A claim whose lease ran out, and the repeat's claim that took the key over."""
    now = int(time.time())
    stale = store.claim("user-a", "messages", "key-1", REQUEST, now=now, lease_seconds=1)
    current = store.claim("user-a", "messages", "key-1", REQUEST, now=now + 5, lease_seconds=60)
    assert isinstance(stale, Claim) and isinstance(current, Claim)
    return stale, current, now + 6


def _idempotency_store() -> IdempotencyStore:
    return IdempotencyStore(boto3.client("dynamodb"), table(Env.IDEMPOTENCY_TABLE))


@pytest.mark.parametrize("late_first", [True, False], ids=["late-first", "holder-first"])
def test_a_late_result_leaves_the_result_of_the_claim_that_took_the_key_over(
    app_env: dict[str, str], caplog: pytest.LogCaptureFixture, late_first: bool
) -> None:
    """The original outlived its lease and a repeat took the key over: whichever stores
    first, repeats get the holder's result, and the late one says it was not stored."""
    store = _idempotency_store()
    stale, current, now = _stale_and_current(store)
    caplog.clear()
    if late_first:
        assert store.complete(stale, {"answer": "late"}) is False
        with pytest.raises(InProgress):  # the holder still runs
            store.claim("user-a", "messages", "key-1", REQUEST, now=now, lease_seconds=60)
    assert store.complete(current, {"answer": "holder"}) is True
    if not late_first:
        assert store.complete(stale, {"answer": "late"}) is False
    repeat = store.claim("user-a", "messages", "key-1", REQUEST, now=now, lease_seconds=60)
    assert repeat == {"answer": "holder"}
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "the idempotency key was taken over; this result is not stored"
    ]


def test_a_late_result_after_the_holder_failed_leaves_the_key_free(app_env: dict[str, str]) -> None:
    """The repeat that took the key over failed and released it; the late original's result
    must not make a record without the request's hash or an expiry, which would answer 422
    to every later repeat of the key."""
    store = _idempotency_store()
    stale, current, now = _stale_and_current(store)
    store.release(current)
    stored = store.complete(stale, {"answer": "late"})
    retry = store.claim("user-a", "messages", "key-1", REQUEST, now=now, lease_seconds=60)
    assert isinstance(retry, Claim)
    assert stored is False


def test_a_deleted_session_whose_reply_was_lost_is_204(
    rest: Rest, retrying_faults: DynamoFaults
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    retrying_faults.lose_reply(operation_on("DeleteItem", table(Env.SESSIONS_TABLE)))
    deleted = rest.call("DELETE", f"/sessions/{session_id}")
    assert deleted.status == 204, deleted.text
    assert ("lose_reply", "DeleteItem") in retrying_faults.injected
    rest.call("GET", f"/sessions/{session_id}").assert_error(404, "not_found")
    rest.call("DELETE", f"/sessions/{session_id}").assert_error(404, "not_found")


def test_a_retried_delete_of_someone_elses_session_is_still_404(
    rest: Rest, retrying_faults: DynamoFaults
) -> None:
    theirs = rest.create_session(user=USER_B, knowledge_base_id=None)["session_id"]
    # Refused without being applied, retried, and then the condition fails on their item.
    retrying_faults.fail(operation_on("DeleteItem", table(Env.SESSIONS_TABLE)))
    rest.call("DELETE", f"/sessions/{theirs}").assert_error(404, "not_found")
    assert retrying_faults.operations.count("DeleteItem") == 2
    assert rest.call("GET", f"/sessions/{theirs}", user=USER_B).status == 200
