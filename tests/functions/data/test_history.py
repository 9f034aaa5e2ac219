"""History at scale and under concurrency: the 1,000-turn session and 20 concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from fakes.bedrock import CONVERSE, BedrockFake
from fakes.dynamodb_meter import CapacityMeter
from fakes.moto import MotoServer
from functions.chat.prompting import conversation
from functions.chat.service import BYTES_PER_TOKEN, ChatService
from functions.contract import DEFAULT_HISTORY_BUDGET_TOKENS, TABLES, Env
from functions.core import aws
from functions.core.settings import get_settings
from functions.data.turns import Store
from functions.domain.models import Message, Role
from functions.main.settings import Settings
from tests.functions.helpers import (
    USER_A,
    Rest,
    seed_history,
    stored_messages,
    stored_session,
    table,
)

TURNS = 1_000
TURN_CHARS = 2_048


def _turn_text(seq: int) -> str:
    head = f"turn {seq:04d} "
    return head + "x" * (TURN_CHARS - len(head))


def test_a_thousand_turns_of_2_kb_are_kept_paged_and_budgeted(
    rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    seed_history(session_id, TURNS, _turn_text)  # ~2 MB: five times DynamoDB's item size limit

    seqs: list[int] = []
    token = None
    while True:
        query = {"limit": "100"} | ({"next_token": token} if token else {})
        page = rest.call("GET", f"/sessions/{session_id}/messages", query=query)
        assert page.status == 200, page.text
        for message in page.json["messages"]:
            assert message["content"] == _turn_text(message["seq"])
            seqs.append(message["seq"])
        token = page.json["next_token"]
        if token is None:
            break
    assert seqs == list(range(1, TURNS + 1))

    bedrock.reply = "noted"
    response = rest.call(
        "POST", f"/sessions/{session_id}/messages", body={"content": "and one more"}
    )
    assert response.status == 200, response.text
    assert response.json["message"]["seq"] == TURNS + 2

    [request] = bedrock.requests_for(CONVERSE)
    sent = [message["content"][0]["text"] for message in request.body["messages"]]
    assert sent[-1] == "and one more"
    history = sent[:-1]
    # The most recent turns, contiguous, ending with the last stored one...
    first_seq = TURNS - len(history) + 1
    assert history == [_turn_text(seq) for seq in range(first_seq, TURNS + 1)]
    assert request.body["messages"][0]["role"] == "user"
    # ...as many as fit the budget, and no more (one older turn would not fit, or two when a
    # leading assistant turn had to be dropped for the conversation to start with the user).
    budget_bytes = DEFAULT_HISTORY_BUDGET_TOKENS * BYTES_PER_TOKEN
    used = sum(len(text.encode()) for text in sent) + len(request.body["system"][0]["text"])
    assert used <= budget_bytes
    assert used + 2 * TURN_CHARS > budget_bytes
    assert len(history) < TURNS

    assert rest.call("GET", f"/sessions/{session_id}").json["message_count"] == TURNS + 2


def test_twenty_concurrent_turns_lose_nothing(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty writers on one session, as twenty Lambda containers would be. One user may not
    have twenty answers generating at once (tests/functions/data/test_quota.py), so the limit is off
    here: this is about the session's storage."""
    monkeypatch.setenv(Env.USER_MAX_CONCURRENT_ANSWERS, "0")
    get_settings.cache_clear()
    bedrock.reply = lambda body: "re: " + body["messages"][-1]["content"][0]["text"]
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    questions = [f"question {number}" for number in range(20)]

    def turn(question: str) -> int:
        chat = ChatService(get_settings(Settings), Store.from_settings(get_settings(Settings)))
        return chat.reply(USER_A, session_id, question, lease_seconds=30).message.seq

    with ThreadPoolExecutor(max_workers=20) as pool:
        answer_seqs = list(pool.map(turn, questions))

    items = stored_messages(session_id)
    seqs = sorted(int(item["seq"]["N"]) for item in items)
    assert seqs == list(range(1, 41))  # contiguous: no number lost or taken twice
    assert sorted(answer_seqs) == sorted(
        int(item["seq"]["N"]) for item in items if item["role"]["S"] == "assistant"
    )
    user_turns = sorted(item["content"]["S"] for item in items if item["role"]["S"] == "user")
    answers = sorted(item["content"]["S"] for item in items if item["role"]["S"] == "assistant")
    assert user_turns == sorted(questions)
    assert len(answers) == 20
    session = stored_session(session_id)
    assert session is not None
    assert session["message_count"] == {"N": "40"}


