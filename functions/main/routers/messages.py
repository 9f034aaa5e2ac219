"""``/sessions/{session_id}/messages``: a session's turns, and asking the model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from functions.contract import API_BASE_PATH
from functions.core.observability import logger
from functions.data.idempotency import Scope, once
from functions.main.deps import (
    DEFAULT_PAGE_SIZE,
    Chat,
    IdempotencyKey,
    Limit,
    NextToken,
    Repositories,
    User,
    lease_seconds,
)
from functions.main.errors import ERROR, IDEMPOTENT_RESPONSES, SESSION_RESPONSES, TURN_RESPONSES
from functions.main.schemas import (
    ChatResponse,
    CitationOut,
    MessageCreate,
    MessageList,
    MessageOut,
    UnavailableAttachmentOut,
    UsageOut,
)

router = APIRouter(prefix=API_BASE_PATH)


@router.get("/sessions/{session_id}/messages", responses=SESSION_RESPONSES)
async def list_messages(
    session_id: str,
    user: User,
    repositories: Repositories,
    limit: Limit = DEFAULT_PAGE_SIZE,
    next_token: NextToken = None,
) -> MessageList:
    session = repositories.sessions.get(user, session_id)
    page = repositories.messages.list(user, session_id, limit, next_token)
    messages = repositories.repair(user, session, page.items, to_end=page.next_token is None)
    return MessageList(
        messages=[MessageOut.of(message) for message in messages], next_token=page.next_token
    )


@router.post(
    "/sessions/{session_id}/messages",
    responses={
        **SESSION_RESPONSES,
        **IDEMPOTENT_RESPONSES,
        404: {
            **ERROR,
            "description": (
                "No such session for this caller, or `replaces` names no message of it."
            ),
        },
        **TURN_RESPONSES,
        422: {
            **ERROR,
            "description": (
                "`idempotency_key_reused`: the key was used for a different request; "
                "`attachment_rejected`: an attachment is missing (expired or never uploaded), "
                "not an accepted type, over its format's limit, not what its type says, or "
                "one too many (the message names the id and the rule)."
            ),
        },
        409: {
            **ERROR,
            "description": (
                "`in_progress`: the request with this Idempotency-Key is still running; "
                "`conflict`: another attempt at this question was answered first, or "
                "`replaces` is not the session's last question (an older or superseded one, "
                "an answer, a turn replaced or followed meanwhile), or its answer is still "
                "being generated."
            ),
        },
        502: {
            **ERROR,
            "description": (
                "`upstream_error`: the model call or the knowledge-base retrieval failed; "
                "`dependency_unreachable`: DynamoDB or Bedrock could not be connected to."
            ),
        },
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
        reply = chat.reply(
            user,
            session_id,
            body.content,
            lease_seconds=lease,
            replaces=body.replaces,
            attachments=body.attachments,
        )
        logger.info(
            "chat turn stored",
            extra={
                "session_id": session_id,
                "seq": reply.message.seq,
                "usage": reply.usage.to_dict(),
            },
        )
        response = ChatResponse(
            message=MessageOut.of(reply.message),
            citations=[CitationOut.of(citation) for citation in reply.citations],
            usage=UsageOut.of(reply.usage),
            title=reply.title,
            unavailable_attachments=[UnavailableAttachmentOut.of(u) for u in reply.unavailable],
        )
        return response.model_dump(mode="json")

    lease = lease_seconds(request)
    scope = Scope(user, "POST /sessions/{session_id}/messages", idempotency_key)
    payload = {"session_id": session_id, "content": body.content}
    if body.replaces is not None:  # as before for a plain turn: its stored keys still match
        payload["replaces"] = body.replaces
    if body.attachments:
        payload["attachments"] = body.attachments
    outcome = once(chat.store.idempotency, scope, payload, answer, lease_seconds=lease)
    return ChatResponse.model_validate(outcome.result)
