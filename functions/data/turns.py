"""The turn transactions: a question and its answer slot, the answer, and the repair of slots
a turn left empty, each one DynamoDB transaction over the sessions and messages tables; and
:class:`Store`, the repositories of one function together."""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from functions.contract import Metric
from functions.core import aws, deadline
from functions.core.aws_errors import error_code, translate
from functions.core.clock import epoch_seconds, parse_timestamp, timestamp, utc_now
from functions.core.observability import count, logger
from functions.data.answers import GeneratingAnswers
from functions.data.connections import ConnectionRepository
from functions.data.idempotency import IdempotencyStore
from functions.data.items import plain_item
from functions.data.messages import MessageRepository, message_from_item
from functions.data.pagination import TokenSigner, derived_key
from functions.data.quota import AnswerLeases, UsageLedger
from functions.data.sessions import (
    SESSION_NOT_FOUND,
    SessionRepository,
    is_live,
    session_from_item,
)
from functions.domain.errors import Conflict, NotFound, Throttled
from functions.domain.models import AttachmentRef, Message, Session

if TYPE_CHECKING:
    from functions.core.chat_settings import ChatSettings

# Attempts at a turn's transaction: enough for 20 concurrent turns in one session. Each try
# and each pause also has to fit before the invocation's deadline (functions.core.deadline).
TURN_ATTEMPTS = 40
# How long a question stored without a deadline (or before answer_by existed) keeps its empty
# answer slot from repair: Lambda's longest timeout, past which no invocation can still write.
MAX_INVOCATION_SECONDS = 15 * 60
NOT_LAST_TURN = (
    "only the last question of the session can be regenerated or edited, once; reload the session"
)
# The stop reason of the failed marker that fills an answer slot its turn left empty.
ABANDONED = "abandoned"


