"""``/usage``: the caller's token budgets, so a client can show them before it is refused."""

from __future__ import annotations

from fastapi import APIRouter

from functions.contract import API_BASE_PATH
from functions.core.clock import timestamp
from functions.main.deps import Chat, User
from functions.main.errors import AUTH_RESPONSES
from functions.main.schemas import PeriodUsageOut, UsageResponse

router = APIRouter(prefix=API_BASE_PATH)


@router.get("/usage", responses=AUTH_RESPONSES)
async def my_usage(user: User, chat: Chat) -> UsageResponse:
    """The caller's use, limit, remaining tokens and reset time in each limited period."""
    slots = chat.settings.user_max_concurrent_answers
    return UsageResponse(
        periods=[
            PeriodUsageOut(
                period=use.period.kind,
                limit=use.period.limit,
                used=use.used,
                remaining=use.remaining,
                resets_at=timestamp(use.period.resets_at),
                turns=use.turns,
                **use.reported,
            )
            for use in chat.ledger.usage(user)
        ],
        max_concurrent_answers=slots or None,
    )
