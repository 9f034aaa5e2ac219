"""The one source of truth for every name that crosses the infrastructure/code boundary.

``compute/`` reads it to synthesize the stack and ``functions/`` reads it at run time,
so a rename on either side changes both. Pure standard library: the authorizer imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class Env:
    """Names of the environment variables the stack sets and the functions read."""

    SESSIONS_TABLE = "SESSIONS_TABLE_NAME"
    MESSAGES_TABLE = "MESSAGES_TABLE_NAME"
    CONNECTIONS_TABLE = "CONNECTIONS_TABLE_NAME"
    IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE_NAME"
    USAGE_TABLE = "USAGE_TABLE_NAME"
    ATTACHMENTS_BUCKET = "ATTACHMENTS_BUCKET_NAME"  # the S3 bucket of uploaded attachments
    # Per-user token budgets and concurrent-answer cap; 0 turns each off.
    USER_DAILY_TOKEN_LIMIT = "USER_DAILY_TOKEN_LIMIT"  # noqa: S105 - a variable name
    USER_MONTHLY_TOKEN_LIMIT = "USER_MONTHLY_TOKEN_LIMIT"  # noqa: S105 - a variable name
    USER_MAX_CONCURRENT_ANSWERS = "USER_MAX_CONCURRENT_ANSWERS"
    # Bedrock Guardrails: both empty, or an id and a version (a number or DRAFT).
    BEDROCK_GUARDRAIL_ID = "BEDROCK_GUARDRAIL_ID"
    BEDROCK_GUARDRAIL_VERSION = "BEDROCK_GUARDRAIL_VERSION"
    BEDROCK_PROMPT_CACHING = "BEDROCK_PROMPT_CACHING"  # "true" or "false"
    BEDROCK_MODELS = "BEDROCK_MODELS"  # comma-separated model ids; the first is the default
    KNOWLEDGE_BASE_ID = "KNOWLEDGE_BASE_ID"  # empty: knowledge-base features are off
    TITLE_MODEL_ID = "TITLE_MODEL_ID"  # the model that names untitled sessions; empty: off
    SESSION_TTL_DAYS = "SESSION_TTL_DAYS"
    HISTORY_BUDGET_TOKENS = "HISTORY_BUDGET_TOKENS"  # estimated tokens of context per turn
    STREAM_FLUSH_INTERVAL_MS = "STREAM_FLUSH_INTERVAL_MS"  # 0: post as fast as POSTs return
    # ARN of the KMS HMAC key the next_token signing key is derived from (GenerateMac).
    PAGINATION_KEY_ARN = "PAGINATION_KEY_ARN"
    WEBSOCKET_CALLBACK_URL = "WEBSOCKET_CALLBACK_URL"
    CORS_ALLOWED_ORIGINS = "CORS_ALLOWED_ORIGINS"  # comma-separated; "*" allows any origin
    JWT_ISSUER = "JWT_ISSUER"
    JWT_AUDIENCE = "JWT_AUDIENCE"
    JWKS_URL = "JWKS_URL"
    # JSON object of the authorizer's token rules, keys as in VALIDATION_KEYS (one variable:
    # the authorizer reads its settings on every invocation, and each variable costs time).
    JWT_VALIDATION = "JWT_VALIDATION"
    # Read by Powertools itself.
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"


class Metric:
    """Names of the EMF metrics the functions emit that the stack's alarms and dashboard read.

    All are published in the ``POWERTOOLS_METRICS_NAMESPACE`` namespace. Those in
    :data:`PER_MODEL` have two dimensions, ``service`` (``POWERTOOLS_SERVICE_NAME``) and
    :data:`MODEL_DIMENSION` (the model id the turn used); every other one has ``service`` only.
    """

    MODEL_THROTTLED = "ModelThrottled"  # a Bedrock call or stream said "slow down"
    QUOTA_EXCEEDED = "QuotaExceeded"  # a turn refused: the user's token budget is spent
    BUSY = "Busy"  # a turn refused: the user has as many answers generating as allowed
    CLIENT_GONE = "ClientGone"  # a WebSocket client vanished mid-answer
    USAGE_NOT_RECORDED = "UsageNotRecorded"  # a turn's tokens could not be added to the ledger
    # a session title that could not be generated (the title model failed, throttled or was
    # too slow); the turn itself is unaffected
    TITLE_FAILED = "TitleFailed"
    # an answer slot left empty past its turn's deadline, filled with a failed marker
    ANSWER_SLOTS_REPAIRED = "AnswerSlotsRepaired"
    # Per model, one EMF document per stored answer (see functions.core.observability):
    CHAT_TURNS = "ChatTurns"  # every answer stored, whatever its status
    INCOMPLETE_ANSWERS = "IncompleteAnswers"  # stored with status incomplete
    FAILED_ANSWERS = "FailedAnswers"  # stored as a failed marker (the model call failed)
    GUARDRAIL_INTERVENTIONS = "GuardrailInterventions"  # stop reason guardrail_intervened
    INPUT_TOKENS = "InputTokens"  # as Bedrock reports them: uncached input
    OUTPUT_TOKENS = "OutputTokens"
    CACHE_READ_INPUT_TOKENS = "CacheReadInputTokens"
    CACHE_WRITE_INPUT_TOKENS = "CacheWriteInputTokens"
    # Per model, one EMF document per feedback stored (PUT .../feedback), for its new rating:
    POSITIVE_FEEDBACK = "PositiveFeedback"  # rated up
    NEGATIVE_FEEDBACK = "NegativeFeedback"  # rated down

    PER_MODEL = (
        CHAT_TURNS,
        INCOMPLETE_ANSWERS,
        FAILED_ANSWERS,
        GUARDRAIL_INTERVENTIONS,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        CACHE_READ_INPUT_TOKENS,
        CACHE_WRITE_INPUT_TOKENS,
        POSITIVE_FEEDBACK,
        NEGATIVE_FEEDBACK,
    )


SERVICE_DIMENSION = "service"
MODEL_DIMENSION = "model"


AttributeType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class Key:
    name: str
    type: AttributeType


@dataclass(frozen=True)
class Index:
    name: str
    hash_key: Key
    range_key: Key | None = None


@dataclass(frozen=True)
class TableSchema:
    """Key schema of one DynamoDB table; ``suffix`` names it ``${project}-${env}-<suffix>``."""

    suffix: str
    env: str
    hash_key: Key
    range_key: Key | None = None
    ttl_attribute: str = "expires_at"
    indexes: tuple[Index, ...] = ()

    @property
    def attributes(self) -> tuple[Key, ...]:
        """Every attribute used as a key by the table or an index, each once, in order."""
        keys: list[Key] = [self.hash_key]
        if self.range_key:
            keys.append(self.range_key)
        for index in self.indexes:
            keys.append(index.hash_key)
            if index.range_key:
                keys.append(index.range_key)
        unique: dict[str, Key] = {}
        for key in keys:
            unique.setdefault(key.name, key)
        return tuple(unique.values())


USER_INDEX = Index("UserIndex", Key("user_id", "S"), Key("last_activity", "S"))

SESSIONS = TableSchema(
    suffix="sessions",
    env=Env.SESSIONS_TABLE,
    hash_key=Key("session_id", "S"),
    indexes=(USER_INDEX,),
)
MESSAGES = TableSchema(
    suffix="messages",
    env=Env.MESSAGES_TABLE,
    hash_key=Key("session_id", "S"),
    range_key=Key("seq", "N"),
)
# A user's open connections, for "delete all my data".
USER_CONNECTIONS = Index("UserConnections", Key("user_id", "S"))
CONNECTIONS = TableSchema(
    suffix="connections",
    env=Env.CONNECTIONS_TABLE,
    hash_key=Key("connection_id", "S"),
    indexes=(USER_CONNECTIONS,),
)
# One item per (caller, operation, Idempotency-Key), kept for the idempotency window.
IDEMPOTENCY = TableSchema(
    suffix="idempotency",
    env=Env.IDEMPOTENCY_TABLE,
    hash_key=Key("key", "S"),
)
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600  # the IETF draft asks for at least a day
# API Gateway REST's integration timeout: the stack leaves it at its default (and maximum
# without a quota increase); the main function answers within it (functions/core/deadline.py).
REST_INTEGRATION_TIMEOUT_SECONDS = 29
# Per user: one ledger item per budget period ("day#2026-12-02", "month#2026-12") and one
# lease item per answer slot ("lease#0", "lease#1", ...), see functions.data.quota.
USAGE = TableSchema(
    suffix="usage",
    env=Env.USAGE_TABLE,
    hash_key=Key("user_id", "S"),
    range_key=Key("period", "S"),
)
TABLES = (SESSIONS, MESSAGES, CONNECTIONS, IDEMPOTENCY, USAGE)

# Attachments: files a user uploads straight to S3 (a presigned POST) and then names in a
# message, so no file goes through API Gateway or the WebSocket. The bucket is named
# ``${project}-${env}-<ATTACHMENTS_BUCKET_SUFFIX>``; every object lives under its session's
# prefix, the unit the owner check and the session's cleanup work on.
ATTACHMENTS_BUCKET_SUFFIX = "attachments"
ATTACHMENTS_ROOT = "sessions/"


def attachments_prefix(session_id: str) -> str:
    """The key prefix of every attachment of one session (ends with ``/``)."""
    return f"{ATTACHMENTS_ROOT}{session_id}/"


def attachment_key(session_id: str, attachment_id: str) -> str:
    """The object key of one attachment."""
    return f"{attachments_prefix(session_id)}{attachment_id}"


AttachmentKind = Literal["image", "document"]


@dataclass(frozen=True)
class AttachmentFormat:
    """One format Converse accepts: its name in an ``image``/``document`` block, its block,
    the content type an upload declares, and whether it is text (checked as UTF-8, not magic)."""

    format: str
    kind: AttachmentKind
    content_type: str
    text: bool = False


# Bedrock Converse's documented limits (API reference, ImageBlock and DocumentBlock; user
# guide, "Carry out a conversation with the Converse API operations"): a document at most
# 4.5 MB and 5 per request, an image at most 3.75 MB, 8,000 px a side and 20 per request.
# "MB" read as 10^6 bytes, the smaller reading, so that nothing accepted here is refused there.
MAX_DOCUMENT_BYTES = 4_500_000
MAX_DOCUMENTS_PER_MESSAGE = 5
MAX_IMAGE_BYTES = 3_750_000
MAX_IMAGES_PER_MESSAGE = 20
MAX_IMAGE_SIDE_PIXELS = 8_000
ATTACHMENT_FORMATS = (
    AttachmentFormat("pdf", "document", "application/pdf"),
    AttachmentFormat("csv", "document", "text/csv", text=True),
    AttachmentFormat("doc", "document", "application/msword"),
    AttachmentFormat(
        "docx",
        "document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    AttachmentFormat("xls", "document", "application/vnd.ms-excel"),
    AttachmentFormat(
        "xlsx", "document", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ),
    AttachmentFormat("html", "document", "text/html", text=True),
    AttachmentFormat("txt", "document", "text/plain", text=True),
    AttachmentFormat("md", "document", "text/markdown", text=True),
    AttachmentFormat("png", "image", "image/png"),
    AttachmentFormat("jpeg", "image", "image/jpeg"),
    AttachmentFormat("gif", "image", "image/gif"),
    AttachmentFormat("webp", "image", "image/webp"),
)
ATTACHMENT_CONTENT_TYPES = {f.content_type: f for f in ATTACHMENT_FORMATS}
ATTACHMENT_FORMATS_BY_NAME = {f.format: f for f in ATTACHMENT_FORMATS}
# Converse's count limits are per request; a message's files and those history sends again
# share them.
ATTACHMENTS_PER_REQUEST: dict[AttachmentKind, int] = {
    "image": MAX_IMAGES_PER_MESSAGE,
    "document": MAX_DOCUMENTS_PER_MESSAGE,
}


def attachment_size_limit(kind: AttachmentKind) -> int:
    """The largest object of one kind Converse accepts."""
    return MAX_IMAGE_BYTES if kind == "image" else MAX_DOCUMENT_BYTES


# A presigned upload is usable for this long: enough to start sending a large file on a slow
# link, short enough that a leaked form is soon worthless.
ATTACHMENT_UPLOAD_EXPIRY_SECONDS = 15 * 60

API_BASE_PATH = "/api/v1"
# API Gateway's WebSocket quotas: a client message (possibly sent as several frames) and one
# frame, either way.
MAX_WEBSOCKET_MESSAGE_BYTES = 128 * 1024
MAX_WEBSOCKET_FRAME_BYTES = 32 * 1024

# Cross-region inference profile ids start with a geography, e.g. "us.anthropic.claude…".
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Route:
    method: Method
    path: str  # relative to base, with {placeholders}
    authorized: bool = True
    base: str = API_BASE_PATH

    @property
    def full_path(self) -> str:
        return self.base + self.path


REST_ROUTES = (
    Route("GET", "/health", authorized=False),
    Route("GET", "/sessions"),
    Route("POST", "/sessions"),
    Route("GET", "/sessions/{session_id}"),
    Route("PATCH", "/sessions/{session_id}"),
    Route("DELETE", "/sessions/{session_id}"),
    Route("GET", "/sessions/{session_id}/messages"),
    Route("POST", "/sessions/{session_id}/messages"),
    Route("GET", "/knowledge-bases"),
    Route("GET", "/usage"),
    Route("DELETE", "/me"),
    Route("POST", "/sessions/{session_id}/attachments"),
    Route("PUT", "/sessions/{session_id}/messages/{message_id}/feedback"),
    Route("GET", "/sessions/{session_id}/export"),
)

# CORS, for the REST API's own answers (the main function's middleware) and API Gateway's
# (its gateway responses) alike: every request header the API documents, so a browser's
# preflight for any documented request succeeds, and every response header a client must read
# (browsers hide the others from scripts).
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
CORS_EXPOSE_HEADERS = ("Retry-After", "Link", "Content-Disposition")

# The OpenAI-compatible endpoints, served by their own function (OPENAI_API). They sit outside
# API_BASE_PATH so that a client's base URL is the stage URL plus "/v1", as OpenAI's own is.
OPENAI_BASE_PATH = "/v1"
OPENAI_ROUTES = (
    Route("GET", "/models", base=OPENAI_BASE_PATH),
    Route("POST", "/chat/completions", base=OPENAI_BASE_PATH),
)
# Request headers of /v1/chat/completions beyond OpenAI's (docs/openai.md): the session a turn
# is stored in, and the knowledge base a stateless turn is grounded on.
OPENAI_SESSION_HEADER = "X-Session-Id"
OPENAI_KNOWLEDGE_BASE_HEADER = "X-Knowledge-Base-Id"
# Response header of a session-bound turn: how many of the request's messages were not sent to
# the model because the session's stored history stands in for them.
OPENAI_REPLACED_MESSAGES_HEADER = "X-Session-Replaced-Messages"
# Behind the Lambda Web Adapter: API Gateway's requestContext (with the authorizer's answer)
# and the Lambda context (with the invocation's deadline), each as JSON in a request header.
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"

WEBSOCKET_ROUTES = ("$connect", "$disconnect", "$default")


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: its name suffix, its source folder and its handler."""

    key: str  # folder under functions/
    suffix: str  # ${project}-${env}-<suffix>
    handler: str  # Lambda's handler: "module.function", or the start script the adapter runs
    # Behind the Lambda Web Adapter: the ASGI app the start script serves ("module:attribute",
    # as uvicorn names it). Empty for a Python handler.
    asgi_app: str = ""

    @property
    def requirements(self) -> str:
        return f"functions/{self.key}/requirements.txt"

    @property
    def web_adapter(self) -> bool:
        """Runs behind the Lambda Web Adapter (its layer, its wrapper and its variables)."""
        return bool(self.asgi_app)

    @property
    def entry(self) -> tuple[str, str]:
        """(module, attribute) the function's code starts from: the handler, or the ASGI app
        (a start script imports no Python itself). Its zip ships this module's imports."""
        if self.asgi_app:
            module, _, attribute = self.asgi_app.partition(":")
        else:
            module, _, attribute = self.handler.rpartition(".")
        return module, attribute

    @property
    def module(self) -> str:
        return self.entry[0]


