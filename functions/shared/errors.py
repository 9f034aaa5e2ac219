"""Domain errors raised by the business logic, and the one place AWS errors are classified.

The store and the chat service raise these; the REST layer turns them into HTTP statuses and the
WebSocket layer into error frames, so both transports agree on what went wrong. ``code`` is the
stable machine-readable name both transports expose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.eventstream import ParserError
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

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
    """Base of every error a client can be told about; ``message`` is safe to show."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DomainError):
    """The request is malformed or asks for something the configuration does not allow."""

    code = "bad_request"


class Unauthorized(DomainError):
    """No caller identity reached the function (the authorizer did not run or said nothing)."""

    code = "unauthorized"


class NotFound(DomainError):
    """The resource is missing *or belongs to someone else*: callers cannot tell the two apart."""

    code = "not_found"


class Conflict(DomainError):
    """The request lost a race with another one for the same thing (a retried question)."""

    code = "conflict"


class Throttled(DomainError):
    """AWS kept saying "slow down" after botocore's retries; the client should retry later."""

    code = "throttled"

    def __init__(self, message: str, retry_after: int = DEFAULT_RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(DomainError):
    """A dependency (Bedrock) refused the request for a reason the client cannot fix."""

    code = "upstream_error"


def is_throttling(error: ClientError) -> bool:
    """Whether an AWS error means "too many requests" rather than "this request is wrong"."""
    code = str(error.response.get("Error", {}).get("Code", "")).lower()
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _THROTTLING_CODES or status in _THROTTLING_STATUSES


def error_code(error: ClientError) -> str:
    """The AWS error code, e.g. ``ConditionalCheckFailedException``."""
    return str(error.response.get("Error", {}).get("Code", ""))


def translate(error: Exception) -> DomainError | None:
    """Map an exception escaping the business logic to a domain error, or None if it is a bug.

    Throttling is the only AWS failure a client can act on (by waiting); connection failures to
    AWS are reported the same way because waiting is also the right reaction to them.
    """
    if isinstance(error, DomainError):
        return error
    if isinstance(error, ClientError) and is_throttling(error):
        operation = error.operation_name or "AWS"
        return Throttled(f"{operation} is throttled; retry later")
    if isinstance(error, ClientError) and _status(error) >= 500:
        operation = error.operation_name or "AWS"
        return Throttled(f"{operation} failed on AWS's side; retry later")
    if isinstance(error, ConnectionError | HTTPClientError):
        return Throttled("an AWS dependency is unreachable; retry later")
    if isinstance(error, _STREAM_TRANSPORT_ERRORS):
        return UpstreamError("the model stream broke off (a transport error); retry")
    return None


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


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
