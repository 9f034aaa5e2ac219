"""The one chat service behind both transports: REST (``converse``) and WebSocket (streaming).

A turn goes: load the caller's session (someone else's is "not found"), retrieve knowledge-base
passages when the session has a knowledge base, read the most recent history that fits the
context budget, store the user's turn, call the model, store the assistant's turn. The user's
turn is stored before the model call so it survives a model failure; the assistant's turn is
stored once complete, even if the WebSocket client went away mid-stream (see
:meth:`ChatStream.complete`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.shared import aws
from functions.shared.errors import BadRequest, upstream_errors
from functions.shared.models import Citation, Message, Role, Session, Usage

if TYPE_CHECKING:
    from functions.shared.settings import Settings
    from functions.shared.store import Store

MAX_CONTENT_CHARS = 50_000  # far below DynamoDB's 400 KB item limit, even in 4-byte UTF-8
# ~50k tokens of history: ample for a chat, well inside every configured model's window.
DEFAULT_HISTORY_BUDGET_CHARS = 200_000
RETRIEVAL_RESULTS = 5

SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely."
GROUNDING_PROMPT = (
    "Ground your answer in the numbered passages below, retrieved from a knowledge base. "
    "Cite the passages you use as [1], [2], and so on. If they do not contain the answer, "
    "say so instead of guessing."
)


@dataclass(frozen=True)
class ChatReply:
    """A completed turn: the stored assistant message, its sources and the token usage."""

    message: Message
    citations: tuple[Citation, ...]
    usage: Usage


@dataclass(frozen=True)
class _Turn:
    """Everything decided before the model call."""

    user_id: str
    session: Session
    request: dict[str, Any]
    citations: tuple[Citation, ...]


def validate_content(content: object) -> str:
    """The user's text, or :class:`BadRequest`: Bedrock rejects blank text blocks."""
    if not isinstance(content, str) or not content.strip():
        raise BadRequest("content must be a non-blank string")
    if len(content) > MAX_CONTENT_CHARS:
        raise BadRequest(f"content must be at most {MAX_CONTENT_CHARS} characters")
    return content


class ChatStream:
    """A streaming turn in progress: iterate it for text deltas, then call :meth:`complete`.

    The two share one generator over the model's event stream, so a consumer may stop iterating
    at any point (its client disconnected) and :meth:`complete` still reads the rest of the
    answer before storing it: the stored message is always the whole answer.
    """

    def __init__(
        self,
        service: ChatService,
        turn: _Turn,
        events: Iterable[dict[str, Any]],
        message_id: str,
    ) -> None:
        self._service = service
        self._turn = turn
        self._parts: list[str] = []
        self._usage = Usage()
        self._deltas = self._read(events)
        self.message_id = message_id

    @property
    def session_id(self) -> str:
        return self._turn.session.session_id

    @property
    def citations(self) -> tuple[Citation, ...]:
        return self._turn.citations

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def complete(self) -> ChatReply:
        """Drain whatever the consumer did not read, then store the assistant message."""
        for _ in self._deltas:
            pass
        return self._service._finish(self._turn, "".join(self._parts), self._usage, self.message_id)

    def _read(self, events: Iterable[dict[str, Any]]) -> Iterator[str]:
        with upstream_errors("the model stream"):
            for event in events:
                text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
                if text:
                    self._parts.append(text)
                    yield text
                elif "metadata" in event:
                    self._usage = _usage(event["metadata"].get("usage"))


