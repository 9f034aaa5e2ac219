"""The Bedrock request of one turn: system prompt, messages, guardrail and cache points.

Pure (no I/O): every placement rule is tested on the request itself, and both transports send
the same request but for the one field only ``converse_stream`` takes.

**Guardrail.** With a guardrail configured, ``guardrailConfig`` goes on both calls, and only
the new question is wrapped in a ``guardContent`` block. When a request holds guardContent,
the guardrail assesses only that (and the model's output), not the rest of the messages, so
one question it blocked, or earlier history it would block today, is not assessed again on
every later turn. A turn the guardrail stopped (stop reason ``guardrail_intervened``) is left
out of later history altogether, question and answer, so the model never sees unassessed
what the guardrail blocked. ``converse_stream`` uses ``streamProcessingMode: "async"``:
deltas reach the client as the model writes them while the guardrail assesses them in the
background (in ``sync`` mode it holds chunks back until assessed), at the cost that text
already streamed may be what the guardrail then blocks (docs/functions.md, Guardrails).

**Prompt caching.** For the models in :data:`PROMPT_CACHING_MODELS` (and when
``prompt_caching`` is on), a ``cachePoint`` ends the system prompt and another ends the
history before the new question: Bedrock caches the prompt prefix up to each, and the next
turn, whose prefix starts with this one's, reads it instead of paying full price for it. Two
cache points: within the four a request may hold on every caching model. A conversation that
outgrows the history budget would shift the start of its history by a turn every turn, and
with it every prefix: nothing would ever be read back, and every turn would pay the cache
write's premium on all of it. So for caching requests the oldest turns are dropped
:data:`HISTORY_STEP_MESSAGES` at a time: the history's start stays put for five turns, which
read it from the cache, at the price of up to five fewer old turns. Knowledge-base
passages change with every question, so they go in the final user message, before the
question and outside the guardContent (they are the operator's data, not the user's), not
in the system prompt, where they would make both prefixes new on every turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from functions.contract import INFERENCE_PROFILE_PREFIXES
from functions.core.observability import GUARDRAIL_INTERVENED
from functions.domain.models import content_bytes

if TYPE_CHECKING:
    from functions.core.chat_settings import ChatSettings, Guardrail
    from functions.domain.models import Citation, Message, Role

SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely."
GROUNDING_PROMPT = (
    "Ground your answer in the numbered passages that come with the question, retrieved from "
    "a knowledge base. Cite the passages you use as [1], [2], and so on. If they do not "
    "contain the answer, say so instead of guessing."
)
PASSAGES_HEADING = "Passages retrieved for this question:"

# Model ids, once a cross-region inference profile's geography is stripped, that support
# Bedrock prompt caching with cachePoint blocks (Bedrock user guide, "Prompt caching for
# faster model inference", supported models). Claude 3.5 Sonnet v2 is left out: caching on it
# stayed a preview, for the accounts admitted to it. docs/functions.md lists the same.
PROMPT_CACHING_MODELS = (
    "anthropic.claude-3-7-sonnet-",
    "anthropic.claude-3-5-haiku-",
    "anthropic.claude-sonnet-4-",  # Sonnet 4 and 4.5
    "anthropic.claude-opus-4-",  # Opus 4, 4.1 and 4.5
    "anthropic.claude-haiku-4-5-",
    "amazon.nova-micro-",
    "amazon.nova-lite-",
    "amazon.nova-pro-",
    "amazon.nova-premier-",
)


# Once the history budget drops old turns, a caching request's history starts at a message
# whose seq is 1 more than a multiple of this: five turns of a question and an answer.
HISTORY_STEP_MESSAGES = 10


def cache_point() -> dict[str, Any]:
    return {"cachePoint": {"type": "default"}}


def base_model(model_id: str) -> str:
    """The foundation model a model id names: a cross-region profile's without its geography."""
    if model_id.startswith(INFERENCE_PROFILE_PREFIXES):
        return model_id.split(".", 1)[1]
    return model_id


def supports_prompt_caching(model_id: str) -> bool:
    return base_model(model_id).startswith(PROMPT_CACHING_MODELS)


def system_prompt(citations: Sequence[Citation]) -> str:
    """Constant for every turn of a kind (with passages or without), so it can be cached."""
    return f"{SYSTEM_PROMPT}\n\n{GROUNDING_PROMPT}" if citations else SYSTEM_PROMPT


def passages(citations: Sequence[Citation]) -> str | None:
    """The retrieved passages, numbered as the citations are, for the final user message."""
    if not citations:
        return None
    numbered = "\n\n".join(
        f"[{citation.index}]"
        + (f" (source: {citation.source})" if citation.source else "")
        + f"\n{citation.text}"
        for citation in citations
    )
    return f"{PASSAGES_HEADING}\n\n{numbered}"


def prompt_bytes(content: str, citations: Sequence[Citation]) -> int:
    """UTF-8 bytes of what a turn sends besides the history, for the history budget."""
    return sum(
        content_bytes(text)
        for text in (content, system_prompt(citations), passages(citations) or "")
    )


