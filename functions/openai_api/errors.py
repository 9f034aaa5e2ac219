"""Errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so that the
clients built for OpenAI (its SDKs, ``llm``, aider) raise their own exception for each.

The HTTP status, ``Retry-After`` and ``code`` come from the project's error model
(:mod:`functions.domain.errors`): ``code`` is this project's code (``quota_exceeded``,
``busy``...), not OpenAI's, and ``type`` is the OpenAI type of the status, which is what the
clients read. ``param`` names the request field at fault, when one is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.core.asgi import ErrorsBeforeStart
from functions.domain.errors import BadRequest, DomainError, MethodNotAllowed, NotFound

# OpenAI's error type per status (what its SDKs and the clients on them branch on).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class InvalidParameter(BadRequest):
    """A request field this API cannot honour: the message says why, ``param`` which field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(error: DomainError) -> dict[str, Any]:
    """``{"error": {...}}`` for ``error``, in OpenAI's shape."""
    return {
        "error": {
            "message": error.message,
            "type": error_type(error.status),
            "param": getattr(error, "param", None),
            "code": error.code,
        }
    }


def error_response(error: DomainError) -> JSONResponse:
    """The error's status and body, and ``Retry-After`` when the error says when to retry."""
    response = JSONResponse(error_body(error), error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def _on_http_error(_: Request, error: Exception) -> JSONResponse:
    """Starlette's own errors (no route, wrong method), in the same shape."""
    assert isinstance(error, StarletteHTTPException)
    kind = {404: NotFound, 405: MethodNotAllowed}.get(error.status_code, BadRequest)
    response = error_response(kind(str(error.detail)))
    response.status_code = error.status_code
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(ErrorsBeforeStart, respond=error_response)
