"""The one chat service behind both transports: REST (``converse``) and WebSocket (streaming).

A turn goes: load the caller's session (someone else's is "not found"), retrieve knowledge-base
passages when the session has a knowledge base, read the most recent history that fits the
context budget, take the turn's two sequence numbers and store the user's turn, call the model
(with the request :mod:`functions.chat.prompting` builds), store the assistant's turn. The
user's turn is stored before the model call so it survives a model failure. The assistant's
turn is stored with a status: ``complete`` only when the model said it was done,
``incomplete`` (with the reason) when the answer stopped short, or a ``failed`` marker without
content when the model call or stream failed, so every turn's answer slot is visibly filled.

The history budget is in estimated tokens: UTF-8 bytes / :data:`BYTES_PER_TOKEN`. Four bytes a
token is the usual rule for English text and the Claude tokenizers; other scripts cost more
bytes per character, and the estimate scales with them.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.chat import attachments as attached
from functions.chat.prompting import model_request, prompt_bytes, sent_history
from functions.chat.titles import PendingTitle, Titles
from functions.chat.upstream import upstream_errors
from functions.contract import Metric
from functions.core import aws, deadline
from functions.core.aws_errors import is_throttling, translate
from functions.core.clock import timestamp, utc_now
from functions.core.observability import count, logger, record_turn
from functions.data.answers import Generating, GeneratingAnswers
from functions.data.quota import AnswerLeases, Lease, Reservation, UsageLedger
from functions.data.turns import NOT_LAST_TURN
from functions.domain.content import content_problem
from functions.domain.errors import BadRequest, Conflict, NotFound, UpstreamError
from functions.domain.models import (
    AttachmentRef,
    Citation,
    Message,
    MessageStatus,
    Session,
    UnavailableAttachment,
    Usage,
    content_bytes,
    untitled,
)

if TYPE_CHECKING:
    from functions.core.chat_settings import ChatSettings
    from functions.data.attachments import AttachmentStore
    from functions.data.turns import Store

BYTES_PER_TOKEN = 4
RETRIEVAL_RESULTS = 5
# The model's stop reasons that mean "done"; any other, or none, stores the answer incomplete.
COMPLETE_STOP_REASONS = frozenset({"end_turn", "stop_sequence"})
# Our own stop reasons, for answers the model did not end.
TIMEOUT = "timeout"  # the function's time ran out (see ChatStream)
INTERRUPTED = "interrupted"  # the stream ended without messageStop, or the user cancelled it

TimeLeft = Callable[[], float]


@dataclass(frozen=True)
class ChatReply:
    """A completed turn: the stored assistant message, its sources and the token usage, and
    the title it gave its session (REST; the WebSocket's comes after, :meth:`ChatStream.title`)."""

    message: Message
    citations: tuple[Citation, ...]
    usage: Usage
    title: str | None = None
    unavailable: tuple[UnavailableAttachment, ...] = ()  # see _Turn.unavailable


@dataclass(frozen=True)
class TurnOptions:
    """What a caller may choose for one model call (the OpenAI-compatible API's fields).

    ``max_tokens`` only lowers the cap the budget sets (``maxTokens``), never raises it;
    ``instructions`` are the caller's own system texts, sent after the service's prompt.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    instructions: tuple[str, ...] = ()

    def inference_config(self, cap: int | None) -> dict[str, Any]:
        """Bedrock's ``inferenceConfig``: the lower of the caller's and the budget's cap."""
        limits = [limit for limit in (self.max_tokens, cap) if limit is not None]
        config: dict[str, Any] = {"maxTokens": min(limits)} if limits else {}
        if self.temperature is not None:
            config["temperature"] = self.temperature
        if self.top_p is not None:
            config["topP"] = self.top_p
        if self.stop:
            config["stopSequences"] = list(self.stop)
        return config

    def instruction_bytes(self) -> int:
        return sum(content_bytes(text) for text in self.instructions)


NO_OPTIONS = TurnOptions()


@dataclass(frozen=True)
class Conversation:
    """A turn whose history the client holds and sends: nothing of it is stored, but it is
    budgeted, leased, guarded and measured like a stored one. ``history`` is numbered from 1,
    the question comes after it."""

    model_id: str
    history: tuple[Message, ...]
    content: str
    knowledge_base_id: str | None = None


@dataclass(frozen=True)
class _Turn:
    """Everything decided before the model call."""

    user_id: str
    session: Session
    request: dict[str, Any]
    citations: tuple[Citation, ...]
    question: Message  # stored; the answer takes the next sequence number
    answer_id: str
    reservation: Reservation  # the budget the turn holds until its answer is stored
    retried: bool = False  # the question was stored by an earlier turn whose answer failed
    stored: bool = True  # False: a client-held conversation, nothing of it is stored
    title: PendingTitle | None = None  # the session's title, generated beside the answer
    # History's attachments this turn could not send the model again (it was told instead).
    unavailable: tuple[UnavailableAttachment, ...] = ()

    @property
    def answer_seq(self) -> int:
        return self.question.seq + 1


def validate_content(content: object) -> str:
    """The user's text, or :class:`BadRequest` naming what is wrong with it."""
    problem = content_problem(content)
    if problem is not None:
        raise BadRequest(problem)
    return content  # type: ignore[return-value]  # content_problem checked it is a str


def history_bytes(message: Message) -> int:
    """What a history message weighs in the history budget: its text, and the attachments it
    would send again (an upper estimate, :func:`functions.chat.attachments.estimated_tokens`)."""
    return content_bytes(message.content) + BYTES_PER_TOKEN * sum(
        attached.estimated_tokens(ref) for ref in message.attachments
    )


def estimate_tokens(text: str) -> int:
    return math.ceil(content_bytes(text) / BYTES_PER_TOKEN)


def request_tokens(request: dict[str, Any]) -> int:
    """Estimated input tokens of a Bedrock request: every text of its system prompt and
    messages, wherever a content block nests it, and its attachments
    (:func:`functions.chat.attachments.attachment_tokens`)."""
    texts = sum(estimate_tokens(text) for text in _texts((request["system"], request["messages"])))
    return texts + sum(
        attached.attachment_tokens(block)
        for message in request["messages"]
        for block in message["content"]
    )


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for name, inner in value.items():
            if name == "text" and isinstance(inner, str):
                yield inner
            else:
                yield from _texts(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _texts(inner)


class CancelWatch:
    """How a streaming turn learns that its user cancelled it: a look at its record in the
    usage table (:mod:`functions.data.answers`) every ``every`` seconds while the model is
    read. The looks are what a cancel costs: bounded by the interval, not by the model's pace.

    The record is written before the model is called (one small write, milliseconds), so an
    answer can be cancelled from its first frame on.
    """

    def __init__(self, answers: GeneratingAnswers, answer: Generating, every: float) -> None:
        self._answers = answers
        self._answer = answer
        self._every = every
        self._next_look = time.monotonic() + every

    @classmethod
    def begin(
        cls, answers: GeneratingAnswers, answer: Generating, seconds: int, every: float
    ) -> CancelWatch | None:
        """Record the answer as generating and watch it; None when the record could not be
        written: the answer just cannot be cancelled, which is no reason to fail it."""
        try:
            answers.begin(answer.user_id, answer.message_id, seconds)
        except Exception:
            logger.warning("recording the answer as generating failed", exc_info=True)
            return None
        return cls(answers, answer, every)

    def asked(self) -> bool:
        """Whether the user asked to stop, looked up at most once per interval."""
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + self._every
        return self._answers.cancel_requested(self._answer)

    def until_look(self) -> float:
        return max(self._next_look - time.monotonic(), 0.0)

    def finish(self) -> None:
        """The answer is stored (or failed): a cancel from now on is told it is finished."""
        self._answers.finish(self._answer)


@dataclass(frozen=True)
class _StreamFailed:
    error: BaseException


_STREAM_END = object()


class ChatStream:
    """A streaming turn in progress: iterate it for text deltas, then call :meth:`complete`.

    A reader thread takes the model's events off the connection as they arrive, so the
    consumer never holds the stream up, and the consumer waits for them only as long as
    ``time_left`` allows: when it runs out, iteration ends even if the model is silent, and
    :meth:`complete` stores what arrived as ``incomplete`` (reason ``timeout``) while there is
    still time to store it. With a :class:`CancelWatch`, a cancel by the user ends iteration
    the same way (reason ``interrupted``), and the model stream is closed.
    """

    def __init__(
        self,
        service: ChatService,
        turn: _Turn,
        events: Iterable[dict[str, Any]],
        time_left: TimeLeft | None = None,
        lease: Lease | None = None,
        *,
        watch: CancelWatch | None = None,
    ) -> None:
        self._service = service
        self._turn = turn
        self._events = events
        self._time_left = time_left
        self._lease = lease
        self._watch = watch
        self.cancelled = False
        self._parts: list[str] = []
        self._usage = Usage()
        self._stop_reason: str | None = None
        self._deltas = self._read()

    @property
    def session_id(self) -> str:
        return self._turn.session.session_id

    @property
    def message_id(self) -> str:
        return self._turn.answer_id

    @property
    def citations(self) -> tuple[Citation, ...]:
        return self._turn.citations

    @property
    def unavailable(self) -> tuple[UnavailableAttachment, ...]:
        """History's attachments this turn could not send again, known before its first delta."""
        return self._turn.unavailable

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def complete(self) -> ChatReply:
        """Read whatever the consumer did not, then store the answer with its status."""
        for _ in self._deltas:
            pass
        reason = self._stop_reason or INTERRUPTED
        status: MessageStatus = "complete" if reason in COMPLETE_STOP_REASONS else "incomplete"
        text = "".join(self._parts)
        usage = self._usage
        if self.cancelled and usage == Usage():
            usage = self._used_so_far(text)
        try:
            return self._service._finish(self._turn, text, usage, status=status, stop_reason=reason)
        finally:
            self._finish_watch()

    def title(self, reply: ChatReply) -> str | None:
        """After the answer went out: the title this turn gives its untitled session, from the
        question and the answer (see :mod:`functions.chat.titles`); None when it gives none."""
        return self._service._title_after(self._turn, reply)

    def _finish_watch(self) -> None:
        if self._watch is not None:
            self._watch.finish()

    def _used_so_far(self, text: str) -> Usage:
        """A cancelled stream ends before the model reports its usage, yet the input and the
        text generated so far are billed: settle the budget to their estimate."""
        input_tokens = request_tokens(self._turn.request)
        output_tokens = estimate_tokens(text)
        return Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )

    def _free_lease(self) -> None:
        """The model is done with this answer (ended, failed or abandoned): free its slot."""
        lease, self._lease = self._lease, None
        self._service.leases.release(lease)

    def _read(self) -> Iterator[str]:
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        cancelled = threading.Event()
        reader = threading.Thread(
            target=_pump, args=(self._events, inbox, cancelled), name="model-stream", daemon=True
        )
        reader.start()
        try:
            with (
                self._failed_watch(),
                self._service._failing(self._turn),
                upstream_errors("the model stream"),
            ):
                while (item := self._next(inbox)) is not _STREAM_END:
                    if isinstance(item, _StreamFailed):
                        raise item.error
                    text = item.get("contentBlockDelta", {}).get("delta", {}).get("text")
                    if text:
                        self._parts.append(text)
                        yield text
                    elif "messageStop" in item:
                        self._stop_reason = item["messageStop"].get("stopReason")
                    elif "metadata" in item:
                        self._usage = _usage(item["metadata"].get("usage"))
        finally:
            cancelled.set()
            self._free_lease()
            if reader.is_alive():  # stopped early: stop the model too, without waiting on it
                threading.Thread(target=_close, args=(self._events,), daemon=True).start()

    @contextmanager
    def _failed_watch(self) -> Iterator[None]:
        """A failed stream (its marker stored by ``_failing``) finishes the watch too."""
        try:
            yield
        except BaseException:
            self._finish_watch()
            raise

    def _next(self, inbox: queue.SimpleQueue[Any]) -> Any:
        """The next event, or the end of the stream once time is up or the user cancelled."""
        while True:
            left = None if self._time_left is None else self._time_left()
            if self._may_look(left) and self._watch is not None and self._watch.asked():
                self._stop_reason = INTERRUPTED
                self.cancelled = True
                return _STREAM_END
            if left is not None and left <= 0:
                self._stop_reason = TIMEOUT
                return _STREAM_END
            waits = [wait for wait in (left, self._look_in(left)) if wait is not None]
            try:
                return inbox.get(timeout=min(waits) if waits else None)
            except queue.Empty:
                continue

    def _may_look(self, left: float | None) -> bool:
        """Whether to look for a cancel now: not once the model has stopped, nor when a look
        at its slowest (one DynamoDB attempt) could run into the time kept for storing."""
        return self._stop_reason is None and (
            left is None or left > deadline.DYNAMODB_ATTEMPT_SECONDS
        )

    def _look_in(self, left: float | None) -> float | None:
        """Seconds until the next look for a cancel; None without a watch, or when no look
        will be made (a look due but not made would end every wait at once)."""
        if self._watch is None or not self._may_look(left):
            return None
        return self._watch.until_look()


def _pump(
    events: Iterable[dict[str, Any]], inbox: queue.SimpleQueue[Any], cancelled: threading.Event
) -> None:
    """The reader thread: events, then the end or the failure, into ``inbox``."""
    try:
        for event in events:
            if cancelled.is_set():
                return
            inbox.put(event)
    except BaseException as error:  # handed to the consumer, which classifies it
        inbox.put(_StreamFailed(error))
    else:
        inbox.put(_STREAM_END)


def _close(events: Iterable[dict[str, Any]]) -> None:
    """Close an abandoned stream, ending the model's answer. Closing waits for the reader's
    pending read (the buffered reader's lock), hence its own thread."""
    close = getattr(events, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # best effort on a stream being abandoned
            logger.debug("closing the abandoned model stream failed", exc_info=True)


@dataclass
class ChatService:
    """Chat turns over a :class:`~functions.data.turns.Store` and the Bedrock clients.

    Every turn first takes one of the user's answer slots (:class:`AnswerLeases`, else
    :class:`~functions.domain.errors.Busy`) and reserves its input in the user's token budget
    (:class:`UsageLedger`, else :class:`~functions.domain.errors.QuotaExceeded`), both before
    anything is stored or the model is called.
    """

    settings: ChatSettings
    store: Store
    retrieval_results: int = RETRIEVAL_RESULTS
    attachments: AttachmentStore | None = None  # the bucket questions' attachments are read from
    ledger: UsageLedger = field(init=False)
    leases: AnswerLeases = field(init=False)
    titles: Titles = field(init=False)

    def __post_init__(self) -> None:
        if self.store.ledger is None or self.store.leases is None:
            raise RuntimeError("chat turns need the usage table; this store has none")
        self.ledger = self.store.ledger
        self.leases = self.store.leases
        self.titles = Titles(self.settings, self.ledger, self.store.sessions)

    def reply(
        self,
        user_id: str,
        session_id: str,
        content: str | None,
        *,
        lease_seconds: int,
        options: TurnOptions = NO_OPTIONS,
        replaces: str | None = None,
        attachments: Sequence[str] = (),
    ) -> ChatReply:
        """One complete turn with ``converse``; ``lease_seconds`` is how long its answer slot
        may be held (the invocation's remaining time). ``replaces``: the ``message_id`` of the
        session's last question, answered again as a new version (:meth:`_replaceable`); its
        content and attachments when ``content`` is None (regenerate), else ``content`` (edit).
        ``attachments``: ids of the session's uploads sent with the question
        (:mod:`functions.chat.attachments`)."""
        turn, response, lease, _ = self._call_model(
            user_id,
            session_id,
            content,
            lease_seconds=lease_seconds,
            streaming=False,
            options=options,
            replaces=replaces,
            attachments=attachments,
        )
        return self._replied(turn, response, lease)

    def reply_unstored(
        self,
        user_id: str,
        conversation: Conversation,
        *,
        lease_seconds: int,
        options: TurnOptions = NO_OPTIONS,
    ) -> ChatReply:
        """:meth:`reply` to a conversation the client holds; nothing is stored."""
        turn, response, lease, _ = self._start(
            user_id,
            lambda: self._prepare_unstored(user_id, conversation, streaming=False, options=options),
            lease_seconds=lease_seconds,
            streaming=False,
        )
        return self._replied(turn, response, lease)

    def stream_unstored(
        self,
        user_id: str,
        conversation: Conversation,
        time_left: TimeLeft | None = None,
        *,
        lease_seconds: int,
        options: TurnOptions = NO_OPTIONS,
    ) -> ChatStream:
        """:meth:`stream` of a conversation the client holds; nothing is stored."""
        turn, response, lease, _ = self._start(
            user_id,
            lambda: self._prepare_unstored(user_id, conversation, streaming=True, options=options),
            lease_seconds=lease_seconds,
            streaming=True,
        )
        return ChatStream(self, turn, response["stream"], time_left, lease)

    def _replied(self, turn: _Turn, response: dict[str, Any], lease: Lease | None) -> ChatReply:
        self.leases.release(lease)
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(block.get("text", "") for block in blocks)
        reason = response.get("stopReason") or INTERRUPTED
        return self._finish(
            turn,
            text,
            _usage(response.get("usage")),
            status="complete" if reason in COMPLETE_STOP_REASONS else "incomplete",
            stop_reason=reason,
        )

    def stream(
        self,
        user_id: str,
        session_id: str,
        content: str | None,
        time_left: TimeLeft | None = None,
        *,
        lease_seconds: int,
        options: TurnOptions = NO_OPTIONS,
        cancel_every: float | None = None,
        replaces: str | None = None,
        title_beside: bool = True,
        attachments: Sequence[str] = (),
    ) -> ChatStream:
        """Start a turn with ``converse_stream``; errors before the first delta raise here.

        ``time_left`` (seconds) bounds how long the stream is read (see :class:`ChatStream`);
        ``lease_seconds`` how long the answer slot may be held. The slot is freed when the
        model's stream ends. ``cancel_every`` (seconds): record the answer as generating and
        look for the user's cancel that often (:class:`CancelWatch`). ``replaces`` and
        ``attachments`` as for :meth:`reply`. ``title_beside``: an untitled session's title is
        generated beside the answer, as for :meth:`reply`; False (the WebSocket): the caller
        asks for it after the answer (:meth:`ChatStream.title`).
        """
        turn, response, lease, watch = self._call_model(
            user_id,
            session_id,
            content,
            lease_seconds=lease_seconds,
            streaming=True,
            options=options,
            cancel_every=cancel_every,
            replaces=replaces,
            title_beside=title_beside,
            attachments=attachments,
        )
        return ChatStream(self, turn, response["stream"], time_left, lease, watch=watch)

    def _watch(
        self, user_id: str, message_id: str, seconds: int, every: float
    ) -> CancelWatch | None:
        """Watch for a cancel of the answer (no table: it cannot be cancelled)."""
        if self.store.answers is None:
            return None
        return CancelWatch.begin(
            self.store.answers, Generating(user_id, message_id), seconds, every
        )

    def cancel(self, user_id: str, message_id: str) -> None:
        """Ask the invocation generating the caller's answer ``message_id`` to stop it.

        :class:`NotFound` for an answer of the caller's that is not generating (or someone
        else's), :class:`~functions.domain.errors.Conflict` for one already finished."""
        if self.store.answers is None:
            raise RuntimeError("cancelling needs the usage table; this store has none")
        self.store.answers.request_cancel(user_id, message_id)

    def _call_model(
        self,
        user_id: str,
        session_id: str,
        content: str | None,
        *,
        lease_seconds: int,
        streaming: bool,
        options: TurnOptions = NO_OPTIONS,
        cancel_every: float | None = None,
        replaces: str | None = None,
        title_beside: bool = True,
        attachments: Sequence[str] = (),
    ) -> tuple[_Turn, dict[str, Any], Lease | None, CancelWatch | None]:
        """A stored turn: prepared in the session, then :meth:`_start`; with ``cancel_every``,
        watched for a cancel (:class:`CancelWatch`)."""
        if content is not None or replaces is None:
            content = validate_content(content)
        return self._start(
            user_id,
            lambda: self._prepare(
                user_id,
                session_id,
                content,
                streaming=streaming,
                options=options,
                replaces=replaces,
                title_beside=title_beside,
                attachments=attachments,
            ),
            lease_seconds=lease_seconds,
            streaming=streaming,
            cancel_every=cancel_every,
        )

    def _start(
        self,
        user_id: str,
        prepare: Callable[[], _Turn],
        *,
        lease_seconds: int,
        streaming: bool,
        cancel_every: float | None = None,
    ) -> tuple[_Turn, dict[str, Any], Lease | None, CancelWatch | None]:
        """Take an answer slot, prepare the turn, with ``cancel_every`` record it as generating
        and watch it for a cancel, and call the model; the slot is given back if any of that
        fails, else it is the caller's to give back when the model is done."""
        lease = self.leases.acquire(user_id, lease_seconds)
        watch = None
        try:
            turn = prepare()
            if cancel_every is not None:
                watch = self._watch(user_id, turn.answer_id, lease_seconds, cancel_every)
            runtime = aws.client("bedrock-runtime")
            call = runtime.converse_stream if streaming else runtime.converse
            with self._failing(turn), upstream_errors("the model call"):
                response = (
                    call(**turn.request)
                    if streaming  # the stream's reading is bounded by ChatStream
                    else deadline.bounded(
                        lambda: call(**turn.request),
                        keep=deadline.STORE_SECONDS,
                        late=lambda: UpstreamError(
                            "the model did not answer within the time left; retry"
                        ),
                    )
                )
        except BaseException:
            self.leases.release(lease)
            if watch is not None:
                watch.finish()
            raise
        return turn, response, lease, watch

    def _prepare(
        self,
        user_id: str,
        session_id: str,
        content: str | None,
        *,
        streaming: bool,
        options: TurnOptions = NO_OPTIONS,
        replaces: str | None = None,
        title_beside: bool = True,
        attachments: Sequence[str] = (),
    ) -> _Turn:
        session = self.store.sessions.get(user_id, session_id)
        replaced = None if replaces is None else self._replaceable(user_id, session, replaces)
        if replaced is not None and content is None:
            content = replaced[0].content  # regenerate: the same question again
            attachments = [ref.attachment_id for ref in replaced[0].attachments]
        assert content is not None, "_call_model requires content without replaces"
        loaded = self._attachments(session_id, attachments)
        names: set[str] = set()
        media = attached.blocks(loaded, names)
        citations = self._retrieve(session, content)
        budget = (
            self.settings.history_budget_tokens * BYTES_PER_TOKEN
            - prompt_bytes(content, citations)
            - options.instruction_bytes()
            - sum(attached.attachment_tokens(block) for block in media) * BYTES_PER_TOKEN
        )
        if replaced is not None:  # read with the history, then left out of it
            budget += sum(history_bytes(message) for message in replaced)
        history = self.store.repair(
            user_id,
            session,
            self.store.messages.recent(session_id, max(budget, 0), history_bytes),
            to_end=True,
        )
        if replaced is not None:
            ids = {message.message_id for message in replaced}
            history = [message for message in history if message.message_id not in ids]
        refs = tuple(attachment.ref for attachment in loaded)
        question = None if replaced is not None else failed_attempt(history, content, refs)
        retried = question is not None
        if question is not None:  # a retry: this question is stored, and its answer's slot failed
            history = history[:-2]
        model_id = (
            session.model_id
            if session.model_id in self.settings.bedrock_models
            else self.settings.default_model
        )
        resent = self._resend(
            session_id, sent_history(model_id, history, self.settings), loaded, names
        )
        request = model_request(
            model_id,
            history,
            content,
            citations,
            self.settings,
            streaming=streaming,
            attachments=media,
            resent=resent.blocks,
        )
        _add_instructions(request, options)
        reservation = self._reserve(user_id, request, options)
        try:
            if replaced is not None:
                question = self.store.replace_turn(user_id, session, replaced, content, refs)
            elif question is None:
                question = self.store.begin_turn(user_id, session, content, refs)
            else:
                self.store.sessions.update(user_id, session_id, {})  # fenced; marks the activity
        except BaseException:
            self.ledger.release(reservation)
            raise
        wanted = title_beside and self._wants_title(session)
        return _Turn(
            user_id,
            session,
            request,
            citations,
            question,
            str(uuid.uuid4()),
            reservation,
            retried=retried,
            title=self.titles.start(user_id, content) if wanted else None,
            unavailable=tuple(resent.unavailable),
        )

    def _resend(
        self,
        session_id: str,
        history: list[Message],
        current: Sequence[attached.Attachment],
        names: set[str],
    ) -> attached.Resent:
        """History's attachments sent again (:func:`functions.chat.attachments.resend`)."""
        if self.attachments is None or not any(message.attachments for message in history):
            return attached.Resent()
        return attached.resend(self.attachments, session_id, history, current, names)

    def _attachments(self, session_id: str, ids: Sequence[str]) -> tuple[attached.Attachment, ...]:
        """The question's attachments, read and checked (refused before any budget hold)."""
        if not ids:
            return ()
        if self.attachments is None:
            raise BadRequest("this endpoint does not take attachments")
        return attached.load(self.attachments, session_id, ids)

    def _replaceable(
        self, user_id: str, session: Session, message_id: str
    ) -> tuple[Message, Message]:
        """The session's last turn, question and answer, if its question is ``message_id``:
        the only turn a new version may replace.

        An answer slot its turn abandoned is repaired first, so that turn can be replaced
        too. Refusals: :class:`NotFound` for an id that is no message of the session,
        :class:`Conflict` for any other message of it (an older or superseded question, an
        answer) and for a last answer still being generated.
        """
        last = self.store.messages.last(session.session_id, 2)
        question = next((m for m in last if m.message_id == message_id), None)
        if question is None or question.role != "user":
            if self.store.messages.find(session.session_id, message_id) is None:
                raise NotFound("message not found in this session")
            raise Conflict(NOT_LAST_TURN)
        if question.seq + 1 != session.message_count:
            raise Conflict(NOT_LAST_TURN)
        turn = [m for m in last if m.seq == question.seq + 1] or self.store.repair(
            user_id, session, [question], to_end=True
        )[1:]
        if not turn:
            raise Conflict(
                "the answer to this question is still being generated; wait for it or cancel it"
            )
        return question, turn[0]

    def _prepare_unstored(
        self, user_id: str, conversation: Conversation, *, streaming: bool, options: TurnOptions
    ) -> _Turn:
        """The turn of a conversation the client sent: refused when it is longer than the
        history budget (stored sessions drop their oldest turns instead; a client's history is
        the client's to shorten)."""
        content = validate_content(conversation.content)
        session = Session(
            session_id="",
            user_id=user_id,
            title="",
            model_id=conversation.model_id,
            knowledge_base_id=conversation.knowledge_base_id,
            created_at="",
            last_activity="",
            expires_at=0,
            message_count=len(conversation.history),
        )
        citations = self._retrieve(session, content)
        request = model_request(
            conversation.model_id,
            list(conversation.history),
            content,
            citations,
            self.settings,
            streaming=streaming,
        )
        _add_instructions(request, options)
        estimate = request_tokens(request)
        if estimate > self.settings.history_budget_tokens:
            raise BadRequest(
                f"the messages hold about {estimate} tokens (4 bytes a token), more than the "
                f"{self.settings.history_budget_tokens} this service sends a model in one turn; "
                "send fewer or shorter messages"
            )
        reservation = self._reserve(user_id, request, options)
        question = Message(
            session_id="",
            seq=len(conversation.history) + 1,
            message_id=str(uuid.uuid4()),
            role="user",
            content=content,
            created_at=timestamp(utc_now()),
        )
        return _Turn(
            user_id,
            session,
            request,
            citations,
            question,
            str(uuid.uuid4()),
            reservation,
            stored=False,
        )

    def _reserve(self, user_id: str, request: dict[str, Any], options: TurnOptions) -> Reservation:
        """Hold the request's tokens in the user's budget and cap its answer to the hold."""
        reservation = self.ledger.reserve(user_id, request_tokens(request))
        config = options.inference_config(reservation.max_tokens)
        if config:
            request["inferenceConfig"] = config
        return reservation

    def _finish(
        self,
        turn: _Turn,
        text: str,
        usage: Usage | None,
        *,
        status: MessageStatus,
        stop_reason: str,
    ) -> ChatReply:
        message = Message(
            session_id=turn.session.session_id,
            seq=turn.answer_seq,
            message_id=turn.answer_id,
            role="assistant",
            content=text,
            created_at=timestamp(utc_now()),
            citations=turn.citations,
            usage=usage,
            status=status,
            stop_reason=stop_reason,
            version=turn.question.version,
            model_id=turn.request["modelId"],
        )
        try:
            if turn.stored:
                self.store.finish_turn(turn.user_id, message, replaces_failed=turn.retried)
        finally:  # stored or not, the model call is paid for
            self.ledger.settle(turn.reservation, usage)
        record_turn(turn.request["modelId"], message)
        return ChatReply(
            message=message,
            citations=turn.citations,
            usage=usage or Usage(),
            title=self._title_beside(turn, message),
            unavailable=turn.unavailable,
        )

    def _wants_title(self, session: Session) -> bool:
        return self.titles.enabled and untitled(session.title)

    def _title_beside(self, turn: _Turn, answer: Message) -> str | None:
        """The title generated beside a stored answer, kept only for a complete one and only
        while the session has no other (a title not ready in time is dropped)."""
        if turn.title is None or answer.status != "complete":
            return None
        title = turn.title.result()
        if title is None or not self.titles.store(turn.user_id, turn.session.session_id, title):
            return None
        return title

    def _title_after(self, turn: _Turn, reply: ChatReply) -> str | None:
        """A title from the whole exchange, once the answer is out (the WebSocket)."""
        wanted = turn.stored and turn.title is None and self._wants_title(turn.session)
        if not wanted or reply.message.status != "complete":
            return None
        title = self.titles.generate(turn.user_id, turn.question.content, reply.message.content)
        if title is None or not self.titles.store(turn.user_id, turn.session.session_id, title):
            return None
        return title

    @contextmanager
    def _failing(self, turn: _Turn) -> Iterator[None]:
        """On a failed model call or stream, fill the answer's slot with a ``failed`` marker
        (no content; the reason is the error's code) before the error goes on."""
        try:
            yield
        except Exception as error:
            domain = translate(error)
            reason = domain.code if domain is not None else "internal"
            if _model_throttled(error):
                count(Metric.MODEL_THROTTLED)
            try:
                self._finish(turn, "", None, status="failed", stop_reason=reason)
            except NotFound:
                pass  # the session was deleted meanwhile: there is no slot to fill
            except Exception:  # the original error is the one to report
                logger.exception("storing the failed-turn marker failed")
            raise

    def _retrieve(self, session: Session, query: str) -> tuple[Citation, ...]:
        knowledge_base_id = session.knowledge_base_id
        if not knowledge_base_id or not self.settings.knowledge_bases_enabled:
            return ()
        with upstream_errors(
            "the knowledge-base retrieval",
            not_found=f"knowledge base {knowledge_base_id} does not exist",
        ):
            response = aws.client("bedrock-agent-runtime").retrieve(
                knowledgeBaseId=knowledge_base_id,
                retrievalQuery={"text": query},
                retrievalConfiguration={
                    "vectorSearchConfiguration": {"numberOfResults": self.retrieval_results}
                },
            )
        return tuple(
            Citation(
                index=number,
                text=result.get("content", {}).get("text", ""),
                source=_source(result.get("location", {})),
                score=result.get("score"),
            )
            for number, result in enumerate(response.get("retrievalResults", []), start=1)
        )


def failed_attempt(
    history: list[Message], content: str, attachments: tuple[AttachmentRef, ...] = ()
) -> Message | None:
    """The latest question, if it asked exactly ``content`` with ``attachments`` and its answer
    failed.

    A client that retries after an error (a 503, a throttled frame) sends the same question
    again; the turn then reuses the stored question and fills the failed answer's slot, so
    the question is stored once and the model sees it once.
    """
    if len(history) < 2:
        return None
    question, answer = history[-2:]
    retried = (
        question.role == "user"
        and question.content == content
        and question.attachments == attachments
        and answer.role == "assistant"
        and answer.status == "failed"
        and answer.seq == question.seq + 1
    )
    return question if retried else None


def _add_instructions(request: dict[str, Any], options: TurnOptions) -> None:
    """The caller's system texts, after the service's prompt and before its cache point, so
    they are part of the cached prefix."""
    request["system"][1:1] = [{"text": text} for text in options.instructions]


def _model_throttled(error: BaseException) -> bool:
    """Bedrock said "slow down", as the error itself or as the cause of its domain error."""
    causes = (error, error.__cause__)
    return any(isinstance(cause, ClientError) and is_throttling(cause) for cause in causes)


def _usage(raw: dict[str, Any] | None) -> Usage:
    return Usage.of_bedrock(raw)


def _source(location: dict[str, Any]) -> str | None:
    """The URI/URL of a retrieved passage, whatever the data source type (S3, web, ...)."""
    for value in location.values():
        if isinstance(value, dict):
            for name in ("uri", "url", "id"):
                if isinstance(value.get(name), str):
                    return value[name]
    return None
