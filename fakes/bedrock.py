"""A loopback fake of Bedrock that speaks the real wire formats, for the real boto3 clients: the
tests' fake and ``make dev``'s local model.

moto implements neither bedrock-runtime ``converse``/``converse_stream`` nor bedrock-agent-runtime
``retrieve``, so this fake serves them (one instance serves both services):

* ``converse``        POST /model/{modelId}/converse           restJson
* ``converse_stream`` POST /model/{modelId}/converse-stream    event-stream binary frames
  (``application/vnd.amazon.eventstream``): messageStart, contentBlockDelta per chunk,
  contentBlockStop, messageStop, metadata
* ``retrieve``        POST /knowledgebases/{knowledgeBaseId}/retrieve   restJson

bedrock-agent ``list_knowledge_bases``/``create_knowledge_base`` are NOT here: moto implements them
(with ``nextToken`` paging), see :mod:`fakes.moto`.

Like the real service it rejects (400 ValidationException) a conversation that does not start
with a user message, whose roles do not alternate, or that holds a blank text block, a content
block that is not exactly one known member (the fake serves ``text``, ``guardContent``,
``cachePoint``, ``image`` and ``document``), an image or document the service would refuse
(format, empty or oversized bytes, too many, a document name outside the service's rules or
used twice, outside a user message, a document without a text block beside it), a
``cachePoint`` on a model without prompt caching or more than four of them, a malformed
``guardrailConfig`` (``streamProcessingMode`` only on ``converse_stream``), and a retrieve
whose query text is blank; ``retrieve`` returns at most ``numberOfResults`` (default 5).

Guardrail: a request with ``guardrailConfig`` is guarded. :meth:`BedrockFake.block_input`
makes the guardrail block inputs holding given terms, assessing only the guardContent blocks
when the request has any (else every message text), as Bedrock does; :meth:`~BedrockFake.
intervene` makes it block the model's output, mid-stream on ``converse_stream``. Either ends
the answer with stop reason ``guardrail_intervened`` and the blocked message as its text (on a
stream: one more delta). No guardrail trace is sent.

Prompt cache (the models of :data:`CACHING_MODELS`): each cache point caches the prefix before
it, per model, for five minutes, if it holds the model's minimum of tokens; ``usage`` then
splits the input into ``cacheReadInputTokens`` (the longest prefix cached before),
``cacheWriteInputTokens`` (from there to the last cache point) and ``inputTokens`` (the rest).

Usage::

    from fakes.bedrock import BedrockFake, passage

    with BedrockFake(reply="Hi there") as bedrock:
        for name, value in bedrock.env().items():   # AWS_ENDPOINT_URL_BEDROCK_RUNTIME, ...
            monkeypatch.setenv(name, value)
        bedrock.stream_chunks = ["Hel", "lo"]          # converse_stream deltas
        bedrock.reply = lambda body: "echo " + body["messages"][-1]["content"][0]["text"]
        bedrock.retrieval_results = [passage("Paris is in France.", "s3://kb/geo.md", 0.9)]
        bedrock.throttle(2)                             # next 2 requests: 429 ThrottlingException
        bedrock.fail(404, "ResourceNotFoundException", operation=RETRIEVE)
        bedrock.break_stream(after_chunks=1)            # modelStreamErrorException mid-stream
        bedrock.cut_stream(after_chunks=5)              # ends cleanly, without messageStop
        bedrock.pace(first_delta_ms=300, deltas_per_second=80)   # stream like a real model
        bedrock.hold(after_chunks=1, until=event)       # stall the stream until event is set
        bedrock.block_input("forbidden")                # the guardrail blocks such questions
        bedrock.intervene(after_chunks=3)               # ... or the next answer, mid-stream
        ... run the code under test ...
        [req] = bedrock.requests_for(CONVERSE)          # what the code sent
        assert req.resource_id == "anthropic.claude-3-haiku-20240307-v1:0"
        assert req.body["messages"][-1]["role"] == "user"

``converse_stream`` answers are sent with chunked transfer encoding, one event-stream message
per piece, so a paced stream reaches the client as a real one does; :attr:`BedrockFake.streams`
records when each delta went out (``time.monotonic``).

Usage counts one token per whitespace-separated word: the input over every text and guardContent
block of ``messages`` and ``system``, ``outputTokens`` over the reply; ``totalTokens`` is their
sum. Without cache points ``inputTokens`` is the whole input and the cache fields are absent.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import random
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from fakes.loopback import (
    Abort,
    LoopbackServer,
    Request,
    Response,
    error_response,
    json_response,
)

Operation = Literal["converse", "converse_stream", "retrieve"]
CONVERSE: Operation = "converse"
CONVERSE_STREAM: Operation = "converse_stream"
RETRIEVE: Operation = "retrieve"

Reply = str | Callable[[dict[str, Any]], str]
# clean: the stream just ends; reset: the connection drops mid-body; corrupt: the next
# event-stream message fails its CRC.
CutKind = Literal["clean", "reset", "corrupt"]

DEFAULT_REPLY = "Hello from the fake model."
DEFAULT_NUMBER_OF_RESULTS = 5  # Bedrock's default for retrieve
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING_HEADER = 7  # event-stream header value type "string"

# Content block types the fake serves; anything else is answered 400 (the real service also
# takes tool use, video and more, which nothing here sends).
MESSAGE_BLOCKS = frozenset({"text", "guardContent", "cachePoint", "image", "document"})
SYSTEM_BLOCKS = frozenset({"text", "guardContent", "cachePoint"})
# Images and documents, as the Converse API reference (ImageBlock, DocumentBlock) and the user
# guide's Converse page state them, written down here apart from functions/contract.py so that
# the fake judges the code rather than repeats it: formats, at most 3.75 MB an image and 20 a
# request, at most 4.5 MB a document and 5 a request, document names of alphanumerics,
# whitespace (never two in a row), hyphens, parentheses and square brackets, and both only
# in user messages.
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
DOCUMENT_FORMATS = frozenset({"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"})
MAX_IMAGE_BYTES = 3_750_000
MAX_IMAGES = 20
MAX_DOCUMENT_BYTES = 4_500_000
MAX_DOCUMENTS = 5
DOCUMENT_NAME = re.compile(r"[A-Za-z0-9\-()\[\]]+( [A-Za-z0-9\-()\[\]]+)*")
GUARD_QUALIFIERS = frozenset({"grounding_source", "query", "guard_content"})
GUARDRAIL_ID = re.compile(
    r"[a-z0-9]+|arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+"
)
GUARDRAIL_VERSION = re.compile(r"[1-9][0-9]{0,7}|DRAFT")
GUARDRAIL_INTERVENED = "guardrail_intervened"
DEFAULT_BLOCKED_INPUT = "Sorry, the model cannot answer this question."
DEFAULT_BLOCKED_OUTPUT = "Sorry, the model cannot answer this question."
# Prompt caching, as the Bedrock user guide lists it ("Prompt caching for faster model
# inference", supported models): model id prefix -> the fewest tokens a cache point's prefix
# must hold to be cached. At most four cache points a request; a cached prefix lives five
# minutes, each read starting them again.
CACHING_MODELS: tuple[tuple[str, int], ...] = (
    ("anthropic.claude-3-7-sonnet-", 1_024),
    ("anthropic.claude-3-5-haiku-", 2_048),
    ("anthropic.claude-sonnet-4-", 1_024),
    ("anthropic.claude-opus-4-5-", 4_096),
    ("anthropic.claude-opus-4-", 1_024),
    ("anthropic.claude-haiku-4-5-", 4_096),
    ("amazon.nova-micro-", 1_000),
    ("amazon.nova-lite-", 1_000),
    ("amazon.nova-pro-", 1_000),
    ("amazon.nova-premier-", 1_000),
)
PROFILE_GEOGRAPHIES = frozenset({"us", "eu", "apac", "us-gov", "global", "jp", "au", "ca"})
MAX_CACHE_POINTS = 4
CACHE_TTL_SECONDS = 300.0
CACHE_LOOKBACK_BLOCKS = 20

_ROUTES: tuple[tuple[re.Pattern[str], Operation], ...] = (
    (re.compile(r"^/model/(?P<id>[^/]+)/converse$"), CONVERSE),
    (re.compile(r"^/model/(?P<id>[^/]+)/converse-stream$"), CONVERSE_STREAM),
    (re.compile(r"^/knowledgebases/(?P<id>[^/]+)/retrieve$"), RETRIEVE),
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, including the ones it answered with an error."""

    operation: Operation
    resource_id: str  # modelId or knowledgeBaseId, URL-decoded
    body: dict[str, Any]
    status: int  # the HTTP status the fake answered


