"""The Bedrock request of a turn, built by functions.chat.prompting: guardrail configuration
and guardContent, cache points per model family, and where the knowledge-base passages go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fakes.bedrock import minimum_cached_tokens
from functions.chat.prompting import (
    GROUNDING_PROMPT,
    PROMPT_CACHING_MODELS,
    SYSTEM_PROMPT,
    conversation,
    model_request,
    supports_prompt_caching,
)
from functions.contract import Env
from functions.domain.models import Citation, Message, Role
from functions.main.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
CACHE = {"cachePoint": {"type": "default"}}
CLAUDE_37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"
CACHING = (
    CLAUDE_37,
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",  # a cross-region profile
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "eu.anthropic.claude-opus-4-1-20250805-v1:0",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "amazon.nova-micro-v1:0",
    "apac.amazon.nova-lite-v1:0",
    "amazon.nova-pro-v1:0",
    "us.amazon.nova-premier-v1:0",
)
NOT_CACHING = (
    "anthropic.claude-3-5-sonnet-20240620-v1:0",  # the default models
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-5-sonnet-20241022-v2:0",  # caching stayed a preview
    "meta.llama3-70b-instruct-v1:0",
)
CITATIONS = (
    Citation(1, "Paris is the capital of France.", "s3://kb/france.md", 0.9),
    Citation(2, "The Seine flows through Paris.", None, 0.4),
)


def settings(*, guardrail: bool = False, caching: bool = True) -> Settings:
    env = {
        Env.SESSIONS_TABLE: "s",
        Env.MESSAGES_TABLE: "m",
        Env.CONNECTIONS_TABLE: "c",
        Env.IDEMPOTENCY_TABLE: "i",
        Env.USAGE_TABLE: "u",
        Env.BEDROCK_MODELS: CLAUDE_37,
        Env.PAGINATION_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/k",
        Env.ATTACHMENTS_BUCKET: "a",
        Env.BEDROCK_PROMPT_CACHING: str(caching).lower(),
    }
    if guardrail:
        env |= {Env.BEDROCK_GUARDRAIL_ID: "gr0123abcd", Env.BEDROCK_GUARDRAIL_VERSION: "3"}
    return Settings.read(env)


def history(*turns: tuple[Role, str, str | None]) -> list[Message]:
    """Messages numbered from 1, each (role, content, stop reason)."""
    return [
        Message("s", seq, f"id{seq}", role, content, "2026-12-01T00:00:00Z", stop_reason=reason)
        for seq, (role, content, reason) in enumerate(turns, start=1)
    ]


ANSWERED = history(("user", "first", None), ("assistant", "one", "end_turn"))


def request(
    model: str = CLAUDE_37,
    past: list[Message] = ANSWERED,
    citations: tuple[Citation, ...] = (),
    *,
    streaming: bool = False,
    **options: bool,
) -> dict[str, Any]:
    return model_request(model, past, "second", citations, settings(**options), streaming=streaming)


def cache_points(body: dict[str, Any]) -> int:
    blocks = [*body["system"], *(b for m in body["messages"] for b in m["content"])]
    return sum("cachePoint" in block for block in blocks)


# Prompt caching ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", CACHING)
def test_caching_models_get_a_cache_point_after_the_system_prompt_and_the_history(
    model: str,
) -> None:
    body = request(model)

    assert body["system"] == [{"text": SYSTEM_PROMPT}, CACHE]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "first"}]},
        {"role": "assistant", "content": [{"text": "one"}, CACHE]},
        {"role": "user", "content": [{"text": "second"}]},  # the new turn is never cached
    ]
    assert cache_points(body) == 2  # well within the four every caching family allows


@pytest.mark.parametrize("model", NOT_CACHING)
def test_other_models_get_no_cache_point(model: str) -> None:
    body = request(model)

    assert not supports_prompt_caching(model)
    assert cache_points(body) == 0
    assert body["system"] == [{"text": SYSTEM_PROMPT}]


def test_caching_can_be_turned_off() -> None:
    assert cache_points(request(caching=False)) == 0


def test_a_first_turn_caches_the_system_prompt_only() -> None:
    body = request(past=[])

    assert body["system"] == [{"text": SYSTEM_PROMPT}, CACHE]
    assert body["messages"] == [{"role": "user", "content": [{"text": "second"}]}]


def test_an_unanswered_question_is_part_of_the_new_turn_not_the_cached_history() -> None:
    past = history(
        ("user", "first", None),
        ("assistant", "one", "end_turn"),
        ("user", "lost", None),
        ("assistant", "", "throttled"),  # a failed answer's marker
    )

    body = request(past=past)

    assert body["messages"][1:] == [
        {"role": "assistant", "content": [{"text": "one"}, CACHE]},
        {"role": "user", "content": [{"text": "lost"}, {"text": "second"}]},
    ]


def test_passages_come_with_the_question_so_both_prefixes_stay_the_same() -> None:
    body = request(citations=CITATIONS)

    assert body["system"] == [{"text": f"{SYSTEM_PROMPT}\n\n{GROUNDING_PROMPT}"}, CACHE]
    assert body["messages"][1] == {"role": "assistant", "content": [{"text": "one"}, CACHE]}
    passages, question = body["messages"][-1]["content"]
    assert passages["text"].endswith(
        "[1] (source: s3://kb/france.md)\nParis is the capital of France.\n\n"
        "[2]\nThe Seine flows through Paris."
    )
    assert question == {"text": "second"}
    other = model_request(CLAUDE_37, ANSWERED, "third", CITATIONS[1:], settings(), streaming=False)
    assert other["system"] == body["system"]  # other passages: the same cached prefix
    assert other["messages"][:2] == body["messages"][:2]


def _window(first: int, last: int) -> list[Message]:
    """Stored turns ``first`` to ``last``, as the history budget leaves them."""
    roles: tuple[Role, Role] = ("assistant", "user")
    return [
        Message("s", seq, f"id{seq}", roles[seq % 2], f"m{seq}", "2026-12-01T00:00:00Z")
        for seq in range(first, last + 1)
    ]


def _first_sent(body: dict[str, Any]) -> str:
    return body["messages"][0]["content"][0]["text"]


def test_a_caching_history_that_outgrew_the_budget_drops_old_turns_five_at_a_time() -> None:
    """The budget drops a turn a turn; the history sent starts at seq 11, 21, 31 ... so its
    prefix stays the same, and cached, for five turns."""
    starts = [
        _first_sent(request(past=_window(first, first + 29))) for first in (3, 5, 7, 9, 11, 13)
    ]

    assert starts == ["m11", "m11", "m11", "m11", "m11", "m21"]
    untouched = request(past=_window(1, 30))
    assert _first_sent(untouched) == "m1"  # nothing dropped yet: all of it


def test_other_histories_are_sent_as_the_budget_left_them() -> None:
    assert _first_sent(request(NOT_CACHING[0], past=_window(3, 32))) == "m3"
    assert _first_sent(request(past=_window(3, 32), caching=False)) == "m3"
    # Aligning would leave less than half of a short history: context first.
    assert _first_sent(request(past=_window(13, 20))) == "m13"


@pytest.mark.parametrize("prefix", PROMPT_CACHING_MODELS)
def test_every_listed_family_caches_on_bedrock(prefix: str) -> None:
    """The list against the fake's own table of the Bedrock user guide's models."""
    assert minimum_cached_tokens(f"{prefix}20250101-v1:0") is not None


def test_the_docs_list_the_caching_models() -> None:
    page = (ROOT / "docs" / "functions.md").read_text()
    section = page[page.index("## Prompt caching") :]
    for prefix in PROMPT_CACHING_MODELS:
        assert f"`{prefix}`" in section


# Guardrail -----------------------------------------------------------------------------------


def test_without_a_guardrail_nothing_is_guarded() -> None:
    body = request(streaming=True)

    assert "guardrailConfig" not in body
    assert body["messages"][-1]["content"] == [{"text": "second"}]


@pytest.mark.parametrize(
    ("streaming", "config"),
    [
        (
            False,
            {"guardrailIdentifier": "gr0123abcd", "guardrailVersion": "3", "trace": "disabled"},
        ),
        (
            True,
            {
                "guardrailIdentifier": "gr0123abcd",
                "guardrailVersion": "3",
                "trace": "disabled",
                "streamProcessingMode": "async",
            },
        ),
    ],
    ids=["converse", "converse_stream"],
)
def test_a_guardrail_guards_the_new_question_only(streaming: bool, config: dict[str, str]) -> None:
    body = request(streaming=streaming, guardrail=True)

    assert body["guardrailConfig"] == config
    assert body["messages"][:2] == [
        {"role": "user", "content": [{"text": "first"}]},
        {"role": "assistant", "content": [{"text": "one"}, CACHE]},
    ]
    assert body["messages"][-1]["content"] == [{"guardContent": {"text": {"text": "second"}}}]


def test_merged_earlier_questions_and_passages_stay_outside_the_guard_content() -> None:
    past = history(
        ("user", "first", None), ("assistant", "one", "end_turn"), ("user", "unanswered", None)
    )

    body = request(past=past, citations=CITATIONS, guardrail=True)

    earlier, passages, question = body["messages"][-1]["content"]
    assert earlier == {"text": "unanswered"}
    assert passages["text"].startswith("Passages retrieved for this question:")
    assert question == {"guardContent": {"text": {"text": "second"}}}


def test_turns_a_guardrail_stopped_are_left_out_of_the_history() -> None:
    past = history(
        ("user", "first", None),
        ("assistant", "one", "end_turn"),
        ("user", "something blocked", None),
        ("assistant", "Sorry, the model cannot answer this question.", "guardrail_intervened"),
        ("user", "third", None),
        ("assistant", "three", "end_turn"),
    )

    messages = conversation(past, [{"text": "new"}])

    assert [block["text"] for m in messages for block in m["content"]] == [
        "first",
        "one",
        "third",
        "three",
        "new",
    ]


def test_superseded_versions_are_left_out_of_the_history() -> None:
    """A regenerated or edited turn's old version is kept in the session but never sent."""
    from dataclasses import replace

    first, answer, edited, reply = history(
        ("user", "before the edit", None),
        ("assistant", "old answer", "end_turn"),
        ("user", "after the edit", None),
        ("assistant", "new answer", "end_turn"),
    )
    past = [
        replace(first, superseded_by=edited.message_id),
        replace(answer, superseded_by=edited.message_id),
        replace(edited, version=2, replaces=first.message_id),
        replace(reply, version=2),
    ]

    messages = conversation(past, [{"text": "next"}])

    assert [block["text"] for m in messages for block in m["content"]] == [
        "after the edit",
        "new answer",
        "next",
    ]


