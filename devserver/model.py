"""The dev server's local model: the Bedrock fake answering every turn with a deterministic text,
streamed at a model's pace, with usage counted as the fake counts it (one token a word).

Deterministic, so a turn can be compared with what was stored; long enough (about 60 words)
that streaming is visible in a terminal.
"""

from __future__ import annotations

from typing import Any

from fakes.bedrock import BedrockFake, Pacing

DEFAULT_CHUNK_DELAY_SECONDS = 0.04  # ~25 words a second, about what Claude streams
DEFAULT_FIRST_DELTA_SECONDS = 0.3  # a model's time to first token
_QUOTE_CHARS = 120


def _texts(message: dict[str, Any]) -> list[str]:
    """The message's text, the question's too when a guardrail has it in a guardContent block."""
    blocks = [
        block["guardContent"]["text"] if "guardContent" in block else block
        for block in message.get("content", [])
        if isinstance(block, dict)
    ]
    return [block["text"] for block in blocks if isinstance(block.get("text"), str)]


def answer(body: dict[str, Any]) -> str:
    """The reply to a converse/converse_stream request body."""
    messages = body.get("messages", [])
    turn = sum(1 for message in messages if message.get("role") == "user")
    question = " ".join(_texts(messages[-1])) if messages else ""
    question = " ".join(question.split())
    if len(question) > _QUOTE_CHARS:
        question = question[: _QUOTE_CHARS - 1] + "…"
    return (
        f'You said: "{question}". This is turn {turn} of this session, answered by the dev '
        "server's local model rather than Bedrock: it streams this fixed text word by word at "
        "a steady pace, so that streaming, storage, history and usage can all be tried without "
        "AWS. Start make dev with --bedrock aws to talk to a real model instead."
    )


def local_model(
    chunk_delay: float = DEFAULT_CHUNK_DELAY_SECONDS,
    first_delta: float = DEFAULT_FIRST_DELTA_SECONDS,
) -> BedrockFake:
    """The model, pacing its stream: ``first_delta`` seconds to the first word, then one word
    every ``chunk_delay`` seconds (0: all at once)."""
    model = BedrockFake(reply=answer)
    if chunk_delay > 0:
        model.pacing = Pacing(first_delta_s=first_delta, deltas_per_second=1 / chunk_delay)
    model.latency_ms = int(first_delta * 1000)
    return model