def test_twenty_concurrent_turns_get_distinct_pairs_of_numbers(rest: Rest) -> None:
    """Each turn takes its question's and its answer's number in one update."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    store = Store.from_settings(get_settings(Settings))
    session = store.sessions.get(USER_A, session_id)  # every turn starts from the same read
    with ThreadPoolExecutor(max_workers=20) as pool:
        messages = list(pool.map(lambda n: store.begin_turn(USER_A, session, f"m{n}"), range(20)))
    assert sorted(message.seq for message in messages) == list(range(1, 41, 2))
    assert len(stored_messages(session_id)) == 20
    assert stored_session(session_id)["message_count"] == {"N": "40"}


def _message(seq: int, role: Role, content: str) -> Message:
    return Message("s", seq, f"id{seq}", role, content, "2025-01-01T00:00:00.000000Z")


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ([], [("user", ["new"])]),
        (["user", "assistant"], [("user", ["0"]), ("assistant", ["1"]), ("user", ["new"])]),
        (
            ["assistant", "user", "assistant"],
            [("user", ["1"]), ("assistant", ["2"]), ("user", ["new"])],
        ),
        # A user turn whose answer failed, then a new one: merged, nothing dropped.
        (
            ["user", "assistant", "user"],
            [("user", ["0"]), ("assistant", ["1"]), ("user", ["2", "new"])],
        ),
        # Interleaved concurrent turns.
        (
            ["user", "user", "assistant", "assistant"],
            [("user", ["0\n\n1"]), ("assistant", ["2\n\n3"]), ("user", ["new"])],
        ),
    ],
)
def test_conversation_starts_with_user_and_alternates(
    roles: list[Role], expected: list[tuple[str, list[str]]]
) -> None:
    history = [_message(seq, role, str(seq)) for seq, role in enumerate(roles)]
    result = conversation(history, [{"text": "new"}])
    assert [(m["role"], [block["text"] for block in m["content"]]) for m in result] == expected


def test_conversation_skips_blank_turns() -> None:
    history = [_message(1, "user", "hi"), _message(2, "assistant", "")]
    assert conversation(history, [{"text": "again"}]) == [
        {"role": "user", "content": [{"text": "hi"}, {"text": "again"}]}
    ]


@pytest.mark.parametrize("turn_chars", [300, 2_048, 9_000])
def test_history_pages_are_sized_to_the_budget(
    rest: Rest,
    bedrock: BedrockFake,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    turn_chars: int,
) -> None:
    """A turn reads about as many old turns as it sends, never a page it throws away; only the
    first page (the newest turns) is a strongly consistent read."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    seed_history(session_id, 400, lambda seq: f"turn {seq:04d} ".ljust(turn_chars, "x"))
    schemas = {table(schema.env): schema for schema in TABLES}
    with CapacityMeter(moto_server.url, schemas) as meter:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", meter.url)
        aws.reset_clients()
        response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "more"})
        assert response.status == 200, response.text
        reads = [
            p
            for p in meter.priced
            if p.operation == "Query" and p.table == table(Env.MESSAGES_TABLE)
        ]
    [request] = bedrock.requests_for(CONVERSE)
    sent = len(request.body["messages"]) - 1  # history turns, the new question excluded
    assert sent > 0
    read = sum(page.items for page in reads)
    assert sent + 1 <= read <= sent + 2  # one turn past the budget, at most one more
    assert [page.consistent for page in reads] == [True] + [False] * (len(reads) - 1)
    assert len(reads) <= 3
