"""The invocation's deadline, and the time budget every AWS call and retry loop keeps to it.

Lambda kills a function at its timeout, and API Gateway gives a REST integration at most
:data:`~functions.contract.REST_INTEGRATION_TIMEOUT_SECONDS` before it answers the
client a 504 of its own, whatever the function does after. So each invocation binds a
:class:`Deadline` (the earlier of the two), and nothing that could retry runs into it:

* every attempt botocore sends to DynamoDB or Bedrock is refused unless one whole attempt
  (its connect and read timeouts) still fits before the deadline minus
  :data:`ANSWER_SECONDS`; a failed attempt is retried only when the longest backoff botocore
  may sleep before it fits as well (:func:`install`);
* the store's own loops (turn transactions, batch writes) check the same budget before each
  try and before each pause.

What is refused raises :class:`DeadlineExceeded`, a :class:`~functions.domain.errors.Throttled`:
REST answers 503 with ``Retry-After``, the WebSocket an ``error`` frame, each inside the
:data:`ANSWER_SECONDS` kept for it.

The budget, in seconds before the deadline:

* :data:`ANSWER_SECONDS` (1): kept for answering once the last AWS attempt is over: REST's
  response, or one ``post_to_connection`` of an error or end frame.
* :data:`DYNAMODB_ATTEMPT_SECONDS` (3): one DynamoDB attempt at its worst (1 s to connect,
  2 s to read; DynamoDB answers in milliseconds, so a request held that long is lost anyway).
* :data:`LIMITER_WAIT_SECONDS` (2): what adaptive mode's rate limiter may wait before an
  attempt after throttling (its minimum rate is 0.5 requests a second).
* :data:`STORE_SECONDS` (4): what a streamed answer keeps for storing itself: one DynamoDB
  attempt and the answer frame; the WebSocket stops reading the model
  ``ANSWER_SECONDS + STORE_SECONDS`` before its deadline.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from functions.core.aws_errors import is_throttling
from functions.core.observability import tracer
from functions.domain.errors import Throttled

if TYPE_CHECKING:
    from botocore.client import BaseClient

ANSWER_SECONDS = 1.0
DYNAMODB_CONNECT_SECONDS = 1
DYNAMODB_READ_SECONDS = 2
DYNAMODB_ATTEMPT_SECONDS = float(DYNAMODB_CONNECT_SECONDS + DYNAMODB_READ_SECONDS)
LIMITER_WAIT_SECONDS = 2.0
STORE_SECONDS = DYNAMODB_ATTEMPT_SECONDS + 1.0
# A function configured shorter than the budget (under 8 s) could never call DynamoDB under
# it: there, what a check asks for is capped at this share of the invocation's whole time, and
# the worst case (a held request) is no longer covered.
MAX_SHARE = 0.5
# Without a Lambda context (a local call, never in Lambda): Lambda's longest timeout.
NO_CONTEXT_SECONDS = 900.0
# botocore's standard backoff: rand(0, 1) * min(scale * 2 ** (attempt - 1), 20) seconds, the
# scale 1 s after throttling (less after other errors): this is its longest sleep.
MAX_BACKOFF_SECONDS = 20.0
# Threads of one gather(): S3 reads of a turn's attachments (at most 25). The clients' pools
# hold 20 connections; eight keep well inside them while taking most of the wait away.
GATHER_WORKERS = 8
# What must still fit before the deadline when an attempt of each service starts. A model call
# is not started without the time to store its outcome; its own length is bounded by the
# stream's reading (WebSocket) or the model, not by a read timeout.
_ATTEMPT_SECONDS = {
    "dynamodb": DYNAMODB_ATTEMPT_SECONDS,
    "bedrock-runtime": STORE_SECONDS,
    "bedrock-agent-runtime": STORE_SECONDS,
}


T = TypeVar("T")


class _Context(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class DeadlineExceeded(Throttled):
    """No time is left to try (again) before the invocation must answer; retry later."""


@dataclass(frozen=True)
class Deadline:
    """The moment (``time.monotonic()``) by which the invocation must have answered, and the
    invocation's whole time (seconds) until then."""

    at: float
    total: float

    @classmethod
    def of(cls, context: _Context | object, limit_seconds: float | None = None) -> Deadline:
        """The invocation's deadline: Lambda's remaining time, or ``limit_seconds`` from now
        (REST's integration timeout) when that comes first."""
        countdown = getattr(context, "get_remaining_time_in_millis", None)
        remaining = countdown() / 1000 if callable(countdown) else NO_CONTEXT_SECONDS
        if limit_seconds is not None:
            remaining = min(remaining, limit_seconds)
        return cls(time.monotonic() + remaining, remaining)

    def remaining(self) -> float:
        """Seconds until the deadline (negative once past it)."""
        return self.at - time.monotonic()

    def needs(self, seconds: float) -> float:
        """What must be left for ``seconds`` of work and the answer (see :data:`MAX_SHARE`)."""
        return min(seconds + ANSWER_SECONDS, self.total * MAX_SHARE)

    def require(self, seconds: float, doing: str) -> None:
        """:class:`DeadlineExceeded` unless ``seconds`` and the answer still fit."""
        if self.remaining() < self.needs(seconds):
            raise DeadlineExceeded(f"no time left for {doing} before the deadline; retry later")

    def sleep(self, seconds: float, then_needs: float, doing: str) -> None:
        """Pause ``seconds`` between tries, when the pause and the next try still fit."""
        self.require(seconds + then_needs, doing)
        time.sleep(seconds)


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the invocation running in this context, if one is bound."""
    return _current.get()


@contextmanager
def bound(deadline: Deadline) -> Iterator[Deadline]:
    """Bind ``deadline`` for the code (and the threads started with a copy of this context)
    running inside the block."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def require(seconds: float, doing: str) -> None:
    """:meth:`Deadline.require` on the bound deadline; nothing without one."""
    deadline = current()
    if deadline is not None:
        deadline.require(seconds, doing)


