"""Domain errors raised by the business logic, and the one place AWS errors are classified.

The store and the chat service raise these; the REST layer turns them into HTTP responses and the
WebSocket layer into error frames, both from the same attributes of the error (``code`` and
``status``), so the two transports cannot disagree on what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from botocore.eventstream import ParserError
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from functions.shared.observability import count, logger

DEFAULT_RETRY_AFTER_SECONDS = 2

# Error codes AWS uses for "slow down", after botocore's adaptive retries gave up. Bedrock's
# event streams spell them in camelCase (``throttlingException``), hence the case-folding.
_THROTTLING_CODES = frozenset(
    code.lower()
    for code in (
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
    )
)
_THROTTLING_STATUSES = frozenset({429, 503})
# A response stream that breaks mid-way: the connection reset or closed (botocore wraps what
# urllib3 raises), or an event-stream frame that fails its length or CRC checks.
_STREAM_TRANSPORT_ERRORS = (ResponseStreamingError, ParserError, Urllib3Error)


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


def _hierarchy(kind: type[DomainError]) -> list[type[DomainError]]:
    return [kind] + [sub for child in kind.__subclasses__() for sub in _hierarchy(child)]


# Every error class, and so every code either transport can answer with, "internal" last.
ERRORS: tuple[type[DomainError], ...] = (*_hierarchy(DomainError)[1:], DomainError)
ERROR_CODES: tuple[str, ...] = tuple(dict.fromkeys(kind.code for kind in ERRORS))


def is_throttling(error: ClientError) -> bool:
    """Whether an AWS error means "too many requests" rather than "this request is wrong"."""
    code = str(error.response.get("Error", {}).get("Code", "")).lower()
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _THROTTLING_CODES or status in _THROTTLING_STATUSES


def error_code(error: ClientError) -> str:
    """The AWS error code, e.g. ``ConditionalCheckFailedException``."""
    return str(error.response.get("Error", {}).get("Code", ""))


_Matcher = Callable[[Exception], bool]
_Maker = Callable[[Exception], DomainError]


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _aws_throttling(error: Exception) -> bool:
    return isinstance(error, ClientError) and is_throttling(error)


def _aws_server_error(error: Exception) -> bool:
    return isinstance(error, ClientError) and _status(error) >= 500


def _operation(error: Exception) -> str:
    return getattr(error, "operation_name", None) or "AWS"


# The one table of library exceptions a client can act on, first match wins; anything else
# that escapes the business logic is a bug. Throttling is the only AWS failure a client can
# act on (by waiting), and waiting is also the right reaction to AWS's own failures and to an
# unreachable endpoint. Client input that fails to decode (JSON, base64, UTF-8, pydantic) is
# mapped where it is read, by :func:`client_input` and :func:`invalid_request`: the same
# exceptions raised anywhere else are bugs, not the client's fault.
_LIBRARY_ERRORS: tuple[tuple[_Matcher, _Maker], ...] = (
    (_aws_throttling, lambda error: Throttled(f"{_operation(error)} is throttled; retry later")),
    (
        _aws_server_error,
        lambda error: Throttled(f"{_operation(error)} failed on AWS's side; retry later"),
    ),
    (
        lambda error: isinstance(error, ConnectionError | HTTPClientError),
        lambda _: Throttled("an AWS dependency is unreachable; retry later"),
    ),
    (
        lambda error: isinstance(error, _STREAM_TRANSPORT_ERRORS),
        lambda _: UpstreamError("the model stream broke off (a transport error); retry"),
    ),
)


def translate(error: Exception) -> DomainError | None:
    """Map an exception escaping the business logic to a domain error, or None if it is a bug."""
    if isinstance(error, DomainError):
        return error
    return next((make(error) for matches, make in _LIBRARY_ERRORS if matches(error)), None)


def for_client(error: Exception) -> DomainError:
    """What either transport tells the client about ``error``: its domain error, or for a bug
    ``internal`` (logged with its traceback and counted as ``ServerErrors``)."""
    domain = translate(error)
    if domain is None:
        logger.exception("unhandled error")
        count("ServerErrors")
        return DomainError("internal error")
    if isinstance(domain, Throttled):
        count("Throttled")
    return domain


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


@contextmanager
def upstream_errors(what: str, not_found: str | None = None) -> Iterator[None]:
    """Classify a failed call to a dependency (Bedrock): throttling stays retryable (503), a
    missing resource the client named is its mistake (``not_found`` is then the message of a
    :class:`BadRequest`), anything else is the dependency's failure (:class:`UpstreamError`).
    """
    try:
        yield
    except DomainError:
        raise
    except Exception as error:
        domain = translate(error)
        if domain is not None:
            raise domain from error
        if not isinstance(error, ClientError):
            raise
        code = error_code(error)
        if not_found and code == "ResourceNotFoundException":
            raise BadRequest(not_found) from error
        raise UpstreamError(f"{what} failed ({code})") from error
