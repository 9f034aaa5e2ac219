"""The dev server's local model: the Bedrock fake answering every turn with a deterministic text,
streamed at a model's pace, with usage counted as the fake counts it (one token a word).

Deterministic, so a turn can be compared with what was stored; long enough (about 60 words)
that streaming is visible in a terminal. A turn grounded on knowledge-base passages quotes the
first one and cites it as ``[1]``, as a grounded model's answer would. A session title request
is answered with the first words of its question.
"""

from __future__ import annotations

import re
from typing import Any

from fakes.bedrock import BedrockFake, Pacing
from functions.chat.prompting import PASSAGES_HEADING
from functions.chat.titles import PROMPT as TITLE_PROMPT

DEFAULT_CHUNK_DELAY_SECONDS = 0.04  # ~25 words a second, about what Claude streams
DEFAULT_FIRST_DELTA_SECONDS = 0.3  # a model's time to first token
_QUOTE_CHARS = 120
# functions.chat.prompting.passages numbers each passage "[n]" (with its source) on a line.
_FIRST_PASSAGE = re.compile(
    r"^\[1\](?: \(source: [^\n]*\))?\n(?P<text>.*?)(?:\n\n\[2\]|\Z)", re.M | re.S
)


def _texts(message: dict[str, Any]) -> list[str]:
    """The message's text, the question's too when a guardrail has it in a guardContent block."""
    blocks = [
        block["guardContent"]["text"] if "guardContent" in block else block
        for block in message.get("content", [])
        if isinstance(block, dict)
    ]
    return [block["text"] for block in blocks if isinstance(block.get("text"), str)]


def _quote(text: str) -> str:
    """``text`` on one line, cut to a readable length."""
    text = " ".join(text.split())
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 1] + "…"


def _grounding(passages: list[str]) -> str:
    """A sentence quoting the first retrieved passage, cited as [1]; empty without passages."""
    found = _FIRST_PASSAGE.search("\n\n".join(passages))
    return f'The knowledge base says: "{_quote(found["text"])}" [1]. ' if found else ""


def _title(body: dict[str, Any]) -> str:
    """A session title (functions.chat.titles): the question's first six words."""
    text = " ".join(_texts(body["messages"][-1]))
    question = text.removeprefix("Question:").split("\n\nAnswer:", 1)[0]
    return " ".join(question.split()[:6])


def answer(body: dict[str, Any]) -> str:
    """The reply to a converse/converse_stream request body; to a title request, a title."""
    if body.get("system") == [{"text": TITLE_PROMPT}]:
        return _title(body)
    messages = body.get("messages", [])
    turn = sum(1 for message in messages if message.get("role") == "user")
    texts = _texts(messages[-1]) if messages else []
    passages = [text for text in texts if text.startswith(PASSAGES_HEADING)]
    question = _quote(" ".join(text for text in texts if text not in passages))
    return (
        f'You said: "{question}". {_grounding(passages)}'
        f"This is turn {turn} of this session, answered by the dev "
        "server's local model rather than Bedrock: it streams this fixed text word by word at "
        "a steady pace, so that streaming, storage, history and usage can all be tried without "
        "AWS. To talk to a real model instead, start the dev server with "
        'make dev DEV_ARGS="--bedrock aws" (and AWS credentials).'
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