MAIN = FunctionSpec("main", "main", "functions.main.handler.handler")
WEBSOCKET = FunctionSpec("websocket", "websocket", "functions.websocket.handler.handler")
AUTHORIZER = FunctionSpec("authorizer", "jwt-authorizer", "functions.authorizer.handler.handler")
# Fed by the sessions table's stream: removes the messages of every deleted or expired session.
CLEANUP = FunctionSpec("cleanup", "session-cleanup", "functions.cleanup.handler.handler")
# The OpenAI-compatible API: an ASGI app under uvicorn behind the Lambda Web Adapter, which
# streams the response (a Python handler cannot); run.sh, in its zip, starts uvicorn.
OPENAI_API = FunctionSpec(
    "openai_api", "openai-api", "run.sh", asgi_app="functions.openai_api.app:app"
)
FUNCTIONS = (MAIN, WEBSOCKET, AUTHORIZER, CLEANUP, OPENAI_API)


class AdapterEnv:
    """Variables read by the Lambda Web Adapter (its layer's ``/opt/bootstrap`` and the
    extension), not by our code; the stack sets them on every ``web_adapter`` function."""

    EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"  # Lambda runs the handler through this wrapper
    INVOKE_MODE = "AWS_LWA_INVOKE_MODE"  # response_stream: the answer streams as it is written
    PORT = "PORT"  # where the app listens (the adapter's AWS_LWA_PORT falls back to it); run.sh
    READINESS_CHECK_PATH = "AWS_LWA_READINESS_CHECK_PATH"  # polled until the app answers


