"""What the Lambda Web Adapter tells the app about the invocation, in two request headers.

API Gateway's ``requestContext`` arrives as JSON in ``x-amzn-request-context``: the caller is
read from its ``authorizer`` exactly as the other functions read their event's
(:func:`functions.core.identity.user_id_from`). Nothing else the client sends (its
``Authorization`` header included) is trusted: without that context, the request did not come
through the authorizer, and it is refused 401. The Lambda context arrives in
``x-amzn-lambda-context``, with the invocation's ``deadline`` (epoch milliseconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.contract import LAMBDA_CONTEXT_HEADER, REQUEST_CONTEXT_HEADER
from functions.core import deadline
from functions.core.identity import user_id_from
from functions.domain.errors import Unauthorized


def _json_header(headers: Mapping[str, str], name: str) -> Mapping[str, Any] | None:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, Mapping) else None


def caller(headers: Mapping[str, str]) -> str:
    """The authenticated user, or :class:`Unauthorized` when no authorizer vouched."""
    context = _json_header(headers, REQUEST_CONTEXT_HEADER)
    user_id = user_id_from({"requestContext": context}) if context is not None else None
    if user_id is None:
        raise Unauthorized(
            f"no authenticated caller: the request carries no authorizer context "
            f"({REQUEST_CONTEXT_HEADER}); call it through the API's stage URL with a token"
        )
    return user_id


@dataclass(frozen=True)
class LambdaContext:
    """The part of the Lambda context the deadline needs, from the adapter's header."""

    deadline_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return max(self.deadline_ms - int(time.time() * 1000), 0)


def lambda_context(headers: Mapping[str, str]) -> LambdaContext | None:
    """The invocation's context, or None outside Lambda (no adapter, no deadline header)."""
    context = _json_header(headers, LAMBDA_CONTEXT_HEADER)
    value = context.get("deadline") if context is not None else None
    return LambdaContext(value) if isinstance(value, int) and value > 0 else None


def invocation_deadline(
    headers: Mapping[str, str], limit_seconds: float | None
) -> deadline.Deadline:
    """The function's remaining time, or ``limit_seconds`` from now when that comes first."""
    return deadline.Deadline.of(lambda_context(headers), limit_seconds)


def lease_seconds(bound: deadline.Deadline) -> int:
    """How long an answer slot or an idempotency claim may be held: the time left."""
    return int(bound.remaining()) + 1