@dataclass(frozen=True)
class Store:
    """The repositories of one function, plus the operations that span two tables."""

    sessions: SessionRepository
    messages: MessageRepository
    connections: ConnectionRepository | None = None
    idempotency: IdempotencyStore | None = None
    ledger: UsageLedger | None = None  # the usage table: token budgets ...
    leases: AnswerLeases | None = None  # ... and answer slots ...
    answers: GeneratingAnswers | None = None  # ... and the answers generating (cancel)

    @classmethod
    def from_settings(cls, settings: ChatSettings) -> Store:
        client = aws.client("dynamodb")
        key_arn = settings.pagination_key_arn
        signer = TokenSigner(derived_key(key_arn)) if key_arn else None
        return cls(
            sessions=SessionRepository(
                client, settings.sessions_table, settings.session_ttl_days, signer
            ),
            messages=MessageRepository(client, settings.messages_table, signer),
            connections=(
                ConnectionRepository(client, settings.connections_table)
                if settings.connections_table
                else None
            ),
            idempotency=(
                IdempotencyStore(client, settings.idempotency_table)
                if settings.idempotency_table
                else None
            ),
            ledger=UsageLedger(
                client,
                settings.usage_table,
                daily_limit=settings.user_daily_token_limit,
                monthly_limit=settings.user_monthly_token_limit,
            ),
            leases=AnswerLeases(client, settings.usage_table, settings.user_max_concurrent_answers),
            answers=GeneratingAnswers(client, settings.usage_table),
        )

    def begin_turn(
        self,
        user_id: str,
        session: Session,
        content: str,
        attachments: tuple[AttachmentRef, ...] = (),
    ) -> Message:
        """Store the question and reserve its answer's slot: both or neither, and only in the
        caller's live session.

        One transaction updates the session (both sequence numbers, on the condition that its
        count is still the one read, and the activity) and puts the question at the first
        number. A concurrent turn that took numbers first cancels it, and the cancellation
        carries the session as it is now, so the next attempt starts from its count; a deleted,
        expired or foreign session is :class:`NotFound`. The answer goes at ``seq + 1``
        (:meth:`finish_turn`), so ``message_count`` is the number of slots, each filled by a
        question, an answer or a failure marker.
        """
        seen = session.message_count
        question = None
        for attempt in range(TURN_ATTEMPTS):
            if question is None or question.seq != seen + 1:
                question = _question(session.session_id, seen + 1, content, attachments)
            items = [
                self.sessions.reserve(user_id, session.session_id, seen, 2),
                self.messages.put_request(question),
            ]
            current = self._attempt(user_id, question, items, attempt)
            if current is None:
                return question
            if current is not _UNCHANGED:
                seen = current.message_count
                _pause(attempt)
        raise Throttled("too many concurrent turns in this session; retry later")

    def replace_turn(
        self,
        user_id: str,
        session: Session,
        replaced: tuple[Message, Message],
        content: str,
        attachments: tuple[AttachmentRef, ...] = (),
    ) -> Message:
        """Store a new version of the session's last turn (regenerate: the same ``content``,
        edit: another): :meth:`begin_turn` at the end of the session, and in the same
        transaction ``superseded_by`` on the replaced question and answer.

        The transaction holds only while the session's count is still the one read (so the
        replaced pair is still its last turn) and neither message is superseded yet: of two
        concurrent replacements, or a replacement and a new turn, one applies and the other is
        :class:`Conflict`. Sequence numbers, the answer slot, its deadline and its repair are
        those of any turn.
        """
        question, answer = replaced
        seen = session.message_count
        new = _question(session.session_id, seen + 1, content, attachments, replaced=question)
        items = [
            self.sessions.reserve(user_id, session.session_id, seen, 2),
            self.messages.put_request(new),
            self.messages.supersede_request(question, new.message_id),
            self.messages.supersede_request(answer, new.message_id),
        ]
        for attempt in range(TURN_ATTEMPTS):
            current = self._attempt(user_id, new, items, attempt)
            if current is None:
                return new
            if current is not _UNCHANGED and current.message_count != seen:
                raise Conflict(NOT_LAST_TURN)
        raise Throttled("too many concurrent turns in this session; retry later")

    def finish_turn(self, user_id: str, message: Message, *, replaces_failed: bool = False) -> None:
        """Store a turn's answer in its reserved slot, only while the session is the caller's
        and live: a session deleted during the turn gets nothing, and the turn is
        :class:`NotFound`. Retried on transient failures, because the answer was paid for, as
        long as the invocation's deadline leaves time (else
        :class:`~functions.core.deadline.DeadlineExceeded`, and the slot is repaired later).
        ``replaces_failed``: the answer of a retried question, which fills a ``failed`` slot."""
        items = [
            self.sessions.fence(user_id, message.session_id),
            self.messages.put_request(message, replaces_failed=replaces_failed),
        ]
        for attempt in range(TURN_ATTEMPTS):
            if self._attempt(user_id, message, items, attempt) is None:
                return
        raise Throttled("the answer could not be stored; retry later")

    def _attempt(
        self, user_id: str, message: Message, items: list[dict[str, Any]], attempt: int
    ) -> Session | None:
        """One try at a turn's transaction; None once it applied (now or on an earlier try
        whose reply was lost), else the session as it is now. A transient failure pauses and
        answers the session unchanged; on the last attempt it is raised."""
        try:
            return self._transact(user_id, message, items)
        except ClientError as error:
            if attempt == TURN_ATTEMPTS - 1 or not isinstance(translate(error), Throttled):
                raise
        except (ConnectionError, HTTPClientError):
            if attempt == TURN_ATTEMPTS - 1:
                raise
        _pause(attempt)
        return _UNCHANGED

    def repair(
        self, user_id: str, session: Session, messages: list[Message], *, to_end: bool
    ) -> list[Message]:
        """``messages`` (one stretch of the session's turns, oldest first) with every answer
        slot its turn left empty filled by a ``failed`` marker (stop reason ``abandoned``).

        A slot is empty when its turn's invocation ended without filling it: killed at its
        timeout, or DynamoDB refused every write until its deadline. A slot counts as
        abandoned only once its question's ``answer_by`` (that invocation's deadline) has
        passed, so a turn still running is left alone; the slot after the last message counts
        only when the stretch reaches the session's end (``to_end``). Each marker is one
        conditional put (``attribute_not_exists``) fenced on the live session, so a late
        answer and the repair cannot both land: whichever comes second is refused. After it
        ``message_count`` equals the stored messages again. Best effort: a marker that cannot
        be written now is left for the next read or turn.
        """
        now = epoch_seconds(utc_now())
        repaired: list[Message] = []
        for index, message in enumerate(messages):
            repaired.append(message)
            following = messages[index + 1].seq if index + 1 < len(messages) else None
            slot = message.seq + 1
            empty = following > slot if following is not None else to_end
            if (
                message.role == "user"
                and empty
                and slot <= session.message_count
                and _abandoned(message, now)
            ):
                marker = self._fill(user_id, message, slot)
                if marker is not None:
                    repaired.append(marker)
        return repaired

    def _fill(self, user_id: str, question: Message, slot: int) -> Message | None:
        """Put the ``abandoned`` marker in ``slot``; what the slot holds afterwards (the marker,
        or what got there first), or None when it could not be written now."""
        marker = Message(
            session_id=question.session_id,
            seq=slot,
            message_id=str(uuid.uuid4()),
            role="assistant",
            content="",
            created_at=timestamp(utc_now()),
            status="failed",
            stop_reason=ABANDONED,
            version=question.version,
        )
        items = [
            self.sessions.fence(user_id, question.session_id),
            self.messages.put_request(marker),
        ]
        try:
            self.sessions.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            reasons = error.response.get("CancellationReasons", [])
            codes = [reason.get("Code") for reason in reasons]
            if codes[:1] == ["ConditionalCheckFailed"]:
                raise NotFound(SESSION_NOT_FOUND) from None
            if codes[1:2] == ["ConditionalCheckFailed"]:
                # The answer came first; the refusal carries it (ALL_OLD), so no read is needed
                # (main's role may not GetItem messages).
                answer = reasons[1].get("Item")
                return message_from_item(answer) if answer else None
            logger.warning("could not repair an abandoned answer slot", exc_info=True)
            return None
        except (ConnectionError, HTTPClientError, Throttled):
            logger.warning("could not repair an abandoned answer slot", exc_info=True)
            return None
        logger.info(
            "repaired an abandoned answer slot",
            extra={"session_id": question.session_id, "seq": slot},
        )
        count(Metric.ANSWER_SLOTS_REPAIRED)
        return marker

    def _transact(
        self, user_id: str, message: Message, items: list[dict[str, Any]]
    ) -> Session | None:
        """Run a transaction of the session's item and ``message``'s put: None when it
        applied, or had already (the message is there, ours), else the session as it is now
        (a concurrent turn moved it). A session gone, expired or someone else's is
        :class:`NotFound`."""
        try:
            self.sessions.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            codes = [reason.get("Code") for reason in reasons]
            if codes[1:2] == ["ConditionalCheckFailed"]:
                stored = plain_item(reasons[1].get("Item") or {})
                if stored.get("message_id") == message.message_id:
                    return None  # an earlier try applied; its reply was lost
                if codes[:1] != ["ConditionalCheckFailed"]:
                    raise Conflict(
                        "another attempt at this question was answered first; reload the session"
                    ) from None
            if codes[:1] == ["ConditionalCheckFailed"]:
                return self._live(user_id, reasons[0].get("Item"))
            if "ConditionalCheckFailed" in codes[2:]:  # a replaced message (replace_turn)
                raise Conflict(NOT_LAST_TURN) from None
            if "ThrottlingError" in codes:
                raise Throttled("DynamoDB throttled the turn; retry later") from None
            if "TransactionConflict" in codes:
                return self.sessions.get(user_id, message.session_id)
            raise
        return None

    @staticmethod
    def _live(user_id: str, item: Mapping[str, Any] | None) -> Session:
        """The session a cancelled transaction saw, if it is still the caller's and live."""
        current = session_from_item(item or {})
        if not is_live(current, user_id):
            raise NotFound(SESSION_NOT_FOUND)
        return current

    def delete_user(self, user_id: str) -> None:
        """Delete everything of ``user_id``: each session (its messages then go as with
        :meth:`delete_session`), then each connection record.

        Every step is idempotent, so a call interrupted anywhere (a timeout, a 503) is finished
        by calling it again. A session or connection created while it runs may survive it.
        """
        for session_id in list(self.sessions.ids_of(user_id)):
            try:
                self.delete_session(user_id, session_id)
            except NotFound:
                continue  # deleted meanwhile
        if self.connections is not None:
            for connection_id in list(self.connections.ids_of(user_id)):
                self.connections.delete(connection_id)

    def delete_session(self, user_id: str, session_id: str) -> None:
        """Delete the session: one conditional item delete, after which it is unreachable.

        Its messages are removed by the session cleanup function, which the table's stream
        feeds with every removal (this one, or DynamoDB's TTL): an interrupted DELETE either
        removed the item, and the stream finishes the job, or did not, and a retry does it.
        """
        self.sessions.delete(user_id, session_id)


