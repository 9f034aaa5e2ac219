"""The chat's line editor (prompt_toolkit): history, multi-line input and pastes kept whole.

A terminal in its default (canonical) mode hands a program at most 4,095 characters of a line
and sends each pasted line as its own Enter; prompt_toolkit reads the keyboard raw instead, and
with bracketed paste a paste arrives as one piece, newlines and indentation included. So:

* Enter (or Ctrl-J) sends; Alt-Enter (or Esc then Enter) inserts a newline; a paste is
  inserted as it is, however many lines, and sent with the next Enter. Ctrl-J sends because a
  terminal turns an Enter typed ahead, while an answer streams, into one;
* Up and Down walk the history, kept in a file (:func:`history_file`) or, with ``None``, for
  this run only;
* Ctrl-C clears what is typed, and at an empty prompt quits, as Ctrl-D does.
"""

from __future__ import annotations

import os
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

KEYS_HELP = (
    "Enter sends; Alt-Enter (or Esc, Enter) starts a new line; a paste stays whole; "
    "Up/Down: history; Ctrl-C cancels an answer, clears the line, or at an empty prompt "
    "quits (as Ctrl-D does)"
)


def history_file() -> Path:
    """Where the history is kept: ``$XDG_STATE_HOME`` (default ``~/.local/state``)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "ai-assistant-cli" / "chat-history"


def _bindings() -> KeyBindings:
    keys = KeyBindings()

    @keys.add("enter")
    @keys.add("c-j")
    def _send(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @keys.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    @keys.add("c-c")
    def _clear_or_quit(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.text:
            buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt())

    return keys


class LineEditor:
    """Reads one message at a time from the terminal."""

    def __init__(self, history: Path | None) -> None:
        store: History = InMemoryHistory()
        if history is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
            store = FileHistory(str(history))
        self._session: PromptSession[str] = PromptSession(
            history=store,
            multiline=True,
            key_bindings=_bindings(),
            prompt_continuation=lambda width, line, wrapped: "." * (width - 1) + " ",
            enable_open_in_editor=False,
        )

    def read(self, default: str = "") -> str:
        """The next message, starting from ``default`` (the question ``/edit`` changes);
        ``EOFError`` (Ctrl-D) or ``KeyboardInterrupt`` (Ctrl-C at an empty prompt) when the
        user leaves."""
        return self._session.prompt(FormattedText([("bold ansicyan", "you> ")]), default=default)
