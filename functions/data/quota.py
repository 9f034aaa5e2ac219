"""Per-user cost and abuse control in the usage table: token budgets and answer leases.

**Budgets.** One ledger item per user and budget period (``day#2026-12-02``, ``month#2026-12``,
UTC) holds the tokens used, as :attr:`Usage.budget_tokens` counts them. Before anything is stored
or the model is called, a turn *holds* its estimated input plus a whole answer
(:data:`ANSWER_CAP_TOKENS`) with one conditional ``ADD`` per period, which applies only while the
input still fits under the limit; a user at or over a limit is refused there
(:class:`QuotaExceeded`). What the hold takes beyond the limit is given back at once, and the
answer is capped (``maxTokens``) to what was held for it, so concurrent turns, which see each
other's holds in the same counter, cannot together spend more than the limit. When the answer is
stored the turn *settles*: it adds what Bedrock reported minus what it held, so the ledger ends up
with the reported use. A function that dies mid-turn leaves its hold in place (over-counting,
never under-counting). Every write carries the turn's reservation id, so a write botocore retries
after a lost reply applies once. Items expire by TTL :data:`RETENTION` after their period.

**Leases.** A user may have :attr:`ChatSettings.user_max_concurrent_answers` answers generating
at once. Each is a lease on one of that many slot items (``lease#0``, ``lease#1``...), taken with
a conditional put that succeeds only on a free or expired slot and given back with a conditional
delete. The lease lasts the invocation's remaining time, so a function that dies mid-answer frees
its slot when that time is up. All slots held is :class:`Busy`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from functions.contract import USAGE, Metric
from functions.core.aws_errors import condition_failed
from functions.core.clock import epoch_seconds, timestamp, utc_now
from functions.core.observability import count, logger
from functions.data.items import dynamodb_item, plain_item
from functions.domain.errors import Busy, QuotaExceeded, QuotaState

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from functions.domain.models import Usage

PeriodKind = Literal["day", "month"]
Clock = Callable[[], datetime]

RETENTION = timedelta(days=35)  # how long a period's item outlives it (TTL)
# Below this many tokens left, a turn's answer is capped to what is left (maxTokens). Above it
# the model's own default applies: 4,096 is the smallest default output limit of the models this
# stack offers, so no cap ever shortens an answer a user with budget left would have had.
ANSWER_CAP_TOKENS = 4_096
_USER = USAGE.hash_key.name
_PERIOD = USAGE.range_key.name if USAGE.range_key else "period"
_EXPIRES = USAGE.ttl_attribute
_TOKENS = "tokens"
# Counters a settled turn adds, besides the budget tokens: what Bedrock reported.
_REPORTED = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
)


@dataclass(frozen=True)
class Period:
    """One budget period of a user: which, its item's key, its limit and when it resets."""

    kind: PeriodKind
    key: str
    limit: int
    resets_at: datetime


def periods(now: datetime, daily_limit: int, monthly_limit: int) -> tuple[Period, ...]:
    """The periods ``now`` falls in that have a limit (0 is no limit)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    found = []
    if daily_limit > 0:
        found.append(Period("day", f"day#{day:%Y-%m-%d}", daily_limit, day + timedelta(days=1)))
    if monthly_limit > 0:
        found.append(Period("month", f"month#{month:%Y-%m}", monthly_limit, next_month))
    return tuple(found)


@dataclass(frozen=True)
class PeriodUsage:
    """A period's use so far, as ``GET /usage`` shows it."""

    period: Period
    used: int  # budget tokens, including reservations of turns in progress
    turns: int
    reported: dict[str, int]  # the _REPORTED counters

    @property
    def remaining(self) -> int:
        return max(self.period.limit - self.used, 0)


@dataclass(frozen=True)
class Hold:
    """The tokens a turn holds in one period until it settles."""

    period: Period
    tokens: int


@dataclass(frozen=True)
class Reservation:
    """What a turn holds in each limited period, and its answer's cap."""

    id: str  # makes each of its writes apply once, though botocore retries a lost reply
    user_id: str
    holds: tuple[Hold, ...]
    max_tokens: int | None  # None: the model's default (the turn is not near a limit)


