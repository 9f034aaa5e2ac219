"""Answers being generated, and cancel requests for them, in the usage table.

A WebSocket message is its own Lambda invocation, often in another container than the one
streaming the answer, so a cancel cannot reach the streaming invocation in memory. Instead:

* the streaming invocation records its answer as *generating* (:meth:`GeneratingAnswers.begin`):
  one item ``answer#<message_id>`` in its user's partition, which lives as long as the answer
  lease (the invocation's remaining time, then TTL);
* a cancel (:meth:`GeneratingAnswers.request_cancel`) is a conditional update of that item, in
  the caller's own partition and only while it is generating: someone else's answer is simply
  not there, so it is refused exactly like an unknown id, and nothing about it leaks;
* the streaming invocation polls the item (:meth:`GeneratingAnswers.cancel_requested`) at a
  bounded interval while it reads the model and, once asked, stops reading; at the end it marks
  the item finished (:meth:`GeneratingAnswers.finish`), so a late cancel is told the answer is
  already finished.

The poll is a strongly consistent ``GetItem`` (half a read unit: a look every half second of
a streamed answer costs less than its own writes), which the WebSocket function's role is
granted for it on the usage table (``compute/security.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from functions.contract import USAGE
from functions.core.aws_errors import condition_failed
from functions.core.clock import epoch_seconds, utc_now
from functions.core.observability import logger
from functions.data.items import dynamodb_item, plain_item
from functions.domain.errors import Conflict, NotFound

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from functions.data.quota import Clock

_USER = USAGE.hash_key.name
_PERIOD = USAGE.range_key.name if USAGE.range_key else "period"
_EXPIRES = USAGE.ttl_attribute
_PREFIX = "answer#"
_GENERATING = "generating"
_NAMES = {"#user": _USER, "#state": "state"}


@dataclass(frozen=True)
class Generating:
    """One answer a streaming invocation is generating, as recorded in the usage table."""

    user_id: str
    message_id: str


class GeneratingAnswers:
    """The cancel side of the usage table: see the module docstring."""

    def __init__(self, client: BaseClient, table: str, clock: Clock = utc_now) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def begin(self, user_id: str, message_id: str, seconds: int) -> Generating:
        """Record ``message_id`` as generating for ``seconds`` (the invocation's time)."""
        self._client.put_item(
            TableName=self._table,
            Item=dynamodb_item(
                {
                    _USER: user_id,
                    _PERIOD: _PREFIX + message_id,
                    "state": _GENERATING,
                    _EXPIRES: epoch_seconds(self._clock()) + seconds,
                }
            ),
        )
        return Generating(user_id, message_id)

    def request_cancel(self, user_id: str, message_id: str) -> None:
        """Ask the invocation generating the caller's answer ``message_id`` to stop.

        :class:`NotFound` when no such answer of the caller's is generating (unknown, someone
        else's, or expired), :class:`Conflict` when it is already finished.
        """
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(user_id, message_id),
                UpdateExpression="SET cancel_requested = :yes",
                ConditionExpression="attribute_exists(#user) AND #state = :generating",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues=dynamodb_item({":yes": True, ":generating": _GENERATING}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            old = plain_item(error.response.get("Item") or {})
            if old.get("state") == "finished":
                raise Conflict(f"the answer {message_id} is already finished") from None
            raise NotFound(f"no answer {message_id} of yours is being generated") from None

    def cancel_requested(self, answer: Generating) -> bool:
        """Whether a cancel of ``answer`` was recorded (a strongly consistent look).

        A failure counts as "no": the answer goes on, and the next poll looks again.
        """
        try:
            found = self._client.get_item(
                TableName=self._table,
                Key=_key(answer.user_id, answer.message_id),
                ConsistentRead=True,
                ProjectionExpression="cancel_requested",
            )
        except Exception:
            logger.warning("looking for a cancel request failed", exc_info=True)
            return False
        return bool(plain_item(found.get("Item") or {}).get("cancel_requested"))

    def finish(self, answer: Generating) -> None:
        """Mark ``answer`` finished, so a cancel arriving now is told so; logged on failure
        (the item expires with the invocation's time anyway)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(answer.user_id, answer.message_id),
                UpdateExpression="SET #state = :finished",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=dynamodb_item({":finished": "finished"}),
            )
        except Exception:
            logger.warning("marking the answer finished failed", exc_info=True)


def _key(user_id: str, message_id: str) -> dict[str, object]:
    return dynamodb_item({_USER: user_id, _PERIOD: _PREFIX + message_id})