# Their values: the wrapper's path in the adapter's layer, streaming, the port run.sh binds
# (uvicorn's and the adapter's default), and a route the app answers without AWS calls. The
# adapter takes any status below 500 as ready, so the authorizer-less check passes.
ADAPTER_ENV = {
    AdapterEnv.EXEC_WRAPPER: "/opt/bootstrap",
    AdapterEnv.INVOKE_MODE: "response_stream",
    AdapterEnv.PORT: "8080",
    AdapterEnv.READINESS_CHECK_PATH: f"{OPENAI_BASE_PATH}/models",
}

# What both chat functions (main for REST, websocket) read: ChatSettings.
_CHAT_ENV = (
    Env.SESSIONS_TABLE,
    Env.MESSAGES_TABLE,
    Env.CONNECTIONS_TABLE,
    Env.IDEMPOTENCY_TABLE,
    Env.BEDROCK_MODELS,
    Env.KNOWLEDGE_BASE_ID,
    Env.SESSION_TTL_DAYS,
    Env.HISTORY_BUDGET_TOKENS,
    Env.USAGE_TABLE,
    Env.USER_DAILY_TOKEN_LIMIT,
    Env.USER_MONTHLY_TOKEN_LIMIT,
    Env.USER_MAX_CONCURRENT_ANSWERS,
    Env.BEDROCK_GUARDRAIL_ID,
    Env.BEDROCK_GUARDRAIL_VERSION,
    Env.BEDROCK_PROMPT_CACHING,
    Env.POWERTOOLS_SERVICE_NAME,
    Env.POWERTOOLS_METRICS_NAMESPACE,
    Env.TITLE_MODEL_ID,
)
# Environment variables each function reads; the stack sets exactly these.
FUNCTION_ENV: dict[str, tuple[str, ...]] = {
    MAIN.key: (
        *_CHAT_ENV,
        Env.PAGINATION_KEY_ARN,
        Env.CORS_ALLOWED_ORIGINS,
        Env.ATTACHMENTS_BUCKET,
    ),
    WEBSOCKET.key: (
        *_CHAT_ENV,
        Env.STREAM_FLUSH_INTERVAL_MS,
        Env.WEBSOCKET_CALLBACK_URL,
        Env.ATTACHMENTS_BUCKET,
    ),
    AUTHORIZER.key: (
        Env.JWT_ISSUER,
        Env.JWT_AUDIENCE,
        Env.JWKS_URL,
        Env.JWT_VALIDATION,
    ),
    # The messages table and the attachments bucket: the session's key arrives in the stream
    # record itself.
    CLEANUP.key: (
        Env.MESSAGES_TABLE,
        Env.ATTACHMENTS_BUCKET,
        Env.POWERTOOLS_SERVICE_NAME,
        Env.POWERTOOLS_METRICS_NAMESPACE,
    ),
    # The chat settings (main answers its routes' CORS preflights). The adapter's own
    # variables (ADAPTER_ENV) come on top.
    OPENAI_API.key: (*_CHAT_ENV, Env.ATTACHMENTS_BUCKET),
}

