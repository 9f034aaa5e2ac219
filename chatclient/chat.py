"""The interactive chat: a line editor, commands, answers streamed as they arrive.

Everything that came from the network (answers, titles, ids, errors, listings) is printed
through :mod:`chatclient.safe`: no terminal control sequence and no rich markup of someone
else's reaches the terminal.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from chatclient import attachments
from chatclient.attachments import Attachment
from chatclient.client import ApiError, AssistantClient, Turn, check
from chatclient.connection import token_subject
from chatclient.editor import KEYS_HELP
from chatclient.safe import clean, plain

HELP = f"""Commands:
  /new [title]       start a new session (with the knowledge base chosen by /kb, if any)
  /sessions          list your sessions
  /resume <n|id>     continue session n of the list (or by id) and show its history
  /rename <title>    rename the current session
  /delete            delete the current session (asks first)
  /model [id]        show the current session's model, or switch to another
  /kb [n|id|none]    list the knowledge bases, or ground this and new sessions on one
  /retry             answer the last question again (the old answer is kept)
  /edit              change the last question in the editor, then answer it again
  /feedback up|down [comment]  rate the session's last answer (again: replaces it)
  /export md|json <path>       write the whole session to a file
  /attach [path|clear]         send a file with the next message; list or drop the pending
  /usage             your token budget and how many answers you may have generating
  /whoami            who you are talking as, to which server, in which session
  /help              this text
  /quit              leave
