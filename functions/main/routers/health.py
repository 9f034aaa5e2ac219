"""``GET /health``: the one unauthenticated route."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from functions.contract import API_BASE_PATH
from functions.main.errors import ERROR_RESPONSES
from functions.main.schemas import HealthResponse

router = APIRouter(prefix=API_BASE_PATH)


@router.get("/health", responses={"default": ERROR_RESPONSES["default"]})
async def health() -> HealthResponse:
    return HealthResponse(status="ok", time=datetime.now(UTC).isoformat())
