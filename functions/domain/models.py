"""Plain domain records shared by the store, the chat service and both transports.

Frozen dataclasses rather than pydantic models: the WebSocket function uses them too and should
not pay pydantic's import cost. The REST layer converts them to its pydantic response models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

Role = Literal["user", "assistant"]
# complete: the model said it was done (messageStop with end_turn or stop_sequence).
# incomplete: stored as far as it got; ``stop_reason`` says why (max_tokens, timeout, ...).
# failed: the model call or stream failed; no answer is stored, only this marker.
MessageStatus = Literal["complete", "incomplete", "failed"]
MESSAGE_STATUSES: tuple[MessageStatus, ...] = get_args(MessageStatus)
# A user's rating of one answer (PUT .../feedback), and what it was about.
Rating = Literal["up", "down"]
RATINGS: tuple[Rating, ...] = get_args(Rating)
FeedbackCategory = Literal["helpful", "inaccurate", "incomplete", "harmful", "off_topic", "other"]
FEEDBACK_CATEGORIES: tuple[FeedbackCategory, ...] = get_args(FeedbackCategory)
MAX_FEEDBACK_COMMENT_CHARS = 2_000
T = TypeVar("T")


# What a session created without a title is called until it gets one: the REST API's default,
# which counts as no title when the session is named after its first answer.
DEFAULT_TITLE = "New session"


def untitled(title: str | None) -> bool:
    """Whether a session still waits for a title: none, empty, or the default one."""
    return not title or title == DEFAULT_TITLE


@dataclass(frozen=True)
class Session:
    session_id: str
    user_id: str
    title: str
    model_id: str
    knowledge_base_id: str | None
    created_at: str
    last_activity: str
    expires_at: int
    message_count: int


@dataclass(frozen=True)
class Citation:
    """A knowledge-base passage the answer was grounded on; ``index`` is its ``[n]`` number."""

    index: int
    text: str
    source: str | None
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# What a cached input token costs against a user's token budget, relative to an uncached one:
# Anthropic Claude's prices on Bedrock (a cache read is 10% of the input price, a five-minute
# cache write 125%), so a budget tracks what the turns cost. Amazon Nova's reads cost 25% of
# its input price and are undercounted: one rate for every model. docs/functions.md#prompt-caching
CACHE_READ_BUDGET_RATE = 0.1
CACHE_WRITE_BUDGET_RATE = 1.25


@dataclass(frozen=True)
class Usage:
    """Tokens of one model call, as Bedrock reports them: ``input_tokens`` is the uncached part
    of the input; the cached part is ``cache_read_input_tokens`` (read from the prompt cache)
    and ``cache_write_input_tokens`` (written to it)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0

    @classmethod
    def of_bedrock(cls, raw: dict[str, Any] | None) -> Usage:
        """The ``usage`` of a Converse response or stream (camelCase, fields may be absent)."""
        raw = raw or {}
        return cls(
            input_tokens=int(raw.get("inputTokens", 0)),
            output_tokens=int(raw.get("outputTokens", 0)),
            total_tokens=int(raw.get("totalTokens", 0)),
            cache_read_input_tokens=int(raw.get("cacheReadInputTokens", 0)),
            cache_write_input_tokens=int(raw.get("cacheWriteInputTokens", 0)),
        )

    @property
    def budget_tokens(self) -> int:
        """What the call costs against the user's token budget: input and output tokens, with
        cached input at its documented rate (rounded up)."""
        cached = (
            self.cache_read_input_tokens * CACHE_READ_BUDGET_RATE
            + self.cache_write_input_tokens * CACHE_WRITE_BUDGET_RATE
        )
        return self.input_tokens + self.output_tokens + math.ceil(cached)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Feedback:
    """The caller's rating of one answer; a new one replaces it. ``given_at`` says when."""

    rating: Rating
    given_at: str
    category: FeedbackCategory | None = None
    comment: str | None = None


@dataclass(frozen=True)
class AttachmentRef:
    """An uploaded file a question sent the model: what its history keeps (the bytes stay in
    the attachments bucket, ``sessions/<session_id>/<attachment_id>``, until they expire)."""

    attachment_id: str
    name: str
    content_type: str
    size: int


UnavailableReason = Literal["expired", "limit", "rejected"]


@dataclass(frozen=True)
class UnavailableAttachment:
    """A file an earlier question sent that a later turn could not send the model again:
    ``expired`` (its object is gone), ``limit`` (the request already carries as many of its
    kind as Converse takes) or ``rejected`` (its object no longer passes the checks). The
    model is told in that question's place; the client is told with the answer."""

    attachment_id: str
    name: str
    reason: UnavailableReason


@dataclass(frozen=True)
class Message:
    """One stored turn; ``seq`` (1, 2, ...) orders a session's turns, allocated atomically."""

    session_id: str
    seq: int
    message_id: str
    role: Role
    content: str
    created_at: str
    citations: tuple[Citation, ...] = ()
    usage: Usage | None = None
    status: MessageStatus = "complete"
    stop_reason: str | None = None
    # Questions only: epoch seconds until which the turn that stored it may still fill its
    # answer's slot (its invocation's deadline); after that an empty slot is a gap to repair.
    answer_by: int | None = None
    # Versions of a turn (regenerate, edit): a replacement is a new turn at the end; its
    # question names the question it ``replaces`` and counts ``version`` from 1 (its answer
    # carries the same version). The replaced question and answer get ``superseded_by``, the
    # replacing question's id, and leave the history the model sees.
    version: int = 1
    replaces: str | None = None
    superseded_by: str | None = None
    # Answers only: the model that wrote it (absent on answers stored before it was recorded:
    # the session's model stands in), and the caller's rating of it, if any.
    model_id: str | None = None
    feedback: Feedback | None = None
    # Questions only: the files sent with it, as references.
    attachments: tuple[AttachmentRef, ...] = ()


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: str
    connected_at: str
    expires_at: int


@dataclass(frozen=True)
class KnowledgeBase:
    """A Bedrock knowledge base of the account; ``default`` marks the configured one."""

    knowledge_base_id: str
    name: str
    description: str | None
    status: str
    default: bool


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is None on the last page."""

    items: list[T]
    next_token: str | None


def content_bytes(text: str) -> int:
    """The size the history budget counts: UTF-8 bytes (a lone surrogate counts as one)."""
    return len(text.encode("utf-8", "replace"))
