"""Idempotency keys (IETF httpapi ``Idempotency-Key``): a repeated request returns the original
result instead of running again.

One DynamoDB item per (caller, operation, key), keyed by a hash of the three, so a key only
ever replays its own caller's result. The item holds a hash of the request body, the state
(``in_progress`` until the result is stored, then ``done``) and the result. A first request
claims the key with a conditional put; a repeat finds the item and

* gets the stored result when it is ``done`` and the body is the same;
* is refused with :class:`InProgress` (409) while the original still runs;
* is refused with :class:`KeyReused` (422) when the body differs.

Each claim carries its own id: a put that botocore retried after its reply was lost knows its
own claim in the record it finds, and only the claim's holder stores a result or releases it.

An ``in_progress`` claim holds only for the claiming function's remaining time (its lease), so
an attempt killed mid-way does not block the key: the next repeat takes it over. A request
that fails releases its claim, so the client can retry with the same key. Records expire by
DynamoDB's TTL after :data:`IDEMPOTENCY_WINDOW_SECONDS`.

Every caller (``POST /sessions``, ``POST /sessions/{id}/messages`` and the WebSocket's
``sendMessage``) goes through :func:`once` with a :class:`Scope`; the WebSocket learns from
:attr:`Outcome.replayed` that it must replay the stored answer's frames.

Why not Powertools' idempotency utility (``aws_lambda_powertools.utilities.idempotency``,
3.37, already a dependency): it could be bent to this scoping (an ``event_key_jmespath`` over
``[user, operation, key]``, ``payload_validation_jmespath`` over the body, our client passed as
``boto3_client``), but it buys nothing measurable and changes behaviour the tests pin:

* DynamoDB requests per call are the same: a first request PutItem + UpdateItem (result) or
  + DeleteItem (failure), a repeat one PutItem whose ``ALL_OLD`` carries the record. Both use
  ``ReturnValuesOnConditionCheckFailure``.
* Its takeover of an in-progress record past its expiry does not compare the body: a repeat
  with another body after the original died would run instead of answering 422
  (``test_the_same_key_with_another_body_is_422`` covers the live case; ours refuses both).
* Its in-progress expiry needs ``register_lambda_context`` on every invocation, else an
  attempt killed mid-way blocks the key for the whole window; here the lease is an argument.
* Its key is ``<function name>.<qualname>#<md5 of the data>``: records written before the
  switch would never be found again, and its errors (``IdempotencyAlreadyInProgressError``,
  ``IdempotencyValidationError``) would need one more mapping to ``in_progress`` /
  ``idempotency_key_reused`` in both transports.
* Importing it adds jmespath and its persistence layer to the main and WebSocket cold starts:
  +26 ms to +215 ms measured over three runs (on top of 0.4-2.4 s for this module's own
  imports, on a shared 2-core machine, 2026-12-06).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.contract import IDEMPOTENCY, IDEMPOTENCY_WINDOW_SECONDS
from functions.core.aws_errors import condition_failed
from functions.core.observability import logger
from functions.data.items import dynamodb_item, plain_item
from functions.domain.errors import BadRequest, InProgress, KeyReused

if TYPE_CHECKING:
    from botocore.client import BaseClient

# The draft's key is an opaque string; printable ASCII, at most 255 characters, is ample.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
_KEY = IDEMPOTENCY.hash_key.name


@dataclass(frozen=True)
class Claim:
    """A key this request holds until it stores its result (or releases it); ``claim_id``
    tells this claim from an earlier or later one of the same key."""

    record_key: str
    claim_id: str


def checked_key(raw: object) -> str:
    """The client's key, or :class:`BadRequest` naming the rule it breaks."""
    if not isinstance(raw, str) or not KEY_PATTERN.fullmatch(raw):
        raise BadRequest("the idempotency key must be 1 to 255 printable ASCII characters")
    return raw


