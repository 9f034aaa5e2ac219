"""Request and response bodies of the REST API, as pydantic models so OpenAPI documents them.

Request models forbid unknown fields: a misspelt ``modle_id`` is a 400, not a silent default.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from functions.domain.attachments import MAX_NAME_CHARS
from functions.domain.content import MAX_CONTENT_CHARS, content_problem
from functions.domain.errors import ERROR_CODES
from functions.domain.models import MessageStatus

MAX_TITLE_CHARS = 200
DEFAULT_TITLE = "New session"
# Bedrock knowledge-base ids are ten alphanumerics; anything else cannot name one.
KNOWLEDGE_BASE_ID_PATTERN = r"^[0-9A-Za-z]{10}$"

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)
]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
KnowledgeBaseId = Annotated[str, StringConstraints(pattern=KNOWLEDGE_BASE_ID_PATTERN)]

# Every code of the one error model (functions.domain.errors), in its order.
ErrorCode = Literal[ERROR_CODES]  # type: ignore[valid-type]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `body.model_id`.")
    message: str


class QuotaOut(BaseModel):
    period: Literal["day", "month"]
    limit: int = Field(description="Tokens the period allows.")
    used: int = Field(description="Tokens used in the period, including answers in progress.")
    resets_at: str = Field(description="When the next period starts (ISO-8601 UTC).")


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    details: list[FieldError] | None = Field(
        default=None, description="Per-field problems, for request validation errors."
    )
    quota: QuotaOut | None = Field(
        default=None, description="The spent budget, for `quota_exceeded`."
    )


class ErrorResponse(BaseModel):
    """The body of every error response, whatever the status."""

    error: ErrorDetail


class HealthResponse(BaseModel):
    status: Literal["ok"]
    time: str


class SessionCreate(_Request):
    title: Title | None = None
    model_id: ModelId | None = Field(
        default=None, description="One of the configured models; the first one when omitted."
    )
    knowledge_base_id: KnowledgeBaseId | None = Field(
        default=None,
        description=(
            "Knowledge base to ground answers on. Omitted: the configured default one (if any); "
            "null: none. Rejected when knowledge-base features are off."
        ),
    )


class SessionUpdate(_Request):
    # None only stands for "omitted": an explicit null is refused, so OpenAPI must not offer it.
    title: Title | SkipJsonSchema[None] = None
    model_id: ModelId | SkipJsonSchema[None] = None
    knowledge_base_id: KnowledgeBaseId | None = Field(
        default=None, description="null removes the knowledge base from the session."
    )

    @field_validator("title", "model_id")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


class MessageCreate(_Request):
    content: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS)]

    @field_validator("content")
    @classmethod
    def _valid(cls, value: str) -> str:
        problem = content_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class _Output(BaseModel):
    """A response model read straight off a domain object (``functions.domain.models``): the
    fields it shares by name are copied, nested ones included, so no mapper repeats them."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, source: object) -> Self:
        return cls.model_validate(source)


class SessionOut(_Output):
    session_id: str
    title: str
    model_id: str
    knowledge_base_id: str | None
    created_at: str = Field(description="ISO-8601 UTC.")
    last_activity: str = Field(description="ISO-8601 UTC.")
    expires_at: int = Field(description="Epoch seconds; pushed forward by every change.")
    message_count: int


class SessionList(BaseModel):
    sessions: list[SessionOut]
    next_token: str | None


class CitationOut(_Output):
    index: int = Field(description="The [n] the answer cites it as.")
    text: str
    source: str | None
    score: float | None


class UsageOut(_Output):
    input_tokens: int = Field(description="Input tokens not read from or written to the cache.")
    output_tokens: int
    total_tokens: int
    cache_read_input_tokens: int = Field(0, description="Input tokens read from the cache.")
    cache_write_input_tokens: int = Field(0, description="Input tokens written to the cache.")


class MessageOut(_Output):
    message_id: str
    session_id: str
    seq: int = Field(description="Position in the session, from 1.")
    role: Literal["user", "assistant"]
    content: str
    created_at: str
    citations: list[CitationOut]
    status: MessageStatus = Field(
        description=(
            "Answers only (questions are always complete): `complete` when the model finished, "
            "`incomplete` when the answer stopped short (see `stop_reason`), `failed` (no "
            "content) when the model call or stream failed, or when the turn ended without "
            "storing its answer (stop reason `abandoned`)."
        )
    )
    stop_reason: str | None = Field(
        description=(
            "Why the answer ended: the model's stop reason (`end_turn`, `max_tokens`, "
            "`guardrail_intervened`, ...), `timeout` (the function ran out of time), "
            "`interrupted` (the stream ended early), or for `failed` the error code, or "
            "`abandoned` (the slot was filled by a later turn or read). "
            "Null on questions."
        )
    )


class MessageList(BaseModel):
    messages: list[MessageOut]
    next_token: str | None


class ChatResponse(BaseModel):
    message: MessageOut = Field(description="The stored assistant message.")
    citations: list[CitationOut]
    usage: UsageOut


class KnowledgeBaseOut(_Output):
    knowledge_base_id: str
    name: str
    description: str | None
    status: str
    default: bool = Field(description="Whether this is the configured default knowledge base.")


class KnowledgeBaseList(BaseModel):
    knowledge_bases: list[KnowledgeBaseOut]


class PeriodUsageOut(BaseModel):
    period: Literal["day", "month"] = Field(description="A UTC day or calendar month.")
    limit: int = Field(description="Tokens the period allows.")
    used: int = Field(
        description=(
            "Tokens counted against the limit: input plus output, cached input at its rate, "
            "and the estimated input of answers still being generated."
        )
    )
    remaining: int
    resets_at: str = Field(description="When the next period starts (ISO-8601 UTC).")
    turns: int = Field(description="Answers the model gave in the period.")
    input_tokens: int = Field(description="As Bedrock reported them: uncached input.")
    output_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int


class UsageResponse(BaseModel):
    periods: list[PeriodUsageOut] = Field(
        description="Each period with a limit; empty when no token limit is configured."
    )
    max_concurrent_answers: int | None = Field(
        description="Answers the caller may have generating at once; null: no limit."
    )


class AttachmentCreate(_Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)] = Field(
        description="The file's name; kept (ASCII letters, digits, spaces, `._()[]-`) as the "
        "object's `x-amz-meta-name`."
    )
    content_type: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="One of the accepted types (docs/functions.md, Attachments); the upload "
        "must send exactly this `Content-Type`."
    )
    size: int = Field(ge=1, description="Bytes; at most the format's limit.")


class PresignedPostOut(BaseModel):
    url: str = Field(description="Where to POST the form (multipart/form-data).")
    fields: dict[str, str] = Field(
        description="Form fields to send as they are, before the file field (`file`)."
    )


class AttachmentUploadOut(BaseModel):
    attachment_id: str = Field(description="What a message names the attachment by.")
    upload: PresignedPostOut
    expires_at: int = Field(description="Epoch seconds: the upload form is refused after it.")
