"""The floor of the SSE figures (bench/sse.py): the cheapest ASGI app that does the same job.

``POST /v1/chat/completions`` calls ``converse_stream`` and yields each delta as one SSE
``data:`` line as soon as it is read: no identity, validation, budget, lease, storage or thread
hand-over. Its import (FastAPI and boto3, what any such app needs) is also the floor of the
function's cold start under uvicorn.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import boto3
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@functools.cache
def _runtime() -> Any:
    """One client for the process, as the function keeps its own."""
    return boto3.client("bedrock-runtime")


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/v1/models")
async def models() -> JSONResponse:
    return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


@app.post("/v1/chat/completions")
def completions(_: Request) -> StreamingResponse:
    response = _runtime().converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Tell me a story"}]}]
    )

    def lines() -> Iterator[bytes]:
        for event in response["stream"]:
            text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
            if text:
                chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream")
