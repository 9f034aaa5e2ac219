"""Every REST error, in one body shape: ``{"error": {"code", "message", "details"?}}``.

Status and code come from the domain error itself (:mod:`functions.domain.errors`), the same
attributes the WebSocket function answers with. Request validation failures are 400 (not
FastAPI's 422), the status of the semantic checks too (e.g. an unknown ``model_id``), so clients
see one status for "fix your request". Throttling is 503 with ``Retry-After``; a dependency
that fails or cannot be reached is 502.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.core.asgi import ErrorsBeforeStart
from functions.domain.errors import (
    BadRequest,
    DomainError,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    invalid_request,
)
from functions.main.schemas import ErrorResponse

# The errors the router itself raises (no route, wrong method...), by status.
_FRAMEWORK_ERRORS = {
    kind.status: kind for kind in (BadRequest, Unauthorized, NotFound, MethodNotAllowed)
}
ERROR = {"model": ErrorResponse}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
# Documented on every route. "default" also stops FastAPI from documenting its own 422 shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**ERROR, "description": "The request is malformed or not allowed."},
    502: {
        **ERROR,
        "description": (
            "A dependency failed: `dependency_unreachable` when DynamoDB or Bedrock could not "
            "be connected to at all (the deployment's network or endpoint settings), "
            "`upstream_error` when it refused the request."
        ),
    },
    503: {
        **ERROR,
        "description": "Throttled; retry after `Retry-After`.",
        "headers": _RETRY_AFTER,
    },
    "default": {**ERROR, "description": "Any other error, in the same shape."},
}
# The turns that call the model: refused, without a model call, when the caller is over budget.
TURN_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        **ERROR,
        "description": (
            "`quota_exceeded`: the caller's token budget for a period is spent (`quota` says "
            "which, its limit, the use and when it resets; `Retry-After` is the seconds until "
            "then). `busy`: the caller has as many answers generating as allowed."
        ),
        "headers": _RETRY_AFTER,
    },
}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**ERROR, "description": "No authenticated caller."},
    **ERROR_RESPONSES,
}
SESSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {**ERROR, "description": "No such session for this caller."},
    **AUTH_RESPONSES,
}
IDEMPOTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    409: {
        **ERROR,
        "description": "`in_progress`: the request with this Idempotency-Key is still running.",
    },
    422: {
        **ERROR,
        "description": "`idempotency_key_reused`: the key was used for a different request.",
    },
}


def error_response(error: DomainError) -> JSONResponse:
    """The response for ``error``: its status, its code, its fields, and ``Retry-After`` when
    it says when to retry."""
    details = error.details if isinstance(error, BadRequest) else ()
    body = ErrorResponse.model_validate(
        {
            "error": {
                "code": error.code,
                "message": error.message,
                "details": [vars(problem) for problem in details] or None,
                **error.fields(),
            }
        }
    )
    response = JSONResponse(body.model_dump(mode="json", exclude_none=True), error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def _on_validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(invalid_request(error.errors()))


async def _on_http_error(_: Request, error: Exception) -> JSONResponse:
    """Starlette's own errors (no route, wrong method), as the domain error of their status."""
    assert isinstance(error, StarletteHTTPException)
    kind = _FRAMEWORK_ERRORS.get(
        error.status_code, BadRequest if error.status_code < 500 else DomainError
    )
    response = error_response(kind(str(error.detail)))
    response.status_code = error.status_code
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


def install(app: FastAPI) -> None:
    """Route every error of ``app`` through :func:`error_response`."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(ErrorsBeforeStart, respond=error_response)