def sent(history: list[Message]) -> list[Message]:
    """The messages of ``history`` the model sees: blank turns, the turns a guardrail stopped
    (question and answer), the versions a regenerate or edit superseded (the model sees only
    the current branch) and answers before the first question are left out."""
    blocked = {
        message.seq - 1
        for message in history
        if message.role == "assistant" and message.stop_reason == GUARDRAIL_INTERVENED
    }
    kept: list[Message] = []
    for message in history:
        if (
            not message.content.strip()
            or message.stop_reason == GUARDRAIL_INTERVENED
            or message.superseded_by
            or (message.role == "user" and message.seq in blocked)
            or (not kept and message.role != "user")
        ):
            continue
        kept.append(message)
    return kept


def conversation(
    history: list[Message],
    question: Sequence[dict[str, Any]],
    resent: Mapping[str, Sequence[dict[str, Any]]] = MappingProxyType({}),
) -> list[dict[str, Any]]:
    """Bedrock messages: the history (:func:`sent`), then a user turn ending with the
    ``question`` blocks, starting with a user turn and alternating roles, as Converse requires.

    Stored history need not alternate: concurrent turns interleave, and a user turn whose model
    call failed has no answer. Consecutive turns of one role are merged rather than dropped, so
    nothing the user said is hidden from the model: unanswered questions come first in the
    final user turn. ``resent`` maps an earlier question's ``message_id`` to the blocks that
    follow its text: its attachments sent again, and notes on those that could not be
    (:func:`functions.chat.attachments.resend`).
    """
    merged: list[tuple[Role, list[str], list[dict[str, Any]]]] = []
    for message in sent(history):
        # Converse takes images and documents in user messages only.
        blocks = resent.get(message.message_id, ()) if message.role == "user" else ()
        if merged and merged[-1][0] == message.role:
            merged[-1][1].append(message.content)
            merged[-1][2].extend(blocks)
        else:
            merged.append((message.role, [message.content], list(blocks)))
    messages: list[dict[str, Any]] = [
        {"role": role, "content": [{"text": "\n\n".join(texts)}, *blocks]}
        for role, texts, blocks in merged
    ]
    if messages and messages[-1]["role"] == "user":
        messages[-1]["content"].extend(question)
    else:
        messages.append({"role": "user", "content": list(question)})
    return messages


def sent_history(model_id: str, history: list[Message], settings: ChatSettings) -> list[Message]:
    """The history messages a request to ``model_id`` holds (:func:`stable_start` for caching
    models, then :func:`sent`): the questions whose attachments it may send again."""
    caching = settings.prompt_caching and supports_prompt_caching(model_id)
    return sent(stable_start(history) if caching else history)


def stable_start(history: list[Message]) -> list[Message]:
    """The history from its first step boundary on, once it no longer starts at the session's
    first message (seq 1: nothing was dropped, and nothing is). When that would leave less
    than half of it (a budget of few, long turns), all of it: context first."""
    if not history or history[0].seq <= 1:
        return history
    first = history[0].seq
    start = first + (1 - first) % HISTORY_STEP_MESSAGES
    kept = [message for message in history if message.seq >= start]
    return kept if 2 * len(kept) >= len(history) else history


def guardrail_config(guardrail: Guardrail, *, streaming: bool) -> dict[str, str]:
    """Trace off: the assessment's details are not needed to store or report the outcome."""
    config = {
        "guardrailIdentifier": guardrail.identifier,
        "guardrailVersion": guardrail.version,
        "trace": "disabled",
    }
    if streaming:
        config["streamProcessingMode"] = "async"
    return config


def model_request(
    model_id: str,
    history: list[Message],
    content: str,
    citations: Sequence[Citation],
    settings: ChatSettings,
    *,
    streaming: bool,
    attachments: Sequence[dict[str, Any]] = (),
    resent: Mapping[str, Sequence[dict[str, Any]]] = MappingProxyType({}),
) -> dict[str, Any]:
    """The ``converse`` (``streaming=False``) or ``converse_stream`` keyword arguments;
    ``attachments`` (image and document blocks) follow the question, outside its guardContent,
    and ``resent`` follow earlier questions (:func:`conversation`)."""
    caching = settings.prompt_caching and supports_prompt_caching(model_id)
    question = (
        {"guardContent": {"text": {"text": content}}} if settings.guardrail else {"text": content}
    )
    grounding = passages(citations)
    blocks = [{"text": grounding}, question] if grounding else [question]
    blocks.extend(attachments)
    messages = conversation(sent_history(model_id, history, settings), blocks, resent)
    system: list[dict[str, Any]] = [{"text": system_prompt(citations)}]
    if caching:
        system.append(cache_point())
        if len(messages) > 1:  # the last message before the final user turn ends the history
            messages[-2]["content"].append(cache_point())
    request: dict[str, Any] = {"modelId": model_id, "messages": messages, "system": system}
    if settings.guardrail:
        request["guardrailConfig"] = guardrail_config(settings.guardrail, streaming=streaming)
    return request
