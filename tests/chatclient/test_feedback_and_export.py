"""``/feedback`` and ``/export``: which answer is rated, how the export's pages are followed
(the ``Link`` header, relative to each page) and what is written."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from rich.console import Console

from chatclient.chat import NO_SESSION, Chat
from chatclient.client import ApiError, AssistantClient

BASE = "https://api.example/dev"


class Rated:
    """A client with one session of two turns, recording ratings."""

    rest_url = BASE
    token = None

    def __init__(self) -> None:
        self.ratings: list[tuple[str, str, str, str | None]] = []

    def sessions(self, limit: int = 20) -> list[dict[str, Any]]:
        return [{"session_id": "s-1", "title": "one"}]

    def session(self, session_id: str) -> dict[str, Any]:
        return {"session_id": "s-1", "title": "one", "message_count": 4}

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        return [
            {"role": role, "content": "x", "message_id": f"m-{seq}"}
            for seq, role in enumerate(("user", "assistant", "user", "assistant"), 1)
        ]

    def feedback(
        self, session_id: str, message_id: str, rating: str, comment: str | None = None
    ) -> dict[str, Any]:
        self.ratings.append((session_id, message_id, rating, comment))
        return {"rating": rating, "comment": comment}


def _chat(client: Any) -> tuple[Chat, io.StringIO]:
    out = io.StringIO()
    return Chat(client, Console(file=out, width=200)), out


def test_feedback_rates_the_last_answer_of_the_session_with_its_comment() -> None:
    client = Rated()
    chat, out = _chat(client)
    chat.command("/feedback up")
    assert NO_SESSION in out.getvalue()
    chat.command("/resume s-1")
    chat.command("/feedback down  wrong year, it was 1889 ")
    chat.command("/feedback up")
    assert client.ratings == [
        ("s-1", "m-4", "down", "wrong year, it was 1889"),
        ("s-1", "m-4", "up", None),
    ]
    assert "rated the last answer up" in out.getvalue()


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("/feedback", "rate it how? /feedback up|down [comment]"),
        ("/feedback meh", "rate it how?"),
        ("/export", "export how, and where? /export md|json <path>"),
        ("/export pdf out.pdf", "export how, and where?"),
        ("/export md", "export how, and where?"),
    ],
)
def test_commands_say_what_is_wrong_and_what_to_do(command: str, said: str) -> None:
    chat, out = _chat(Rated())
    chat.command("/resume s-1")
    chat.command(command)
    assert said in out.getvalue()


def test_feedback_before_any_answer_says_so() -> None:
    client = Rated()
    client.messages = lambda session_id: []  # type: ignore[method-assign]
    chat, out = _chat(client)
    chat.command("/resume s-1")
    chat.command("/feedback up")
    assert "no answer to rate in this session yet" in out.getvalue()
    assert client.ratings == []


def _paged_server(pages: int, seen: list[str]) -> httpx.MockTransport:
    """An export of ``pages`` pages of two messages, each naming the next in ``Link`` as the
    API does: a reference relative to the page's URL."""

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        query = parse_qs(request.url.query.decode())
        number = int(query.get("next_token", ["0"])[0])
        export_format = query["format"][0]
        headers = {}
        following = str(number + 1) if number + 1 < pages else None
        if following:
            headers["Link"] = f'<?format={export_format}&next_token={following}>; rel="next"'
        if export_format == "md":
            head = "# Title\n\n" if number == 0 else ""
            text = head + f"## User · t{number}\n\nq{number}\n\n## Assistant · t{number}\n\na\n\n"
            return httpx.Response(200, headers=headers, text=text)
        body = {
            "session": {"session_id": "s-1"},
            "messages": [{"seq": 2 * number + 1}, {"seq": 2 * number + 2}],
            "next_token": following,
        }
        return httpx.Response(200, headers=headers, json=body)

    return httpx.MockTransport(serve)


def _client(transport: httpx.MockTransport) -> AssistantClient:
    client = AssistantClient(BASE, "wss://x", "token")
    client.http = httpx.Client(transport=transport, base_url=BASE)
    return client


@pytest.mark.parametrize("export_format", ["json", "md"])
def test_export_follows_every_page_and_writes_one_file(tmp_path: Path, export_format: str) -> None:
    seen: list[str] = []
    client = _client(_paged_server(3, seen))
    client.session = lambda session_id: {"session_id": session_id, "message_count": 6}  # type: ignore[method-assign]
    chat, out = _chat(client)
    chat.session = {"session_id": "s-1"}
    target = tmp_path / f"export.{export_format}"
    chat.command(f"/export {export_format} {target}")
    assert seen == [
        f"{BASE}/api/v1/sessions/s-1/export?format={export_format}",
        f"{BASE}/api/v1/sessions/s-1/export?format={export_format}&next_token=1",
        f"{BASE}/api/v1/sessions/s-1/export?format={export_format}&next_token=2",
    ]
    assert f"exported 6 messages to {target} (3 pages)" in out.getvalue()
    written = target.read_text(encoding="utf-8")
    if export_format == "json":
        document = json.loads(written)
        assert document["session"] == {"session_id": "s-1"}
        assert [message["seq"] for message in document["messages"]] == [1, 2, 3, 4, 5, 6]
    else:
        assert written.startswith("# Title\n") and written.count("# Title") == 1
        assert [f"q{n}" in written for n in range(3)] == [True, True, True]


def test_an_export_refused_by_the_server_is_its_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "gone"}})

    client = _client(httpx.MockTransport(refuse))
    with pytest.raises(ApiError) as error:
        list(client.export_pages("s-1", "md"))
    assert error.value.kind == "not_found"
