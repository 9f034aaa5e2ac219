"""Per-user token budgets and answer leases (functions/data/quota.py), through both
transports against moto and the Bedrock fake, with faults on the usage table's writes."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from fakes.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake
from fakes.dynamodb_faults import DynamoFaults, Match
from functions.contract import USAGE, Env, Metric
from functions.core import aws
from functions.core.clock import epoch_seconds, timestamp
from functions.core.settings import get_settings
from functions.data.quota import (
    ANSWER_CAP_TOKENS,
    RETENTION,
    AnswerLeases,
    periods,
)
from tests.functions.helpers import (
    USER_A,
    USER_B,
    Rest,
    WebSocket,
    stored_messages,
    stored_session,
    table,
)

LIMIT = 10_000


def _limits(monkeypatch: pytest.MonkeyPatch, daily: int = LIMIT, monthly: int = 0) -> None:
    monkeypatch.setenv(Env.USER_DAILY_TOKEN_LIMIT, str(daily))
    monkeypatch.setenv(Env.USER_MONTHLY_TOKEN_LIMIT, str(monthly))
    get_settings.cache_clear()


def _today() -> datetime:
    return datetime.now(UTC)


def _day_key(moment: datetime) -> str:
    return f"day#{moment:%Y-%m-%d}"


def _ledger(user: str, key: str) -> dict[str, Any]:
    item = boto3.client("dynamodb").get_item(
        TableName=table(Env.USAGE_TABLE),
        Key={"user_id": {"S": user}, "period": {"S": key}},
        ConsistentRead=True,
    )
    return {
        name: int(value["N"]) if "N" in value else value.get("S")
        for name, value in item.get("Item", {}).items()
    }


def _seed(user: str, key: str, tokens: int) -> None:
    boto3.client("dynamodb").put_item(
        TableName=table(Env.USAGE_TABLE),
        Item={"user_id": {"S": user}, "period": {"S": key}, "tokens": {"N": str(tokens)}},
    )


def _post(rest: Rest, session_id: str, content: str = "hi", user: str = USER_A) -> Any:
    return rest.call(
        "POST", f"/sessions/{session_id}/messages", body={"content": content}, user=user
    )


def _send(ws: WebSocket, connection_id: str, session_id: str, content: str = "hi") -> None:
    ws.send(connection_id, {"action": "sendMessage", "session_id": session_id, "content": content})


def _words(count: int) -> str:
    return " ".join(f"w{number}" for number in range(count))


# Budgets ---------------------------------------------------------------------------------------


def test_a_user_at_the_limit_is_refused_before_anything_is_stored_or_the_model_called(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutations caught: the check after the model call or after the question is stored, a
    refusal without Retry-After or the quota, one transport unchecked."""
    _limits(monkeypatch)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    _seed(USER_A, _day_key(_today()), LIMIT)
    response = _post(rest, session_id)
    error = response.assert_error(429, "quota_exceeded")
    tomorrow = (_today() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    quota = {"period": "day", "limit": LIMIT, "used": LIMIT, "resets_at": timestamp(tomorrow)}
    assert error["quota"] == quota
    retry_after = int(response.headers["retry-after"])
    assert abs(retry_after - (tomorrow - _today()).total_seconds()) <= 5
    _send(ws, connection_id, session_id)
    [frame] = ws.frames(connection_id)
    assert frame["type"] == "error"
    assert (frame["code"], frame["quota"]) == ("quota_exceeded", quota)
    assert abs(frame["retry_after"] - retry_after) <= 5
    assert bedrock.requests == []
    assert stored_messages(session_id) == []
    assert stored_session(session_id)["message_count"] == {"N": "0"}
    assert _ledger(USER_A, _day_key(_today()))["tokens"] == LIMIT  # nothing held


def test_a_turn_adds_what_bedrock_reported_with_a_ttl_past_its_period(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, daily=LIMIT, monthly=10 * LIMIT)
    bedrock.reply = _words(30)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    usage = _post(rest, session_id).json["usage"]
    now = _today()
    for period in periods(now, LIMIT, 10 * LIMIT):
        item = _ledger(USER_A, period.key)
        assert item["tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert (item["input_tokens"], item["output_tokens"]) == (
            usage["input_tokens"],
            usage["output_tokens"],
        )
        assert item["turns"] == 1
        assert item[USAGE.ttl_attribute] == epoch_seconds(period.resets_at + RETENTION)
    other = rest.create_session(user=USER_B, knowledge_base_id=None)["session_id"]
    assert _post(rest, other, user=USER_B).status == 200  # another user's budget is their own
    assert _ledger(USER_A, _day_key(now))["turns"] == 1


def test_a_turn_near_the_limit_is_capped_to_what_is_left(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer stops at the budget (maxTokens), so the day ends at the limit, not an answer
    past it. Mutations caught: no maxTokens, the cap not counting the input."""
    _limits(monkeypatch)
    bedrock.reply = _words(5_000)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    _seed(USER_A, _day_key(_today()), LIMIT - 500)
    answer = _post(rest, session_id).json
    [request] = bedrock.requests_for(CONVERSE)
    cap = request.body["inferenceConfig"]["maxTokens"]
    assert 0 < cap < 500
    assert (answer["message"]["status"], answer["message"]["stop_reason"]) == (
        "incomplete",
        "max_tokens",
    )
    assert answer["usage"]["output_tokens"] == cap
    assert LIMIT - 500 < _ledger(USER_A, _day_key(_today()))["tokens"] <= LIMIT
    _post(rest, session_id).assert_error(429, "quota_exceeded")


def test_far_from_the_limit_the_answer_is_not_capped(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, daily=100 * ANSWER_CAP_TOKENS)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    assert _post(rest, session_id).status == 200
    [request] = bedrock.requests_for(CONVERSE)
    assert "inferenceConfig" not in request.body


def test_too_little_left_for_the_question_is_refused(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    _seed(USER_A, _day_key(_today()), LIMIT - 5)
    error = _post(rest, session_id, _words(200)).assert_error(429, "quota_exceeded")
    assert error["quota"]["used"] == LIMIT - 5
    assert "does not cover" in error["message"]
    assert bedrock.requests == []
    assert _ledger(USER_A, _day_key(_today()))["tokens"] == LIMIT - 5


@pytest.mark.parametrize("period", ["day", "month"])
def test_an_input_larger_than_a_whole_budget_is_refused_on_the_periods_first_turn(
    period: str, rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ledger item yet for the period: the hold's condition passed on attribute_not_exists
    alone, the answer's cap came out negative and the model call failed with a 500."""
    tiny = 50
    _limits(
        monkeypatch, daily=tiny if period == "day" else 0, monthly=tiny if period == "month" else 0
    )
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    error = _post(rest, session_id, _words(200)).assert_error(429, "quota_exceeded")
    assert f"more than the whole {period}'s budget of {tiny} tokens" in error["message"]
    assert error["quota"]["period"] == period
    assert bedrock.requests == []
    assert stored_messages(session_id) == []
    keys = {"day": _day_key(_today()), "month": _today().strftime("month#%Y-%m")}
    assert _ledger(USER_A, keys[period]).get("tokens", 0) == 0


def test_two_concurrent_turns_at_the_edge_cannot_spend_more_than_the_limit(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first turn holds what is left while its answer streams; the second, on another
    connection, sees that hold and is refused. Mutations caught: a check that reads the use
    without holding, a hold of the input only."""
    _limits(monkeypatch)
    bedrock.reply = _words(5_000)
    released = threading.Event()
    bedrock.hold(after_chunks=1, until=released)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    first, second = ws.open(), ws.open()
    _seed(USER_A, _day_key(_today()), LIMIT - 2_000)
    streaming = threading.Thread(target=_send, args=(ws, first, session_id))
    streaming.start()
    deadline = time.monotonic() + 10
    while not bedrock.requests_for(CONVERSE_STREAM) and time.monotonic() < deadline:
        time.sleep(0.01)
    _send(ws, second, session_id)
    released.set()
    streaming.join(10)
    [refused] = ws.frames(second)
    assert refused["code"] == "quota_exceeded"
    end = ws.frames(first)[-1]
    assert (end["type"], end["stop_reason"]) == ("end", "max_tokens")
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == 1
    assert _ledger(USER_A, _day_key(_today()))["tokens"] <= LIMIT


def test_periods_roll_over_at_utc_midnight_and_month_start(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, daily=LIMIT, monthly=LIMIT * 20)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    now = _today()
    last_month = now.replace(day=1) - timedelta(days=1)
    _seed(USER_A, _day_key(now - timedelta(days=1)), LIMIT)
    _seed(USER_A, f"month#{last_month:%Y-%m}", LIMIT * 20)
    assert _post(rest, session_id).status == 200  # yesterday's and last month's use are gone
    _seed(USER_A, f"month#{now:%Y-%m}", LIMIT * 20)
    error = _post(rest, session_id).assert_error(429, "quota_exceeded")
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    assert error["quota"]["period"] == "month"
    assert error["quota"]["resets_at"] == timestamp(next_month)


@pytest.mark.parametrize(
    ("moment", "day_resets", "month_resets"),
    [
        ("2026-12-31T23:59:59", "2027-01-01", "2027-01-01"),
        ("2027-01-01T00:00:00", "2027-01-02", "2027-02-01"),
        ("2028-02-28T12:00:00", "2028-02-29", "2028-03-01"),
        ("2027-03-31T00:00:01", "2027-04-01", "2027-04-01"),
    ],
)
def test_period_keys_and_resets(moment: str, day_resets: str, month_resets: str) -> None:
    now = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    day, month = periods(now, 1, 1)
    assert (day.key, month.key) == (f"day#{now:%Y-%m-%d}", f"month#{now:%Y-%m}")
    assert f"{day.resets_at:%Y-%m-%d}" == day_resets
    assert f"{month.resets_at:%Y-%m-%d}" == month_resets
    assert periods(now, 0, 0) == ()


def test_a_turn_that_never_reached_the_model_or_failed_there_holds_nothing(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    _post(rest, "00000000-0000-4000-8000-000000000000").assert_error(404, "not_found")
    bedrock.fail(400, "ValidationException", "bad", CONVERSE)
    _post(rest, session_id).assert_error(502, "upstream_error")
    assert _ledger(USER_A, _day_key(_today())).get("tokens", 0) == 0


def test_usage_shows_each_limited_period(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, daily=LIMIT, monthly=3 * LIMIT)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    usage = _post(rest, session_id).json["usage"]
    spent = usage["input_tokens"] + usage["output_tokens"]
    body = rest.call("GET", "/usage").json
    assert body["max_concurrent_answers"] == 2
    day, month = body["periods"]
    assert (day["period"], month["period"]) == ("day", "month")
    assert (day["limit"], day["used"], day["remaining"]) == (LIMIT, spent, LIMIT - spent)
    assert (month["limit"], month["remaining"]) == (3 * LIMIT, 3 * LIMIT - spent)
    assert day["turns"] == month["turns"] == 1
    assert day["output_tokens"] == usage["output_tokens"]
    assert rest.call("GET", "/usage", user=USER_B).json["periods"][0]["used"] == 0
    _limits(monkeypatch, daily=0, monthly=0)
    monkeypatch.setenv(Env.USER_MAX_CONCURRENT_ANSWERS, "0")
    get_settings.cache_clear()
    assert rest.call("GET", "/usage").json == {"periods": [], "max_concurrent_answers": None}


# Concurrent answers ----------------------------------------------------------------------------


def test_more_concurrent_answers_than_allowed_are_busy_on_both_transports(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two answers stream (held by the fake); a third over REST and a fourth over WebSocket
    are refused without a model call; once the two end, a turn goes through again."""
    _limits(monkeypatch, daily=0)
    released = threading.Event()
    bedrock.hold(after_chunks=1, until=released)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    streams = [ws.open() for _ in range(3)]
    threads = [threading.Thread(target=_send, args=(ws, c, session_id)) for c in streams[:2]]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(bedrock.requests_for(CONVERSE_STREAM)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    response = _post(rest, session_id)
    response.assert_error(429, "busy")
    assert response.headers["retry-after"]
    _send(ws, streams[2], session_id)
    assert ws.frames(streams[2])[-1]["code"] == "busy"
    other = rest.create_session(user=USER_B, knowledge_base_id=None)["session_id"]
    assert _post(rest, other, user=USER_B).status == 200  # another user's slots are their own
    released.set()
    for thread in threads:
        thread.join(10)
    assert [ws.frames(c)[-1]["type"] for c in streams[:2]] == ["end", "end"]
    assert bedrock.requests_for(CONVERSE) and len(bedrock.requests_for(CONVERSE)) == 1
    assert _post(rest, session_id).status == 200
    assert _lease_items(USER_A) == []


def _lease_items(user: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").query(
        TableName=table(Env.USAGE_TABLE),
        KeyConditionExpression="user_id = :user AND begins_with(period, :lease)",
        ExpressionAttributeValues={":user": {"S": user}, ":lease": {"S": "lease#"}},
        ConsistentRead=True,
    )["Items"]
    return items


def test_a_crashed_answer_frees_its_slot_when_its_lease_runs_out(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases taken and never released, as by functions killed mid-answer: while they last the
    user is busy; once they have run out, the next turn takes a slot."""
    _limits(monkeypatch, daily=0)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    client = aws.client("dynamodb")
    started = datetime.now(UTC)
    crashed = AnswerLeases(client, table(Env.USAGE_TABLE), 2, clock=lambda: started)
    for _ in range(2):
        assert crashed.acquire(USER_A, seconds=30) is not None
    _post(rest, session_id).assert_error(429, "busy")
    assert bedrock.requests == []
    long_ago = started - timedelta(minutes=5)
    expired = AnswerLeases(client, table(Env.USAGE_TABLE), 2, clock=lambda: long_ago)
    for item in _lease_items(USER_A):
        client.delete_item(
            TableName=table(Env.USAGE_TABLE), Key={k: item[k] for k in ("user_id", "period")}
        )
    for _ in range(2):
        assert expired.acquire(USER_A, seconds=30) is not None  # expired four minutes ago
    assert _post(rest, session_id).status == 200


# Faults on the usage table ---------------------------------------------------------------------


def _usage_write(operation: str, marker: str) -> Match:
    """A write to the usage table: ``marker`` is in its expression (reserved_by, settled_by,
    lease_id...)."""

    def match(name: str, body: dict[str, Any]) -> bool:
        expression = body.get("UpdateExpression", "") + body.get("ConditionExpression", "")
        return (
            name == operation
            and body.get("TableName", "").endswith("-usage")
            and marker in (expression + json.dumps(body.get("ExpressionAttributeNames", {})))
        )

    return match


@pytest.mark.parametrize(
    ("operation", "marker"),
    [
        ("UpdateItem", "reserved_by"),
        ("UpdateItem", "settled_by"),
        ("PutItem", "lease_id"),
        ("DeleteItem", "lease_id"),
    ],
)
def test_a_lost_reply_on_a_usage_write_applies_it_once(
    rest: Rest,
    bedrock: BedrockFake,
    *,
    retrying_faults: DynamoFaults,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    marker: str,
) -> None:
    """botocore retries a write whose reply was lost; the ledger still counts the turn once
    and no slot stays taken."""
    _limits(monkeypatch)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    retrying_faults.lose_reply(_usage_write(operation, marker))
    response = _post(rest, session_id)
    assert response.status == 200, response.text
    assert ("lose_reply", operation) in retrying_faults.injected
    usage = response.json["usage"]
    item = _ledger(USER_A, _day_key(_today()))
    assert item["tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert item["turns"] == 1
    assert _lease_items(USER_A) == []


def test_a_failed_settle_keeps_the_answer_and_is_counted(
    rest: Rest,
    bedrock: BedrockFake,
    retrying_faults: DynamoFaults,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _limits(monkeypatch)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    retrying_faults.fail(_usage_write("UpdateItem", "settled_by"), times=2)
    capsys.readouterr()
    assert _post(rest, session_id).status == 200
    assert [item["role"]["S"] for item in stored_messages(session_id)] == ["user", "assistant"]
    assert Metric.USAGE_NOT_RECORDED in capsys.readouterr().out


def test_a_failed_lease_write_holds_no_slot(
    rest: Rest, bedrock: BedrockFake, retrying_faults: DynamoFaults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease put that applied but answered 500 twice: the turn fails (503), and its slot is
    given back rather than held until the lease runs out."""
    _limits(monkeypatch, daily=0)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    retrying_faults.lose_reply(_usage_write("PutItem", "lease_id"), times=2)
    _post(rest, session_id).assert_error(503, "throttled")
    assert bedrock.requests == []
    assert _lease_items(USER_A) == []
