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
(with ``nextToken`` paging), see :mod:`tests.support.moto_server`.

Like the real service it rejects (400 ValidationException) a conversation that does not start
with a user message, whose roles do not alternate, or that holds a blank text block, and a
retrieve whose query text is blank; ``retrieve`` returns at most ``numberOfResults`` (default 5).

Usage::

    from devserver.bedrock import BedrockFake, passage

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
        ... run the code under test ...
        [req] = bedrock.requests_for(CONVERSE)          # what the code sent
        assert req.resource_id == "anthropic.claude-3-haiku-20240307-v1:0"
        assert req.body["messages"][-1]["role"] == "user"

``converse_stream`` answers are sent with chunked transfer encoding, one event-stream message
per piece, so a paced stream reaches the client as a real one does; :attr:`BedrockFake.streams`
records when each delta went out (``time.monotonic``).

Usage counts one token per whitespace-separated word: ``inputTokens`` over every text block of
``messages`` and ``system``, ``outputTokens`` over the reply; ``totalTokens`` is their sum.
"""

from __future__ import annotations

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

from devserver.loopback import (
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


@dataclass(frozen=True)
class _StreamBreak:
    after_chunks: int
    error_type: str
    message: str


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
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            yield block["text"]


def _count_tokens(texts: Iterator[str] | Sequence[str]) -> int:
    return sum(len(text.split()) for text in texts)


def _input_tokens(body: dict[str, Any]) -> int:
    texts = [text for message in body["messages"] for text in _texts(message.get("content"))]
    return _count_tokens(texts) + _count_tokens(_texts(body.get("system")))


def _validate_conversation(body: dict[str, Any]) -> None:
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
        if any(not text.strip() for text in _texts(message["content"])):
            raise _ValidationError("The text field in the ContentBlock object is blank.")


def _within_max_tokens(chunks: list[str], body: dict[str, Any]) -> tuple[list[str], bool]:
    """The answer's chunks cut to ``inferenceConfig.maxTokens`` (a token is a word, as in the
    usage), and whether they were cut: the model then stops with ``max_tokens``."""
    limit = body.get("inferenceConfig", {}).get("maxTokens")
    if not isinstance(limit, int) or _count_tokens(chunks) <= limit:
        return chunks, False
    kept: list[str] = []
    count = 0
    for chunk in chunks:
        count += _count_tokens([chunk])
        if count > limit:
            break
        kept.append(chunk)
    return kept, True


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

    # ---- programming the fake -------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Service-specific endpoint variables that send both Bedrock clients here."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url,
            "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": self.url,
        }

    def throttle(self, n: int = 1, operation: Operation | None = None) -> None:
        """Answer the next ``n`` requests (of ``operation``, or any) 429 ThrottlingException."""
        self.fail(429, "ThrottlingException", "Too many requests, please wait.", operation, n)

    def fail(
        self,
        status: int,
        error_type: str,
        message: str | None = None,
        operation: Operation | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with a restJson error.

        ``times=None`` keeps failing until :meth:`reset`. Failures queue in the order given.
        """
        failure = _Failure(status, error_type, message or f"fake {error_type}", operation, times)
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

    @property
    def streams(self) -> list[StreamRecord]:
        """Every converse_stream answer sent so far, oldest first."""
        with self._lock:
            return list(self._streams)

    def reset(self) -> None:
        """Forget the request log, pending failures, stream breaks, cuts, holds and pacing (not
        the replies)."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._stream_break = None
            self._stream_cut = None
            self._holds.clear()
            self._streams.clear()
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
        if self.response_delay > 0:
            time.sleep(self.response_delay)
        route = self._route(request)
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
            response = self._answer_operation(operation, body)
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

    def _take_failure(self, operation: Operation) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.operation in (None, operation):
                    if failure.remaining is not None:
                        failure.remaining -= 1
                        if failure.remaining <= 0:
                            self._failures.remove(failure)
                    return failure
        return None

    def _answer_operation(self, operation: Operation, body: dict[str, Any]) -> Response:
        failure = self._take_failure(operation)
        if failure:
            return error_response(failure.status, failure.error_type, failure.message)
        try:
            if operation == RETRIEVE:
                return self._retrieve(body)
            _validate_conversation(body)
        except _ValidationError as error:
            return error_response(400, "ValidationException", str(error))
        if operation == CONVERSE:
            return self._converse(body)
        return self._converse_stream(body)

    def _reply_text(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply

    def _usage(self, body: dict[str, Any], output_text: str) -> dict[str, int]:
        input_tokens, output_tokens = _input_tokens(body), _count_tokens([output_text])
        return {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        }

    def _converse(self, body: dict[str, Any]) -> Response:
        text, capped = _within_max_tokens(_split_words(self._reply_text(body)), body)
        text = "".join(text)
        return json_response(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "max_tokens" if capped else self.stop_reason,
                "usage": self._usage(body, text),
                "metrics": {"latencyMs": self.latency_ms},
            }
        )

    def _converse_stream(self, body: dict[str, Any]) -> Response:
        chunks = (
            list(self.stream_chunks)
            if self.stream_chunks is not None
            else _split_words(self._reply_text(body))
        )
        with self._lock:
            stream_break, stream_cut = self._stream_break, self._stream_cut
            holds = list(self._holds)
            record = StreamRecord(started=time.monotonic())
            self._streams.append(record)
        if stream_break:
            chunks = chunks[: stream_break.after_chunks]
        if stream_cut:
            chunks = chunks[: stream_cut.after_chunks]
        chunks, capped = _within_max_tokens(chunks, body)
        closing: list[bytes] = []
        if stream_break:
            closing.append(_exception_event(stream_break.error_type, stream_break.message))
        elif not stream_cut:
            closing += [
                _event("contentBlockStop", {"contentBlockIndex": 0}),
                _event("messageStop", {"stopReason": "max_tokens" if capped else self.stop_reason}),
                _event(
                    "metadata",
                    {
                        "usage": self._usage(body, "".join(chunks)),
                        "metrics": {"latencyMs": self.latency_ms},
                    },
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
