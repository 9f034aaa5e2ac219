"""``/sessions`` and ``/sessions/{session_id}``: a caller's chat sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from functions.contract import API_BASE_PATH
from functions.core.observability import count
from functions.data.idempotency import Scope, once
from functions.domain.errors import BadRequest
from functions.domain.models import DEFAULT_TITLE
from functions.main.deps import (
    DEFAULT_PAGE_SIZE,
    Config,
    IdempotencyKey,
    Limit,
    NextToken,
    Repositories,
    User,
    lease_seconds,
)
from functions.main.errors import AUTH_RESPONSES, IDEMPOTENT_RESPONSES, SESSION_RESPONSES
from functions.main.schemas import (
    SessionCreate,
    SessionList,
    SessionOut,
    SessionUpdate,
)
from functions.main.settings import Settings

router = APIRouter(prefix=API_BASE_PATH)


@router.post("/sessions", status_code=201, responses=IDEMPOTENT_RESPONSES)
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
        count("SessionsCreated")
        return SessionOut.of(session).model_dump(mode="json")

    scope = Scope(user, "POST /sessions", idempotency_key)
    payload = body.model_dump(mode="json", exclude_unset=True)
    outcome = once(
        repositories.idempotency, scope, payload, create, lease_seconds=lease_seconds(request)
    )
    return SessionOut.model_validate(outcome.result)


@router.get("/sessions", responses=AUTH_RESPONSES)
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


@router.get("/sessions/{session_id}", responses=SESSION_RESPONSES)
async def get_session(session_id: str, user: User, repositories: Repositories) -> SessionOut:
    return SessionOut.of(repositories.sessions.get(user, session_id))


@router.patch("/sessions/{session_id}", responses=SESSION_RESPONSES)
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


@router.delete("/sessions/{session_id}", status_code=204, responses=SESSION_RESPONSES)
async def delete_session(session_id: str, user: User, repositories: Repositories) -> Response:
    repositories.delete_session(user, session_id)
    return Response(status_code=204)


def _model(config: Settings, model_id: str) -> str:
    if model_id not in config.bedrock_models:
        allowed = ", ".join(config.bedrock_models)
        raise BadRequest(f"model_id must be one of: {allowed}")
    return model_id


def _knowledge_base(config: Settings, knowledge_base_id: str | None) -> str | None:
    if knowledge_base_id is not None and not config.knowledge_bases_enabled:
        raise BadRequest("knowledge bases are not enabled on this deployment")
    return knowledge_base_id
