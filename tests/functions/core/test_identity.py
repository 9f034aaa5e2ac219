"""functions/core/identity.py: what the functions read of the authorizer's context."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.identity import Caller, caller_from, user_id_from


def event(authorizer: object) -> dict[str, Any]:
    return {"requestContext": {"authorizer": authorizer}}


def test_full_context() -> None:
    caller = caller_from(
        event(
            {
                "principalId": "oid-1",
                "user_id": "oid-1",
                "subject": "pairwise-sub",
                "client_id": "web",
                "tenant_id": "t-1",
                "email": "ada@example.com",
                "username": "ada",
                "scope": "assistant/read assistant/chat",
                "groups": '["Admins","Sales Team"]',
                "roles": '["Reader"]',
            }
        )
    )

    assert caller == Caller(
        user_id="oid-1",
        subject="pairwise-sub",
        client_id="web",
        tenant_id="t-1",
        email="ada@example.com",
        username="ada",
        scopes=("assistant/read", "assistant/chat"),
        groups=("Admins", "Sales Team"),
        roles=("Reader",),
    )
    assert caller.has_scopes("assistant/chat")
    assert not caller.has_scopes("assistant/chat", "admin")


def test_minimal_context_the_subject_is_the_user() -> None:
    caller = caller_from(event({"principalId": "user-1"}))

    assert caller == Caller(user_id="user-1", subject="user-1")


@pytest.mark.parametrize("value", ["not json", '{"a": 1}', "[1, 2]", '"x"', 42, ""])
def test_malformed_lists_count_as_none(value: object) -> None:
    caller = caller_from(event({"user_id": "u", "groups": value, "roles": value}))

    assert caller is not None
    assert (caller.groups, caller.roles) == ((), ())


@pytest.mark.parametrize(
    "shape", [{}, {"requestContext": None}, event(None), event({"principalId": "  "})]
)
def test_no_identity(shape: dict[str, Any]) -> None:
    assert caller_from(shape) is None
    assert user_id_from(shape) is None