Keys: {KEYS_HELP}.
Anything else is sent to the assistant."""
NO_SESSION = "no current session: /new starts one, /resume continues one"


class Reader(Protocol):
    def read(self, default: str = "") -> str: ...


class Chat:
    """One user's chat in a terminal; :meth:`run` until they leave."""

    def __init__(
        self,
        client: AssistantClient,
        console: Console,
        reader: Reader | None = None,
        *,
        confirm: Callable[[str], bool] | None = None,
        model_id: str | None = None,
        knowledge_base_id: str | None = None,
    ) -> None:
        self.client = client
        self.console = console
        self.reader = reader
        self.confirm = confirm or self._ask
        self.session: dict[str, Any] | None = None
        self.listed: list[dict[str, Any]] = []
        self.knowledge_bases: list[dict[str, Any]] = []
        self.model_id = model_id  # for new sessions; None: the deployment's default
        self.knowledge_base_id = knowledge_base_id  # for new sessions
        self.last_answer_id: str | None = None  # of the current session, for /feedback
        self.pending: list[Attachment] = []  # uploaded, sent with the next message
        self.untitled: str | None = None  # created here, unanswered: its answer brings a title

    # ---- output --------------------------------------------------------------------------

    def say(self, text: str, style: str = "") -> None:
        """Print ``text`` (which may hold the network's strings) as it is, cleaned."""
        self.console.print(plain(text, style), highlight=False)

    def error(self, error: ApiError) -> None:
        self.say(f"error: {error}", "bold red")

    # ---- the loop ------------------------------------------------------------------------

    def run(self, health: dict[str, Any]) -> int:
        """Read and answer until the user leaves; ``health`` is the server's health answer."""
        self.say(f"connected to {self.client.rest_url} ({health.get('status')})", "dim")
        self.say(f"type /help for commands. {KEYS_HELP}.", "dim")
        assert self.reader is not None, "run() needs a line editor"
        while True:
            try:
                line = self.reader.read()
            except (EOFError, KeyboardInterrupt):
                self.say("")
                return 0
            if not line.strip():
                continue
            try:
                if line.lstrip().startswith("/") and "\n" not in line.strip():
                    if not self.command(line.strip()):
                        return 0
                else:
                    self.send(line)
            except ApiError as error:
                self.error(error)

    def command(self, line: str) -> bool:
        """Run one ``/command``; False when the user leaves."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        commands: dict[str, Callable[[str], None]] = {
            "/help": lambda _: self.say(HELP),
            "/new": self.new,
            "/sessions": lambda _: self.list_sessions(),
            "/usage": lambda _: self.show_usage(),
            "/resume": self.resume,
            "/rename": self.rename,
            "/delete": lambda _: self.delete(),
            "/model": self.model,
            "/kb": self.kb,
            "/whoami": lambda _: self.whoami(),
            "/retry": lambda _: self.retry(),
            "/edit": lambda _: self.edit(),
            "/feedback": self.feedback,
            "/export": self.export,
            "/attach": self.attach,
        }
        if name in ("/quit", "/exit"):
            return False
        action = commands.get(name)
        if action is None:
            self.say(f"unknown command {name!r}; /help lists them", "yellow")
        else:
            action(rest)
        return True

    # ---- sessions ------------------------------------------------------------------------

    def new(self, title: str) -> None:
        self.session = self.client.create_session(
            title or None, model_id=self.model_id, knowledge_base_id=self.knowledge_base_id
        )
        self.last_answer_id = None
        self.say(f"new session {self.session['session_id']}", "green")

    def list_sessions(self) -> None:
        self.listed = self.client.sessions()
        if not self.listed:
            self.say("no sessions yet: type a message to start one")
            return
        table = Table("#", "title", "last activity", "id")
        for number, session in enumerate(self.listed, 1):
            table.add_row(
                str(number),
                plain(session.get("title") or ""),
                plain(session.get("last_activity", "")),
                plain(session["session_id"]),
            )
        self.console.print(table)

    def resume(self, which: str) -> None:
        if not which:
            self.say("which session? /sessions lists them, then /resume <n>", "yellow")
            return
        if which.isdigit() and int(which) <= 1000:
            if not 0 < int(which) <= len(self.listed):
                listed = f"the list has {len(self.listed)}" if self.listed else "none is listed"
                self.say(f"there is no session {which} ({listed}); /sessions lists them", "yellow")
                return
            session_id = self.listed[int(which) - 1]["session_id"]
        else:
            session_id = which
        try:
            self.session = self.client.session(session_id)
        except ApiError as error:
            if error.kind != "not_found":
                raise
            self.say(f"no session {session_id} of yours; /sessions lists them", "yellow")
            return
        self.say(f"resumed {self.session.get('title') or session_id}", "green")
        self.last_answer_id = None
        for message in self.client.messages(session_id):
            if message.get("superseded_by"):  # an older version of a regenerated turn
                continue
            style = "cyan" if message["role"] == "user" else ""
            self.say(f"{message['role']}> {message['content']}", style)
            if message["role"] == "assistant":
                self.last_answer_id = message.get("message_id")

    def rename(self, title: str) -> None:
        if self.session is None:
            self.say(NO_SESSION, "yellow")
        elif not title:
            self.say("rename to what? /rename <title>", "yellow")
        else:
            self.session = self.client.rename(self.session["session_id"], title)
            self.say(f"renamed to {title!r}", "green")

    def delete(self) -> None:
        if self.session is None:
            self.say(NO_SESSION, "yellow")
            return
        name = self.session.get("title") or self.session["session_id"]
        if not self.confirm(f"delete session {clean(name)!r} and all its messages? [y/N] "):
            self.say("kept", "dim")
            return
        self.client.delete(self.session["session_id"])
        self.say(f"deleted session {self.session['session_id']}", "green")
        self.session = None
        self.last_answer_id = None

    def _ask(self, question: str) -> bool:
        try:
            answer = self.console.input(plain(question, "yellow"))
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")

    # ---- model, knowledge base, who ------------------------------------------------------

    def model(self, model_id: str) -> None:
        if not model_id:
            current = self.session.get("model_id") if self.session else None
            chosen = self.model_id or "the deployment's default"
            self.say(f"model: {current or 'no session yet'} (new sessions: {chosen})")
            return
        if self.session is not None:
            self.session = self.client.update(self.session["session_id"], model_id=model_id)
        self.model_id = model_id
        self.say(f"model set to {model_id}", "green")

    def kb(self, which: str) -> None:
        if not which:
            self.list_knowledge_bases()
            return
        if which == "none":
            chosen = None
        elif which.isdigit() and 0 < int(which) <= len(self.knowledge_bases):
            chosen = self.knowledge_bases[int(which) - 1]["knowledge_base_id"]
        else:
            chosen = which
        if self.session is not None:
            self.session = self.client.update(self.session["session_id"], knowledge_base_id=chosen)
        self.knowledge_base_id = chosen
        self.say(f"knowledge base: {chosen or 'none'}", "green")

    def list_knowledge_bases(self) -> None:
        self.knowledge_bases = self.client.knowledge_bases()
        if not self.knowledge_bases:
            self.say("no knowledge bases on this deployment")
            return
        table = Table("#", "id", "name", "status", "description")
        current = (self.session or {}).get("knowledge_base_id")
        for number, base in enumerate(self.knowledge_bases, 1):
            notes = [base.get("description") or ""]
            if base.get("default"):
                notes.append("(default)")
            if current and base.get("knowledge_base_id") == current:
                notes.append("(this session's)")
            table.add_row(
                str(number),
                plain(base["knowledge_base_id"]),
                plain(base.get("name", "")),
                plain(base.get("status", "")),
                plain(" ".join(note for note in notes if note)),
            )
        self.console.print(table)
        self.say("/kb <n> grounds this session and new ones on knowledge base n", "dim")

    def whoami(self) -> None:
        user = token_subject(self.client.token) or "unknown (the token has no readable subject)"
        self.say(f"user: {user}")
        self.say(f"server: {self.client.rest_url}")
        if self.session is None:
            self.say("session: none yet (the first message starts one)")
            return
        session = self.session
        self.say(f"session: {session.get('title') or ''} ({session['session_id']})")
        self.say(f"model: {session.get('model_id')}")
        self.say(f"knowledge base: {session.get('knowledge_base_id') or 'none'}")

    # ---- feedback and export -------------------------------------------------------------

    def feedback(self, arguments: str) -> None:
        rating, _, comment = arguments.partition(" ")
        if rating not in ("up", "down"):
            self.say("rate it how? /feedback up|down [comment]", "yellow")
        elif self.session is None:
            self.say(NO_SESSION, "yellow")
        elif self.last_answer_id is None:
            self.say("no answer to rate in this session yet", "yellow")
        else:
            self.client.feedback(
                self.session["session_id"], self.last_answer_id, rating, comment.strip() or None
            )
            self.say(f"rated the last answer {rating}", "green")

    def export(self, arguments: str) -> None:
        export_format, _, path = arguments.partition(" ")
        if export_format not in ("md", "json") or not path.strip():
            self.say("export how, and where? /export md|json <path>", "yellow")
            return
        if self.session is None:
            self.say(NO_SESSION, "yellow")
            return
        pages = list(self.client.export_pages(self.session["session_id"], export_format))
        target = Path(path.strip()).expanduser()
        if export_format == "md":
            target.write_text("".join(page.text for page in pages), encoding="utf-8")
            # Markdown carries no count; the session's is the export's once it is repaired.
            count = self.client.session(self.session["session_id"])["message_count"]
        else:
            bodies = [page.json() for page in pages]
            messages = [message for body in bodies for message in body["messages"]]
            count = len(messages)
            document = {"session": bodies[0]["session"], "messages": messages}
            target.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
        pages_said = f"{len(pages)} page{'s' if len(pages) != 1 else ''}"
        self.say(f"exported {count} messages to {target} ({pages_said})", "green")

    # ---- attachments ---------------------------------------------------------------------

    def attach(self, argument: str) -> None:
        """``/attach PATH`` uploads a file for the next message; ``/attach`` lists the pending
        ones, ``/attach clear`` drops them (the session's cleanup deletes what was uploaded)."""
        if not argument:
            self.list_pending()
            return
        if argument == "clear":
            self.say(f"dropped {len(self.pending)} pending attachment(s)", "green")
            self.pending.clear()
            return
        file = attachments.read(argument)  # before a session is created for it
        session_id = self._current_session_id()
        pending = self._pending_of(session_id)
        attachments.check_count([*(a.kind for a in pending), file.format.kind])
        self.say(f"uploading {file.name} ({len(file.data):,} bytes)…", "dim")
        self.pending = [*pending, attachments.upload(self.client, session_id, file)]
        self.say(f"attached {file.name}: sent with your next message", "green")

    def list_pending(self) -> None:
        pending = self._pending_of(self.session["session_id"]) if self.session else []
        if not pending:
            self.say("no pending attachments: /attach <path> adds one")
            return
        for number, attachment in enumerate(pending, 1):
            self.say(f"  {number}. {attachment.name} ({attachment.size:,} bytes)")
        self.say("sent with your next message; /attach clear drops them", "dim")

    def _pending_of(self, session_id: str) -> list[Attachment]:
        """The pending attachments of ``session_id``; those of a session left meanwhile are
        dropped (an attachment belongs to the session it was uploaded in)."""
        return [a for a in self.pending if a.session_id == session_id]

    # ---- usage ---------------------------------------------------------------------------

    def show_usage(self) -> None:
        usage = self.client.usage()
        if not usage["periods"]:
            self.say("no token limit is configured")
        else:
            table = Table("period", "used", "limit", "remaining", "resets at (UTC)")
            for period in usage["periods"]:
                table.add_row(
                    plain(period["period"]),
                    f"{period['used']:,}",
                    f"{period['limit']:,}",
                    f"{period['remaining']:,}",
                    plain(period["resets_at"]),
                )
            self.console.print(table)
        slots = usage.get("max_concurrent_answers")
        self.say(
            f"answers generating at once: {f'at most {slots}' if slots else 'no limit'}", "dim"
        )

    # ---- a turn --------------------------------------------------------------------------

    def send(self, content: str) -> None:
        check(content)  # before a session is created for it
        session_id = self._current_session_id()
        created = self.untitled == session_id
        self.untitled = None
        files = [a.attachment_id for a in self._pending_of(session_id)]
        turn = self.client.stream(session_id, content, attachments=files)
        self.pending = []  # sent: the message carries them from now on
        self.answer(turn, new_session=created)

    def _current_session_id(self) -> str:
        """The current session's id, creating one (untitled: the server names it after its
        first answer) when there is none."""
        if self.session is None:
            self.session = self.client.create_session(
                None, model_id=self.model_id, knowledge_base_id=self.knowledge_base_id
            )
            self.last_answer_id = None
            self.untitled = self.session["session_id"]
            self.say(f"new session {self.session['session_id']}", "dim")
        return self.session["session_id"]

    def retry(self) -> None:
        """Regenerate the last answer: the last question again, as a new version."""
        question = self._last_question()
        if question is not None:
            session_id = self.session["session_id"]  # type: ignore[index]
            self.answer(self.client.stream(session_id, None, replaces=question["message_id"]))

    def edit(self) -> None:
        """Edit the last question in the line editor, then answer it as a new version, with
        its attachments and the pending ones."""
        question = self._last_question()
        if question is None:
            return
        assert self.reader is not None, "/edit needs a line editor"
        try:
            content = self.reader.read(question["content"])
        except (EOFError, KeyboardInterrupt):
            content = ""
        if not content.strip():
            self.say("edit abandoned; the question stays as it was", "dim")
            return
        check(content)
        session_id = self.session["session_id"]  # type: ignore[index]
        # The edit keeps the question's files (the server sends only those it names), and
        # takes the pending ones too.
        kept = [str(a["attachment_id"]) for a in question.get("attachments") or []]
        pending = [a.attachment_id for a in self._pending_of(session_id)]
        self.pending = []
        try:
            self.answer(
                self.client.stream(
                    session_id, content, replaces=question["message_id"], attachments=kept + pending
                )
            )
        except ApiError as error:
            if error.kind != "attachment_rejected" or not kept:
                raise
            # Refused before any model call: one of the question's files is gone or no longer
            # passes. Edit without them rather than leave the user no way to edit at all.
            self.say("")
            self.say(f"the question's files are not sent again ({clean(error)})", "yellow")
            self.answer(
                self.client.stream(
                    session_id, content, replaces=question["message_id"], attachments=pending
                )
            )

    def _last_question(self) -> dict[str, Any] | None:
        """The current session's last question, or None after saying why there is none."""
        if self.session is None:
            self.say(NO_SESSION, "yellow")
            return None
        question = self.client.last_question(self.session["session_id"])
        if question is None:
            self.say("no question yet in this session: ask one first", "yellow")
        return question

    def answer(self, turn: Turn, *, new_session: bool = False) -> None:
        """Show ``turn``'s answer as it streams; Ctrl-C cancels it. The first complete answer
        of a session this client created is followed by the title the server gives it."""
        self.console.print("[bold magenta]assistant>[/] ", end="")
        try:
            with ctrl_c_interrupts(self.client):
                for text in turn:
                    self.console.out(clean(text), end="", highlight=False)
                    self.console.file.flush()
        except KeyboardInterrupt:
            self.client.abandon(turn)
            self.say("")
            self.say("(interrupted: the answer was cancelled; what came so far is kept)", "yellow")
            return
        self.say("")
        self.last_answer_id = turn.message_id
        self.summary(turn.citations, turn.usage, turn.end)
        for note in attachments.unavailable_notes(turn.unavailable):
            self.say(f"  {note}", "yellow")
        if new_session and turn.end.get("status") == "complete":
            self.show_title(self.session)

    def show_title(self, session: dict[str, Any]) -> None:
        """The title the server gave a new session after its first answer, printed once."""
        title = self.client.title(session["session_id"])
        if title:
            session["title"] = title
            self.say(f"  title: {title}", "green")

    def summary(
        self, citations: list[dict[str, Any]], usage: dict[str, Any], end: dict[str, Any]
    ) -> None:
        for number, citation in enumerate(citations, 1):
            excerpt = " ".join(str(citation.get("text", "")).split())[:80]
            source = citation.get("source") or "unknown source"
            self.say(f"  [{citation.get('index', number)}] {source}: {excerpt}", "blue")
        line = (
            f"  tokens: {usage.get('input_tokens', '?')} in, {usage.get('output_tokens', '?')} out"
        )
        status = end.get("status")
        if status and status != "complete":  # e.g. incomplete (max_tokens, timeout), failed
            reason = end.get("stop_reason")
            line += f"; the answer is {status}" + (f" ({reason})" if reason else "")
        self.say(line, "dim")


@contextmanager
def ctrl_c_interrupts(client: AssistantClient) -> Iterator[None]:
    """While an answer streams, Ctrl-C only sets the client's ``interrupt`` flag, which the
    client turns into ``KeyboardInterrupt`` between two frames (none is lost half-read)."""
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: client.interrupt.set())
    except ValueError:  # not the main thread: leave Ctrl-C as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        client.interrupt.clear()
