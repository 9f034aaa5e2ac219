"""The messages table: one item per turn, keyed (session_id, seq).

A session's history is so unbounded instead of capped by the 400 KB item limit. Messages carry
no TTL: a long-lived session must not lose its oldest turns while it is still in use. They are
deleted with their session (the cleanup function). Ownership is checked on the session first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from functions.contract import MESSAGES
from functions.core import deadline
from functions.core.aws_errors import condition_failed
from functions.data.items import dynamodb_item, key_name, plain_item
from functions.data.pagination import TokenSigner, required
from functions.domain.errors import NotFound, Throttled
from functions.domain.models import (
    MESSAGE_STATUSES,
    RATINGS,
    AttachmentRef,
    Citation,
    Feedback,
    Message,
    MessageStatus,
    Page,
    Role,
    Usage,
    content_bytes,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

# History pages (see MessageRepository.recent): the first measures, the rest are sized.
FIRST_HISTORY_PAGE = 4
MAX_HISTORY_PAGE = 1_000
BATCH_WRITE_SIZE = 25  # DynamoDB's BatchWriteItem limit
BATCH_WRITE_ATTEMPTS = 8
MESSAGE_SESSION = MESSAGES.hash_key.name
SEQ = key_name(MESSAGES.range_key)
MESSAGE_NOT_FOUND = "message not found"


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

    def supersede_request(self, replaced: Message, by: str) -> dict[str, Any]:
        """A transaction item marking ``replaced`` (a question or its answer) as superseded by
        the question ``by``: only while it is still the message the caller read and no other
        version replaced it yet."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": dynamodb_item({MESSAGE_SESSION: replaced.session_id, SEQ: replaced.seq}),
                "UpdateExpression": "SET #superseded = :by",
                "ConditionExpression": "#id = :id AND attribute_not_exists(#superseded)",
                "ExpressionAttributeNames": {"#id": "message_id", "#superseded": "superseded_by"},
                "ExpressionAttributeValues": dynamodb_item({":id": replaced.message_id, ":by": by}),
            }
        }

    def last(self, session_id: str, count: int) -> list[Message]:
        """The session's last ``count`` slots that hold a message, oldest first (one strongly
        consistent query: they may have been written a moment ago)."""
        response = self._client.query(
            TableName=self._table,
            **_in_session(session_id),
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=count,
        )
        return [message_from_item(item) for item in response.get("Items", [])][::-1]

    def find(self, session_id: str, message_id: str) -> Message | None:
        """The session's message ``message_id``, or None.

        Messages are keyed by ``seq``, not by id, so the session's items are queried with a
        filter on the id, newest first (the last question, recent answers) until it is found:
        DynamoDB reads, and bills, every item before it. Used to explain a refusal and to rate
        an answer, both rare next to turns.
        """
        paginator = self._client.get_paginator("query")
        params = _in_session(session_id)
        params["ExpressionAttributeNames"]["#id"] = "message_id"
        params["ExpressionAttributeValues"].update(dynamodb_item({":id": message_id}))
        pages = paginator.paginate(
            TableName=self._table,
            **params,
            FilterExpression="#id = :id",
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                return message_from_item(item)
        return None

    def get(self, session_id: str, seq: int) -> Message | None:
        """One stored turn (the caller must own ``session_id``), or None."""
        item = self._client.get_item(
            TableName=self._table,
            Key=dynamodb_item({MESSAGE_SESSION: session_id, SEQ: seq}),
            ConsistentRead=True,
        ).get("Item")
        return message_from_item(item) if item else None

    def list(
        self, user_id: str, session_id: str, limit: int, next_token: str | None = None
    ) -> Page[Message]:
        """One page of the history, oldest first; the caller must own ``session_id``."""
        signer = required(self._signer)
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
            items=[message_from_item(item) for item in response.get("Items", [])],
            next_token=(
                signer.encode("messages", user_id, session_id, last_key) if last_key else None
            ),
        )

    def export_page(
        self,
        user_id: str,
        session_id: str,
        *,
        max_items: int,
        max_bytes: int,
        size: Callable[[Message], int],
        next_token: str | None = None,
    ) -> Page[Message]:
        """One page of an export, oldest first: whole messages, at most ``max_items`` of them
        and at most ``max_bytes`` as ``size`` counts them (at least one, whatever its size);
        the caller must own ``session_id``.

        An export's pages are bounded by bytes as well as by count, because the whole page is
        one Lambda response (6 MB at most); DynamoDB's own pages (1 MB) are read until the page
        is full, and the ``next_token`` names the last message the page holds.
        """
        signer = required(self._signer)
        start = signer.decode(next_token, "export", user_id, session_id) if next_token else None
        selected: list[Message] = []
        used = 0
        while True:
            params: dict[str, Any] = {
                "TableName": self._table,
                **_in_session(session_id),
                "ScanIndexForward": True,
                "ConsistentRead": True,
                "Limit": max_items - len(selected),
            }
            if start:
                params["ExclusiveStartKey"] = start
            response = self._client.query(**params)
            for item in response.get("Items", []):
                message = message_from_item(item)
                cost = size(message)
                if selected and used + cost > max_bytes:
                    return Page(selected, self._export_token(signer, user_id, selected[-1]))
                selected.append(message)
                used += cost
            start = response.get("LastEvaluatedKey")
            if not start:
                return Page(selected, None)
            if len(selected) >= max_items:
                return Page(selected, self._export_token(signer, user_id, selected[-1]))

    @staticmethod
    def _export_token(signer: TokenSigner, user_id: str, last: Message) -> str:
        key = dynamodb_item({MESSAGE_SESSION: last.session_id, SEQ: last.seq})
        return signer.encode("export", user_id, last.session_id, key)

    def set_feedback(self, session_id: str, seq: int, feedback: Feedback) -> Message:
        """Store ``feedback`` on the answer at ``seq``, replacing any earlier one; the answer as
        stored now. One conditional UpdateItem: the item must still be there and be an answer
        that is not a ``failed`` marker, so a PUT repeated or raced is harmless."""
        values = {
            ":feedback": _feedback_value(feedback),
            ":at": feedback.given_at,
            ":assistant": "assistant",
            ":failed": "failed",
        }
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=dynamodb_item({MESSAGE_SESSION: session_id, SEQ: seq}),
                UpdateExpression="SET #feedback = :feedback, #feedback_at = :at",
                ConditionExpression=(
                    "#role = :assistant AND (attribute_not_exists(#status) OR #status <> :failed)"
                ),
                ExpressionAttributeNames={
                    "#feedback": "feedback",
                    "#feedback_at": "feedback_at",
                    "#role": "role",
                    "#status": "status",
                },
                ExpressionAttributeValues=dynamodb_item(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            raise NotFound(MESSAGE_NOT_FOUND) from None  # removed since it was found
        return message_from_item(response["Attributes"])

    def recent(
        self,
        session_id: str,
        budget_bytes: int,
        weight: Callable[[Message], int] = lambda message: content_bytes(message.content),
    ) -> list[Message]:
        """The newest turns whose ``weight``s (by default their contents' UTF-8 bytes) fit in
        ``budget_bytes`` together, oldest first. Superseded versions (a regenerated or edited
        turn) are skipped: the history is the current branch only.

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
                message = message_from_item(item)
                if message.superseded_by:
                    continue
                used += weight(message)
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
            # Absent on a first version, and on every message stored before versions existed.
            "version": message.version if message.version > 1 else None,
            "replaces": message.replaces,
            "superseded_by": message.superseded_by,
            "model_id": message.model_id if answer else None,
            "feedback": _feedback_value(message.feedback) if message.feedback else None,
            "feedback_at": message.feedback.given_at if message.feedback else None,
            "attachments": (
                [asdict(ref) for ref in message.attachments] if message.attachments else None
            ),
        }
    )


def _feedback_value(feedback: Feedback) -> dict[str, str]:
    """The ``feedback`` map of an answer's item; its time is ``feedback_at``, beside it."""
    value = {"rating": feedback.rating, "category": feedback.category, "comment": feedback.comment}
    return {name: text for name, text in value.items() if text is not None}


def _feedback(values: Mapping[str, Any]) -> Feedback | None:
    stored = values.get("feedback")
    if not isinstance(stored, dict) or stored.get("rating") not in RATINGS:
        return None
    return Feedback(
        rating=stored["rating"],
        given_at=values.get("feedback_at", ""),
        category=stored.get("category"),
        comment=stored.get("comment"),
    )


def message_from_item(item: Mapping[str, Any]) -> Message:
    """A stored turn, from its DynamoDB item (as GetItem, Query or a cancelled transaction
    return it)."""
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
        version=values.get("version", 1),
        replaces=values.get("replaces"),
        superseded_by=values.get("superseded_by"),
        model_id=values.get("model_id"),
        feedback=_feedback(values),
        attachments=tuple(
            AttachmentRef(**{**ref, "size": int(ref["size"])})  # a number in a list: Decimal
            for ref in values.get("attachments") or ()
        ),
    )
