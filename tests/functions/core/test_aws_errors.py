"""Which AWS and library errors become which domain error, on their own."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from functions.core.aws_errors import translate
from functions.domain.errors import Throttled


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
    assert isinstance(translate(EndpointConnectionError(endpoint_url="http://x")), Throttled)
