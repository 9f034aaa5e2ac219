"""The caller's identity, as the JWT authorizer handed it to API Gateway.

API Gateway puts the authorizer's answer in ``requestContext.authorizer``: ``principalId`` (the
token's ``sub``) and the context the authorizer returned, which includes ``user_id``. Nothing
the client sends can change it, which is why it is the only source of identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def user_id_from(event: Mapping[str, Any]) -> str | None:
    """The authenticated user of an API Gateway event, or None when no authorizer vouched."""
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    if not isinstance(authorizer, Mapping):
        return None
    for name in ("user_id", "principalId"):
        value = authorizer.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None
