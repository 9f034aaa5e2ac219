"""The OpenAI-compatible API as an ordinary ASGI app, for uvicorn behind the Lambda Web Adapter
(``run.sh``) and for ``make dev``.

``GET /v1/models`` lists the configured models; ``POST /v1/chat/completions`` answers with one
body or, with ``stream: true``, a stream of server-sent events that leave as the model writes
them. Identity and the invocation's deadline come from the adapter's headers
(:mod:`functions.openai_api.invocation`); every error is in OpenAI's shape
(:mod:`functions.openai_api.errors`).

The blocking work (boto3) never runs on the event loop: a request's turn is started on a worker
thread, and a stream's lines are produced on a thread of their own, which hands each line to
the loop as soon as it exists (:class:`Relay`). The producer reads the model to the end even
when the client goes away, and the request ends only after it, so the answer is stored (and
its budget settled) whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from functions.chat.service import ChatService
from functions.contract import OPENAI_BASE_PATH, REST_INTEGRATION_TIMEOUT_SECONDS
from functions.core import deadline
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.data.attachments import AttachmentStore
from functions.data.turns import Store
from functions.domain.errors import client_input
from functions.openai_api import errors, invocation
from functions.openai_api.completions import Binding, Turn, answer, start_stream
from functions.openai_api.schemas import CompletionRequest, models_body, parse_request
from functions.openai_api.settings import Settings

T = TypeVar("T")
# Headers that keep proxies from buffering the stream.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

app = FastAPI(
    title="AI Assistant OpenAI-compatible API",
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
)
errors.install(app)


@app.get(OPENAI_BASE_PATH + "/models")
async def list_models(request: Request) -> JSONResponse:
    invocation.caller(request.headers)
    return JSONResponse(models_body(get_settings(Settings).bedrock_models))


@app.post(OPENAI_BASE_PATH + "/chat/completions")
async def chat_completions(request: Request) -> Response:
    user_id = invocation.caller(request.headers)
    raw = await request.body()
    with client_input("the request body must be a JSON object"):
        body = json.loads(raw)
    completion = parse_request(body)
    binding = Binding.of(request.headers)
    if not completion.stream:
        # A REST integration answers within 29 s, whatever the function's own timeout.
        limit = invocation.invocation_deadline(request.headers, REST_INTEGRATION_TIMEOUT_SECONDS)
        turn, result = await run_in_threadpool(
            partial(_bound, limit, _answer, user_id, completion, binding)
        )
        return JSONResponse(result, headers=turn.headers)
    # A streaming integration may run until the function's own timeout.
    limit = invocation.invocation_deadline(request.headers, None)
    turn, lines, context = await run_in_threadpool(
        partial(_bound, limit, _start, user_id, completion, binding)
    )
    relay = Relay(lines, context)
    return StreamingResponse(
        relay.lines(),
        media_type="text/event-stream",
        headers=SSE_HEADERS | turn.headers,
        background=BackgroundTask(relay.finished),
    )


def _bound(limit: deadline.Deadline, work: Callable[..., T], *args: Any) -> T:
    with deadline.bound(limit):
        return work(limit, *args)


def _turn(user_id: str, completion: CompletionRequest, binding: Binding) -> Turn:
    settings = get_settings(Settings)
    chat = ChatService(
        settings,
        Store.from_settings(settings),
        attachments=AttachmentStore(settings.attachments_bucket),
    )
    return Turn.resolve(chat, user_id, completion, binding)


def _answer(
    limit: deadline.Deadline, user_id: str, completion: CompletionRequest, binding: Binding
) -> tuple[Turn, dict[str, Any]]:
    turn = _turn(user_id, completion, binding)
    return turn, answer(turn, limit)


def _start(
    limit: deadline.Deadline, user_id: str, completion: CompletionRequest, binding: Binding
) -> tuple[Turn, Iterator[bytes], contextvars.Context]:
    """The turn started, its lines, and the context (the bound deadline) to produce them in."""
    turn = _turn(user_id, completion, binding)
    return turn, start_stream(turn, limit), contextvars.copy_context()


class Relay:
    """The stream's lines, produced on a thread of their own (with the bound deadline) and
    handed to the event loop one by one as they exist.

    The request ends only once the producer has (:meth:`finished`, run after the response
    even when the client went away): the answer is read to its end, stored and charged
    before the invocation is over.
    """

    def __init__(self, lines: Iterator[bytes], context: contextvars.Context) -> None:
        self._lines = lines
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._thread = threading.Thread(
            target=context.run, args=(self._produce,), name="sse", daemon=True
        )
        self._thread.start()

    def _hand_over(self, line: bytes | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens any more
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, line)

    def _produce(self) -> None:
        try:
            for line in self._lines:
                self._hand_over(line)
        except Exception:  # the lines end with an error event themselves; this is a bug
            logger.exception("producing the stream failed")
        finally:
            self._hand_over(None)

    async def lines(self) -> AsyncIterator[bytes]:
        while (line := await self._inbox.get()) is not None:
            yield line

    async def finished(self) -> None:
        await run_in_threadpool(self._thread.join)