CONNECTION_TTL_SECONDS = 2 * 3600 + 10 * 60
DEFAULT_SESSION_TTL_DAYS = 30
# About 12k tokens of history, system prompt and question per turn: a long chat's worth of
# context, at a bounded price (docs/functions.md, "History budget").
DEFAULT_HISTORY_BUDGET_TOKENS = 12_000
DEFAULT_STREAM_FLUSH_INTERVAL_MS = 100
# About 80 turns a day at the full history budget: a heavy day's use, at a bounded price (see
# docs/functions.md, "Token budgets and concurrent answers").
DEFAULT_USER_DAILY_TOKEN_LIMIT = 1_000_000
# Two: an answer streaming on one connection and one more (another device, a REST call).
DEFAULT_USER_MAX_CONCURRENT_ANSWERS = 2


class AuthorizerContext:
    """Keys of the context the JWT authorizer returns; API Gateway hands it to the functions in
    ``requestContext.authorizer``. Values are strings (API Gateway allows no lists or objects):
    ``scope`` is space-separated, ``groups`` and ``roles`` are JSON lists of strings."""

    USER_ID = "user_id"  # the profile's stable user id (``sub``; ``oid`` for Entra)
    SUBJECT = "subject"  # the token's ``sub``, when it is not the user id
    EMAIL = "email"
    USERNAME = "username"
    SCOPE = "scope"
    CLIENT_ID = "client_id"  # client_id, cid, azp or appid, per profile
    TENANT_ID = "tenant_id"  # Entra's tid
    GROUPS = "groups"
    ROLES = "roles"
    TRUNCATED = "truncated"  # space-separated names of the fields cut to fit the limits