# What a failed try answers: the session as it was, so the same transaction is tried again.
_UNCHANGED = cast(Session, object())


def _pause(attempt: int) -> None:
    """Jittered backoff between attempts at a contended session, if the next try still fits
    before the deadline."""
    seconds = random.uniform(0, min(0.005 * 2**attempt, 0.1))  # noqa: S311 - not crypto
    deadline.pause(seconds, deadline.DYNAMODB_ATTEMPT_SECONDS, "the turn's transaction")


def _question(
    session_id: str,
    seq: int,
    content: str,
    attachments: tuple[AttachmentRef, ...],
    *,
    replaced: Message | None = None,
) -> Message:
    """A question at ``seq``, due for its answer by this invocation's deadline; with
    ``replaced``, that question's next version."""
    return Message(
        session_id=session_id,
        seq=seq,
        message_id=str(uuid.uuid4()),
        role="user",
        content=content,
        created_at=timestamp(utc_now()),
        answer_by=_answer_by(),
        attachments=attachments,
        version=replaced.version + 1 if replaced else 1,
        replaces=replaced.message_id if replaced else None,
    )


def _answer_by() -> int:
    """Until when (epoch seconds) the turn storing a question may still fill its answer slot:
    the bound deadline, rounded up, else Lambda's longest timeout from now."""
    bound = deadline.current()
    left = bound.remaining() if bound is not None else MAX_INVOCATION_SECONDS
    return math.ceil(time.time() + max(left, 0.0))


def _abandoned(question: Message, now: int) -> bool:
    """Whether the turn that stored ``question`` can no longer fill its answer slot."""
    if question.answer_by is not None:
        return now > question.answer_by
    created = parse_timestamp(question.created_at)
    return now > epoch_seconds(created) + MAX_INVOCATION_SECONDS
