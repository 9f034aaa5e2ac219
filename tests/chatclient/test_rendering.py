"""What the chat client prints: errors in plain words, citations, usage, an incomplete answer.

The streamed path itself runs against the dev server in ``tests/dev/test_clients.py``; these
cover what the dev stack cannot produce (no knowledge base, no throttling, no quota)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rich.console import Console

from chatclient.chat import Chat
from chatclient.client import ApiError, Turn, _error_of


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers or {})


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (response(401, {"message": "Unauthorized"}), "the token was refused"),
        (response(404, {"error": {"code": "not_found", "message": "no session x"}}), "no such"),
        (
            response(503, {"error": {"code": "x", "message": "slow"}}, {"Retry-After": "2"}),
            "the service is busy (throttled)",
        ),
        (response(429, {"message": "Limit Exceeded"}), "quota or rate limit is used up"),
        (
            response(
                429,
                {"error": {"code": "quota_exceeded", "message": "10 of 10 tokens used"}},
                {"Retry-After": "3600"},
            ),
            "your token budget is spent until it resets (/usage shows it): 10 of 10 tokens used",
        ),
        (
            response(
                429, {"error": {"code": "busy", "message": "2 answers"}}, {"Retry-After": "2"}
            ),
            "you have as many answers generating as allowed",
        ),
        (response(504, {"message": "Endpoint request timed out"}), "took too long"),
        (response(500, {"message": "Internal server error"}), "failed on its side"),
    ],
)
def test_errors_are_told_in_plain_words(answer: httpx.Response, words: str) -> None:
    assert words in str(_error_of(answer))


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("throttled", "throttled"),
        ("quota_exceeded", "your token budget is spent"),
        ("busy", "as many answers generating as allowed"),
    ],
)
def test_an_error_frame_is_told_in_plain_words(code: str, words: str) -> None:
    frame = {"type": "error", "code": code, "message": "the detail", "idempotency_key": "k"}
    turn = Turn(iter([frame]), "s", "k")
    with pytest.raises(ApiError) as error:
        list(turn)
    assert words in str(error.value)
    assert "the detail" in str(error.value)


class UsageClient:
    rest_url = "http://example"

    def __init__(self, usage: dict[str, Any]) -> None:
        self._usage = usage

    def usage(self) -> dict[str, Any]:
        return self._usage


@pytest.mark.parametrize(
    ("usage", "shown"),
    [
        (
            {
                "periods": [
                    {
                        "period": "day",
                        "used": 1234,
                        "limit": 1000000,
                        "remaining": 998766,
                        "resets_at": "2026-12-03T00:00:00.000000Z",
                    }
                ],
                "max_concurrent_answers": 2,
            },
            ["day", "1,234", "1,000,000", "998,766", "2026-12-03T00:00:00", "at most 2"],
        ),
        (
            {"periods": [], "max_concurrent_answers": None},
            ["no token limit is configured", "at once: no limit"],
        ),
    ],
)
def test_usage_is_shown(usage: dict[str, Any], shown: list[str]) -> None:
    out = io.StringIO()
    chat = Chat(UsageClient(usage), Console(file=out, width=120))  # type: ignore[arg-type]
    assert chat.command("/usage")
    for words in shown:
        assert words in out.getvalue()


class FakeClient:
    rest_url = "http://example"

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self.frames = frames
        self.interrupt = threading.Event()

    def create_session(
        self, title: str | None, *, model_id: str | None, knowledge_base_id: str | None
    ) -> dict[str, Any]:
        return {"session_id": "s-1", "title": title}

    def stream(self, session_id: str, content: str, **_: Any) -> Turn:
        frames: Iterator[dict[str, Any]] = iter(self.frames)
        return Turn(frames, session_id, "k")

    def title(self, session_id: str) -> str | None:
        return None  # the server sent no title frame


def printed(frames: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    chat = Chat(FakeClient(frames), Console(file=out, width=120))  # type: ignore[arg-type]
    chat.send("question")
    return out.getvalue()


def test_citations_usage_and_an_incomplete_answer_are_shown() -> None:
    text = printed(
        [
            {"type": "start", "message_id": "m", "idempotency_key": "k"},
            {"type": "chunk", "content": "Paris [1]", "message_id": "m"},
            {
                "type": "end",
                "message_id": "m",
                "status": "incomplete",
                "stop_reason": "max_tokens",
                "usage": {"input_tokens": 7, "output_tokens": 2},
                "citations": [{"index": 1, "text": "Paris is in France.", "source": "s3://kb/geo"}],
            },
        ]
    )
    assert "Paris [1]" in text
    assert "[1] s3://kb/geo: Paris is in France." in text
    assert "tokens: 7 in, 2 out" in text
    assert "the answer is incomplete (max_tokens)" in text


def test_a_complete_answer_says_nothing_about_status() -> None:
    text = printed(
        [
            {"type": "start", "message_id": "m", "idempotency_key": "k"},
            {"type": "chunk", "content": "ok", "message_id": "m"},
            {"type": "end", "status": "complete", "message_id": "m"},
        ]
    )
    assert "incomplete" not in text and "answer is" not in text