# Per-route scopes: which kind of access each authorized route needs. read_scopes guard
# READ, chat_scopes guard CHAT (everything that changes data or talks to the model).
READ = "read"
CHAT = "chat"
ROUTE_ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/sessions"): READ,
    ("POST", "/sessions"): CHAT,
    ("GET", "/sessions/{session_id}"): READ,
    ("PATCH", "/sessions/{session_id}"): CHAT,
    ("DELETE", "/sessions/{session_id}"): CHAT,
    ("GET", "/sessions/{session_id}/messages"): READ,
    ("POST", "/sessions/{session_id}/messages"): CHAT,
    ("GET", "/knowledge-bases"): READ,
    ("GET", "/usage"): READ,
    ("DELETE", "/me"): CHAT,  # deletes data, like the other writes
    ("POST", "/sessions/{session_id}/attachments"): CHAT,  # an upload for the model to read
    ("PUT", "/sessions/{session_id}/messages/{message_id}/feedback"): CHAT,  # writes
    ("GET", "/sessions/{session_id}/export"): READ,
    # OPENAI_ROUTES, relative to OPENAI_BASE_PATH
    ("GET", "/models"): READ,
    ("POST", "/chat/completions"): CHAT,
}
# Every route the JWT authorizer guards: ROUTE_ACCESS says which kind of access each needs.
AUTHORIZED_ROUTES = tuple(route for route in (*REST_ROUTES, *OPENAI_ROUTES) if route.authorized)
WEBSOCKET_CONNECT_ACCESS = CHAT  # a WebSocket connection exists to chat

# Keys of Env.JWT_VALIDATION: the config fields of the same names with the `jwt_` prefix.
VALIDATION_KEYS = (
    "provider",  # generic, cognito, okta, entra or identity_center
    "required_scopes",  # every token needs all of them
    "read_scopes",  # and READ routes these
    "chat_scopes",  # and CHAT routes and $connect these
    "allowed_client_ids",  # empty: any client
    "allowed_tenant_ids",  # empty: any tenant (entra)
    "require_access_token_typ",  # true: typ must be at+jwt (RFC 9068)
)
