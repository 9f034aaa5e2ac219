"""The Chat Completions request, checked field by field, and the response bodies and stream
chunks in OpenAI's shapes.

The rule for the request: every field OpenAI defines is either honoured or refused with
:class:`~functions.openai_api.errors.InvalidParameter` naming it, never dropped. A field this
API cannot honour is accepted only at its "off" value (``n: 1``, ``logprobs: false``,
``presence_penalty: 0``, ``null``...), which clients send by default; any other value is
refused. A field OpenAI does not define is refused too. Hand-written rather than a pydantic
model so that each refusal says, in words, why and which field (``param``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.chat.prompting import base_model
from functions.chat.service import COMPLETE_STOP_REASONS, TurnOptions
from functions.core.observability import GUARDRAIL_INTERVENED
from functions.domain.attachments import attachment_ids
from functions.domain.content import content_problem
from functions.domain.errors import BadRequest
from functions.domain.models import Role, Usage
from functions.openai_api.errors import InvalidParameter

MAX_STOP_SEQUENCES = 4  # OpenAI's limit
INSTRUCTION_ROLES = frozenset({"system", "developer"})  # developer: OpenAI's newer name
CONTENT_FILTER_REASONS = frozenset({GUARDRAIL_INTERVENED, "content_filtered"})


def _is_off(value: Any) -> bool:
    return value is None or value in (0, [], {})  # 0 == False


# Fields OpenAI defines that this API cannot honour: accepted only "off", and why not.
_UNSUPPORTED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v is None or v == 1, "n must be 1: this API writes one choice per request"),
    "tools": (_is_off, "tools are not supported: this API does not call tools"),
    "tool_choice": (
        lambda v: v is None or v == "none",
        "tool_choice is not supported: this API does not call tools",
    ),
    "parallel_tool_calls": (_is_off, "parallel_tool_calls is not supported: no tool calls"),
    "functions": (_is_off, "functions are not supported: this API does not call functions"),
    "function_call": (
        lambda v: v is None or v == "none",
        "function_call is not supported: this API does not call functions",
    ),
    "logprobs": (_is_off, "logprobs are not supported: Bedrock does not return them"),
    "top_logprobs": (lambda v: v is None, "top_logprobs are not supported: no logprobs"),
    "logit_bias": (_is_off, "logit_bias is not supported by Bedrock's Converse API"),
    "presence_penalty": (_is_off, "presence_penalty is not supported by Bedrock's Converse API"),
    "frequency_penalty": (_is_off, "frequency_penalty is not supported by Bedrock's Converse API"),
    "seed": (lambda v: v is None, "seed is not supported: Bedrock's Converse API takes none"),
    "response_format": (
        lambda v: v is None or v == {"type": "text"},
        "response_format must be text: JSON modes and schemas are not supported",
    ),
    "modalities": (
        lambda v: v is None or v == ["text"],
        "modalities must be text: this API answers in text only",
    ),
    "audio": (lambda v: v is None, "audio output is not supported: text only"),
    "prediction": (lambda v: v is None, "predicted outputs are not supported"),
    "reasoning_effort": (lambda v: v is None, "reasoning_effort is not supported"),
    "web_search_options": (lambda v: v is None, "web search is not supported"),
    "store": (_is_off, "store is not supported: use the X-Session-Id header to store a turn"),
    "metadata": (_is_off, "metadata is not supported: nothing is stored with OpenAI's tools"),
    "service_tier": (
        lambda v: v in (None, "auto", "default"),
        "service_tier must be auto or default: there is one tier",
    ),
}
_SUPPORTED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "user",
    }
)
# Message fields beyond role and content, accepted only null (the SDK's own assistant message,
# passed back as history, carries them so).
_MESSAGE_FIELDS_OFF = ("name", "tool_calls", "function_call", "refusal", "audio", "annotations")


@dataclass(frozen=True)
class CompletionRequest:
    """A checked request: the history before the question, the question, and the options
    (whose ``instructions`` are the system and developer messages, in order)."""

    model: str
    history: tuple[tuple[Role, str], ...]
    question: str
    stream: bool
    include_usage: bool
    options: TurnOptions
    user: str | None
    attachments: tuple[str, ...] = ()  # the question's file parts: uploads of the bound session

    def fingerprint(self) -> dict[str, Any]:
        """What a repeat with the same Idempotency-Key must match; the transport (``stream``)
        may differ, so a streamed request's repeat can replay it as one body and vice versa."""
        return {
            "model": self.model,
            "history": [list(message) for message in self.history],
            "question": self.question,
            "options": {
                "max_tokens": self.options.max_tokens,
                "temperature": self.options.temperature,
                "top_p": self.options.top_p,
                "stop": list(self.options.stop),
                "instructions": list(self.options.instructions),
            },
            "user": self.user,
        } | ({"attachments": list(self.attachments)} if self.attachments else {})


