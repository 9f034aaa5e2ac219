"""Which AWS and library failures mean what to a client: the one place they are classified.

The business logic raises :mod:`functions.domain.errors`; what escapes it from botocore or
urllib3 is mapped here (:func:`translate`), and :func:`for_client` is what either transport
answers with, logging and counting the bugs. It lives in ``core``, not beside the error tree,
so the domain layer stays free of botocore and Powertools.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from botocore.eventstream import ParserError
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from functions.core.observability import count, logger
from functions.domain.errors import DependencyUnreachable, DomainError, Throttled, UpstreamError

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


def is_throttling(error: ClientError) -> bool:
    """Whether an AWS error means "too many requests" rather than "this request is wrong"."""
    code = str(error.response.get("Error", {}).get("Code", "")).lower()
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _THROTTLING_CODES or status in _THROTTLING_STATUSES


def error_code(error: ClientError) -> str:
    """The AWS error code, e.g. ``ConditionalCheckFailedException``."""
    return str(error.response.get("Error", {}).get("Code", ""))


def condition_failed(error: ClientError) -> bool:
    """Whether a DynamoDB write was refused by its condition (not by a fault)."""
    return error_code(error) == "ConditionalCheckFailedException"


def was_retried(error: ClientError) -> bool:
    """Whether botocore made more than one attempt at the call that failed: an earlier one
    may have applied, its reply lost."""
    return bool(error.response.get("ResponseMetadata", {}).get("RetryAttempts"))


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


def _host(error: Exception) -> str:
    """The host botocore could not connect to (its endpoint or proxy URL), else "AWS"."""
    kwargs = getattr(error, "kwargs", {})
    url = str(kwargs.get("endpoint_url") or kwargs.get("proxy_url") or "")
    return urlsplit(url).netloc or "AWS"


def _unreachable(error: Exception) -> DependencyUnreachable:
    """Logged for the operator, who can fix it; the client is told what happened."""
    host = _host(error)
    logger.warning("an AWS endpoint is unreachable", extra={"host": host, "error": str(error)})
    return DependencyUnreachable(
        f"a dependency is unreachable: could not connect to {host}; if this persists, the "
        "deployment's network or endpoint settings need fixing"
    )


def _late(error: Exception) -> Throttled:
    """Logged with the endpoint, so the operator can tell which dependency was slow; the
    client only needs to know it may retry."""
    logger.warning(
        "an AWS endpoint did not answer in time", extra={"host": _host(error), "error": str(error)}
    )
    return Throttled("an AWS dependency did not answer in time; retry later")


# The one table of library exceptions a client can act on, first match wins; anything else
# that escapes the business logic is a bug. Throttling is the only AWS failure a client can
# act on (by waiting), and waiting is also the right reaction to AWS's own failures and to an
# endpoint that did not answer in time. An endpoint that cannot be connected to at all is the
# deployment's failure (its network, VPC endpoints or endpoint URL): a dependency failure of
# its own code, not throttling. Client input that fails to decode (JSON, base64, UTF-8, pydantic) is
# mapped where it is read, by :func:`client_input` and :func:`invalid_request`: the same
# exceptions raised anywhere else are bugs, not the client's fault.
_LIBRARY_ERRORS: tuple[tuple[_Matcher, _Maker], ...] = (
    (_aws_throttling, lambda error: Throttled(f"{_operation(error)} is throttled; retry later")),
    (
        _aws_server_error,
        lambda error: Throttled(f"{_operation(error)} failed on AWS's side; retry later"),
    ),
    (lambda error: isinstance(error, ConnectionError), _unreachable),
    (lambda error: isinstance(error, HTTPClientError), _late),
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