@dataclass
class _Failure:
    status: int
    error_type: str
    message: str
    operation: Operation | None
    remaining: int | None  # None: until reset()
    model: str | None = None  # only requests for this model id (None: any)


@dataclass(frozen=True)
class _StreamBreak:
    after_chunks: int
    error_type: str
    message: str


@dataclass
class _Intervention:
    after_chunks: int
    message: str
    remaining: int | None  # None: until reset()


@dataclass(frozen=True)
class _Answer:
    """What one converse or converse_stream request is answered with."""

    chunks: list[str]
    stop_reason: str
    usage: dict[str, int]


@dataclass(frozen=True)
class _StreamCut:
    after_chunks: int
    how: CutKind


@dataclass(frozen=True)
class Pacing:
    """When a paced stream sends its deltas: the first after ``first_delta_s``, then
    ``deltas_per_second``, on a fixed schedule from the request (no drift)."""

    first_delta_s: float
    deltas_per_second: float

    def due(self, started: float, index: int) -> float:
        return started + self.first_delta_s + index / self.deltas_per_second


@dataclass(frozen=True)
class _Hold:
    after_chunks: int
    until: threading.Event
    timeout_s: float


@dataclass
class StreamRecord:
    """When the fake sent each delta of one converse_stream answer, and when it finished."""

    started: float
    delta_times: list[float] = field(default_factory=list)
    finished: float | None = None


