"""Lambda entry point of the main function: API Gateway REST (v1 proxy) events through Mangum.

The REST API's proxy events carry the resource path without the stage (``/api/v1/sessions``),
and the routes are declared with that full path, so Mangum strips no base path.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from functions.contract import REST_INTEGRATION_TIMEOUT_SECONDS
from functions.core import deadline
from functions.core.observability import logger, metrics, tracer
from functions.main.app import app

_asgi = Mangum(app, lifespan="off", api_gateway_base_path="/")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # answers hold users' chats
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer within the invocation's deadline: Lambda's timeout or API Gateway's integration
    timeout, whichever comes first (past the latter the client has API Gateway's 504)."""
    limit = deadline.Deadline.of(context, REST_INTEGRATION_TIMEOUT_SECONDS)
    with deadline.bound(limit):
        return _asgi(event, context)
