"""The domain errors: every failure a client can be told about, each with its meaning for both
transports.

The store and the chat service raise these; the REST layer turns them into HTTP responses and the
WebSocket layer into error frames, both from the same attributes of the error (``code`` and
``status``), so the two transports cannot disagree on what went wrong. Which AWS and library
failures map to which of them is :mod:`functions.core.aws_errors`; this module is pure, so any
layer can raise these without loading botocore or Powertools.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

DEFAULT_RETRY_AFTER_SECONDS = 2


class DomainError(Exception):
    """Base of every error a client can be told about; ``message`` is safe to show.

    Each subclass carries its whole meaning for both transports: ``code`` is the stable name in
    the REST error body and in the WebSocket error frame alike, ``status`` the HTTP status. The
    base itself stands for a bug: ``internal``, 500.
    """

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    retry_after: int | None = None  # seconds: REST's Retry-After, the error frame's retry_after

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, Any]:
        """What the error says beyond code and message, in both transports' bodies."""
        return {}


@dataclass(frozen=True)
class FieldProblem:
    """One invalid part of a request: where (``body.model_id``) and what is wrong with it."""

    field: str
    message: str


class BadRequest(DomainError):
    """The request is malformed or asks for something the configuration does not allow."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, details: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class Unauthorized(DomainError):
    """No caller identity reached the function (the authorizer did not run or said nothing)."""

    code = "unauthorized"
    status = 401


class NotFound(DomainError):
    """The resource is missing *or belongs to someone else*: callers cannot tell the two apart."""

    code = "not_found"
    status = 404


class MethodNotAllowed(DomainError):
    """The path exists, but not with this method (only the REST router raises it)."""

    code = "method_not_allowed"
    status = 405


class Conflict(DomainError):
    """The request lost a race with another one for the same thing (a retried question)."""

    code = "conflict"
    status = 409


class InProgress(DomainError):
    """The original request with this idempotency key is still running; retry after it ends."""

    code = "in_progress"
    status = 409


class KeyReused(DomainError):
    """The idempotency key was used for a request with another body."""

    code = "idempotency_key_reused"
    status = 422


class AttachmentRejected(DomainError):
    """An attachment the model could not take: a type Converse does not accept, a size over its
    format's limit, or content that is not what it claims to be. The message names the rule."""

    code = "attachment_rejected"
    status = 422


class Throttled(DomainError):
    """AWS kept saying "slow down" after botocore's retries; the client should retry later."""

    code = "throttled"
    status = 503

    def __init__(self, message: str, retry_after: int = DEFAULT_RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class QuotaState:
    """One budget period of a user at the moment a turn was refused."""

    period: str  # "day" or "month"
    limit: int
    used: int
    resets_at: str  # ISO-8601 UTC, when the next period starts


class QuotaExceeded(DomainError):
    """The user's token budget for a period is spent: no turn until it resets."""

    code = "quota_exceeded"
    status = 429

    def __init__(self, message: str, quota: QuotaState, retry_after: int) -> None:
        super().__init__(message)
        self.quota = quota
        self.retry_after = retry_after

    def fields(self) -> dict[str, Any]:
        return {"quota": asdict(self.quota)}


class Busy(DomainError):
    """The user already has as many answers generating as allowed; retry when one ends."""

    code = "busy"
    status = 429

    def __init__(self, message: str, retry_after: int = DEFAULT_RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(DomainError):
    """A dependency (Bedrock) refused the request for a reason the client cannot fix."""

    code = "upstream_error"
    status = 502


class DependencyUnreachable(UpstreamError):
    """A dependency's endpoint could not be connected to at all (a network, VPC endpoint or
    endpoint-URL problem of the deployment): a dependency failure, not throttling, so no
    ``Retry-After`` promises it will pass."""

    code = "dependency_unreachable"


def _hierarchy(kind: type[DomainError]) -> list[type[DomainError]]:
    return [kind] + [sub for child in kind.__subclasses__() for sub in _hierarchy(child)]


# Every error class, and so every code either transport can answer with, "internal" last.
ERRORS: tuple[type[DomainError], ...] = (*_hierarchy(DomainError)[1:], DomainError)
ERROR_CODES: tuple[str, ...] = tuple(dict.fromkeys(kind.code for kind in ERRORS))


@contextmanager
def client_input(rule: str) -> Iterator[None]:
    """Decode what a client sent (JSON, base64, UTF-8): a failure, including JSON nested too
    deep for the parser, is :class:`BadRequest` saying ``rule``, never a 500."""
    try:
        yield
    except (ValueError, RecursionError):  # JSONDecodeError, binascii.Error, UnicodeError
        raise BadRequest(rule) from None


def invalid_request(problems: Iterable[Mapping[str, Any]]) -> BadRequest:
    """A request that failed validation, from pydantic's error list (``loc``, ``msg``)."""
    details = tuple(
        FieldProblem(
            field=".".join(str(part) for part in problem.get("loc", ())),
            message=str(problem.get("msg", "invalid")),
        )
        for problem in problems
    )
    return BadRequest("the request is invalid", details)
