"""``/me``: everything stored about the caller."""

from __future__ import annotations

from fastapi import APIRouter, Response

from functions.contract import API_BASE_PATH
from functions.core.observability import count
from functions.main.deps import Repositories, User
from functions.main.errors import AUTH_RESPONSES

router = APIRouter(prefix=API_BASE_PATH)


@router.delete("/me", status_code=204, responses=AUTH_RESPONSES)
async def delete_my_data(user: User, repositories: Repositories) -> Response:
    """Delete every session, message and connection record of the caller.

    Safe to repeat: a call cut short (a timeout, a 503) is finished by calling it again.
    """
    repositories.delete_user(user)
    count("UserDataDeleted")
    return Response(status_code=204)
