"""Later turns and earlier attachments: each turn sends the attachments of the questions in
its history again while they exist and the request has room, and tells the model (in the
question's place) and the client (``unavailable_attachments``) about the others."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from fakes.bedrock import CONVERSE, BedrockFake
from functions.chat.attachments import MAX_IMAGE_TOKENS, estimated_tokens, resend
from functions.chat.service import history_bytes
from functions.contract import MAX_DOCUMENTS_PER_MESSAGE, Env, attachment_key
from functions.core.settings import get_settings
from functions.domain.models import AttachmentRef, Message
from tests.functions.helpers import Rest
from tests.functions.main.test_attachment_messages import (
    SOURCE,
    RecordingStore,
    png,
    send,
    uploaded,
)


@pytest.fixture
def session_id(rest: Rest) -> str:
    return rest.create_session()["session_id"]


def _first_question(bedrock: BedrockFake) -> list[dict[str, Any]]:
    """The content of the latest request's first (history) user message."""
    return bedrock.requests_for(CONVERSE)[-1].body["messages"][0]["content"]


def _kinds(content: list[dict[str, Any]]) -> list[str]:
    return [next(iter(block)) for block in content]


def _bucket(app_env: dict[str, str]) -> str:
    return app_env[Env.ATTACHMENTS_BUCKET]


def test_a_later_turn_sends_the_earlier_attachments_again(
    rest: Rest, session_id: str, bedrock: BedrockFake
) -> None:
    image = uploaded(rest, session_id, png(30, 20), name="a.png", content_type="image/png")
    document = uploaded(rest, session_id, SOURCE, name="main.py")
    assert send(rest, session_id, attachments=[image, document]).status == 200
    later = send(rest, session_id, content="and now?")
    assert later.status == 200, later.text
    history = _first_question(bedrock)
    assert _kinds(history) == ["text", "image", "document"]
    assert history[2]["document"]["name"] == "main py"
    assert later.json["unavailable_attachments"] == []


def test_an_expired_attachment_is_named_to_the_model_and_the_client(
    rest: Rest, session_id: str, bedrock: BedrockFake, app_env: dict[str, str]
) -> None:
    kept = uploaded(rest, session_id, SOURCE, name="kept.py")
    gone = uploaded(rest, session_id, SOURCE, name="main.py")
    assert send(rest, session_id, attachments=[kept, gone]).status == 200
    boto3.client("s3").delete_object(Bucket=_bucket(app_env), Key=attachment_key(session_id, gone))
    later = send(rest, session_id, content="and now?")
    assert later.status == 200, later.text
    assert later.json["unavailable_attachments"] == [
        {"attachment_id": gone, "name": "main.py", "reason": "expired"}
    ]
    history = _first_question(bedrock)
    assert _kinds(history) == ["text", "document", "text"]
    assert history[1]["document"]["name"] == "kept py"
    assert "'main.py'" in history[2]["text"] and "expired" in history[2]["text"]


def test_a_replaced_object_that_no_longer_passes_is_left_out(
    rest: Rest, session_id: str, bedrock: BedrockFake, app_env: dict[str, str]
) -> None:
    """The upload form stays valid for minutes: an object may be replaced after its question
    was checked. A later turn checks it again, and leaves it out."""
    document = uploaded(rest, session_id, SOURCE, name="main.py")
    assert send(rest, session_id, attachments=[document]).status == 200
    boto3.client("s3").put_object(
        Bucket=_bucket(app_env),
        Key=attachment_key(session_id, document),
        Body=b"\xff\xfe not utf-8",
        ContentType="text/plain",
        Metadata={"name": "main.py"},
    )
    later = send(rest, session_id, content="and now?")
    assert later.status == 200, later.text
    assert [u["reason"] for u in later.json["unavailable_attachments"]] == ["rejected"]
    assert _kinds(_first_question(bedrock)) == ["text", "text"]


def test_the_newest_attachments_fill_the_requests_limit_first(
    rest: Rest, session_id: str, bedrock: BedrockFake
) -> None:
    """Converse takes at most five documents a request: the question's come first, then the
    history's, newest first; the fake refuses a sixth, so a 200 proves the count."""
    older = [
        uploaded(rest, session_id, SOURCE, name=f"f{n}.py")
        for n in range(MAX_DOCUMENTS_PER_MESSAGE)
    ]
    assert send(rest, session_id, attachments=older).status == 200
    newest = uploaded(rest, session_id, SOURCE, name="new.py")
    later = send(rest, session_id, content="and this one?", attachments=[newest])
    assert later.status == 200, later.text
    assert later.json["unavailable_attachments"] == [
        {"attachment_id": older[-1], "name": "f4.py", "reason": "limit"}
    ]
    messages = bedrock.requests_for(CONVERSE)[-1].body["messages"]
    names = [
        block["document"]["name"]
        for message in messages
        for block in message["content"]
        if "document" in block
    ]
    assert names == ["f0 py", "f1 py", "f2 py", "f3 py", "new py"]


