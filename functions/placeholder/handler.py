"""Stand-in code for ``code_deployment_mode = "external"``: the stack creates the functions,
and a separate pipeline uploads the real packages. Until it does, every caller learns why
nothing works instead of getting a generic failure; an authorizer call is denied, and a stream
batch fails, so that its records are retried rather than consumed."""

from __future__ import annotations

import json
import os
from typing import Any

MESSAGE = (
    "This function has no code yet: it was created with code_deployment_mode = 'external'. "
    "Deploy the package from `make package` with `aws lambda update-function-code`."
)


def handler(event: Any, context: Any) -> dict[str, Any]:
    print(
        json.dumps(
            {
                "level": "WARNING",
                "message": MESSAGE,
                "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            }
        )
    )
    if (
        isinstance(event, dict)
        and event.get("type") in ("TOKEN", "REQUEST")
        and "methodArn" in event
    ):
        raise Exception("Unauthorized")
    if isinstance(event, dict) and "Records" in event:
        # A stream batch (the session cleanup): answering would count as success and drop
        # the records; failing keeps them for retries and, after those, the failure queue.
        raise RuntimeError(MESSAGE)
    return {
        "statusCode": 503,
        "headers": {"Content-Type": "application/json", "Retry-After": "60"},
        "body": json.dumps({"error": {"code": "not_deployed", "message": MESSAGE}}),
    }
