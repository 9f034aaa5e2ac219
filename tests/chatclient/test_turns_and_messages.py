"""The client's bookkeeping that the dev server tests cannot isolate: which frames belong to
which turn, how a message is cut into frames, and what each command says when it cannot do
what was asked."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from chatclient.attachments import Attachment
from chatclient.chat import NO_SESSION, Chat
from chatclient.client import ApiError, AssistantClient, Turn, _fragments
from chatclient.limits import MAX_FRAME_BYTES, too_long


def _frames(message_id: str, key: str, text: str) -> list[dict[str, Any]]:
    return [
        {"type": "start", "message_id": message_id, "idempotency_key": key},
        {"type": "chunk", "message_id": message_id, "content": text},
        {"type": "end", "message_id": message_id, "status": "complete"},
    ]


def test_a_turn_takes_only_its_own_frames() -> None:
    """The abandoned turn's frames arrive before and among this turn's: none is shown."""
    old = _frames("m-old", "k-old", "OLD ANSWER")
    new = _frames("m-new", "k-new", "NEW ANSWER")
    interleaved = [old[1], new[0], old[1], old[2], new[1], {"type": "pong"}, new[2]]
    strays: list[dict[str, Any]] = []
    turn = Turn(iter(interleaved), "s", "k-new", stray=strays.append)
    assert "".join(turn) == "NEW ANSWER"
    assert turn.message_id == "m-new"
    assert turn.end == new[2]
    assert strays == [old[1], old[1], old[2], {"type": "pong"}]


def test_an_error_for_another_request_does_not_end_this_turn() -> None:
    late_cancel_error = {"type": "error", "code": "conflict", "message_id": "m-old"}
    other_turn_error = {"type": "error", "code": "busy", "idempotency_key": "k-old"}
    new = _frames("m-new", "k-new", "fine")
    turn = Turn(iter([late_cancel_error, new[0], other_turn_error, *new[1:]]), "s", "k-new")
    assert "".join(turn) == "fine"


def test_an_error_answering_this_turn_ends_it() -> None:
    frame = {"type": "error", "code": "busy", "message": "2 answers", "idempotency_key": "k"}
    with pytest.raises(ApiError) as error:
        list(Turn(iter([frame]), "s", "k"))
    assert error.value.kind == "busy"


class Socket:
    """Stands in for the WebSocket: what the client sends, and frames to receive."""

    def __init__(self, incoming: list[dict[str, Any]]) -> None:
        self.incoming = [json.dumps(frame) for frame in incoming]
        self.sent: list[dict[str, Any]] = []

    def send(self, message: str | list[str]) -> None:
        self.sent.append(json.loads(message if isinstance(message, str) else "".join(message)))

    def recv(self, timeout: float) -> str:
        """The next queued frame, or, as a real socket, a ``TimeoutError`` once ``timeout``
        has passed (returning at once would make a waiting client spin)."""
        if not self.incoming:
            time.sleep(timeout)
            raise TimeoutError
        return self.incoming.pop(0)


def _client(socket: Socket) -> AssistantClient:
    client = AssistantClient("http://rest", "ws://ws", "token")
    client._ws = socket  # type: ignore[assignment]
    return client


def test_an_answer_abandoned_before_its_start_is_cancelled_when_the_start_comes() -> None:
    socket = Socket([])
    client = _client(socket)
    first = client.stream("s", "first question")
    client.abandon(first, wait=0)  # no message_id yet
    assert [m["action"] for m in socket.sent] == ["sendMessage"]

    socket.incoming += [json.dumps(f) for f in _frames("m-1", first.idempotency_key, "late")]
    second = client.stream("s", "second question")
    socket.incoming += [json.dumps(f) for f in _frames("m-2", second.idempotency_key, "right")]
    assert "".join(second) == "right"
    cancel = [m for m in socket.sent if m["action"] == "cancel"]
    assert cancel == [{"action": "cancel", "message_id": "m-1"}]
    keys = [m["idempotency_key"] for m in socket.sent if m["action"] == "sendMessage"]
    assert len(set(keys)) == 2  # every turn has a key of its own


def test_an_answer_abandoned_after_its_start_is_cancelled_at_once() -> None:
    socket = Socket([])
    client = _client(socket)
    turn = client.stream("s", "question")
    socket.incoming += [json.dumps(f) for f in _frames("m-1", turn.idempotency_key, "x")[:2]]
    iterator = iter(turn)
    assert next(iterator) == "x"
    client.abandon(turn)
    assert socket.sent[-1] == {"action": "cancel", "message_id": "m-1"}


@given(st.text(min_size=1, max_size=3 * MAX_FRAME_BYTES // 4).map(lambda t: t * 3))
def test_a_message_is_sent_in_frames_that_fit_and_join_back(message: str) -> None:
    pieces = list(_fragments(message))
    assert "".join(pieces) == message
    assert all(len(p.encode("utf-8", "surrogatepass")) <= MAX_FRAME_BYTES for p in pieces)


def test_too_long_names_the_limit() -> None:
    assert too_long("x" * 50_000) is None
    assert "the limit is 50,000" in (too_long("x" * 50_001) or "")
    assert "the limit is 128 KB" in (too_long("\U0001f600" * 40_000) or "")


def test_a_missing_authentication_token_from_health_means_the_url_is_wrong() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "Missing Authentication Token"})

    client = AssistantClient("https://api.example/prod-typo", "wss://x", None)
    client.http = httpx.Client(
        transport=httpx.MockTransport(gateway), base_url="https://api.example/prod-typo"
    )
    with pytest.raises(ApiError) as error:
        client.health()
    assert error.value.kind == "wrong_url"
    assert "check the stage in REST_URL" in str(error.value)
    assert "https://api.example/prod-typo/api/v1/health" in str(error.value)


class Sessions:
    """A client with one session, recording deletions."""

    rest_url = "http://example"
    token = None

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def sessions(self, limit: int = 20) -> list[dict[str, Any]]:
        return [{"session_id": "s-1", "title": "one"}]

    def session(self, session_id: str) -> dict[str, Any]:
        if session_id != "s-1":
            raise ApiError("not_found", "session not found", 404)
        return {"session_id": "s-1", "title": "one"}

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        return []

    def delete(self, session_id: str) -> None:
        self.deleted.append(session_id)


def _chat(answer: bool) -> tuple[Chat, Sessions, io.StringIO]:
    out = io.StringIO()
    client = Sessions()
    questions: list[str] = []

    def confirm(question: str) -> bool:
        questions.append(question)
        return answer

    chat = Chat(client, Console(file=out, width=200), confirm=confirm)  # type: ignore[arg-type]
    chat.command("/sessions")
    chat.command("/resume 1")
    return chat, client, out


def test_delete_asks_first_and_keeps_the_session_unless_told_yes() -> None:
    chat, client, out = _chat(answer=False)
    chat.command("/delete")
    assert client.deleted == []
    assert "kept" in out.getvalue()
    chat.confirm = lambda question: True
    chat.command("/delete")
    assert client.deleted == ["s-1"]


def test_after_delete_rename_says_there_is_no_session() -> None:
    chat, _, out = _chat(answer=True)
    chat.command("/delete")
    chat.command("/rename new title")
    chat.command("/delete")
    assert out.getvalue().count(NO_SESSION) == 2
    assert "unknown" not in out.getvalue()


@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("/resume 99", "there is no session 99 (the list has 1); /sessions lists them"),
        ("/resume nope", "no session nope of yours; /sessions lists them"),
        ("/resume", "which session?"),
        ("/rename", "rename to what?"),
        ("/frobnicate", "unknown command '/frobnicate'; /help lists them"),
    ],
)
def test_commands_say_what_is_wrong_and_what_to_do(command: str, said: str) -> None:
    chat, _, out = _chat(answer=True)
    chat.command(command)
    assert said in out.getvalue()


class Settable:
    """A client recording the sessions created and the changes made to them."""

    rest_url = "http://example"
    token = "h." + base64.urlsafe_b64encode(b'{"sub":"alice"}').decode().rstrip("=") + ".s"

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    def create_session(self, title: str | None, **fields: Any) -> dict[str, Any]:
        self.created.append(fields)
        return {"session_id": "s-1", "title": title, "model_id": fields["model_id"] or "m-default"}

    def update(self, session_id: str, **changes: Any) -> dict[str, Any]:
        if changes.get("model_id") == "no-such-model":
            raise ApiError("bad_request", "model_id must be one of: m-default, m-other", 400)
        self.updates.append(changes)
        return {"session_id": session_id, "title": "t", "model_id": "m-other", **changes}

    def knowledge_bases(self) -> list[dict[str, Any]]:
        return [{"knowledge_base_id": "KB12345678", "name": "docs", "status": "ACTIVE"}]


def test_model_and_knowledge_base_apply_to_the_session_and_new_ones() -> None:
    out = io.StringIO()
    client = Settable()
    chat = Chat(client, Console(file=out, width=200))  # type: ignore[arg-type]
    chat.command("/kb")
    chat.command("/kb 1")
    chat.command("/model m-other")
    chat.command("/new first")
    assert client.created == [{"model_id": "m-other", "knowledge_base_id": "KB12345678"}]
    chat.command("/model")
    assert "model: m-other (new sessions: m-other)" in out.getvalue()
    chat.command("/kb none")
    assert client.updates == [{"knowledge_base_id": None}]
    with pytest.raises(ApiError) as refused:
        chat.command("/model no-such-model")
    assert "must be one of: m-default, m-other" in str(refused.value)


def test_whoami_names_the_user_server_and_session() -> None:
    out = io.StringIO()
    chat = Chat(Settable(), Console(file=out, width=200))  # type: ignore[arg-type]
    chat.command("/whoami")
    chat.command("/new notes")
    chat.command("/whoami")
    shown = out.getvalue()
    assert "user: alice" in shown
    assert "server: http://example" in shown
    assert "session: none yet" in shown
    assert "session: notes (s-1)" in shown


class Editor:
    """The line editor: records the text it was given to edit and answers ``typed``."""

    def __init__(self, typed: str) -> None:
        self.typed = typed
        self.defaults: list[str] = []

    def read(self, default: str = "") -> str:
        self.defaults.append(default)
        return self.typed


def _versioned_client(socket: Socket) -> AssistantClient:
    """A client whose session has two turns, the first replaced once, listed on two pages."""
    pages = {
        None: {
            "messages": [
                {"role": "user", "message_id": "q-1", "content": "one", "superseded_by": "q-2"},
                {"role": "assistant", "message_id": "a-1", "content": "1", "superseded_by": "q-2"},
            ],
            "next_token": "page-2",
        },
        "page-2": {
            "messages": [
                {
                    "role": "user",
                    "message_id": "q-2",
                    "content": "one?",
                    "superseded_by": None,
                    "attachments": [{"attachment_id": "f-1", "name": "main.py"}],
                },
                {"role": "assistant", "message_id": "a-2", "content": "2", "superseded_by": None},
            ],
            "next_token": None,
        },
    }

    def rest(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("next_token")])

    client = _client(socket)
    client.http = httpx.Client(transport=httpx.MockTransport(rest), base_url="http://rest")
    return client


def _versioned_chat(typed: str) -> tuple[Chat, Socket, Editor, io.StringIO]:
    socket, editor, out = Socket([]), Editor(typed), io.StringIO()
    chat = Chat(_versioned_client(socket), Console(file=out, width=200), editor)
    chat.session = {"session_id": "s-1"}
    return chat, socket, editor, out


def _answer_next_turn(socket: Socket) -> None:
    """Queue the frames answering the message the chat is about to send (its key is drawn
    when it is sent, so the socket reads it back from what was sent)."""
    send = socket.send

    def answering(message: str | list[str]) -> None:
        send(message)
        key = socket.sent[-1]["idempotency_key"]
        socket.incoming += [json.dumps(f) for f in _frames("m-3", key, "again")]

    socket.send = answering  # type: ignore[method-assign]


def test_retry_regenerates_the_current_last_question() -> None:
    chat, socket, _, out = _versioned_chat(typed="")
    _answer_next_turn(socket)
    chat.command("/retry")
    [sent] = socket.sent
    assert {k: v for k, v in sent.items() if k != "idempotency_key"} == {
        "action": "sendMessage",
        "session_id": "s-1",
        "replaces": "q-2",
    }  # no content: the server asks the stored question again
    assert "again" in out.getvalue()


def test_edit_offers_the_last_question_and_sends_the_edit() -> None:
    chat, socket, editor, _ = _versioned_chat(typed="one, edited")
    _answer_next_turn(socket)
    chat.command("/edit")
    assert editor.defaults == ["one?"]
    [sent] = socket.sent
    assert (sent["replaces"], sent["content"]) == ("q-2", "one, edited")
    assert sent["attachments"] == ["f-1"]  # the edit keeps the question's file


def test_an_edit_takes_the_pending_attachments_too() -> None:
    chat, socket, _, _ = _versioned_chat(typed="one, with the log")
    chat.pending = [
        Attachment("f-2", "s-1", "log.txt", "document", 3),
        Attachment("f-3", "s-other", "x.txt", "document", 3),
    ]
    _answer_next_turn(socket)
    chat.command("/edit")
    [sent] = socket.sent
    assert sent["attachments"] == ["f-1", "f-2"]  # not another session's
    assert chat.pending == []


def test_an_edit_whose_question_file_is_gone_is_sent_without_it() -> None:
    """The server refuses a message naming an expired file (before any model call); the edit
    is sent again without the question's files, and the user told why."""
    chat, socket, _, out = _versioned_chat(typed="one, edited")
    send = socket.send

    def refusing_then_answering(message: str | list[str]) -> None:
        send(message)
        key = socket.sent[-1]["idempotency_key"]
        if len(socket.sent) == 1:
            refusal = {
                "type": "error",
                "code": "attachment_rejected",
                "message": "attachment f-1: it has expired or was never uploaded",
                "idempotency_key": key,
            }
            socket.incoming.append(json.dumps(refusal))
        else:
            socket.incoming += [json.dumps(f) for f in _frames("m-3", key, "again")]

    socket.send = refusing_then_answering  # type: ignore[method-assign]
    chat.command("/edit")
    first, second = socket.sent
    assert (first["attachments"], second.get("attachments")) == (["f-1"], None)
    assert second["content"] == "one, edited"
    said = out.getvalue()
    assert "the question's files are not sent again" in said and "expired" in said
    assert "again" in said