def test_history_that_outgrows_the_budget_with_its_attachments_is_dropped(
    rest: Rest, session_id: str, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history message weighs its text and its attachments: a turn whose document would not
    fit in the history budget leaves that turn out, rather than sending more than it may."""
    monkeypatch.setenv(Env.HISTORY_BUDGET_TOKENS, "1000")
    get_settings.cache_clear()
    big = uploaded(rest, session_id, b"x" * 3_000, name="big.txt")  # 750 tokens
    assert send(rest, session_id, attachments=[big]).status == 200
    assert send(rest, session_id, content="small").status == 200
    # The big turn fitted beside its own question, but not beside a later one's history:
    # budget 1,000 tokens = 4,000 bytes, minus this question and the system prompt.
    later = send(rest, session_id, content="x" * 1_200)
    assert later.status == 200, later.text
    documents = [
        block
        for message in bedrock.requests_for(CONVERSE)[-1].body["messages"]
        for block in message["content"]
        if "document" in block
    ]
    assert documents == []


def test_a_history_message_weighs_its_text_and_its_attachments() -> None:
    text = AttachmentRef("a", "a.txt", "text/plain", 400)
    image = AttachmentRef("b", "b.png", "image/png", 10)
    pdf = AttachmentRef("c", "c.pdf", "application/pdf", 1_600)
    assert [estimated_tokens(ref) for ref in (text, image, pdf)] == [100, MAX_IMAGE_TOKENS, 100]
    message = Message("s", 1, "m", "user", "four", "", attachments=(text, image, pdf))
    assert history_bytes(message) == 4 + 4 * (100 + MAX_IMAGE_TOKENS + 100)


def test_history_reads_only_what_the_request_has_room_for_and_refills_a_gap() -> None:
    """Eight earlier documents, room for five: the five newest are read at once; two of them
    expired, which frees their room for the next two in a second round; the oldest finds
    the request full and is never read. The outcome is the one reading them one by one
    gives."""
    refs = [AttachmentRef(f"d{n}", f"d{n}.txt", "text/plain", len(SOURCE)) for n in range(8)]
    history = [
        Message("s", 2 * n + 1, f"q{n}", "user", f"question {n}", "", attachments=(ref,))
        for n, ref in enumerate(refs)
    ]  # oldest first, as a session's history is
    store = RecordingStore(gone=frozenset({"d7", "d5"}))
    resent = resend(store, "s", history, [], set())  # type: ignore[arg-type]
    assert store.asked == ["d7", "d6", "d5", "d4", "d3", "d2", "d1"]
    assert sorted(store.reads) == ["d1", "d2", "d3", "d4", "d6"]
    assert sorted(resent.blocks) == ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7"]
    sent = {q: [next(iter(block)) for block in blocks] for q, blocks in resent.blocks.items()}
    assert sent == {
        "q7": ["text"], "q6": ["document"], "q5": ["text"], "q4": ["document"],
        "q3": ["document"], "q2": ["document"], "q1": ["document"], "q0": ["text"],
    }  # fmt: skip
    assert [(u.attachment_id, u.reason) for u in resent.unavailable] == [
        ("d0", "limit"),
        ("d5", "expired"),
        ("d7", "expired"),
    ]


def test_history_attachments_are_read_at_once() -> None:
    """Each turn reads its history's files again: five GetObjects in flight together (the
    store's barrier needs all five), so they cost the slowest read, not their sum."""
    refs = [AttachmentRef(f"d{n}", f"d{n}.txt", "text/plain", len(SOURCE)) for n in range(5)]
    history = [Message("s", 1, "q", "user", "question", "", attachments=tuple(refs))]
    store = RecordingStore(together=len(refs))
    resent = resend(store, "s", history, [], set())  # type: ignore[arg-type]
    assert [next(iter(block)) for block in resent.blocks["q"]] == ["document"] * 5
    assert resent.unavailable == []
