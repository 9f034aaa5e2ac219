"""FastAPI dependencies of the routes: the caller, this container's settings and services, and
the shared parameter types.

Dependencies are ``async def`` although they call boto3, which blocks. In Lambda an invocation
owns the process and Mangum runs exactly one request per event-loop run, so there is nothing
for a blocking call to hold up; FastAPI's thread offloading of plain ``def`` would only add a
thread start per request (anyio ties its worker pool to the request's root task), about a
third of a warm request's time. The routes follow the same rule.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPBearer

from functions.chat.knowledge_bases import KnowledgeBaseService
from functions.chat.service import ChatService
from functions.contract import IDEMPOTENCY_WINDOW_SECONDS
from functions.core.identity import user_id_from
from functions.core.settings import get_settings
from functions.data.attachments import AttachmentStore
from functions.data.idempotency import KEY_PATTERN
from functions.data.pagination import MAX_TOKEN_LENGTH
from functions.data.turns import Store
from functions.domain.errors import Unauthorized
from functions.main.settings import Settings

DEFAULT_PAGE_SIZE = 20
DEFAULT_LEASE_SECONDS = 30  # without a Lambda context (never in Lambda)
MAX_PAGE_SIZE = 100

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
    return ChatService(
        config,
        repositories,
        attachments=AttachmentStore(config.attachments_bucket),
    )


async def attachment_store(config: Annotated[Settings, Depends(settings)]) -> AttachmentStore:
    return AttachmentStore(config.attachments_bucket)


async def knowledge_base_service(
    config: Annotated[Settings, Depends(settings)],
) -> KnowledgeBaseService:
    return KnowledgeBaseService(config)


def lease_seconds(request: Request) -> int:
    """How long this invocation may hold an idempotency claim: its remaining time."""
    context = request.scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining() / 1000) + 1 if callable(remaining) else DEFAULT_LEASE_SECONDS


User = Annotated[str, Depends(current_user)]
Config = Annotated[Settings, Depends(settings)]
Repositories = Annotated[Store, Depends(store)]
Chat = Annotated[ChatService, Depends(chat_service)]
KnowledgeBases = Annotated[KnowledgeBaseService, Depends(knowledge_base_service)]
Attachments = Annotated[AttachmentStore, Depends(attachment_store)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
NextToken = Annotated[str | None, Query(max_length=MAX_TOKEN_LENGTH)]
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