def parse_request(body: object) -> CompletionRequest:
    """The request, or :class:`InvalidParameter` naming the first field at fault."""
    if not isinstance(body, Mapping):
        raise InvalidParameter("", "the request body must be a JSON object")
    for name, value in body.items():
        if name in _SUPPORTED:
            continue
        rule = _UNSUPPORTED.get(name)
        if rule is None:
            raise InvalidParameter(name, f"unknown field {name!r}")
        accepted, reason = rule
        if not accepted(value):
            raise InvalidParameter(name, reason)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidParameter("model", "model is required: one of the ids /v1/models lists")
    instructions, history, question, attachments = _messages(body.get("messages"))
    stream = _optional(body, "stream", bool) or False
    include_usage = _stream_options(body.get("stream_options"), stream=stream)
    return CompletionRequest(
        model=model,
        history=history,
        question=question,
        stream=stream,
        include_usage=include_usage,
        options=TurnOptions(
            max_tokens=_max_tokens(body),
            temperature=_fraction(body, "temperature"),
            top_p=_fraction(body, "top_p"),
            stop=_stop(body.get("stop")),
            instructions=instructions,
        ),
        user=_optional(body, "user", str),
        attachments=attachments,
    )


def _optional(body: Mapping[str, Any], name: str, kind: type[bool] | type[str]) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        noun = "boolean" if kind is bool else "string"
        raise InvalidParameter(name, f"{name} must be a {noun} or null")
    return value


def _messages(
    raw: object,
) -> tuple[tuple[str, ...], tuple[tuple[Role, str], ...], str, tuple[str, ...]]:
    """Instructions, history, the question and its file parts' attachment ids."""
    if not isinstance(raw, list) or not raw:
        raise InvalidParameter("messages", "messages must be a non-empty list")
    instructions: list[str] = []
    turns: list[tuple[Role, str]] = []
    files: list[tuple[int, list[str]]] = []  # (message index, its file ids)
    for index, message in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise InvalidParameter(param, f"{param} must be an object")
        role = message.get("role")
        for name in message:
            if name in ("role", "content"):
                continue
            if name not in _MESSAGE_FIELDS_OFF:
                raise InvalidParameter(f"{param}.{name}", f"unknown message field {name!r}")
            if message[name] is not None:
                raise InvalidParameter(
                    f"{param}.{name}", f"{param}.{name} is not supported (text messages only)"
                )
        text, file_ids = _text(message.get("content"), f"{param}.content")
        files.append((index, file_ids))
        if role in INSTRUCTION_ROLES:
            instructions.append(text)
        elif role in ("user", "assistant"):
            turns.append((role, text))
        elif role in ("tool", "function"):
            raise InvalidParameter(
                f"{param}.role", f"{role} messages are not supported: this API calls no tools"
            )
        else:
            raise InvalidParameter(
                f"{param}.role",
                f"unknown role {role!r}: use system, developer, user or assistant",
            )
    if not turns or turns[-1][0] != "user":
        raise InvalidParameter(
            "messages", "the last user or assistant message must be the user's question"
        )
    return tuple(instructions), tuple(turns[:-1]), turns[-1][1], _question_files(raw, files)


def _question_files(raw: list[Any], files: list[tuple[int, list[str]]]) -> tuple[str, ...]:
    """The file ids of the question; file parts anywhere else are refused (earlier messages'
    files are not sent again)."""
    question = max(
        index for index, message in enumerate(raw) if message.get("role") in ("user", "assistant")
    )
    for index, file_ids in files:
        if file_ids and index != question:
            raise InvalidParameter(
                f"messages[{index}].content",
                "file parts may be sent only with the question (the last user message)",
            )
    ids = [file_id for _, file_ids in files for file_id in file_ids]
    try:
        return attachment_ids(ids)
    except BadRequest as error:
        raise InvalidParameter(f"messages[{question}].content", str(error)) from None


def _file_id(part: Mapping[str, Any], param: str) -> str:
    """OpenAI's ``{"type": "file", "file": {"file_id": ...}}``: the id of an upload of the
    bound session (``POST /api/v1/sessions/{id}/attachments``)."""
    file = part.get("file")
    if set(part) != {"type", "file"} or not isinstance(file, Mapping) or set(file) != {"file_id"}:
        raise InvalidParameter(
            param, "a file part is {'type': 'file', 'file': {'file_id': <attachment_id>}}"
        )
    if not isinstance(file["file_id"], str):
        raise InvalidParameter(f"{param}.file.file_id", "file_id must be an attachment id")
    return file["file_id"]