class IdempotencyStore:
    """Claims, results and releases of idempotency keys in their DynamoDB table."""

    def __init__(self, client: BaseClient, table: str) -> None:
        self._client = client
        self._table = table

    def claim(
        self,
        user_id: str,
        operation: str,
        key: str,
        request: dict[str, Any],
        *,
        now: int,
        lease_seconds: int,
    ) -> Claim | dict[str, Any]:
        """Claim ``key`` for this request, or return the stored result of an earlier one.

        ``now`` is epoch seconds; ``lease_seconds`` how long this attempt may hold the claim
        (the function's remaining time).
        """
        claim = Claim(_record_key(user_id, operation, key), str(uuid.uuid4()))
        fingerprint = _fingerprint(request)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=dynamodb_item(
                    {
                        _KEY: claim.record_key,
                        "claim_id": claim.claim_id,
                        "request_hash": fingerprint,
                        "state": "in_progress",
                        "lease_until": now + lease_seconds,
                        IDEMPOTENCY.ttl_attribute: now + IDEMPOTENCY_WINDOW_SECONDS,
                    }
                ),
                # A new key, a record past its window (TTL deletes lazily), or an abandoned
                # attempt of the same request whose lease ran out.
                ConditionExpression=(
                    "attribute_not_exists(#key) OR #expires < :now"
                    " OR (#state = :in_progress AND #lease < :now AND #hash = :hash)"
                ),
                ExpressionAttributeNames={
                    "#key": _KEY,
                    "#expires": IDEMPOTENCY.ttl_attribute,
                    "#state": "state",
                    "#lease": "lease_until",
                    "#hash": "request_hash",
                },
                ExpressionAttributeValues=dynamodb_item(
                    {":now": now, ":in_progress": "in_progress", ":hash": fingerprint}
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            record = plain_item(error.response.get("Item") or {})
            if record.get("claim_id") == claim.claim_id:
                return claim  # this put's own first attempt, whose reply was lost
            return _earlier(record, fingerprint)
        return claim

    def complete(self, claim: Claim, result: dict[str, Any]) -> bool:
        """Store the result, which repeats of the request then get; ``False`` when the claim
        is no longer this request's, and nothing was stored.

        Only the claim's holder stores: an attempt that outlived its lease lost the key to a
        repeat, whose result is the one the client waits for. Without the condition the late
        result would overwrite it, and where the repeat had failed and released the key, the
        update would create a record with neither the request's hash nor an expiry: the key
        would answer 422 to every later repeat, for ever. A retry of this write after a lost
        reply meets its own claim id and applies again, to the same effect.
        """
        try:
            self._client.update_item(
                TableName=self._table,
                Key=dynamodb_item({_KEY: claim.record_key}),
                UpdateExpression="SET #state = :done, #result = :result REMOVE #lease",
                ConditionExpression="#claim = :claim",
                ExpressionAttributeNames={
                    "#state": "state",
                    "#result": "result",
                    "#lease": "lease_until",
                    "#claim": "claim_id",
                },
                ExpressionAttributeValues=dynamodb_item(
                    {
                        ":done": "done",
                        ":result": json.dumps(result, separators=(",", ":")),
                        ":claim": claim.claim_id,
                    }
                ),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            # The work is done and this caller still gets its result; repeats get the holder's.
            logger.warning("the idempotency key was taken over; this result is not stored")
            return False
        return True

    def release(self, claim: Claim) -> None:
        """Give the key up after a failure, so a retry with it runs the request again.

        Only this claim goes: once its lease ran out, the key may be another attempt's. A
        failed condition means the claim is gone already (taken over, or deleted by this
        delete's own first attempt, whose reply was lost), so there is nothing to give up.
        """
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=dynamodb_item({_KEY: claim.record_key}),
                ConditionExpression="#claim = :claim AND #state = :in_progress",
                ExpressionAttributeNames={"#claim": "claim_id", "#state": "state"},
                ExpressionAttributeValues=dynamodb_item(
                    {":claim": claim.claim_id, ":in_progress": "in_progress"}
                ),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise


@dataclass(frozen=True)
class Scope:
    """Whose key, for which operation: a key only ever finds its own caller's result of the
    same operation. Without a key (``None``) a request simply runs."""

    user_id: str
    operation: str
    key: str | None


@dataclass(frozen=True)
class Outcome:
    """A result, and whether it is an earlier request's (so nothing ran this time)."""

    result: dict[str, Any]
    replayed: bool


def once(
    store: IdempotencyStore | None,
    scope: Scope,
    request: dict[str, Any],
    run: Callable[[], dict[str, Any]],
    *,
    lease_seconds: int,
) -> Outcome:
    """``run()``'s result, computed once per :class:`Scope`; with no key, simply ``run()``.

    ``request`` is what a repeat must match (else :class:`KeyReused`); ``lease_seconds`` how
    long this attempt may hold the key (the invocation's remaining time). A failed ``run``
    releases the key and raises.
    """
    if scope.key is None:
        return Outcome(run(), replayed=False)
    if store is None:
        raise RuntimeError("idempotency keys need the idempotency table; this function has none")
    outcome = store.claim(
        scope.user_id,
        scope.operation,
        scope.key,
        request,
        now=int(time.time()),
        lease_seconds=lease_seconds,
    )
    if not isinstance(outcome, Claim):
        return Outcome(outcome, replayed=True)
    try:
        result = run()
    except BaseException:
        _release(store, outcome)
        raise
    store.complete(outcome, result)
    return Outcome(result, replayed=False)


def _release(store: IdempotencyStore, claim: Claim) -> None:
    try:
        store.release(claim)
    except Exception:  # the request's own error is the one to report; the lease runs out
        logger.exception("releasing an idempotency key failed")


def _earlier(record: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    if record.get("request_hash") != fingerprint:
        raise KeyReused("this idempotency key was used for a different request")
    if record.get("state") != "done":
        raise InProgress("the request with this idempotency key is still in progress")
    return json.loads(record["result"])


def _record_key(user_id: str, operation: str, key: str) -> str:
    """Scoped to the caller and the operation: one user's key never finds another's result."""
    return hashlib.sha256("\0".join((user_id, operation, key)).encode()).hexdigest()


def _fingerprint(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()