def test_an_edit_left_empty_sends_nothing() -> None:
    chat, socket, _, out = _versioned_chat(typed="  ")
    chat.command("/edit")
    assert socket.sent == []
    assert "edit abandoned" in out.getvalue()


def test_retry_without_a_session_says_so() -> None:
    chat, socket, _, out = _versioned_chat(typed="")
    chat.session = None
    chat.command("/retry")
    assert socket.sent == []
    assert NO_SESSION in out.getvalue()


def test_the_title_frame_after_the_first_answer_is_printed_once() -> None:
    """A new session is created untitled; the server's ``title`` frame, after the answer's
    ``end``, is shown once and becomes the session's title; the next turn waits for none."""
    out = io.StringIO()
    socket = Socket([])
    client = _client(socket)
    created: list[Any] = []

    def create_session(title: str | None, **_: Any) -> dict[str, Any]:
        created.append(title)
        return {"session_id": "s-1", "title": "New session"}

    client.create_session = create_session  # type: ignore[method-assign]
    chat = Chat(client, Console(file=out, width=200))
    title = {"type": "title", "session_id": "s-1", "title": "Capital of France"}
    original_send = socket.send

    def send(message: str | list[str]) -> None:
        """The server: the answer's frames, then for the session's first a title."""
        original_send(message)
        frames = _frames("m", socket.sent[-1]["idempotency_key"], "Paris.")
        extra = [title] if len(socket.sent) == 1 else []
        socket.incoming += [json.dumps(frame) for frame in (*frames, *extra)]

    socket.send = send  # type: ignore[method-assign]
    chat.send("Capital of France?")
    chat.send("And of Spain?")

    assert created == [None]  # untitled: the server names it
    assert out.getvalue().count("title: Capital of France") == 1
    assert chat.session is not None and chat.session["title"] == "Capital of France"
    assert socket.incoming == []
