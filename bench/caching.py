"""``make bench``'s prompt-caching rows, run by bench/run.py in a process of its own (it runs
moto and the Bedrock fake, and sets the functions' environment).

A 50-turn conversation through the real ChatService (``reply``, the REST path) with a model
that caches (Claude 3.7 Sonnet: at least 1,024 tokens a cached prefix), once with
``BEDROCK_PROMPT_CACHING`` on and once off. Every figure is the fake's reported usage (one
token a word, its prompt cache as described in fakes/bedrock.py): a token count, not a
timing, so there is no floor. Billed input is what the budget counts (``Usage.budget_tokens``
minus the output): uncached input, plus cache reads at ``CACHE_READ_BUDGET_RATE`` and cache
writes at ``CACHE_WRITE_BUDGET_RATE``.

Two conversations: turns of ~130 words, which all fit the default history budget, and turns
of ~330 words, which outgrow it after about 20 turns, from when on old turns drop out (for
caching requests five at a time, see functions/chat/prompting.py).

Prints one JSON document as its last line: {"caching": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
TURNS = 50
USER = "bench-user"
# (name, words a question, words an answer)
CONVERSATIONS = (
    ("turns of ~130 words (the whole conversation fits the history budget)", 30, 100),
    ("turns of ~330 words (outgrows the history budget after ~20 turns)", 30, 300),
)


def _words(count: int, seed: int) -> str:
    """Deterministic words of 4 to 8 letters: ~1.5 estimated tokens (bytes / 4) a word."""
    letters = "etaoinshrdlucmfwypvbgk"
    return " ".join(
        "".join(letters[(seed * 7 + n * 13 + k * 5) % len(letters)] for k in range(4 + n % 5))
        for n in range(count)
    )


def conversation(bedrock: Any, question_words: int, answer_words: int, caching: bool) -> list:
    """The usage of each of the conversation's turns."""
    from functions.chat.service import ChatService
    from functions.contract import Env
    from functions.core.settings import get_settings
    from functions.data.turns import Store
    from functions.main.settings import Settings

    os.environ[Env.BEDROCK_PROMPT_CACHING] = str(caching).lower()
    get_settings.cache_clear()
    settings = get_settings(Settings)
    store = Store.from_settings(settings)
    session = store.sessions.create(USER, "bench", MODEL, None)
    bedrock.reset()  # an empty prompt cache
    turn = iter(range(1, TURNS + 1))
    bedrock.reply = lambda _: _words(answer_words, 1000 + next(turn))
    service = ChatService(settings, store)
    return [
        service.reply(USER, session.session_id, _words(question_words, n), lease_seconds=30).usage
        for n in range(1, TURNS + 1)
    ]


def rows(bedrock: Any) -> list[dict[str, Any]]:
    results = []
    for name, question_words, answer_words in CONVERSATIONS:
        without = conversation(bedrock, question_words, answer_words, caching=False)
        cached = conversation(bedrock, question_words, answer_words, caching=True)
        turns = [
            {
                "turn": number,
                "without": plain.budget_tokens - plain.output_tokens,
                "with": usage.budget_tokens - usage.output_tokens,
                "uncached": usage.input_tokens,
                "read": usage.cache_read_input_tokens,
                "write": usage.cache_write_input_tokens,
            }
            for number, (plain, usage) in enumerate(zip(without, cached, strict=True), start=1)
        ]
        assert all(t["without"] == p.input_tokens for t, p in zip(turns, without, strict=True))
        results.append({"conversation": name, "turns": turns})
    return results


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()

    import boto3

    from fakes.bedrock import BedrockFake
    from fakes.moto import MotoServer, aws_env
    from functions.contract import Env
    from tests.support.moto_server import create_tables

    with MotoServer() as moto, BedrockFake() as bedrock:
        os.environ.update(aws_env(moto.url))
        os.environ.update(bedrock.env())
        os.environ.update(create_tables(boto3.client("dynamodb"), "bench"))
        os.environ.update({
            Env.BEDROCK_MODELS: MODEL, Env.KNOWLEDGE_BASE_ID: "", Env.SESSION_TTL_DAYS: "30",
            Env.ATTACHMENTS_BUCKET: "bench-attachments",  # named, never called: no turn attaches
            Env.PAGINATION_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/bench",
            Env.ATTACHMENTS_BUCKET: "bench-attachments",
            Env.POWERTOOLS_SERVICE_NAME: "bench", Env.POWERTOOLS_METRICS_NAMESPACE: "bench",
            "POWERTOOLS_METRICS_DISABLED": "true",
        })  # fmt: skip
        results = rows(bedrock)
    print("\n" + json.dumps({"caching": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
