"""The error middleware both ASGI apps (the main API, the OpenAI-compatible one) put outermost,
each with its own error shape."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.core.aws_errors import for_client
from functions.domain.errors import DomainError


class ErrorsBeforeStart:
    """Answer every exception a route raises, before its response started, with ``respond``
    of its domain error (:func:`~functions.core.aws_errors.for_client`: only bugs are 500s).
    Once the response has started the exception goes on up: a stream ends its own way.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) costs a
    task group and memory streams on every request, a large share of a warm invocation.
    """

    def __init__(self, app: ASGIApp, respond: Callable[[DomainError], Response]) -> None:
        self.app = app
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            if started or scope["type"] != "http":
                raise
            await self.respond(for_client(error))(scope, receive, send)