def _text(content: object, param: str) -> tuple[str, list[str]]:
    """A message's text: a string, or OpenAI's list of text parts (joined by blank lines),
    and the attachment ids of its file parts."""
    file_ids: list[str] = []
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "file":
                file_ids.append(_file_id(part, f"{param}[{index}]"))
                continue
            if kind != "text":
                raise InvalidParameter(
                    f"{param}[{index}]",
                    f"content parts must be text ({{'type': 'text', 'text': ...}}) or file, "
                    f"not {kind or 'this'}: this API takes no images or audio parts",
                )
            extra = sorted(set(part) - {"type", "text"})
            if extra:
                raise InvalidParameter(
                    f"{param}[{index}].{extra[0]}",
                    f"a text part holds only type and text, not {', '.join(extra)}",
                )
            texts.append(part["text"])
        if not all(isinstance(text, str) for text in texts):
            raise InvalidParameter(param, "a text part's text must be a string")
        content = "\n\n".join(texts)
    problem = content_problem(content)
    if problem is not None:
        raise InvalidParameter(param, f"{param}: {problem}")
    return content, file_ids  # type: ignore[return-value]  # content_problem checked it


def _stream_options(raw: object, *, stream: bool) -> bool:
    if raw is None:
        return False
    if not stream:
        raise InvalidParameter("stream_options", "stream_options is only allowed with stream")
    if not isinstance(raw, Mapping) or set(raw) - {"include_usage"}:
        raise InvalidParameter(
            "stream_options", "stream_options may only hold include_usage (a boolean)"
        )
    include = raw.get("include_usage", False)
    if not isinstance(include, bool):
        raise InvalidParameter("stream_options.include_usage", "include_usage must be a boolean")
    return include


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    values = {}
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidParameter(name, f"{name} must be a positive integer")
        values[name] = value
    if len(set(values.values())) > 1:
        raise InvalidParameter(
            "max_tokens", "max_tokens and max_completion_tokens differ: send one of them"
        )
    return next(iter(values.values()), None)


def _fraction(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise InvalidParameter(
            name, f"{name} must be a number from 0 to 1 (the range Bedrock's models take)"
        )
    return float(value)


def _stop(raw: object) -> tuple[str, ...]:
    if raw is None or raw == []:
        return ()
    stops = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(stops, list)
        or not 1 <= len(stops) <= MAX_STOP_SEQUENCES
        or not all(isinstance(stop, str) and stop for stop in stops)
    ):
        raise InvalidParameter(
            "stop", f"stop must be a non-empty string or a list of 1 to {MAX_STOP_SEQUENCES}"
        )
    return tuple(stops)


# ---- responses ---------------------------------------------------------------------------


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI's finish_reason for the model's (or our own) stop reason: ``stop`` when the
    model ended the answer, ``content_filter`` when a guardrail or the model's filter did,
    ``length`` whenever it stopped short (max_tokens, the budget's cap, the function's time,
    a stream that ended without the model's end)."""
    if stop_reason in COMPLETE_STOP_REASONS:
        return "stop"
    if stop_reason in CONTENT_FILTER_REASONS:
        return "content_filter"
    return "length"


def usage_body(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage: the prompt counts cached input too, and says how much was read from
    the cache."""
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_write_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
    }


@dataclass(frozen=True)
class Completion:
    """One answer's identity, shared by its body and every chunk of its stream."""

    id: str
    created: int
    model: str

    def body(self, text: str, stop_reason: str | None, usage: Usage) -> dict[str, Any]:
        """The non-streaming response (``chat.completion``)."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason(stop_reason),
                }
            ],
            "usage": usage_body(usage),
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        """One ``chat.completion.chunk`` of the answer."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._chunk([choice])

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The last chunk with ``include_usage``: no choices, the usage (:func:`usage_body`)."""
        return self._chunk([]) | {"usage": usage}

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def models_body(models: tuple[str, ...]) -> dict[str, Any]:
    """``GET /v1/models``: the configured models, the default first."""
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": _provider(model)}
            for model in models
        ],
    }


def _provider(model_id: str) -> str:
    """``anthropic`` for ``anthropic.claude-…`` and ``us.anthropic.claude-…`` alike."""
    return base_model(model_id).split(".", 1)[0]