def test_resent_blocks_follow_their_questions_text_and_merge_with_it() -> None:
    """Two questions in a row (the first unanswered) merge into one user turn: both texts,
    then both questions' resent blocks, so every document shares a message with text."""
    past = history(
        ("user", "first", None),
        ("user", "second", None),
        ("assistant", "two", "end_turn"),
    )
    image = {"image": {"format": "png", "source": {"bytes": b"1"}}}
    note = {"text": "[not included]"}
    resent = {"id1": [image], "id2": [note], "id3": [image]}

    messages = conversation(past, [{"text": "new"}], resent)

    assert messages[0]["content"] == [{"text": "first\n\nsecond"}, image, note]
    assert messages[1]["content"] == [{"text": "two"}]  # answers never carry attachments
    assert messages[2]["content"] == [{"text": "new"}]


def test_resent_blocks_sit_inside_the_cached_history() -> None:
    """An earlier question's attachments are part of the history prefix the cache point ends,
    so the next turns read them from the cache rather than pay for them again."""
    image = {"image": {"format": "png", "source": {"bytes": b"1"}}}
    sent = model_request(
        CLAUDE_37, ANSWERED, "second", (), settings(), streaming=False, resent={"id1": [image]}
    )
    first, answer, _ = sent["messages"]
    assert first["content"] == [{"text": "first"}, image]
    assert answer["content"] == [{"text": "one"}, {"cachePoint": {"type": "default"}}]