def pause(seconds: float, then_needs: float, doing: str) -> None:
    """:meth:`Deadline.sleep` on the bound deadline; a plain sleep without one."""
    deadline = current()
    if deadline is None:
        time.sleep(seconds)
    else:
        deadline.sleep(seconds, then_needs, doing)


def beside(call: Callable[[], T], name: str) -> queue.SimpleQueue[tuple[bool, Any]]:
    """Start ``call`` on a daemon thread ``name``, in a copy of this context (the bound
    deadline) and this X-Ray trace entity, so it is bounded and traced like the invocation;
    its outcome arrives on the queue as ``(True, result)`` or ``(False, exception)``. Nobody
    joins the thread: a caller that stops waiting leaves it to finish on its own."""
    outcome: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    carried = _carried(call)

    def run() -> None:
        try:
            outcome.put((True, carried()))
        except BaseException as error:  # handed to whoever reads the queue
            outcome.put((False, error))

    threading.Thread(target=run, name=name, daemon=True).start()
    return outcome


def _carried(call: Callable[[], T]) -> Callable[[], T]:
    """``call``, to run on another thread in a copy of this context (the bound deadline) and
    this X-Ray trace entity, taken now."""
    context = contextvars.copy_context()
    trace_entity = None if tracer.disabled else tracer.provider.get_trace_entity()

    def run() -> T:
        if trace_entity is not None:
            tracer.provider.set_trace_entity(trace_entity)
        return context.run(call)

    return run


def gather(
    calls: Sequence[Callable[[], T]],
    name: str,
    *,
    workers: int = GATHER_WORKERS,
    discard: Callable[[T], None] | None = None,
) -> list[T]:
    """The results of ``calls``, run at once on at most ``workers`` threads ``name``, each in
    a copy of this context and this X-Ray trace entity (as :func:`beside`): independent AWS
    calls then take as long as the slowest, not their sum, each bounded by the deadline.
    Returns once every call has ended. When any failed, the first failure in ``calls``' order
    is raised, after ``discard`` was given every result that did arrive (to close what it
    holds). One call runs here, on this thread."""
    if len(calls) <= 1:
        return [call() for call in calls]
    from concurrent.futures import ThreadPoolExecutor  # deferred: few turns need a pool

    with ThreadPoolExecutor(min(workers, len(calls)), thread_name_prefix=name) as pool:
        futures = [pool.submit(_carried(call)) for call in calls]
    failures = [error for future in futures if (error := future.exception()) is not None]
    if not failures:
        return [future.result() for future in futures]
    if discard is not None:
        for future in futures:
            if future.exception() is None:
                discard(future.result())
    raise failures[0]


def bounded(call: Callable[[], T], *, keep: float, late: Callable[[], Exception]) -> T:
    """``call()``, given up (``late()`` is raised) when it has not returned while ``keep``
    seconds and the answer's are still left before the bound deadline; without a deadline,
    simply ``call()``.

    For the one call whose length botocore cannot bound per request: a model's whole answer
    (``converse``), whose read timeout is minutes. The call runs on a daemon thread with this
    context and X-Ray trace entity (so it shows in the invocation's trace); given up, it is left
    to finish or fail on its own, and its result is dropped.
    """
    bound = current()
    if bound is None:
        return call()
    outcome = beside(call, "bounded-call")
    try:
        succeeded, value = outcome.get(timeout=max(bound.remaining() - bound.needs(keep), 0))
    except queue.Empty:
        raise late() from None
    if not succeeded:
        raise value
    return value


def install(client: BaseClient, service: str) -> None:
    """Keep every attempt of ``client`` inside the bound deadline (see the module docstring).

    ``before-send`` is checked first and again last, after adaptive mode's rate limiter has
    waited: an attempt (longer than the limiter's longest wait) that passed the first check
    and fails the second still leaves the answer its time. ``needs-retry`` stops a retry whose
    longest backoff and attempt would not fit, before botocore sleeps.
    """
    attempt = _ATTEMPT_SECONDS.get(service)
    if attempt is None:
        return
    events = client.meta.events
    check = _before_send(attempt, service)
    events.register_first("before-send", check, unique_id="deadline-before-send-first")
    events.register_last("before-send", check, unique_id="deadline-before-send-last")
    events.register_first(
        "needs-retry", _needs_retry(attempt, service), unique_id="deadline-needs-retry"
    )


def _before_send(attempt: float, service: str) -> Callable[..., None]:
    def check(**_: Any) -> None:
        require(attempt, f"another {service} request")

    return check


def _needs_retry(attempt: float, service: str) -> Callable[..., None]:
    def check(
        attempts: int,
        response: tuple[Any, dict[str, Any]] | None = None,
        caught_exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        deadline = current()
        if deadline is None or not _retryable(response, caught_exception):
            return
        backoff = min(2.0 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        if deadline.remaining() < backoff + deadline.needs(attempt):
            error = DeadlineExceeded(f"no time left to retry {service} before the deadline")
            raise error from caught_exception

    return check


def _retryable(
    response: tuple[Any, dict[str, Any]] | None, caught_exception: BaseException | None
) -> bool:
    """Whether botocore may retry this outcome: a transport failure, throttling or a 5xx
    (the failures its standard policy retries), never a success or a request's own error."""
    if caught_exception is not None:
        return isinstance(caught_exception, ConnectionError | HTTPClientError)
    if response is None:
        return False
    http, parsed = response
    status = getattr(http, "status_code", 0) or 0
    if status < 400:
        return False
    error = ClientError(parsed, "attempt")
    return status >= 500 or is_throttling(error)
