"""Every turn answers before its deadline, under the Lambda clock, and leaves no permanent gap.

Each handler runs in a process of its own (:mod:`tests.support.lambda_clock`) with a context
counting down from the function's configured timeout, and is killed when it reaches zero, as
Lambda kills it; API Gateway then answers the client itself (REST: 504) or not at all
(WebSocket). DynamoDB is reached through the fault proxy, with botocore's own default number
of attempts. The assertions are on outcomes: the status or frames the client got, that they
came before the countdown ended (and for REST inside the integration's 29 s), and what is
stored.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.retries.standard import DEFAULT_MAX_ATTEMPTS

from compute.config import ComputeConfig
from fakes.bedrock import BedrockFake
from fakes.connections import WsManagementFake
from fakes.dynamodb_faults import DynamoFaults, Match, routed_through_faults
from fakes.dynamodb_streams import StreamReader, enable_stream, lambda_event
from fakes.moto import MotoServer
from functions.cleanup import handler as cleanup
from functions.contract import REST_INTEGRATION_TIMEOUT_SECONDS, Env
from functions.main.handler import handler as main_handler
from functions.websocket.handler import handler as websocket_handler
from tests.functions.helpers import (
    LambdaContext,
    Rest,
    WebSocket,
    stored_messages,
    stored_session,
    table,
)
from tests.support.events import load_event
from tests.support.lambda_clock import Invocation, dedicated_cpu, invoke

# The stack's default timeout of every function (lambda_timeout), and a short one that the
# configuration allows too, for the tests that run many turns into their deadline.
CONFIGURED_TIMEOUT_MS = ComputeConfig.model_fields["lambda_timeout"].default * 1000
SHORT_TIMEOUT_MS = 10_000

# The module mostly waits on Lambda clocks (22 CPU-seconds over four minutes): `make test`
# gives it a run of its own beside the suite's (tools/run_tests.py); in one run of the whole
# suite (`pytest -n 3 --dist loadgroup`), one worker takes all of it.
pytestmark = pytest.mark.xdist_group("lambda-clock")


@pytest.fixture(scope="module", autouse=True)
def _own_cpu() -> Iterator[None]:
    """The module's functions run with a CPU of their own, as Lambda's do
    (:func:`~tests.support.lambda_clock.dedicated_cpu`): two of its tests failed in CI when
    the other worker starved a turn of the seconds before its model call."""
    with dedicated_cpu():
        yield


def _writes(
    operation: str, *, transaction_role: str | None = None, marker: str | None = None
) -> Match:
    def match(name: str, body: dict[str, Any]) -> bool:
        if name != operation:
            return False
        if transaction_role is not None:
            puts = [item["Put"]["Item"] for item in body["TransactItems"] if "Put" in item]
            return any(put.get("role", {}).get("S") == transaction_role for put in puts)
        if marker is not None:
            return marker in json.dumps(body)
        return True

    return match


# Every write of a turn: its idempotency key's claim and result, the answer slot's lease
# (taken, freed), the budget's hold and settlement, the question's and the answer's
# transactions. The matrix's turns carry an idempotency key, so all of them happen.
TURN_WRITES = {
    "claim": _writes("PutItem", marker="request_hash"),
    "result": _writes("UpdateItem", marker=":done"),
    "lease": _writes("PutItem", marker="lease#"),
    "hold": _writes("UpdateItem", marker="reserved_by"),
    "question": _writes("TransactWriteItems", transaction_role="user"),
    "answer": _writes("TransactWriteItems", transaction_role="assistant"),
    "settle": _writes("UpdateItem", marker="settled_by"),
    "lease-release": _writes("DeleteItem", marker="lease#"),
}
FAULTS: dict[str, Callable[[DynamoFaults, Match], None]] = {
    "throttled": lambda proxy, match: proxy.throttle(match, times=100_000),
    "500": lambda proxy, match: proxy.fail(match, times=100_000),
    "held": lambda proxy, match: proxy.hold(match, times=100_000),
}


@pytest.fixture
def faults(
    app_env: dict[str, str], moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DynamoFaults]:
    with routed_through_faults(moto_server.url, monkeypatch, attempts=DEFAULT_MAX_ATTEMPTS) as p:
        yield p


def _rest_turn(
    rest: Rest,
    session_id: str,
    timeout_ms: int,
    content: str = "hi",
    *,
    kill_when: threading.Event | None = None,
    idempotency_key: str | None = None,
) -> Invocation:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    event = rest.event(
        "POST", f"/sessions/{session_id}/messages", body={"content": content}, headers=headers
    )
    return invoke(main_handler, event, LambdaContext(timeout_ms=timeout_ms), kill_when=kill_when)


def _ws_turn(
    ws: WebSocket,
    connection_id: str,
    session_id: str,
    timeout_ms: int,
    *,
    content: str = "hi",
    kill_when: threading.Event | None = None,
    idempotency_key: str | None = None,
) -> Invocation:
    event = load_event("websocket-message")
    event["requestContext"]["routeKey"] = "$default"
    event["requestContext"]["connectionId"] = connection_id
    frame = {"action": "sendMessage", "session_id": session_id, "content": content}
    if idempotency_key:
        frame["idempotency_key"] = idempotency_key
    event["body"] = json.dumps(frame)
    context = LambdaContext(timeout_ms=timeout_ms)
    return invoke(websocket_handler, event, context, kill_when=kill_when)


def _answer(invocation: Invocation) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and body of the function's REST answer."""
    assert not invocation.killed, "killed at the timeout: the client got API Gateway's 504"
    assert invocation.error is None, invocation.error
    result = invocation.result
    headers = {name.lower(): value for name, value in (result.get("headers") or {}).items()}
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return result["statusCode"], headers, json.loads(body) if body else {}


