"""DynamoDB repositories for sessions, messages and WebSocket connections.

Layout (key schemas in :mod:`functions.shared.contract`):

* sessions: one item per session, read per user through the ``UserIndex`` GSI (user_id,
  last_activity), newest activity first. ``message_count`` doubles as the atomic counter that
  hands out message sequence numbers. ``expires_at`` (epoch seconds, DynamoDB TTL) moves forward
  on every write, and a session past it counts as gone even before DynamoDB deletes it.
* messages: one item per turn, keyed (session_id, seq), so a session's history is unbounded
  instead of capped by the 400 KB item limit. Messages carry no TTL: a long-lived session must
  not lose its oldest turns while it is still in use. They are deleted with their session.
* connections: one item per open WebSocket, with a TTL a little past API Gateway's 2 h limit.

Times are ISO-8601 UTC strings in one fixed format (microseconds, ``Z``), so the GSI sort key,
a string, orders them chronologically.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from functions.shared import aws, deadline
from functions.shared.contract import (
    CONNECTION_TTL_SECONDS,
    CONNECTIONS,
    MESSAGES,
    SESSIONS,
    USER_CONNECTIONS,
    USER_INDEX,
    Index,
    Key,
    Metric,
    TableSchema,
)
from functions.shared.errors import Conflict, NotFound, Throttled, error_code, translate
from functions.shared.idempotency import IdempotencyStore
from functions.shared.items import dynamodb_item, plain_item
from functions.shared.models import (
    MESSAGE_STATUSES,
    Citation,
    Connection,
    Message,
    MessageStatus,
    Page,
    Role,
    Session,
    Usage,
)
from functions.shared.observability import count, logger
from functions.shared.pagination import TokenSigner, derived_key

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from functions.shared.chat_settings import ChatSettings

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# History pages (see MessageRepository.recent): the first measures, the rest are sized.
FIRST_HISTORY_PAGE = 4
MAX_HISTORY_PAGE = 1_000
BATCH_WRITE_SIZE = 25  # DynamoDB's BatchWriteItem limit
BATCH_WRITE_ATTEMPTS = 8
# Attempts at a turn's transaction: enough for 20 concurrent turns in one session. Each try
# and each pause also has to fit before the invocation's deadline (functions.shared.deadline).
TURN_ATTEMPTS = 40
# How long a question stored without a deadline (or before answer_by existed) keeps its empty
# answer slot from repair: Lambda's longest timeout, past which no invocation can still write.
MAX_INVOCATION_SECONDS = 15 * 60
# The stop reason of the failed marker that fills an answer slot its turn left empty.
ABANDONED = "abandoned"
_SESSION_NOT_FOUND = "session not found"


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """A sortable ISO-8601 UTC timestamp, e.g. ``2025-01-31T09:05:00.000123Z``."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _name(key: Key | None) -> str:
    assert key is not None, "the contract declares this key"
    return key.name


# Every attribute a table or index keys on, and every TTL attribute, is named by the contract, so
# a rename there moves the store with it; the other attributes are the records' field names.
SESSION_ID = SESSIONS.hash_key.name
OWNER = USER_INDEX.hash_key.name
ACTIVITY = _name(USER_INDEX.range_key)  # UserIndex's sort key: newest activity first
SESSION_EXPIRES = SESSIONS.ttl_attribute
MESSAGE_SESSION = MESSAGES.hash_key.name
SEQ = _name(MESSAGES.range_key)
CONNECTION_ID = CONNECTIONS.hash_key.name
CONNECTION_OWNER = USER_CONNECTIONS.hash_key.name
CONNECTION_EXPIRES = CONNECTIONS.ttl_attribute


def content_bytes(text: str) -> int:
    """The size the history budget counts: UTF-8 bytes (a lone surrogate counts as one)."""
    return len(text.encode("utf-8", "replace"))


def _is_condition_failure(error: ClientError) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


