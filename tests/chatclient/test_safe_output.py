"""Nothing from the network reaches the terminal as a control sequence or as rich markup:
answers, titles, errors and listings, with hostile strings and with any string at all."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from chatclient.chat import Chat
from chatclient.client import ApiError, Turn
from chatclient.safe import clean

# What a terminal acts on: every C0 control but tab and newline, DEL, and every C1 control.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

HOSTILE = [
    "\x1b[31mred\x1b[0m",
    "\x1b]0;pwned title\x07",
    "\x1b]2;pwned title\x1b\\",
    "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07",  # OSC 52: write the clipboard
    "\x1bP+q544e\x1b\\",  # DCS: ask the terminal about itself
    "\x9b31m",  # 8-bit CSI
    "\x9d0;title\x9c",  # 8-bit OSC
    "\x1b[2J\x1b[H",  # clear the screen
    "over\rwrite",
    "back\x08\x08space",
    "\x1bc",  # reset the terminal
    "\x1b_APC payload\x1b\\",
    "[bold red]markup[/]",
    "[link=http://evil]click[/link]",
]


@given(st.text())
def test_no_control_character_survives_but_newline_and_tab(text: str) -> None:
    cleaned = clean(text)
    assert not CONTROL.search(cleaned)
    assert cleaned.count("\n") <= text.count("\n")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))))
def test_text_without_controls_is_left_alone(text: str) -> None:
    assert clean(text) == text


@given(st.lists(st.sampled_from([*HOSTILE, "plain ", "\n", "\t"]), max_size=20))
def test_hostile_sequences_go_whole_with_their_payload(parts: list[str]) -> None:
    cleaned = clean("".join(parts))
    assert not CONTROL.search(cleaned)
    for payload in ("pwned title", "Y3VybCBldmlsLnNoIHwgc2g=", "+q544e", "APC payload"):
        assert payload not in cleaned


def test_what_is_shown_of_hostile_text() -> None:
    assert clean("a\x1b[31mred\x1b[0mb\tc\nd") == "ared" + "b\tc\nd"
    assert clean("before\x1b]0;pwned\x07after") == "beforeafter"


class Hostile:
    """A client whose every string from the server is hostile."""

    rest_url = "http://example"
    token = None

    def __init__(self, text: str) -> None:
        self.text = text
        self.interrupt = threading.Event()

    def sessions(self, limit: int = 20) -> list[dict[str, Any]]:
        return [{"session_id": self.text, "title": self.text, "last_activity": self.text}]

    def session(self, session_id: str) -> dict[str, Any]:
        return {"session_id": session_id, "title": self.text, "model_id": self.text}

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        return [{"role": "assistant", "content": self.text}]

    def knowledge_bases(self) -> list[dict[str, Any]]:
        base = {"name": self.text, "status": self.text, "description": self.text}
        return [{"knowledge_base_id": self.text, **base, "default": True}]

    def usage(self) -> dict[str, Any]:
        period = {"used": 1, "limit": 2, "remaining": 1, "resets_at": self.text}
        return {"periods": [{"period": self.text, **period}], "max_concurrent_answers": 1}

    def create_session(self, title: str | None, **_: Any) -> dict[str, Any]:
        return {"session_id": self.text, "title": self.text}

    def stream(self, session_id: str, content: str, **_: Any) -> Turn:
        frames: Iterator[dict[str, Any]] = iter(
            [
                {"type": "start", "message_id": "m", "idempotency_key": "k"},
                {"type": "chunk", "message_id": "m", "content": f"BEFORE{self.text}AFTER"},
                {"type": "end", "message_id": "m", "status": self.text, "stop_reason": self.text,
                 "citations": [{"index": 1, "text": self.text, "source": self.text}]},
            ]
        )  # fmt: skip
        return Turn(frames, session_id, "k")


@pytest.mark.parametrize("text", HOSTILE)
def test_every_view_of_the_servers_strings_is_clean(text: str) -> None:
    out = io.StringIO()
    chat = Chat(Hostile(text), Console(file=out, width=200, force_terminal=False))  # type: ignore[arg-type]
    for command in ("/sessions", "/resume 1", "/kb", "/usage", "/whoami"):
        chat.command(command)
    chat.send("hi")
    chat.error(ApiError("internal", text))
    shown = out.getvalue()
    assert not CONTROL.search(shown), repr(shown)
    assert "BEFORE" in shown and "AFTER" in shown
    if text.startswith("["):  # rich markup is shown as typed, never applied
        assert text in shown
