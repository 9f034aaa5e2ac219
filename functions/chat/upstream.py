"""How a failed call to Bedrock becomes a domain error the client can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError

from functions.core.aws_errors import error_code, translate
from functions.domain.errors import BadRequest, DomainError, UpstreamError


@contextmanager
def upstream_errors(what: str, not_found: str | None = None) -> Iterator[None]:
    """Classify a failed call to a dependency (Bedrock): throttling stays retryable (503), an
    endpoint that cannot be connected to is :class:`DependencyUnreachable` (502, from
    :func:`translate`), a missing resource the client named is its mistake (``not_found`` is
    then the message of a :class:`BadRequest`), anything else is the dependency's failure
    (:class:`UpstreamError`).
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
