"""Which AWS and library errors become which domain error, on their own."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from functions.core.aws_errors import translate
from functions.domain.errors import DependencyUnreachable, Throttled


def _client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Converse")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("throttlingException", 400),  # Bedrock's event-stream spelling
        ("ProvisionedThroughputExceededException", 400),
        ("RequestLimitExceeded", 400),
        ("ServiceQuotaExceededException", 400),
        ("ServiceUnavailableException", 503),
    ],
)
def test_throttling_errors_become_throttled(code: str, status: int) -> None:
    assert isinstance(translate(_client_error(code, status)), Throttled)


def test_other_errors_are_not_translated() -> None:
    assert translate(_client_error("ValidationException", 400)) is None
    assert translate(ValueError("bug")) is None


@pytest.mark.parametrize("kind", [EndpointConnectionError, ConnectTimeoutError])
def test_an_endpoint_that_cannot_be_connected_to_is_unreachable_not_throttled(
    kind: type[Exception],
) -> None:
    """A dependency failure (502) naming the host, never ``throttled``: no amount of waiting
    fixes a wrong endpoint or a missing network route."""
    url = "https://bedrock-agent.us-east-1.amazonaws.com/knowledgebases/"
    error = translate(kind(endpoint_url=url))
    assert isinstance(error, DependencyUnreachable)
    assert (error.code, error.status, error.retry_after) == ("dependency_unreachable", 502, None)
    assert "could not connect to bedrock-agent.us-east-1.amazonaws.com" in error.message
    assert "network or endpoint settings" in error.message


def test_an_endpoint_that_answers_too_slowly_is_still_throttled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retryable for the client; the operator's log names the slow endpoint, which the
    client's message does not."""
    error = translate(ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert isinstance(error, Throttled)
    assert "did not answer in time" in error.message
    logged = [(record.levelname, getattr(record, "host", None)) for record in caplog.records]
    assert logged == [("WARNING", "127.0.0.1:9")]