def model_like_deltas(count: int = 600, seed: int = 0) -> list[str]:
    """``count`` deltas of 3 to 15 characters, as a model streams them (deterministic)."""
    generator = random.Random(seed)  # noqa: S311 - deterministic test text, not a secret
    letters = "abcdefghijklmnopqrstuvwxyz"
    deltas = []
    for _ in range(count):
        size = generator.randint(3, 15)
        word = "".join(generator.choice(letters) for _ in range(size - 1))
        deltas.append(word + " ")
    return deltas


class _ValidationError(Exception):
    """The request breaks a rule the real service enforces; answered as 400."""


def passage(text: str, uri: str, score: float = 0.5) -> dict[str, Any]:
    """One ``retrievalResults`` item in the wire format, from an S3 data source."""
    return {
        "content": {"text": text, "type": "TEXT"},
        "location": {"type": "S3", "s3Location": {"uri": uri}},
        "score": score,
    }


def encode_event_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """Frame one message of the AWS event-stream encoding (string headers only).

    Layout: total length, headers length, CRC32 of those 8 bytes, headers, payload, CRC32 of
    everything before it; all integers big-endian.
    """
    encoded_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    total_length = 4 + 4 + 4 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack("!II", total_length, len(encoded_headers))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


def _encode_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + struct.pack("!BH", _STRING_HEADER, len(raw_value))
        + raw_value
    )