def _count_and_stored(session_id: str) -> tuple[int, list[int]]:
    session = stored_session(session_id)
    assert session is not None
    seqs = sorted(int(item["seq"]["N"]) for item in stored_messages(session_id))
    return int(session["message_count"]["N"]), seqs


def _consistent(session_id: str) -> list[dict[str, Any]]:
    count, seqs = _count_and_stored(session_id)
    assert seqs == list(range(1, count + 1)), (count, seqs)
    return sorted(stored_messages(session_id), key=lambda item: int(item["seq"]["N"]))


def _at_most_the_last_slot_empty(session_id: str) -> None:
    """Consistent, or consistent but for the last answer slot, left for the repair."""
    count, seqs = _count_and_stored(session_id)
    assert seqs in (list(range(1, count + 1)), list(range(1, count))), (count, seqs)


def _wait_past_answer_by(session_id: str) -> None:
    """Wait until every question's ``answer_by`` (its invocation's deadline) has passed."""
    deadlines = [
        int(item["answer_by"]["N"]) for item in stored_messages(session_id) if "answer_by" in item
    ]
    time.sleep(max(max(deadlines, default=0) + 1 - time.time(), 0))


def test_a_throttled_answer_write_answers_503_inside_the_integration_timeout(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    """Every attempt at the answer's transaction is throttled: the turn stops retrying early
    enough to answer 503 with Retry-After itself, before API Gateway's 29 s (and the
    function's 30 s), instead of being killed at the timeout while still retrying."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    FAULTS["throttled"](faults, TURN_WRITES["answer"])
    invocation = _rest_turn(rest, session_id, CONFIGURED_TIMEOUT_MS)
    status, headers, body = _answer(invocation)
    assert (status, body["error"]["code"]) == (503, "throttled"), body
    assert int(headers["retry-after"]) > 0
    elapsed = CONFIGURED_TIMEOUT_MS - invocation.remaining_ms
    assert elapsed < REST_INTEGRATION_TIMEOUT_SECONDS * 1000, elapsed
    _at_most_the_last_slot_empty(session_id)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("write", list(TURN_WRITES))
def test_every_fault_on_every_write_of_a_rest_turn_answers_before_the_deadline(
    rest: Rest,
    bedrock: BedrockFake,
    faults: DynamoFaults,
    write: str,
    fault: str,
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    FAULTS[fault](faults, TURN_WRITES[write])
    invocation = _rest_turn(rest, session_id, SHORT_TIMEOUT_MS, idempotency_key=str(uuid.uuid4()))
    faults.release()
    status, headers, body = _answer(invocation)
    if status != 200:
        assert (status, body["error"]["code"]) == (503, "throttled"), body
        assert int(headers["retry-after"]) > 0
    assert any(kind != "before" for kind, _ in faults.injected)  # the write was reached
    _at_most_the_last_slot_empty(session_id)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("write", list(TURN_WRITES))
def test_every_fault_on_every_write_of_a_streamed_turn_ends_in_a_frame_before_the_deadline(
    rest: Rest,
    ws: WebSocket,
    *,
    bedrock: BedrockFake,
    faults: DynamoFaults,
    write: str,
    fault: str,
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    FAULTS[fault](faults, TURN_WRITES[write])
    invocation = _ws_turn(
        ws, connection_id, session_id, SHORT_TIMEOUT_MS, idempotency_key=str(uuid.uuid4())
    )
    faults.release()
    assert faults.injected  # the write was reached
    assert not invocation.killed, "killed at the timeout: the client got no last frame"
    assert invocation.result == {"statusCode": 200}, invocation
    last = ws.frames(connection_id)[-1]
    if last["type"] != "end":
        assert (last["type"], last["code"]) == ("error", "throttled"), last
        assert last["retry_after"] > 0
    _at_most_the_last_slot_empty(session_id)


def test_a_function_killed_mid_stream_leaves_a_slot_that_the_next_turn_repairs(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake, ws_management: WsManagementFake
) -> None:
    """Killed after its first chunk (at its timeout, or by a crash): the question is stored
    and its answer's slot is empty. Once that invocation's deadline has passed, the next turn
    fills the slot with a ``failed`` marker (``abandoned``) before it takes its own."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()
    bedrock.pace(first_delta_ms=0, deltas_per_second=20)
    bedrock.reply = "a long answer " * 50
    first_chunk = threading.Event()
    watcher = threading.Thread(
        target=_set_when, args=(first_chunk, lambda: _has_chunk(ws, connection_id)), daemon=True
    )
    watcher.start()
    killed = _ws_turn(ws, connection_id, session_id, SHORT_TIMEOUT_MS, kill_when=first_chunk)
    assert killed.killed
    assert _count_and_stored(session_id) == (2, [1])  # the gap
    _wait_past_answer_by(session_id)
    bedrock.pacing = None
    bedrock.reply = "Fine."
    answered = _ws_turn(ws, connection_id, session_id, SHORT_TIMEOUT_MS, content="still there?")
    assert not answered.killed
    assert ws.frames(connection_id)[-1]["type"] == "end"
    items = _consistent(session_id)
    assert [(i["role"]["S"], i.get("status", {}).get("S")) for i in items] == [
        ("user", None),
        ("assistant", "failed"),
        ("user", None),
        ("assistant", "complete"),
    ]
    assert items[1]["stop_reason"]["S"] == "abandoned"


def test_a_rest_turn_killed_mid_call_leaves_a_slot_that_the_next_read_repairs(
    rest: Rest, bedrock: BedrockFake
) -> None:
    """The function dies while the model answers (a crash; API Gateway's 502 or 504). Listing
    the session's messages after that invocation's deadline fills the empty slot, and says so."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.response_delay = 3  # the model is still answering when the function dies
    killed = _rest_turn(rest, session_id, SHORT_TIMEOUT_MS, kill_when=bedrock.arrival("converse"))
    bedrock.response_delay = 0
    assert killed.killed
    assert killed.remaining_ms > 0, "ran into its timeout before it called the model"
    assert _count_and_stored(session_id) == (2, [1])
    _wait_past_answer_by(session_id)
    listing = rest.call("GET", f"/sessions/{session_id}/messages")
    assert listing.status == 200, listing.text
    assert [(m["role"], m["status"], m["stop_reason"]) for m in listing.json["messages"]] == [
        ("user", "complete", None),
        ("assistant", "failed", "abandoned"),
    ]
    _consistent(session_id)


def test_a_model_slower_than_the_time_left_answers_502_before_the_deadline(
    rest: Rest, bedrock: BedrockFake
) -> None:
    """``converse`` waits for the whole answer, and its read timeout is minutes: the REST turn
    gives the model only the time left before its deadline, then answers 502 itself and
    stores the failed marker, instead of being killed (API Gateway's 504)."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.response_delay = CONFIGURED_TIMEOUT_MS / 1000 + 5
    invocation = _rest_turn(rest, session_id, CONFIGURED_TIMEOUT_MS)
    bedrock.response_delay = 0
    status, _, body = _answer(invocation)
    assert (status, body["error"]["code"]) == (502, "upstream_error"), body
    elapsed = CONFIGURED_TIMEOUT_MS - invocation.remaining_ms
    assert elapsed < REST_INTEGRATION_TIMEOUT_SECONDS * 1000, elapsed
    items = _consistent(session_id)
    assert (items[1]["status"]["S"], items[1]["stop_reason"]["S"]) == ("failed", "upstream_error")


def test_a_slot_whose_turn_may_still_answer_is_not_repaired(
    rest: Rest, bedrock: BedrockFake
) -> None:
    """A turn still inside its deadline keeps its slot: a read meanwhile changes nothing, and
    its answer lands."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.response_delay = 2
    outcome: list[Any] = []
    turn = threading.Thread(
        target=lambda: outcome.append(_rest_turn(rest, session_id, SHORT_TIMEOUT_MS))
    )
    turn.start()
    assert bedrock.arrival("converse").wait(30), "the turn never called the model"
    listing = rest.call("GET", f"/sessions/{session_id}/messages")
    assert [m["role"] for m in listing.json["messages"]] == ["user"]
    turn.join()
    bedrock.response_delay = 0
    assert outcome[0].result["statusCode"] == 200
    assert [i["role"]["S"] for i in _consistent(session_id)] == ["user", "assistant"]


def test_a_late_answer_and_the_repair_cannot_both_land(
    rest: Rest, bedrock: BedrockFake, faults: DynamoFaults
) -> None:
    """The answer's write is held past its turn's deadline, the slot is repaired, then the
    held write reaches DynamoDB: its condition refuses it, and the marker stays."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    faults.hold(TURN_WRITES["answer"], times=1, apply=True)
    faults.fail(TURN_WRITES["answer"], times=100_000)
    invocation = _rest_turn(rest, session_id, SHORT_TIMEOUT_MS)
    assert not invocation.killed
    assert invocation.result["statusCode"] == 503
    faults.clear()
    _wait_past_answer_by(session_id)
    listing = rest.call("GET", f"/sessions/{session_id}/messages")
    assert [m["status"] for m in listing.json["messages"]] == ["complete", "failed"]
    faults.release()  # the held answer now reaches DynamoDB, late
    _wait_for(lambda: len(faults.late) == 1)
    assert faults.late == [400]  # refused: TransactionCanceledException
    items = _consistent(session_id)
    assert (items[1]["status"]["S"], items[1]["stop_reason"]["S"]) == ("failed", "abandoned")


def test_the_cleanup_killed_mid_batch_is_redelivered_and_finishes(
    rest: Rest, app_env: dict[str, str], faults: DynamoFaults, bedrock: BedrockFake
) -> None:
    """Lambda kills the session cleanup while one of its batch deletes hangs; the event
    source mapping delivers the same batch again, and that invocation deletes the rest."""
    stream_arn = enable_stream(boto3.client("dynamodb"), app_env[Env.SESSIONS_TABLE])
    cleanup.messages.cache_clear()
    cleanup.attachments.cache_clear()
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    _seed(session_id, 60)
    assert rest.call("DELETE", f"/sessions/{session_id}").status == 204
    records = StreamReader(boto3.client("dynamodbstreams"), stream_arn).read()
    event = lambda_event([r for r in records if r["eventName"] == "REMOVE"], stream_arn)
    batches = iter(range(10_000))
    faults.hold(lambda name, _: name == "BatchWriteItem" and next(batches) == 1)
    killed = invoke(
        cleanup.handler, event, LambdaContext(timeout_ms=SHORT_TIMEOUT_MS), kill_when=faults.held
    )
    assert killed.killed
    assert 0 < len(stored_messages(session_id)) < 60  # mid-batch
    faults.release()
    again = invoke(cleanup.handler, event, LambdaContext(timeout_ms=SHORT_TIMEOUT_MS))
    assert again.result == {"batchItemFailures": []}, again
    assert stored_messages(session_id) == []


def _seed(session_id: str, count: int) -> None:
    client = boto3.client("dynamodb")
    for start in range(0, count, 25):
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "session_id": {"S": session_id},
                        "seq": {"N": str(seq)},
                        "role": {"S": "user"},
                        "content": {"S": "x"},
                    }
                }
            }
            for seq in range(start + 1, min(start + 25, count) + 1)
        ]
        client.batch_write_item(RequestItems={table(Env.MESSAGES_TABLE): requests})


def _has_chunk(ws: WebSocket, connection_id: str) -> bool:
    return any(frame["type"] == "chunk" for frame in ws.frames(connection_id))


def _set_when(event: threading.Event, condition: Callable[[], bool], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            event.set()
            return
        time.sleep(0.02)


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    _set_when(threading.Event(), condition, timeout)
