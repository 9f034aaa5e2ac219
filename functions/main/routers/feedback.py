"""``/sessions/{session_id}/messages/{message_id}/feedback``: the caller's rating of an answer."""

from __future__ import annotations

from fastapi import APIRouter

from functions.chat.feedback import rate
from functions.contract import API_BASE_PATH
from functions.main.deps import Repositories, User
from functions.main.errors import ERROR, SESSION_RESPONSES
from functions.main.schemas import FeedbackIn, FeedbackOut

router = APIRouter(prefix=API_BASE_PATH)


@router.put(
    "/sessions/{session_id}/messages/{message_id}/feedback",
    responses={
        **SESSION_RESPONSES,
        404: {
            **ERROR,
            "description": "No such session, or no such message in it, for this caller.",
        },
        409: {
            **ERROR,
            "description": (
                "`conflict`: the message is a question or a `failed` answer; only answers can "
                "be rated."
            ),
        },
    },
)
async def put_feedback(
    session_id: str, message_id: str, body: FeedbackIn, user: User, repositories: Repositories
) -> FeedbackOut:
    """Rate an answer (`message_id` is its `message_id`, not its `seq`). A second PUT replaces
    the first, so a repeat is harmless."""
    answer = rate(
        repositories,
        user,
        session_id,
        message_id,
        body.rating,
        category=body.category,
        comment=body.comment,
    )
    return FeedbackOut.of(answer.feedback)