def _event(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_event_message(headers, json.dumps(payload).encode())


def _exception_event(error_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": error_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_event_message(headers, json.dumps({"message": message}).encode())


def _texts(blocks: Any) -> Iterator[str]:
    """The text of every text and guardContent block (what the model reads)."""
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            yield block["text"]
        guarded = block.get("guardContent")
        if isinstance(guarded, dict) and isinstance(guarded.get("text"), dict):
            yield str(guarded["text"].get("text", ""))


def _count_tokens(texts: Iterator[str] | Sequence[str]) -> int:
    return sum(len(text.split()) for text in texts)


def _input_tokens(body: dict[str, Any]) -> int:
    texts = [text for message in body["messages"] for text in _texts(message.get("content"))]
    return _count_tokens(texts) + _count_tokens(_texts(body.get("system")))


def _validate_conversation(body: dict[str, Any], operation: Operation, model_id: str) -> None:
    max_tokens = body.get("inferenceConfig", {}).get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _ValidationError("inferenceConfig.maxTokens must be an integer of at least 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _ValidationError("messages must be a non-empty list")
    if not isinstance(messages[0], dict) or messages[0].get("role") != "user":
        raise _ValidationError("A conversation must start with a user message.")
    for previous, current in itertools.pairwise(messages):
        if not isinstance(current, dict) or current.get("role") == previous.get("role"):
            raise _ValidationError(
                "A conversation must alternate between user and assistant roles."
            )
    for message in messages:
        if not isinstance(message.get("content"), list) or not message["content"]:
            raise _ValidationError("Each message must have non-empty content.")
        _validate_blocks(message["content"], MESSAGE_BLOCKS)
    system = body.get("system", [])
    if not isinstance(system, list):
        raise _ValidationError("system must be a list of blocks")
    _validate_blocks(system, SYSTEM_BLOCKS)
    _validate_media(messages)
    cache_points = sum(1 for block in _all_blocks(body) if "cachePoint" in block)
    if cache_points and minimum_cached_tokens(model_id) is None:
        raise _ValidationError(f"The model {model_id} does not support prompt caching.")
    if cache_points > MAX_CACHE_POINTS:
        raise _ValidationError(
            f"A request may hold at most {MAX_CACHE_POINTS} cachePoint blocks, "
            f"this one holds {cache_points}."
        )
    if "guardrailConfig" in body:
        _validate_guardrail_config(body["guardrailConfig"], operation)


def _all_blocks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from body.get("system", [])
    for message in body["messages"]:
        yield from message["content"]


def _placed_blocks(body: dict[str, Any]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Every block in prompt order with where it sits: the system, or a message's index and
    role (so equal blocks in different places make different prefixes)."""
    for block in body.get("system", []):
        yield ["system"], block
    for index, message in enumerate(body["messages"]):
        for block in message["content"]:
            yield [index, message["role"]], block


def _validate_blocks(blocks: list[Any], allowed: frozenset[str]) -> None:
    """Each block a union of exactly one known member, as the service's model defines it."""
    for block in blocks:
        if not isinstance(block, dict) or len(block) != 1:
            raise _ValidationError("Each content block must set exactly one member.")
        [(kind, value)] = block.items()
        if kind not in allowed:
            raise _ValidationError(f"Unsupported content block type: {kind}.")
        if kind == "text" and (not isinstance(value, str) or not value.strip()):
            raise _ValidationError("The text field in the ContentBlock object is blank.")
        if kind == "guardContent":
            text = value.get("text") if isinstance(value, dict) else None
            if not isinstance(text, dict) or set(text) - {"text", "qualifiers"}:
                raise _ValidationError("guardContent must hold a text block: {text: {text}}.")
            if not isinstance(text.get("text"), str) or not text["text"].strip():
                raise _ValidationError("The text field in the guardContent block is blank.")
            qualifiers = text.get("qualifiers", [])
            if not isinstance(qualifiers, list) or set(qualifiers) - GUARD_QUALIFIERS:
                raise _ValidationError(f"guardContent qualifiers must be in {GUARD_QUALIFIERS}.")
        if kind == "cachePoint" and (
            not isinstance(value, dict)
            or value.get("type") != "default"
            or set(value) - {"type", "ttl"}
            or value.get("ttl", "5m") not in ("5m", "1h")
        ):
            raise _ValidationError('cachePoint must be {"type": "default"} (and an optional ttl).')


def _validate_media(messages: list[dict[str, Any]]) -> None:
    """Image and document blocks as the service checks them: where they sit, how many, their
    format, bytes and (documents) name; a message with a document needs a text block."""
    images = documents = 0
    names: set[str] = set()
    for message in messages:
        kinds = [kind for block in message["content"] for kind in block]
        media = [kind for kind in kinds if kind in ("image", "document")]
        if media and message["role"] != "user":
            raise _ValidationError(
                f"{media[0]} content blocks are only supported in user messages."
            )
        if "document" in kinds and "text" not in kinds and "guardContent" not in kinds:
            raise _ValidationError(
                "A message with a document content block must also include a text block."
            )
        for block in message["content"]:
            if "image" in block:
                images += 1
                _validate_source(block["image"], "image", IMAGE_FORMATS, MAX_IMAGE_BYTES)
            if "document" in block:
                documents += 1
                document = block["document"]
                _validate_source(document, "document", DOCUMENT_FORMATS, MAX_DOCUMENT_BYTES)
                name = document.get("name")
                if not isinstance(name, str) or not DOCUMENT_NAME.fullmatch(name):
                    raise _ValidationError(
                        f"The document name {name!r} is invalid: it may hold only alphanumeric "
                        "characters, whitespace (never more than one in a row), hyphens, "
                        "parentheses and square brackets."
                    )
                if name in names:
                    raise _ValidationError(f"Two documents are named {name!r}; names are unique.")
                names.add(name)
    if images > MAX_IMAGES:
        raise _ValidationError(f"Too many images: {images}, at most {MAX_IMAGES} a request.")
    if documents > MAX_DOCUMENTS:
        raise _ValidationError(
            f"Too many documents: {documents}, at most {MAX_DOCUMENTS} a request."
        )


def _validate_source(value: Any, kind: str, formats: frozenset[str], max_bytes: int) -> None:
    if not isinstance(value, dict) or value.get("format") not in formats:
        given = value.get("format") if isinstance(value, dict) else value
        raise _ValidationError(f"The {kind} format {given!r} is not one of {sorted(formats)}.")
    source = value.get("source")
    if not isinstance(source, dict) or set(source) != {"bytes"}:
        raise _ValidationError(f"The {kind} source must be {{bytes}}.")
    try:
        data = base64.b64decode(source["bytes"], validate=True)
    except (ValueError, TypeError):
        raise _ValidationError(f"The {kind} bytes are not valid base64.") from None
    if not data:
        raise _ValidationError(f"The {kind} bytes are empty.")
    if len(data) > max_bytes:
        raise _ValidationError(
            f"The {kind} is {len(data)} bytes; the maximum is {max_bytes} bytes."
        )


def _validate_guardrail_config(config: Any, operation: Operation) -> None:
    fields = {"guardrailIdentifier", "guardrailVersion", "trace"}
    if operation == CONVERSE_STREAM:
        fields.add("streamProcessingMode")
    if not isinstance(config, dict) or set(config) - fields:
        unknown = sorted(set(config) - fields) if isinstance(config, dict) else config
        raise _ValidationError(f"guardrailConfig has unknown fields: {unknown}.")
    if not GUARDRAIL_ID.fullmatch(str(config.get("guardrailIdentifier", ""))):
        raise _ValidationError("guardrailConfig.guardrailIdentifier is not a guardrail id or ARN.")
    if not GUARDRAIL_VERSION.fullmatch(str(config.get("guardrailVersion", ""))):
        raise _ValidationError("guardrailConfig.guardrailVersion must be a number or DRAFT.")
    if config.get("trace", "disabled") not in ("enabled", "disabled", "enabled_full"):
        raise _ValidationError("guardrailConfig.trace must be enabled, disabled or enabled_full.")
    if config.get("streamProcessingMode", "sync") not in ("sync", "async"):
        raise _ValidationError("guardrailConfig.streamProcessingMode must be sync or async.")


def _base_model(model_id: str) -> str:
    """The foundation model of a model id: a cross-region profile's without its geography."""
    geography, _, rest = model_id.partition(".")
    return rest if geography in PROFILE_GEOGRAPHIES else model_id


def minimum_cached_tokens(model_id: str) -> int | None:
    """The smallest prefix a cache point caches on this model, or None: no prompt caching."""
    base = _base_model(model_id)
    return next((least for prefix, least in CACHING_MODELS if base.startswith(prefix)), None)


def _assessed(body: dict[str, Any]) -> list[str]:
    """What the guardrail assesses of a request: with guardContent anywhere, only that; else
    every text of the messages (the system prompt is not assessed without guardContent)."""
    guarded = [
        block["guardContent"]["text"]["text"]
        for block in _all_blocks(body)
        if "guardContent" in block
    ]
    if guarded:
        return guarded
    return [text for message in body["messages"] for text in _texts(message["content"])]


def _within_max_tokens(chunks: list[str], body: dict[str, Any]) -> tuple[list[str], bool]:
    """The answer's chunks cut to ``inferenceConfig.maxTokens`` (a token is a word, as in the
    usage), and whether they were cut: the model then stops with ``max_tokens``."""
    limit = body.get("inferenceConfig", {}).get("maxTokens")
    if not isinstance(limit, int) or _count_tokens(chunks) <= limit:
        return chunks, False
    kept: list[str] = []
    left = limit
    for chunk in chunks:
        words = _count_tokens([chunk])
        if words > left:
            kept.append(_first_words(chunk, left))
            break
        kept.append(chunk)
        left -= words
    return [chunk for chunk in kept if chunk], True


def _first_words(text: str, count: int) -> str:
    """The first ``count`` words of ``text``, with their spacing."""
    taken: list[str] = []
    for piece in _split_words(text):
        if piece.strip():
            if count == 0:
                break
            count -= 1
        taken.append(piece)
    return "".join(taken)


def _split_words(text: str) -> list[str]:
    """Chunks that join back to ``text``: each word with the whitespace that follows it."""
    return re.findall(r"\S+\s*|\s+", text)


class BedrockFake(LoopbackServer):
    """Fake bedrock-runtime + bedrock-agent-runtime endpoint; see the module docstring.

    Configuration is plain attributes, read at each request, so a test may change them any time:

    * ``reply``: the converse answer, or a callable given the request JSON body.
    * ``stream_chunks``: converse_stream text deltas; ``None`` streams ``reply`` word by word.
    * ``retrieval_results``: retrieve results in the wire format (build them with :func:`passage`).
    * ``stop_reason`` and ``latency_ms``: echoed in converse/converse_stream answers.
    * ``response_delay``: seconds to wait before answering any request (a slow model).
    """

    def __init__(
        self,
        reply: Reply = DEFAULT_REPLY,
        stream_chunks: Sequence[str] | None = None,
        retrieval_results: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__()
        self.reply: Reply = reply
        self.stream_chunks: Sequence[str] | None = stream_chunks
        self.retrieval_results: Sequence[dict[str, Any]] = retrieval_results
        self.stop_reason = "end_turn"
        self.latency_ms = 1
        self.response_delay = 0.0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: list[_Failure] = []
        self._stream_break: _StreamBreak | None = None
        self._stream_cut: _StreamCut | None = None
        self._holds: list[_Hold] = []
        self.pacing: Pacing | None = None
        self._streams: list[StreamRecord] = []
        self._blocked_terms: tuple[str, ...] = ()
        self._blocked_input_message = DEFAULT_BLOCKED_INPUT
        self._interventions: list[_Intervention] = []
        self.clock: Callable[[], float] = time.monotonic  # the prompt cache's clock
        self._cache: dict[tuple[str, str], float] = {}  # (model, prefix digest) -> expiry
        self._arrivals: dict[Operation, threading.Event] = {}

    # ---- programming the fake -------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Service-specific endpoint variables that send both Bedrock clients here."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
            "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": self.url,
        }

    def throttle(
        self, n: int = 1, operation: Operation | None = None, *, model: str | None = None
    ) -> None:
        """Answer the next ``n`` requests (of ``operation`` and ``model``, or any) 429
        ThrottlingException."""
        self.fail(
            429, "ThrottlingException", "Too many requests, please wait.", operation, n, model=model
        )

    def fail(
        self,
        status: int,
        error_type: str,
        message: str | None = None,
        operation: Operation | None = None,
        times: int | None = 1,
        *,
        model: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests (of ``operation`` and for ``model``, a
        model id, when given) with a restJson error.

        ``times=None`` keeps failing until :meth:`reset`. Failures queue in the order given.
        """
        failure = _Failure(
            status, error_type, message or f"fake {error_type}", operation, times, model
        )
        with self._lock:
            self._failures.append(failure)

    def break_stream(
        self,
        after_chunks: int,
        error_type: str = "modelStreamErrorException",
        message: str = "The model stream failed.",
    ) -> None:
        """Make every converse_stream send an exception event after its first ``after_chunks``
        deltas (fewer if the reply is shorter), instead of the closing events.

        ``error_type`` is a ConverseStreamOutput error member (``modelStreamErrorException``,
        ``throttlingException``, ``validationException``, ``internalServerException``,
        ``serviceUnavailableException``); botocore raises it as ``EventStreamError`` while the
        caller iterates the stream.
        """
        with self._lock:
            self._stream_break = _StreamBreak(after_chunks, error_type, message)

    def cut_stream(self, after_chunks: int, how: CutKind = "clean") -> None:
        """Cut every converse_stream after ``after_chunks`` deltas: no messageStop, no metadata,
        no exception event. ``clean`` ends the body properly, as when a connection is closed
        between two events; ``reset`` drops the connection in the middle of the body;
        ``corrupt`` sends one more message whose checksum is wrong."""
        with self._lock:
            self._stream_cut = _StreamCut(after_chunks, how)

    def pace(self, first_delta_ms: float = 300, deltas_per_second: float = 80) -> None:
        """Send converse_stream deltas on a real model's schedule instead of all at once."""
        self.pacing = Pacing(first_delta_ms / 1000, deltas_per_second)

    def hold(self, after_chunks: int, until: threading.Event, timeout_s: float = 10) -> None:
        """Stall every converse_stream after ``after_chunks`` deltas until ``until`` is set
        (or ``timeout_s`` passed, so a broken test cannot hang)."""
        with self._lock:
            self._holds.append(_Hold(after_chunks, until, timeout_s))

    def block_input(self, *terms: str, message: str = DEFAULT_BLOCKED_INPUT) -> None:
        """Make the guardrail block every guarded request (one with ``guardrailConfig``) whose
        assessed input holds one of ``terms`` (case-insensitive): the model is not called, the
        answer is ``message`` with stop reason ``guardrail_intervened`` and no usage. Assessed,
        as by the real guardrail: the guardContent blocks when the request has any, else every
        text of the messages."""
        with self._lock:
            self._blocked_terms = tuple(term.lower() for term in terms)
            self._blocked_input_message = message

    def intervene(
        self, after_chunks: int, message: str = DEFAULT_BLOCKED_OUTPUT, times: int | None = 1
    ) -> None:
        """Make the guardrail block the model's output of the next ``times`` guarded requests
        (``None``: until :meth:`reset`). ``converse`` answers ``message`` alone, as Bedrock
        replaces a blocked output; ``converse_stream``, as in async mode, sends the first
        ``after_chunks`` deltas, then ``message`` as one more delta, then contentBlockStop,
        messageStop with stop reason ``guardrail_intervened`` and metadata."""
        with self._lock:
            self._interventions.append(_Intervention(after_chunks, message, times))

    def arrival(self, operation: Operation) -> threading.Event:
        """Set when a request for ``operation`` arrives, before ``response_delay`` and the
        answer: the moment a caller is waiting on the model, which a test can act on without
        polling anything."""
        with self._lock:
            return self._arrivals.setdefault(operation, threading.Event())

    @property
    def streams(self) -> list[StreamRecord]:
        """Every converse_stream answer sent so far, oldest first."""
        with self._lock:
            return list(self._streams)

    def reset(self) -> None:
        """Forget the request log, pending failures, stream breaks, cuts, holds, pacing, the
        guardrail's blocks and the prompt cache (not the replies)."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._stream_break = None
            self._stream_cut = None
            self._holds.clear()
            self._streams.clear()
            self._blocked_terms = ()
            self._interventions.clear()
            self._cache.clear()
            self._arrivals.clear()
        self.pacing = None

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, operation: Operation) -> list[RecordedRequest]:
        return [request for request in self.requests if request.operation == operation]

    # ---- serving ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        route = self._route(request)
        if route is not None:
            self.arrival(route[0]).set()
        if self.response_delay > 0:
            time.sleep(self.response_delay)
        if route is None:
            return error_response(
                404, "UnknownOperationException", f"{request.method} {request.path}"
            )
        operation, resource_id = route
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError as error:
            body = {"__unparsable__": request.body.decode(errors="replace")}
            response = error_response(400, "ValidationException", f"invalid JSON: {error}")
        else:
            response = self._answer_operation(operation, body, resource_id)
        with self._lock:
            self._requests.append(RecordedRequest(operation, resource_id, body, response.status))
        return response

    @staticmethod
    def _route(request: Request) -> tuple[Operation, str] | None:
        if request.method != "POST":
            return None
        for pattern, operation in _ROUTES:
            match = pattern.match(request.path)
            if match:
                return operation, unquote(match["id"])
        return None

    def _take_failure(self, operation: Operation, resource_id: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.operation in (None, operation) and failure.model in (None, resource_id):
                    if failure.remaining is not None:
                        failure.remaining -= 1
                        if failure.remaining <= 0:
                            self._failures.remove(failure)
                    return failure
        return None

    def _answer_operation(
        self, operation: Operation, body: dict[str, Any], resource_id: str
    ) -> Response:
        failure = self._take_failure(operation, resource_id)
        if failure:
            return error_response(failure.status, failure.error_type, failure.message)
        try:
            if operation == RETRIEVE:
                return self._retrieve(body)
            _validate_conversation(body, operation, resource_id)
        except _ValidationError as error:
            return error_response(400, "ValidationException", str(error))
        if operation == CONVERSE:
            return self._converse(self._answer(body, resource_id, streaming=False))
        return self._converse_stream(self._answer(body, resource_id, streaming=True))

    def _reply_text(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply

    def _answer(self, body: dict[str, Any], model_id: str, *, streaming: bool) -> _Answer:
        guarded = "guardrailConfig" in body
        if guarded and self._input_blocked(body):
            empty = {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
            return _Answer([self._blocked_input_message], GUARDRAIL_INTERVENED, empty)
        if not streaming:
            chunks = [self._reply_text(body)]
        elif self.stream_chunks is not None:
            chunks = list(self.stream_chunks)
        else:
            chunks = _split_words(self._reply_text(body))
        chunks, capped = _within_max_tokens(chunks, body)
        stop_reason = "max_tokens" if capped else self.stop_reason
        intervention = self._take_intervention() if guarded else None
        if intervention is not None:
            kept = chunks[: intervention.after_chunks] if streaming else []
            chunks, stop_reason = [*kept, intervention.message], GUARDRAIL_INTERVENED
        return _Answer(chunks, stop_reason, self._usage(body, model_id, "".join(chunks)))

    def _input_blocked(self, body: dict[str, Any]) -> bool:
        with self._lock:
            terms = self._blocked_terms
        return any(term in text.lower() for text in _assessed(body) for term in terms)

    def _take_intervention(self) -> _Intervention | None:
        with self._lock:
            if not self._interventions:
                return None
            intervention = self._interventions[0]
            if intervention.remaining is not None:
                intervention.remaining -= 1
                if intervention.remaining <= 0:
                    self._interventions.pop(0)
            return intervention

    def _usage(self, body: dict[str, Any], model_id: str, output_text: str) -> dict[str, int]:
        input_tokens, output_tokens = _input_tokens(body), _count_tokens([output_text])
        usage = {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        }
        if any("cachePoint" in block for block in _all_blocks(body)):
            read, write = self._cached(body, model_id)
            usage["inputTokens"] = input_tokens - read - write
            usage["cacheReadInputTokens"] = read
            usage["cacheWriteInputTokens"] = write
        return usage

    def _cached(self, body: dict[str, Any], model_id: str) -> tuple[int, int]:
        """Tokens read from and written to the prompt cache by this request.

        The prefix at every block boundary (system blocks, then each message's) is digested
        with the blocks before it. A cache point caches the prefix before it when it holds
        the model's minimum of tokens. The read is the longest prefix cached earlier that ends
        at most :data:`CACHE_LOOKBACK_BLOCKS` blocks before one of this request's cache points
        (Anthropic's documented lookback); the write is what lies between it and the last
        cache point. Reads and writes start the prefix's time to live again.
        """
        minimum = minimum_cached_tokens(model_id) or 0
        model = _base_model(model_id)
        digest = hashlib.sha256()
        tokens = 0
        prefixes: list[tuple[str, int]] = []  # after each block: its digest and its tokens
        points: list[int] = []  # indexes into prefixes
        for place, block in _placed_blocks(body):
            if "cachePoint" in block:
                if prefixes:
                    points.append(len(prefixes) - 1)
                continue
            digest.update(json.dumps([place, block], sort_keys=True).encode())
            tokens += _count_tokens(list(_texts([block])))
            prefixes.append((digest.hexdigest(), tokens))
        if not points:
            return 0, 0
        now = self.clock()
        candidates = sorted(
            {
                i
                for point in points
                for i in range(max(point - CACHE_LOOKBACK_BLOCKS, 0), point + 1)
            },
            reverse=True,
        )
        with self._lock:
            hit = next(
                (i for i in candidates if self._cache.get((model, prefixes[i][0]), 0.0) > now),
                None,
            )
            read = prefixes[hit][1] if hit is not None else 0
            for i in {*points, *([] if hit is None else [hit])}:
                if prefixes[i][1] >= minimum:
                    self._cache[(model, prefixes[i][0])] = now + CACHE_TTL_SECONDS
        last = prefixes[points[-1]][1]
        write = last - read if last >= minimum and last > read else 0
        return read, write

    def _converse(self, answer: _Answer) -> Response:
        return json_response(
            {
                "output": {
                    "message": {"role": "assistant", "content": [{"text": "".join(answer.chunks)}]}
                },
                "stopReason": answer.stop_reason,
                "usage": answer.usage,
                "metrics": {"latencyMs": self.latency_ms},
            }
        )

    def _converse_stream(self, answer: _Answer) -> Response:
        chunks = answer.chunks
        with self._lock:
            stream_break, stream_cut = self._stream_break, self._stream_cut
            holds = list(self._holds)
            record = StreamRecord(started=time.monotonic())
            self._streams.append(record)
        if stream_break:
            chunks = chunks[: stream_break.after_chunks]
        if stream_cut:
            chunks = chunks[: stream_cut.after_chunks]
        closing: list[bytes] = []
        if stream_break:
            closing.append(_exception_event(stream_break.error_type, stream_break.message))
        elif not stream_cut:
            closing += [
                _event("contentBlockStop", {"contentBlockIndex": 0}),
                _event("messageStop", {"stopReason": answer.stop_reason}),
                _event(
                    "metadata",
                    {"usage": answer.usage, "metrics": {"latencyMs": self.latency_ms}},
                ),
            ]
        return Response(
            200,
            headers={"Content-Type": EVENTSTREAM_CONTENT_TYPE},
            stream=self._paced(chunks, closing, holds, record, pacing=self.pacing, cut=stream_cut),
        )

    def _paced(
        self,
        chunks: list[str],
        closing: list[bytes],
        holds: list[_Hold],
        record: StreamRecord,
        *,
        pacing: Pacing | None,
        cut: _StreamCut | None,
    ) -> Iterator[bytes]:
        yield _event("messageStart", {"role": "assistant"})
        for index, chunk in enumerate(chunks):
            for hold in holds:
                if hold.after_chunks == index:
                    hold.until.wait(hold.timeout_s)
            if pacing is not None:
                time.sleep(max(pacing.due(record.started, index) - time.monotonic(), 0))
            yield _event("contentBlockDelta", {"delta": {"text": chunk}, "contentBlockIndex": 0})
            record.delta_times.append(time.monotonic())
        yield b"".join(closing)
        record.finished = time.monotonic()
        if cut is not None and cut.how == "corrupt":
            frame = bytearray(_event("contentBlockDelta", {"delta": {"text": "x"}}))
            frame[-1] ^= 0xFF  # the message CRC no longer matches
            yield bytes(frame)
        if cut is not None and cut.how == "reset":
            raise Abort("the fake drops the connection mid-stream")

    def _retrieve(self, body: dict[str, Any]) -> Response:
        query = body.get("retrievalQuery")
        if not isinstance(query, dict) or not str(query.get("text", "")).strip():
            raise _ValidationError("retrievalQuery.text must not be blank")
        vector_config = body.get("retrievalConfiguration", {}).get("vectorSearchConfiguration", {})
        limit = int(vector_config.get("numberOfResults", DEFAULT_NUMBER_OF_RESULTS))
        return json_response({"retrievalResults": list(self.retrieval_results)[:limit]})