@dataclass
class ChatService:
    """Chat turns over a :class:`~functions.shared.store.Store` and the Bedrock clients."""

    settings: Settings
    store: Store
    history_budget_chars: int = DEFAULT_HISTORY_BUDGET_CHARS
    retrieval_results: int = RETRIEVAL_RESULTS

    def reply(self, user_id: str, session_id: str, content: str) -> ChatReply:
        """One complete turn with ``converse``."""
        turn = self._prepare(user_id, session_id, content)
        with upstream_errors("the model call"):
            response = aws.client("bedrock-runtime").converse(**turn.request)
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(block.get("text", "") for block in blocks)
        return self._finish(turn, text, _usage(response.get("usage")), str(uuid.uuid4()))

    def stream(self, user_id: str, session_id: str, content: str) -> ChatStream:
        """Start a turn with ``converse_stream``; errors before the first delta raise here."""
        turn = self._prepare(user_id, session_id, content)
        with upstream_errors("the model call"):
            response = aws.client("bedrock-runtime").converse_stream(**turn.request)
        return ChatStream(self, turn, response["stream"], message_id=str(uuid.uuid4()))

    def _prepare(self, user_id: str, session_id: str, content: str) -> _Turn:
        content = validate_content(content)
        session = self.store.sessions.get(user_id, session_id)
        citations = self._retrieve(session, content)
        system = system_prompt(citations)
        budget = max(self.history_budget_chars - len(content) - len(system), 0)
        history = self.store.messages.recent(session_id, budget)
        self.store.append(user_id, session_id, "user", content)
        model_id = (
            session.model_id
            if session.model_id in self.settings.bedrock_models
            else self.settings.default_model
        )
        request = {
            "modelId": model_id,
            "messages": conversation(history, content),
            "system": [{"text": system}],
        }
        return _Turn(user_id=user_id, session=session, request=request, citations=citations)

    def _finish(self, turn: _Turn, text: str, usage: Usage, message_id: str) -> ChatReply:
        message = self.store.append(
            turn.user_id,
            turn.session.session_id,
            "assistant",
            text,
            message_id=message_id,
            citations=turn.citations,
            usage=usage,
        )
        return ChatReply(message=message, citations=turn.citations, usage=usage)

    def _retrieve(self, session: Session, query: str) -> tuple[Citation, ...]:
        knowledge_base_id = session.knowledge_base_id
        if not knowledge_base_id or not self.settings.knowledge_bases_enabled:
            return ()
        with upstream_errors(
            "the knowledge-base retrieval",
            not_found=f"knowledge base {knowledge_base_id} does not exist",
        ):
            response = aws.client("bedrock-agent-runtime").retrieve(
                knowledgeBaseId=knowledge_base_id,
                retrievalQuery={"text": query},
                retrievalConfiguration={
                    "vectorSearchConfiguration": {"numberOfResults": self.retrieval_results}
                },
            )
        return tuple(
            Citation(
                index=number,
                text=result.get("content", {}).get("text", ""),
                source=_source(result.get("location", {})),
                score=result.get("score"),
            )
            for number, result in enumerate(response.get("retrievalResults", []), start=1)
        )


def system_prompt(citations: tuple[Citation, ...]) -> str:
    """The system prompt, with the retrieved passages numbered as the citations are."""
    if not citations:
        return SYSTEM_PROMPT
    passages = "\n\n".join(
        f"[{citation.index}]"
        + (f" (source: {citation.source})" if citation.source else "")
        + f"\n{citation.text}"
        for citation in citations
    )
    return f"{SYSTEM_PROMPT}\n\n{GROUNDING_PROMPT}\n\n{passages}"


def conversation(history: list[Message], content: str) -> list[dict[str, Any]]:
    """Bedrock messages: the history then the new user turn, starting with a user turn and
    alternating roles, as Converse requires.

    Stored history need not alternate: concurrent turns interleave, and a user turn whose model
    call failed has no answer. Consecutive turns of one role are merged rather than dropped, so
    nothing the user said is hidden from the model; blank turns are skipped.
    """
    turns: list[tuple[Role, str]] = [
        (message.role, message.content) for message in history if message.content.strip()
    ]
    turns.append(("user", content))
    while turns[0][0] != "user":
        turns.pop(0)
    merged: list[tuple[Role, list[str]]] = []
    for role, text in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].append(text)
        else:
            merged.append((role, [text]))
    return [{"role": role, "content": [{"text": "\n\n".join(texts)}]} for role, texts in merged]


def _usage(raw: dict[str, Any] | None) -> Usage:
    raw = raw or {}
    return Usage(
        input_tokens=int(raw.get("inputTokens", 0)),
        output_tokens=int(raw.get("outputTokens", 0)),
        total_tokens=int(raw.get("totalTokens", 0)),
    )


def _source(location: dict[str, Any]) -> str | None:
    """The URI/URL of a retrieved passage, whatever the data source type (S3, web, ...)."""
    for value in location.values():
        if isinstance(value, dict):
            for name in ("uri", "url", "id"):
                if isinstance(value.get(name), str):
                    return value[name]
    return None