class UsageLedger:
    """The budget side of the usage table."""

    def __init__(
        self,
        client: BaseClient,
        table: str,
        *,
        daily_limit: int,
        monthly_limit: int,
        clock: Clock = utc_now,
    ) -> None:
        self._client = client
        self._table = table
        self._daily_limit = daily_limit
        self._monthly_limit = monthly_limit
        self._clock = clock

    def current_periods(self) -> tuple[Period, ...]:
        return periods(self._clock(), self._daily_limit, self._monthly_limit)

    def reserve(self, user_id: str, estimate: int) -> Reservation:
        """Hold a turn's tokens in every limited period, or :class:`QuotaExceeded` with nothing
        held.

        The hold is the estimated input plus an answer of up to :data:`ANSWER_CAP_TOKENS`,
        trimmed to the period's limit; the answer is then capped to what was held for it
        (``maxTokens``). Concurrent turns see each other's holds, so together they cannot
        spend more than the limit. A period refuses when its use plus the input would reach
        the limit: a user at or over it, or with too little left for even the question.
        """
        limited = self.current_periods()
        for period in limited:
            if estimate >= period.limit:  # the hold's condition misses it on a first turn
                used = self._ledger(user_id, period).get(_TOKENS, 0)
                raise _refusal(period, used, estimate, self._clock())
        reservation_id = str(uuid.uuid4())
        holds: list[Hold] = []
        cap = ANSWER_CAP_TOKENS
        try:
            for period in limited:
                hold = self._hold(user_id, period, estimate, reservation_id)
                holds.append(hold)
                cap = min(cap, hold.tokens - estimate)
        except BaseException:
            self._add(
                user_id,
                [(hold.period, -hold.tokens) for hold in holds],
                reservation_id=reservation_id,
                marker="released_by",
            )
            raise
        max_tokens = cap if cap < ANSWER_CAP_TOKENS else None
        return Reservation(reservation_id, user_id, tuple(holds), max_tokens)

    def settle(self, reservation: Reservation, usage: Usage | None, *, turn: bool = True) -> None:
        """Replace the holds with what the turn used (nothing, for a failed call). A call that
        is no answer (a session's title, ``turn=False``) adds its tokens but not to ``turns``."""
        used = usage.budget_tokens if usage is not None else 0
        counters = {} if usage is None else {name: getattr(usage, name) for name in _REPORTED}
        if usage is not None and turn:
            counters["turns"] = 1
        self._add(
            reservation.user_id,
            [(hold.period, used - hold.tokens) for hold in reservation.holds],
            reservation_id=reservation.id,
            marker="settled_by",
            counters=counters,
        )

    def release(self, reservation: Reservation) -> None:
        """Give back the holds of a turn that never reached the model."""
        self._add(
            reservation.user_id,
            [(hold.period, -hold.tokens) for hold in reservation.holds],
            reservation_id=reservation.id,
            marker="released_by",
        )

    def usage(self, user_id: str) -> list[PeriodUsage]:
        """The caller's use in each limited period (strongly consistent reads)."""
        found = []
        for period in self.current_periods():
            values = self._ledger(user_id, period)
            found.append(
                PeriodUsage(
                    period=period,
                    used=values.get(_TOKENS, 0),
                    turns=values.get("turns", 0),
                    reported={name: values.get(name, 0) for name in _REPORTED},
                )
            )
        return found

    def _ledger(self, user_id: str, period: Period) -> dict[str, Any]:
        item = self._client.get_item(
            TableName=self._table, Key=_key(user_id, period.key), ConsistentRead=True
        ).get("Item")
        return plain_item(item or {})

    def _hold(self, user_id: str, period: Period, estimate: int, reservation_id: str) -> Hold:
        """Add the input and a whole answer to the period's use if the input fits under the
        limit, then give back what went over it."""
        wanted = estimate + ANSWER_CAP_TOKENS
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key(user_id, period.key),
                UpdateExpression="ADD #tokens :tokens SET #expires = :expires, reserved_by = :id",
                ConditionExpression=(
                    "(attribute_not_exists(#tokens) OR #tokens < :room)"
                    " AND (attribute_not_exists(reserved_by) OR reserved_by <> :id)"
                ),
                ExpressionAttributeNames={"#tokens": _TOKENS, "#expires": _EXPIRES},
                ExpressionAttributeValues=dynamodb_item(
                    {
                        ":tokens": wanted,
                        ":room": period.limit - estimate,
                        ":expires": epoch_seconds(period.resets_at + RETENTION),
                        ":id": reservation_id,
                    }
                ),
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                self._undo_if_applied(user_id, period, wanted, reservation_id)
                raise
            item = plain_item(error.response.get("Item") or {})
            used = int(item.get(_TOKENS, period.limit))
            if item.get("reserved_by") != reservation_id:
                raise _refusal(period, used, estimate, self._clock()) from None
            total = used  # applied already; botocore retried a lost reply
        else:
            total = int(plain_item(response["Attributes"])[_TOKENS])
        over = max(total - period.limit, 0)
        if over:
            self._add(
                user_id, [(period, -over)], reservation_id=reservation_id, marker="trimmed_by"
            )
        return Hold(period, wanted - over)

    def _add(
        self,
        user_id: str,
        adds: list[tuple[Period, int]],
        *,
        reservation_id: str,
        marker: str,
        counters: dict[str, int] | None = None,
    ) -> None:
        """Add each period's tokens (and ``counters``), once per reservation and ``marker``.
        A failure is logged and counted, not raised: the turn's answer is stored or its error
        is the one to report, and the ledger is off by one turn at most."""
        for period, tokens in adds:
            changes = {_TOKENS: tokens, **(counters or {})}
            names = {f"#c{index}": name for index, name in enumerate(changes)}
            values = {f":c{index}": value for index, value in enumerate(changes.values())}
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=_key(user_id, period.key),
                    UpdateExpression="ADD "
                    + ", ".join(f"{name} {name.replace('#', ':')}" for name in names)
                    + " SET #marker = :id",
                    ConditionExpression="attribute_not_exists(#marker) OR #marker <> :id",
                    ExpressionAttributeNames={**names, "#marker": marker},
                    ExpressionAttributeValues=dynamodb_item({**values, ":id": reservation_id}),
                )
            except ClientError as error:
                if condition_failed(error):
                    continue  # applied already; botocore retried a lost reply
                self._unrecorded(period)
            except Exception:
                self._unrecorded(period)

    def _undo_if_applied(
        self, user_id: str, period: Period, tokens: int, reservation_id: str
    ) -> None:
        """A reservation whose reply failed may have applied: take it back if it did (and no
        later reservation has marked the item since), so a failed turn holds nothing."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(user_id, period.key),
                UpdateExpression="ADD #tokens :tokens SET released_by = :id",
                ConditionExpression="reserved_by = :id",
                ExpressionAttributeNames={"#tokens": _TOKENS},
                ExpressionAttributeValues=dynamodb_item(
                    {":tokens": -tokens, ":id": reservation_id}
                ),
            )
        except Exception:  # not applied, or unreachable: the write's own error is reported
            logger.debug("no reservation to undo", exc_info=True)

    @staticmethod
    def _unrecorded(period: Period) -> None:
        logger.exception("recording a turn's token use failed", extra={"period": period.key})
        count(Metric.USAGE_NOT_RECORDED)


def _refusal(period: Period, used: int, estimate: int, now: datetime) -> QuotaExceeded:
    count(Metric.QUOTA_EXCEEDED)
    resets_at = timestamp(period.resets_at)
    if used >= period.limit:
        why = "the token budget is spent"
    elif estimate >= period.limit:
        why = (
            f"this turn's input (about {estimate} tokens, with its history) is more than the "
            f"whole {period.kind}'s budget of {period.limit} tokens, so waiting will not help: "
            "send a shorter message or start a new session"
        )
    else:
        why = f"the rest of the budget does not cover this turn's input (about {estimate} tokens)"
    return QuotaExceeded(
        f"{why}: {used} of {period.limit} tokens used this {period.kind} (UTC); "
        f"it resets at {resets_at}",
        QuotaState(period.kind, period.limit, used, resets_at),
        retry_after=max(math.ceil((period.resets_at - now).total_seconds()), 1),
    )


@dataclass(frozen=True)
class Lease:
    """One answer slot a turn holds until its answer is stored."""

    user_id: str
    slot: str
    lease_id: str


class AnswerLeases:
    """The concurrency side of the usage table: at most ``slots`` answers per user at once."""

    def __init__(self, client: BaseClient, table: str, slots: int, clock: Clock = utc_now) -> None:
        self._client = client
        self._table = table
        self._slots = slots
        self._clock = clock

    def acquire(self, user_id: str, seconds: int) -> Lease | None:
        """A free or expired slot for ``seconds``, or :class:`Busy`; None when unlimited."""
        if self._slots <= 0:
            return None
        now = epoch_seconds(self._clock())
        lease_id = str(uuid.uuid4())
        for number in range(self._slots):
            slot = f"lease#{number}"
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=dynamodb_item(
                        {
                            _USER: user_id,
                            _PERIOD: slot,
                            "lease_id": lease_id,
                            _EXPIRES: now + seconds,
                        }
                    ),
                    # Free, expired, or ours: botocore retried a put whose reply was lost.
                    ConditionExpression=(
                        "attribute_not_exists(#user) OR #expires < :now OR lease_id = :lease"
                    ),
                    ExpressionAttributeNames={"#user": _USER, "#expires": _EXPIRES},
                    ExpressionAttributeValues=dynamodb_item({":now": now, ":lease": lease_id}),
                )
            except ClientError as error:
                if not condition_failed(error):
                    self.release(Lease(user_id, slot, lease_id))  # in case it applied
                    raise
                continue
            return Lease(user_id, slot, lease_id)
        count(Metric.BUSY)
        raise Busy(f"{self._slots} answers of yours are being generated; wait for one to finish")

    def release(self, lease: Lease | None) -> None:
        """Free the slot (None, from an unlimited :meth:`acquire`: nothing to free), unless it
        expired and another turn took it. A failure is logged: the slot frees itself when the
        lease runs out."""
        if lease is None:
            return
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=_key(lease.user_id, lease.slot),
                ConditionExpression="lease_id = :lease",
                ExpressionAttributeValues=dynamodb_item({":lease": lease.lease_id}),
            )
        except ClientError as error:
            if not condition_failed(error):
                logger.exception("releasing an answer lease failed")
        except Exception:
            logger.exception("releasing an answer lease failed")


def _key(user_id: str, period: str) -> dict[str, object]:
    return dynamodb_item({_USER: user_id, _PERIOD: period})
