"""Request and response bodies of the REST API, as pydantic models so OpenAPI documents them.

Request models forbid unknown fields: a misspelt ``modle_id`` is a 400, not a silent default.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from functions.contract import MAX_DOCUMENTS_PER_MESSAGE, MAX_IMAGES_PER_MESSAGE
from functions.domain.attachments import ATTACHMENT_ID, MAX_ATTACHMENTS_PER_MESSAGE, MAX_NAME_CHARS
from functions.domain.content import MAX_CONTENT_CHARS, content_problem
from functions.domain.errors import ERROR_CODES
from functions.domain.models import (
    FEEDBACK_CATEGORIES,
    MAX_FEEDBACK_COMMENT_CHARS,
    FeedbackCategory,
    MessageStatus,
    Rating,
)

MAX_TITLE_CHARS = 200
# Bedrock knowledge-base ids are ten alphanumerics; anything else cannot name one.
KNOWLEDGE_BASE_ID_PATTERN = r"^[0-9A-Za-z]{10}$"

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)
]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
KnowledgeBaseId = Annotated[str, StringConstraints(pattern=KNOWLEDGE_BASE_ID_PATTERN)]
# An attachment id, as the upload route makes them (a UUID).
AttachmentId = Annotated[str, StringConstraints(pattern=f"^{ATTACHMENT_ID.pattern}$")]

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
    # ``content`` may be left out only with ``replaces`` (a regenerate); an explicit null is
    # refused. The document says so too, so the fuzzer generates bodies accordingly.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": ["content"]}, {"required": ["replaces"]}]},
    )

    content: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS)]
        | SkipJsonSchema[None]
    ) = Field(
        default=None,
        description="The question. Required, except to regenerate (with `replaces`).",
    )
    replaces: MessageId | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            "The `message_id` of the session's last question, to answer it again as a new "
            "version: without `content` the same question (regenerate), with it the edited one. "
            "The replaced question and answer are kept, with `superseded_by`."
        ),
    )
    attachments: list[AttachmentId] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS_PER_MESSAGE,
        description=(
            "Ids of this session's uploads (`POST .../attachments`) to send with the question: "
            f"at most {MAX_IMAGES_PER_MESSAGE} images and {MAX_DOCUMENTS_PER_MESSAGE} documents, "
            "each once. Each is checked by its content before the model is called (422 "
            "`attachment_rejected` naming the id and the rule, also for one expired or never "
            "uploaded). A regenerate without `content` reuses the replaced question's."
        ),
    )

    @field_validator("attachments")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names an attachment more than once")
        return value

    @field_validator("content")
    @classmethod
    def _valid(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may be omitted (with replaces) but not null")
        problem = content_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("replaces")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value

    @model_validator(mode="after")
    def _content_or_replaces(self) -> Self:
        if self.content is None and self.replaces is None:
            raise ValueError("content is required (it may be omitted only with replaces)")
        return self


class FeedbackIn(_Request):
    rating: Rating = Field(description="`up` or `down`.")
    category: FeedbackCategory | None = Field(
        default=None, description="What the rating is about, optional."
    )
    comment: Annotated[str, StringConstraints(max_length=MAX_FEEDBACK_COMMENT_CHARS)] | None = (
        Field(
            default=None,
            description=f"Optional, at most {MAX_FEEDBACK_COMMENT_CHARS:,} characters.",
        )
    )

    @field_validator("comment")
    @classmethod
    def _encodable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
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


class FeedbackOut(_Output):
    rating: Rating
    category: FeedbackCategory | None = Field(
        description=f"One of {', '.join(f'`{name}`' for name in FEEDBACK_CATEGORIES)}, or null."
    )
    comment: str | None
    given_at: str = Field(description="When it was given or last replaced (ISO-8601 UTC).")


class AttachmentRefOut(_Output):
    attachment_id: str
    name: str = Field(description="The uploaded file's name, as stored (`x-amz-meta-name`).")
    content_type: str
    size: int = Field(description="Bytes.")


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
    version: int = Field(
        description=(
            "Which version of its turn this message is, from 1; a regenerate or edit adds one, "
            "and an answer has its question's version."
        )
    )
    replaces: str | None = Field(
        description="Questions of version 2 and later: the `message_id` of the question replaced."
    )
    superseded_by: str | None = Field(
        description=(
            "Set on a replaced question and its answer: the `message_id` of the question that "
            "replaced them. The current conversation is the messages without it."
        )
    )
    feedback: FeedbackOut | None = Field(
        default=None,
        description="Answers only: the caller's rating (`PUT .../feedback`), null when none.",
    )
    attachments: list[AttachmentRefOut] = Field(
        default_factory=list,
        description="Questions only: the files sent with it (references; the bytes expire).",
    )


class MessageList(BaseModel):
    messages: list[MessageOut]
    next_token: str | None


class SessionExport(BaseModel):
    """One page of a session's export in JSON (``GET .../export?format=json``)."""

    session: SessionOut
    messages: list[MessageOut] = Field(description="Whole messages, oldest first.")
    next_token: str | None = Field(
        description="Names the next page (also in the `Link` header); null on the last one."
    )


class UnavailableAttachmentOut(_Output):
    attachment_id: str
    name: str
    reason: Literal["expired", "limit", "rejected"] = Field(
        description=(
            "`expired`: its object is gone (the bucket's lifecycle rule); `limit`: the request "
            "already carried as many of its kind as Converse takes (newer ones first); "
            "`rejected`: its object no longer passes the checks."
        )
    )


class ChatResponse(BaseModel):
    message: MessageOut = Field(description="The stored assistant message.")
    citations: list[CitationOut]
    usage: UsageOut
    title: str | None = Field(
        default=None,
        description=(
            "The title this turn gave its untitled session (generated from its first complete "
            "answer, docs/functions.md, Session titles); null when it gave none."
        ),
    )
    unavailable_attachments: list[UnavailableAttachmentOut] = Field(
        default_factory=list,
        description=(
            "Attachments of earlier questions this turn could not send the model again (each "
            "turn sends them while they exist); the model was told in their place."
        ),
    )


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
