"""The caller's identity, as the JWT authorizer handed it to API Gateway.

API Gateway puts the authorizer's answer in ``requestContext.authorizer``: ``principalId`` (the
user id of the provider's profile: ``sub``, Entra's ``oid``, Okta's ``uid``) and the context the
authorizer returned (keys in ``contract.AuthorizerContext``). Nothing the client sends can change
it, which is why it is the only source of identity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.contract import AuthorizerContext as Ctx


def _authorizer(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    return authorizer if isinstance(authorizer, Mapping) else None


def user_id_from(event: Mapping[str, Any]) -> str | None:
    """The authenticated user of an API Gateway event, or None when no authorizer vouched."""
    authorizer = _authorizer(event)
    if authorizer is None:
        return None
    for name in ("user_id", "principalId"):
        value = authorizer.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


@dataclass(frozen=True)
class Caller:
    """Everything the authorizer vouched for. ``truncated`` names the fields it had to cut to
    fit API Gateway's context (so an empty ``groups`` there does not prove there are none)."""

    user_id: str
    subject: str
    client_id: str | None = None
    tenant_id: str | None = None
    email: str | None = None
    username: str | None = None
    scopes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    truncated: tuple[str, ...] = ()

    def has_scopes(self, *scopes: str) -> bool:
        return set(scopes).issubset(self.scopes)


def caller_from(event: Mapping[str, Any]) -> Caller | None:
    """The caller of an API Gateway event (REST proxy or WebSocket), or None without one."""
    user_id = user_id_from(event)
    authorizer = _authorizer(event)
    if user_id is None or authorizer is None:
        return None
    return Caller(
        user_id=user_id,
        subject=_text(authorizer.get(Ctx.SUBJECT)) or user_id,
        client_id=_text(authorizer.get(Ctx.CLIENT_ID)),
        tenant_id=_text(authorizer.get(Ctx.TENANT_ID)),
        email=_text(authorizer.get(Ctx.EMAIL)),
        username=_text(authorizer.get(Ctx.USERNAME)),
        scopes=tuple((_text(authorizer.get(Ctx.SCOPE)) or "").split()),
        groups=_json_strings(authorizer.get(Ctx.GROUPS)),
        roles=_json_strings(authorizer.get(Ctx.ROLES)),
        truncated=tuple((_text(authorizer.get(Ctx.TRUNCATED)) or "").split()),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_strings(value: object) -> tuple[str, ...]:
    """A JSON list of strings as the authorizer writes it; anything else counts as none."""
    if not isinstance(value, str) or not value:
        return ()
    try:
        items = json.loads(value)
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(item for item in items if isinstance(item, str))
