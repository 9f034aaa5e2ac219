"""The REST API: FastAPI routes under ``contract.API_BASE_PATH``, run in Lambda through Mangum.

Identity is whatever the JWT authorizer told API Gateway (``requestContext.authorizer``), read
from the Lambda event Mangum keeps in the ASGI scope; the app never parses tokens itself.

Every error, including request validation and unknown routes, has one body shape,
``{"error": {"code", "message", "details"?}}``. Request validation failures are 400 (not
FastAPI's 422), the same status as the semantic checks (e.g. an unknown ``model_id``), so
clients see one status for "fix your request". Throttling is 503 with ``Retry-After``.

Routes and dependencies are ``async def`` although they call boto3, which blocks. In Lambda an
invocation owns the process and Mangum runs exactly one request per event-loop run, so there
is nothing for a blocking call to hold up; FastAPI's thread offloading of plain ``def`` would
only add a thread start per request (anyio ties its worker pool to the request's root task),
about a third of a warm request's time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.metrics import MetricUnit
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.main.schemas import (
    DEFAULT_TITLE,
    ChatResponse,
    CitationOut,
    ErrorResponse,
    FieldError,
    HealthResponse,
    KnowledgeBaseList,
    KnowledgeBaseOut,
    MessageCreate,
    MessageList,
    MessageOut,
    SessionCreate,
    SessionList,
    SessionOut,
    SessionUpdate,
    UsageOut,
)
from functions.main.settings import Settings, cors_origins
from functions.shared import aws
from functions.shared.chat import ChatService
from functions.shared.contract import API_BASE_PATH, IDEMPOTENCY_WINDOW_SECONDS, REST_ROUTES
from functions.shared.errors import (
    BadRequest,
    Conflict,
    DomainError,
    NotFound,
    Throttled,
    Unauthorized,
    UpstreamError,
    translate,
    upstream_errors,
)
from functions.shared.idempotency import KEY_PATTERN, InProgress, KeyReused, once
from functions.shared.identity import user_id_from
from functions.shared.observability import logger, metrics
from functions.shared.pagination import MAX_TOKEN_LENGTH
from functions.shared.settings import get_settings
from functions.shared.store import Store

DEFAULT_PAGE_SIZE = 20
DEFAULT_LEASE_SECONDS = 30  # without a Lambda context (never in Lambda)
MAX_PAGE_SIZE = 100

_STATUS = {
    BadRequest: 400,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    InProgress: 409,
    KeyReused: 422,
    UpstreamError: 502,
    Throttled: 503,
}
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}

_ERROR = {"model": ErrorResponse}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
# Documented on every route. "default" also stops FastAPI from documenting its own 422 shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "The request is malformed or not allowed."},
    503: {
        **_ERROR,
        "description": "Throttled; retry after `Retry-After`.",
        "headers": _RETRY_AFTER,
    },
    "default": {**_ERROR, "description": "Any other error, in the same shape."},
}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "No authenticated caller."},
    **ERROR_RESPONSES,
}
SESSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {**_ERROR, "description": "No such session for this caller."},
    **AUTH_RESPONSES,
}

IDEMPOTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    409: {
        **_ERROR,
        "description": "`in_progress`: the request with this Idempotency-Key is still running.",
    },
    422: {
        **_ERROR,
        "description": "`idempotency_key_reused`: the key was used for a different request.",
    },
}
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=f"^{KEY_PATTERN.pattern}$",
        description=(
            "Optional. A repeat with the same key, by the same caller, with the same body, "
            f"within {IDEMPOTENCY_WINDOW_SECONDS // 3600} h returns the original result "
            "without running again."
        ),
    ),
]


def _lease(request: Request) -> int:
    """How long this invocation may hold an idempotency claim: its remaining time."""
    context = request.scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining() / 1000) + 1 if callable(remaining) else DEFAULT_LEASE_SECONDS


# Documents the bearer token for OpenAPI clients. API Gateway's authorizer is what checks it.
_bearer = HTTPBearer(auto_error=False, description="A JWT from the identity provider.")


async def current_user(request: Request, _: Annotated[Any, Depends(_bearer)] = None) -> str:
    """The authenticated caller; 401 when no authorizer vouched for the request."""
    user_id = user_id_from(request.scope.get("aws.event") or {})
    if user_id is None:
        raise Unauthorized("authentication required")
    return user_id


async def settings() -> Settings:
    return get_settings(Settings)


async def store(config: Annotated[Settings, Depends(settings)]) -> Store:
    return Store.from_settings(config)


async def chat_service(
    config: Annotated[Settings, Depends(settings)], repositories: Annotated[Store, Depends(store)]
) -> ChatService:
    return ChatService(config, repositories)


User = Annotated[str, Depends(current_user)]
Config = Annotated[Settings, Depends(settings)]
Repositories = Annotated[Store, Depends(store)]
Chat = Annotated[ChatService, Depends(chat_service)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
NextToken = Annotated[str | None, Query(max_length=MAX_TOKEN_LENGTH)]

app = FastAPI(
    title="AI Assistant API",
    version="1.0.0",
    # The route table is exactly contract.REST_ROUTES; the schema is app.openapi().
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
    # CLI clients may omit Content-Type; a JSON body is still JSON. (Strictness guards
    # cookie-authenticated browsers against CSRF; this API takes bearer tokens only.)
    strict_content_type=False,
)


def _path(relative: str) -> str:
    """Routes are declared on the app itself, so ``app.routes`` lists them with full paths."""
    return API_BASE_PATH + relative


@app.get(_path("/health"), responses={"default": ERROR_RESPONSES["default"]})
async def health() -> HealthResponse:
    return HealthResponse(status="ok", time=datetime.now(UTC).isoformat())


@app.post(_path("/sessions"), status_code=201, responses=IDEMPOTENT_RESPONSES)
async def create_session(
    request: Request,
    body: SessionCreate,
    *,
    user: User,
    config: Config,
    repositories: Repositories,
    idempotency_key: IdempotencyKey = None,
) -> SessionOut:
    def create() -> dict[str, Any]:
        knowledge_base_id = (
            _knowledge_base(config, body.knowledge_base_id)
            if "knowledge_base_id" in body.model_fields_set
            else config.knowledge_base_id
        )
        session = repositories.sessions.create(
            user,
            title=body.title or DEFAULT_TITLE,
            model_id=_model(config, body.model_id) if body.model_id else config.default_model,
            knowledge_base_id=knowledge_base_id,
        )
        metrics.add_metric(name="SessionsCreated", unit=MetricUnit.Count, value=1)
        return SessionOut.of(session).model_dump(mode="json")

    claim = (user, "POST /sessions", idempotency_key)
    payload = body.model_dump(mode="json", exclude_unset=True)
    result = once(repositories.idempotency, claim, payload, _lease(request), create)
    return SessionOut.model_validate(result)


@app.get(_path("/sessions"), responses=AUTH_RESPONSES)
async def list_sessions(
    user: User,
    repositories: Repositories,
    limit: Limit = DEFAULT_PAGE_SIZE,
    next_token: NextToken = None,
) -> SessionList:
    page = repositories.sessions.list(user, limit, next_token)
    return SessionList(
        sessions=[SessionOut.of(session) for session in page.items], next_token=page.next_token
    )


@app.get(_path("/sessions/{session_id}"), responses=SESSION_RESPONSES)
async def get_session(session_id: str, user: User, repositories: Repositories) -> SessionOut:
    return SessionOut.of(repositories.sessions.get(user, session_id))


@app.patch(_path("/sessions/{session_id}"), responses=SESSION_RESPONSES)
async def update_session(
    session_id: str, body: SessionUpdate, user: User, config: Config, repositories: Repositories
) -> SessionOut:
    changes: dict[str, str | None] = {}
    if body.title is not None:
        changes["title"] = body.title
    if body.model_id is not None:
        changes["model_id"] = _model(config, body.model_id)
    if "knowledge_base_id" in body.model_fields_set:
        changes["knowledge_base_id"] = _knowledge_base(config, body.knowledge_base_id)
    return SessionOut.of(repositories.sessions.update(user, session_id, changes))


@app.delete(_path("/sessions/{session_id}"), status_code=204, responses=SESSION_RESPONSES)
async def delete_session(session_id: str, user: User, repositories: Repositories) -> Response:
    repositories.delete_session(user, session_id)
    return Response(status_code=204)


@app.get(_path("/sessions/{session_id}/messages"), responses=SESSION_RESPONSES)
async def list_messages(
    session_id: str,
    user: User,
    repositories: Repositories,
    limit: Limit = DEFAULT_PAGE_SIZE,
    next_token: NextToken = None,
) -> MessageList:
    repositories.sessions.get(user, session_id)
    page = repositories.messages.list(user, session_id, limit, next_token)
    return MessageList(
        messages=[MessageOut.of(message) for message in page.items], next_token=page.next_token
    )


@app.post(
    _path("/sessions/{session_id}/messages"),
    responses={
        **SESSION_RESPONSES,
        **IDEMPOTENT_RESPONSES,
        409: {
            **_ERROR,
            "description": (
                "`in_progress`: the request with this Idempotency-Key is still running; "
                "`conflict`: another attempt at this question was answered first."
            ),
        },
        502: {**_ERROR, "description": "The model call failed."},
    },
)
async def send_message(
    request: Request,
    session_id: str,
    body: MessageCreate,
    *,
    user: User,
    chat: Chat,
    idempotency_key: IdempotencyKey = None,
) -> ChatResponse:
    def answer() -> dict[str, Any]:
        reply = chat.reply(user, session_id, body.content)
        logger.info(
            "chat turn stored",
            extra={
                "session_id": session_id,
                "seq": reply.message.seq,
                "usage": reply.usage.to_dict(),
            },
        )
        metrics.add_metric(name="ChatTurns", unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name="OutputTokens", unit=MetricUnit.Count, value=reply.usage.output_tokens
        )
        response = ChatResponse(
            message=MessageOut.of(reply.message),
            citations=[CitationOut.of(citation) for citation in reply.citations],
            usage=UsageOut.of(reply.usage),
        )
        return response.model_dump(mode="json")

    claim = (user, "POST /sessions/{session_id}/messages", idempotency_key)
    payload = {"session_id": session_id, "content": body.content}
    result = once(chat.store.idempotency, claim, payload, _lease(request), answer)
    return ChatResponse.model_validate(result)


@app.delete(_path("/me"), status_code=204, responses=AUTH_RESPONSES)
async def delete_my_data(user: User, repositories: Repositories) -> Response:
    """Delete every session, message and connection record of the caller.

    Safe to repeat: a call cut short (a timeout, a 503) is finished by calling it again.
    """
    repositories.delete_user(user)
    metrics.add_metric(name="UserDataDeleted", unit=MetricUnit.Count, value=1)
    return Response(status_code=204)


@app.get(_path("/knowledge-bases"), responses=AUTH_RESPONSES)
async def list_knowledge_bases(user: User, config: Config) -> KnowledgeBaseList:
    """Every knowledge base of the account (all pages), the configured one marked ``default``.

    Empty when knowledge-base features are off: sessions could not use any of them.
    """
    if not config.knowledge_bases_enabled:
        return KnowledgeBaseList(knowledge_bases=[])
    paginator = aws.client("bedrock-agent").get_paginator("list_knowledge_bases")
    with upstream_errors("listing knowledge bases"):
        summaries = [
            summary
            for page in paginator.paginate()
            for summary in page.get("knowledgeBaseSummaries", [])
        ]
    return KnowledgeBaseList(
        knowledge_bases=[
            KnowledgeBaseOut(
                knowledge_base_id=summary["knowledgeBaseId"],
                name=summary.get("name", ""),
                description=summary.get("description"),
                status=summary.get("status", ""),
                default=summary["knowledgeBaseId"] == config.knowledge_base_id,
            )
            for summary in summaries
        ]
    )


def _model(config: Settings, model_id: str) -> str:
    if model_id not in config.bedrock_models:
        allowed = ", ".join(config.bedrock_models)
        raise BadRequest(f"model_id must be one of: {allowed}")
    return model_id


def _knowledge_base(config: Settings, knowledge_base_id: str | None) -> str | None:
    if knowledge_base_id is not None and not config.knowledge_bases_enabled:
        raise BadRequest("knowledge bases are not enabled on this deployment")
    return knowledge_base_id


def error_response(
    status: int, code: str, message: str, details: list[FieldError] | None = None
) -> JSONResponse:
    body = ErrorResponse.model_validate(
        {"error": {"code": code, "message": message, "details": details}}
    )
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status)


def domain_error_response(error: DomainError) -> JSONResponse:
    status = next((s for kind, s in _STATUS.items() if isinstance(error, kind)), 500)
    response = error_response(status, error.code, error.message)
    if isinstance(error, Throttled):
        response.headers["Retry-After"] = str(error.retry_after)
        metrics.add_metric(name="Throttled", unit=MetricUnit.Count, value=1)
    return response


async def _on_validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = [
        FieldError(
            field=".".join(str(part) for part in problem.get("loc", ())),
            message=str(problem.get("msg", "invalid")),
        )
        for problem in error.errors()
    ]
    return error_response(400, "bad_request", "the request is invalid", details)


async def _on_http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(
        error.status_code, "bad_request" if error.status_code < 500 else "internal"
    )
    response = error_response(error.status_code, code, str(error.detail))
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


class ErrorsAsJson:
    """Turn every exception a route raises into the one error shape; only bugs are 500s.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) costs a
    task group and memory streams on every request, a large share of a warm invocation.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            if started or scope["type"] != "http":
                raise
            await _error_for(error)(scope, receive, send)


def _error_for(error: Exception) -> Response:
    domain = translate(error)
    if domain is not None:
        return domain_error_response(domain)
    logger.exception("unhandled error")
    metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    return error_response(500, "internal", "internal error")


app.add_exception_handler(RequestValidationError, _on_validation_error)
app.add_exception_handler(StarletteHTTPException, _on_http_error)
app.add_middleware(ErrorsAsJson)
# Outermost, so error responses carry CORS headers too, and preflights (the unauthenticated
# OPTIONS methods of the REST API) are answered here for the configured origins.
app.add_middleware(
    CORSMiddleware,
    allow_origins=cors_origins(),
    allow_methods=sorted({route.method for route in REST_ROUTES}),
    allow_headers=["Authorization", "Content-Type"],
    max_age=600,
)
