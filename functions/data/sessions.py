"""The sessions table: one item per session, read per user through the ``UserIndex`` GSI.

``UserIndex`` is (user_id, last_activity), newest activity first. ``message_count`` doubles as
the atomic counter that hands out message sequence numbers. ``expires_at`` (epoch seconds,
DynamoDB TTL) moves forward on every write, and a session past it counts as gone even before
DynamoDB deletes it. Key schemas are in :mod:`functions.contract`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.contract import SESSIONS, USER_INDEX
from functions.core.aws_errors import condition_failed, was_retried
from functions.core.clock import epoch_seconds, timestamp, utc_now
from functions.data.items import dynamodb_item, key_name, keys_by_index, plain_item
from functions.data.pagination import TokenSigner, required
from functions.domain.errors import NotFound
from functions.domain.models import DEFAULT_TITLE, Page, Session

if TYPE_CHECKING:
    from botocore.client import BaseClient

SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SESSION_NOT_FOUND = "session not found"


# Every attribute a table or index keys on, and every TTL attribute, is named by the contract, so
# a rename there moves the store with it; the other attributes are the records' field names.
SESSION_ID = SESSIONS.hash_key.name
OWNER = USER_INDEX.hash_key.name
ACTIVITY = key_name(USER_INDEX.range_key)  # UserIndex's sort key: newest activity first
SESSION_EXPIRES = SESSIONS.ttl_attribute


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
        item = _session_item(session)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#session)",
                ExpressionAttributeNames={"#session": SESSION_ID},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            # The id is new, so the one item that can already hold it is this put's own, from
            # an attempt whose reply was lost and which botocore then retried.
            if not condition_failed(error) or error.response.get("Item") != item:
                raise
        return session

    def get(self, user_id: str, session_id: str) -> Session:
        """The caller's live session; :class:`NotFound` for missing, expired or someone else's."""
        if not SESSION_ID_PATTERN.fullmatch(session_id):
            raise NotFound(SESSION_NOT_FOUND)
        item = self._client.get_item(
            TableName=self._table, Key=_session_key(session_id), ConsistentRead=True
        ).get("Item")
        if not item:
            raise NotFound(SESSION_NOT_FOUND)
        session = session_from_item(item)
        if not is_live(session, user_id):
            raise NotFound(SESSION_NOT_FOUND)
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
        signer = required(self._signer)
        if next_token:
            params["ExclusiveStartKey"] = signer.decode(next_token, "sessions", user_id, "")
        response = self._client.query(**params)
        last_key = response.get("LastEvaluatedKey")
        return Page(
            items=[session_from_item(item) for item in response.get("Items", [])],
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
        return session_from_item(item)

    def name(self, user_id: str, session_id: str, title: str) -> bool:
        """Give the caller's live session a generated ``title`` if it still has none (missing,
        blank or :data:`DEFAULT_TITLE`); False when it has one, set by its user meanwhile,
        or is gone. The activity and expiry stay: naming a session is not using it."""
        names = {"#title": "title"}
        values = dynamodb_item({":title": title, ":blank": "", ":default": DEFAULT_TITLE})
        untitled = "(attribute_not_exists(#title) OR #title IN (:blank, :default))"
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_session_key(_checked(session_id)),
                UpdateExpression="SET #title = :title",
                **_owned(user_id, names, values, extra=untitled),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            # A retried attempt after a lost reply finds the title its first attempt set.
            current = session_from_item(error.response.get("Item") or {})
            return current.title == title and is_live(current, user_id)
        return True

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
        return keys_by_index(self._client, self._table, SESSIONS, USER_INDEX, user_id)

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
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            if "Item" not in error.response and was_retried(error):
                return  # gone, most likely by this delete's first attempt, whose reply was lost
            raise NotFound(SESSION_NOT_FOUND) from None

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
            if condition_failed(error):
                raise NotFound(SESSION_NOT_FOUND) from None
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


def _session_key(session_id: str) -> dict[str, Any]:
    return dynamodb_item({SESSION_ID: session_id})


def _checked(session_id: str) -> str:
    """``session_id`` if it can name a session at all; anything else is simply not found."""
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise NotFound(SESSION_NOT_FOUND)
    return session_id


def is_live(session: Session, user_id: str) -> bool:
    """Whether ``user_id`` owns ``session`` and it has not expired."""
    return session.user_id == user_id and session.expires_at > epoch_seconds(utc_now())


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


def session_from_item(item: Mapping[str, Any]) -> Session:
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