class SessionRepository:
    """Sessions of one user at a time: every read and write checks ownership."""

    def __init__(
        self, client: BaseClient, table: str, ttl_days: int, signer: TokenSigner | None = None
    ) -> None:
        self._client = client
        self._table = table
        self._ttl = timedelta(days=ttl_days)
        self._signer = signer

    @property
    def client(self) -> BaseClient:
        """The DynamoDB client, shared with the other repositories for transactions."""
        return self._client

    def create(
        self, user_id: str, title: str, model_id: str, knowledge_base_id: str | None
    ) -> Session:
        now = utc_now()
        session = Session(
            session_id=str(uuid.uuid4()),
            user_id=user_id,
            title=title,
            model_id=model_id,
            knowledge_base_id=knowledge_base_id,
            created_at=timestamp(now),
            last_activity=timestamp(now),
            expires_at=self._expiry(now),
            message_count=0,
        )
        self._client.put_item(
            TableName=self._table,
            Item=_session_item(session),
            ConditionExpression="attribute_not_exists(#session)",
            ExpressionAttributeNames={"#session": SESSION_ID},
        )
        return session

    def get(self, user_id: str, session_id: str) -> Session:
        """The caller's live session; :class:`NotFound` for missing, expired or someone else's."""
        if not SESSION_ID_PATTERN.fullmatch(session_id):
            raise NotFound(_SESSION_NOT_FOUND)
        item = self._client.get_item(
            TableName=self._table, Key=_session_key(session_id), ConsistentRead=True
        ).get("Item")
        if not item:
            raise NotFound(_SESSION_NOT_FOUND)
        session = _session(item)
        if session.user_id != user_id or session.expires_at <= epoch_seconds(utc_now()):
            raise NotFound(_SESSION_NOT_FOUND)
        return session

    def list(self, user_id: str, limit: int, next_token: str | None = None) -> Page[Session]:
        """The caller's live sessions, most recent activity first, through the UserIndex GSI.

        Expired sessions are filtered out after DynamoDB applied ``Limit``, so a page may hold
        fewer than ``limit`` sessions and still have a ``next_token``.
        """
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": USER_INDEX.name,
            "KeyConditionExpression": "#user = :user",
            "FilterExpression": "#expires > :now",
            "ExpressionAttributeNames": {"#user": OWNER, "#expires": SESSION_EXPIRES},
            "ExpressionAttributeValues": dynamodb_item(
                {":user": user_id, ":now": epoch_seconds(utc_now())}
            ),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        signer = _required(self._signer)
        if next_token:
            params["ExclusiveStartKey"] = signer.decode(next_token, "sessions", user_id, "")
        response = self._client.query(**params)
        last_key = response.get("LastEvaluatedKey")
        return Page(
            items=[_session(item) for item in response.get("Items", [])],
            next_token=signer.encode("sessions", user_id, "", last_key) if last_key else None,
        )

    def update(self, user_id: str, session_id: str, changes: Mapping[str, str | None]) -> Session:
        """Set ``changes`` (title, model_id, knowledge_base_id; None removes) and refresh TTL."""
        names = {f"#{name}": name for name in changes}
        to_set = [f"#{name} = :{name}" for name, value in changes.items() if value is not None]
        to_remove = [f"#{name}" for name, value in changes.items() if value is None]
        values = dynamodb_item({f":{name}": value for name, value in changes.items()})
        expression = "SET " + ", ".join([*to_set, *self._activity_updates(names, values)])
        if to_remove:
            expression += " REMOVE " + ", ".join(to_remove)
        item = self._owned_update(
            user_id, session_id, expression, names=names, values=values, returning="ALL_NEW"
        )
        return _session(item)

    def reserve(self, user_id: str, session_id: str, seen: int, count: int) -> dict[str, Any]:
        """A transaction item taking ``count`` sequence numbers after ``seen``, the count the
        caller read, and marking the session active: it applies only while the caller owns the
        live session and nobody took numbers since (optimistic: the cancellation then carries
        the session as it is now).

        A turn takes both of its numbers (question and answer) at once: every update moves
        ``last_activity``, the UserIndex sort key, which costs two index writes each time.
        """
        names = {"#count": "message_count"}
        values = dynamodb_item({":seen": seen, ":new": seen + count})
        activity = self._activity_updates(names, values)
        return {
            "Update": {
                "TableName": self._table,
                "Key": _session_key(_checked(session_id)),
                "UpdateExpression": "SET #count = :new, " + ", ".join(activity),
                **_owned(user_id, names, values, extra="#count = :seen"),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def fence(self, user_id: str, session_id: str) -> dict[str, Any]:
        """A transaction item that holds only while the caller owns the live session: a write
        beside it cannot land in a session deleted or expired meanwhile."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": _session_key(_checked(session_id)),
                **_owned(user_id, {}, {}),
            }
        }

    def ids_of(self, user_id: str) -> Iterator[str]:
        """Every session id of ``user_id``, expired ones included, through the UserIndex GSI
        (all pages)."""
        return _keys_by_index(self._client, self._table, SESSIONS, USER_INDEX, user_id)

    def delete(self, user_id: str, session_id: str) -> None:
        """Delete the caller's session, expired or not: an owner can always remove their data,
        also in the days before DynamoDB's TTL gets to it."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=_session_key(_checked(session_id)),
                ConditionExpression="#user = :user",
                ExpressionAttributeNames={"#user": OWNER},
                ExpressionAttributeValues=dynamodb_item({":user": user_id}),
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise NotFound(_SESSION_NOT_FOUND) from None
            raise

    def _owned_update(
        self,
        user_id: str,
        session_id: str,
        expression: str,
        *,
        names: dict[str, str],
        values: dict[str, Any],
        returning: str,
    ) -> dict[str, Any]:
        """UpdateItem that only applies to a live session owned by ``user_id``."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_session_key(_checked(session_id)),
                UpdateExpression=expression,
                **_owned(user_id, names, values),
                ReturnValues=returning,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise NotFound(_SESSION_NOT_FOUND) from None
            raise
        return response["Attributes"]

    def _activity_updates(self, names: dict[str, str], values: dict[str, Any]) -> list[str]:
        """SET clauses that mark the session active now and push its expiry forward."""
        now = utc_now()
        names.update({"#last_activity": ACTIVITY, "#expires_at": SESSION_EXPIRES})
        values.update(
            dynamodb_item({":last_activity": timestamp(now), ":expires_at": self._expiry(now)})
        )
        return ["#last_activity = :last_activity", "#expires_at = :expires_at"]

    def _expiry(self, now: datetime) -> int:
        return epoch_seconds(now + self._ttl)


class MessageRepository:
    """The turns of a session, ordered by ``seq``. Ownership is checked on the session first."""

    def __init__(self, client: BaseClient, table: str, signer: TokenSigner | None = None) -> None:
        self._client = client
        self._table = table
        self._signer = signer

    def put_request(self, message: Message, *, replaces_failed: bool = False) -> dict[str, Any]:
        """A transaction item storing a turn at a ``seq`` reserved by
        :meth:`SessionRepository.reserve`.

        The condition makes a reuse of a sequence number fail instead of overwriting a turn.
        Only the answer of a retried question (``replaces_failed``) may replace what is there,
        and only a ``failed`` marker: so a turn's own late answer and the repair of its slot
        (:meth:`Store.repair`) cannot both be stored, whichever comes first.
        """
        condition: dict[str, Any] = {
            "ConditionExpression": "attribute_not_exists(#seq)",
            "ExpressionAttributeNames": {"#seq": SEQ},
        }
        if replaces_failed:
            condition = {
                "ConditionExpression": "attribute_not_exists(#seq) OR #status = :failed",
                "ExpressionAttributeNames": {"#seq": SEQ, "#status": "status"},
                "ExpressionAttributeValues": dynamodb_item({":failed": "failed"}),
            }
        return {
            "Put": {
                "TableName": self._table,
                "Item": _message_item(message),
                **condition,
                # On a cancellation: whose message holds the seq (ours, on a retry?).
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def get(self, session_id: str, seq: int) -> Message | None:
        """One stored turn (the caller must own ``session_id``), or None."""
        item = self._client.get_item(
            TableName=self._table,
            Key=dynamodb_item({MESSAGE_SESSION: session_id, SEQ: seq}),
            ConsistentRead=True,
        ).get("Item")
        return _message(item) if item else None

    def list(
        self, user_id: str, session_id: str, limit: int, next_token: str | None = None
    ) -> Page[Message]:
        """One page of the history, oldest first; the caller must own ``session_id``."""
        signer = _required(self._signer)
        params: dict[str, Any] = {
            "TableName": self._table,
            **_in_session(session_id),
            "ScanIndexForward": True,
            "ConsistentRead": True,
            "Limit": limit,
        }
        if next_token:
            params["ExclusiveStartKey"] = signer.decode(next_token, "messages", user_id, session_id)
        response = self._client.query(**params)
        last_key = response.get("LastEvaluatedKey")
        return Page(
            items=[_message(item) for item in response.get("Items", [])],
            next_token=(
                signer.encode("messages", user_id, session_id, last_key) if last_key else None
            ),
        )

    def recent(self, session_id: str, budget_bytes: int) -> list[Message]:
        """The newest turns whose contents fit in ``budget_bytes`` (UTF-8) together, oldest
        first.

        Reads backwards and stops at the first turn that does not fit. Pages are sized to the
        budget: a small first page measures this session's turns, and the next page asks for
        as many turns of that average size as the rest of the budget holds (plus the one that
        will not fit), so a turn rarely reads items it throws away.

        Only the first page is a strongly consistent read: it holds the newest turns, which
        may have been written a moment ago (the answer the user is replying to). Older turns
        are immutable and were written earlier, so an eventually consistent read, half the
        read units, returns the same items.
        """
        selected: list[Message] = []
        used = 0
        params: dict[str, Any] = {
            "TableName": self._table,
            **_in_session(session_id),
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": FIRST_HISTORY_PAGE,
        }
        while budget_bytes > 0:
            response = self._client.query(**params)
            for item in response.get("Items", []):
                message = _message(item)
                used += content_bytes(message.content)
                if used > budget_bytes:
                    return selected[::-1]
                selected.append(message)
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                break
            average = max(used / max(len(selected), 1), 1.0)
            params.update(
                ExclusiveStartKey=last_key,
                ConsistentRead=False,
                Limit=min(math.floor((budget_bytes - used) / average) + 1, MAX_HISTORY_PAGE),
            )
        return selected[::-1]

    def delete_all(self, session_id: str) -> int:
        """Delete every turn of a session; returns how many were deleted."""
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            **_in_session(session_id, projection="#session, #seq"),
            ConsistentRead=True,
        )
        deleted = 0
        batch: list[dict[str, Any]] = []
        for page in pages:
            for key in page.get("Items", []):
                batch.append({"DeleteRequest": {"Key": key}})
                if len(batch) == BATCH_WRITE_SIZE:
                    deleted += self._write_batch(batch)
                    batch = []
        if batch:
            deleted += self._write_batch(batch)
        return deleted

    def _write_batch(self, requests: list[dict[str, Any]]) -> int:
        """BatchWriteItem until every request is processed, backing off on leftovers.

        BatchWriteItem answers 200 with ``UnprocessedItems`` when it is throttled, which
        botocore's retries do not see, so the leftovers are retried here.
        """
        pending = {self._table: requests}
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            response = self._client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return len(requests)
            deadline.pause(
                min(0.05 * 2**attempt, 1.0), deadline.DYNAMODB_ATTEMPT_SECONDS, "a batch delete"
            )
        raise Throttled("DynamoDB kept the batch delete unprocessed; retry later")


class ConnectionRepository:
    """Open WebSocket connections and the user each one authenticated as."""

    def __init__(self, client: BaseClient, table: str) -> None:
        self._client = client
        self._table = table

    def put(self, connection_id: str, user_id: str) -> Connection:
        now = utc_now()
        connection = Connection(
            connection_id=connection_id,
            user_id=user_id,
            connected_at=timestamp(now),
            expires_at=epoch_seconds(now) + CONNECTION_TTL_SECONDS,
        )
        self._client.put_item(
            TableName=self._table,
            Item=dynamodb_item(
                {
                    CONNECTION_ID: connection.connection_id,
                    CONNECTION_OWNER: connection.user_id,
                    "connected_at": connection.connected_at,
                    CONNECTION_EXPIRES: connection.expires_at,
                }
            ),
        )
        return connection

    def get(self, connection_id: str) -> Connection | None:
        item = self._client.get_item(
            TableName=self._table, Key=_connection_key(connection_id), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        values = plain_item(item)
        return Connection(
            connection_id=connection_id,
            user_id=values.get(CONNECTION_OWNER, ""),
            connected_at=values.get("connected_at", ""),
            expires_at=values.get(CONNECTION_EXPIRES, 0),
        )

    def delete(self, connection_id: str) -> None:
        self._client.delete_item(TableName=self._table, Key=_connection_key(connection_id))

    def ids_of(self, user_id: str) -> Iterator[str]:
        """The ids of ``user_id``'s connection records, through the UserConnections GSI."""
        return _keys_by_index(self._client, self._table, CONNECTIONS, USER_CONNECTIONS, user_id)


@dataclass(frozen=True)
class Store:
    """The repositories of one function, plus the operations that span two tables."""

    sessions: SessionRepository
    messages: MessageRepository
    connections: ConnectionRepository | None = None
    idempotency: IdempotencyStore | None = None

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
        )

    def begin_turn(self, user_id: str, session: Session, content: str) -> Message:
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
                question = Message(
                    session_id=session.session_id,
                    seq=seen + 1,
                    message_id=str(uuid.uuid4()),
                    role="user",
                    content=content,
                    created_at=timestamp(utc_now()),
                    answer_by=_answer_by(),
                )
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

    def finish_turn(self, user_id: str, message: Message, *, replaces_failed: bool = False) -> None:
        """Store a turn's answer in its reserved slot, only while the session is the caller's
        and live: a session deleted during the turn gets nothing, and the turn is
        :class:`NotFound`. Retried on transient failures, because the answer was paid for, as
        long as the invocation's deadline leaves time (else
        :class:`~functions.shared.deadline.DeadlineExceeded`, and the slot is repaired later).
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
        )
        items = [
            self.sessions.fence(user_id, question.session_id),
            self.messages.put_request(marker),
        ]
        try:
            self.sessions.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            codes = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if codes[:1] == ["ConditionalCheckFailed"]:
                raise NotFound(_SESSION_NOT_FOUND) from None
            if codes[1:2] == ["ConditionalCheckFailed"]:
                return self.messages.get(question.session_id, slot)  # the answer came first
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
            if "ThrottlingError" in codes:
                raise Throttled("DynamoDB throttled the turn; retry later") from None
            if "TransactionConflict" in codes:
                return self.sessions.get(user_id, message.session_id)
            raise
        return None

    @staticmethod
    def _live(user_id: str, item: Mapping[str, Any] | None) -> Session:
        """The session a cancelled transaction saw, if it is still the caller's and live."""
        current = _session(item) if item else None
        if (
            current is None
            or current.user_id != user_id
            or current.expires_at <= epoch_seconds(utc_now())
        ):
            raise NotFound(_SESSION_NOT_FOUND)
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
    created = datetime.strptime(question.created_at, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    return now > epoch_seconds(created) + MAX_INVOCATION_SECONDS


def _keys_by_index(
    client: BaseClient, table: str, schema: TableSchema, index: Index, value: str
) -> Iterator[str]:
    """The table's hash keys of every item whose ``index`` hash key is ``value`` (all pages)."""
    paginator = client.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        IndexName=index.name,
        KeyConditionExpression="#hash = :value",
        ExpressionAttributeNames={"#hash": index.hash_key.name, "#key": schema.hash_key.name},
        ExpressionAttributeValues=dynamodb_item({":value": value}),
        ProjectionExpression="#key",
    ):
        for item in page.get("Items", []):
            yield plain_item(item)[schema.hash_key.name]


def _session_key(session_id: str) -> dict[str, Any]:
    return dynamodb_item({SESSION_ID: session_id})


def _connection_key(connection_id: str) -> dict[str, Any]:
    return dynamodb_item({CONNECTION_ID: connection_id})


def _in_session(session_id: str, projection: str | None = None) -> dict[str, Any]:
    """Query parameters selecting one session's messages (and projecting ``projection``)."""
    names = {"#session": MESSAGE_SESSION}
    params: dict[str, Any] = {"KeyConditionExpression": "#session = :session"}
    if projection:
        names["#seq"] = SEQ
        params["ProjectionExpression"] = projection
    return {
        **params,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": dynamodb_item({":session": session_id}),
    }


def _checked(session_id: str) -> str:
    """``session_id`` if it can name a session at all; anything else is simply not found."""
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise NotFound(_SESSION_NOT_FOUND)
    return session_id


def _owned(
    user_id: str, names: dict[str, str], values: dict[str, Any], extra: str | None = None
) -> dict[str, Any]:
    """Condition parameters: the session exists, ``user_id`` owns it, it has not expired (and
    ``extra`` holds)."""
    condition = "#owner = :owner AND #alive > :epoch" + (f" AND {extra}" if extra else "")
    return {
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {**names, "#owner": OWNER, "#alive": SESSION_EXPIRES},
        "ExpressionAttributeValues": {
            **values,
            **dynamodb_item({":owner": user_id, ":epoch": epoch_seconds(utc_now())}),
        },
    }


def _required(signer: TokenSigner | None) -> TokenSigner:
    if signer is None:
        raise RuntimeError("listing needs a pagination key; this function has none")
    return signer


def _session_item(session: Session) -> dict[str, Any]:
    return dynamodb_item(
        {
            SESSION_ID: session.session_id,
            OWNER: session.user_id,
            "title": session.title,
            "model_id": session.model_id,
            "knowledge_base_id": session.knowledge_base_id or None,
            "created_at": session.created_at,
            ACTIVITY: session.last_activity,
            SESSION_EXPIRES: session.expires_at,
            "message_count": session.message_count,
        }
    )


def _session(item: Mapping[str, Any]) -> Session:
    values = plain_item(item)
    return Session(
        session_id=values.get(SESSION_ID, ""),
        user_id=values.get(OWNER, ""),
        title=values.get("title", ""),
        model_id=values.get("model_id", ""),
        knowledge_base_id=values.get("knowledge_base_id"),
        created_at=values.get("created_at", ""),
        last_activity=values.get(ACTIVITY, ""),
        expires_at=values.get(SESSION_EXPIRES, 0),
        message_count=values.get("message_count", 0),
    )


def _message_item(message: Message) -> dict[str, Any]:
    answer = message.role == "assistant"
    return dynamodb_item(
        {
            MESSAGE_SESSION: message.session_id,
            SEQ: message.seq,
            "message_id": message.message_id,
            "role": message.role,
            "content": message.content,
            "created_at": message.created_at,
            # Opaque to DynamoDB and holding floats (scores), which DynamoDB's number type would
            # force through Decimal: one JSON string is simpler and smaller.
            "citations": (
                json.dumps([citation.to_dict() for citation in message.citations])
                if message.citations
                else None
            ),
            "usage": message.usage.to_dict() if message.usage else None,
            "status": message.status if answer else None,
            "stop_reason": (message.stop_reason or None) if answer else None,
            "answer_by": None if answer else message.answer_by,
        }
    )


def _message(item: Mapping[str, Any]) -> Message:
    values = plain_item(item)
    usage = values.get("usage")
    role: Role = "assistant" if values.get("role") == "assistant" else "user"
    status = values.get("status")  # absent on answers stored before statuses existed
    return Message(
        session_id=values.get(MESSAGE_SESSION, ""),
        seq=values.get(SEQ, 0),
        message_id=values.get("message_id", ""),
        role=role,
        content=values.get("content", ""),
        created_at=values.get("created_at", ""),
        citations=tuple(
            Citation(**citation) for citation in json.loads(values.get("citations") or "[]")
        ),
        usage=Usage(**usage) if usage else None,
        status=cast(MessageStatus, status) if status in MESSAGE_STATUSES else "complete",
        stop_reason=values.get("stop_reason"),
        answer_by=values.get("answer_by"),
    )
