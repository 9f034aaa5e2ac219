"""Pagination tokens on their own: signed, bound to their listing, and refused when not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.data.pagination import TokenSigner
from functions.domain.errors import BadRequest


def test_token_round_trip_and_binding() -> None:
    signer = TokenSigner(b"secret")
    key = {"session_id": {"S": "s1"}, "seq": {"N": "3"}}
    token = signer.encode("messages", "alice", "s1", key)
    assert signer.decode(token, "messages", "alice", "s1") == key
    for kind, user, scope in [("sessions", "alice", "s1"), ("messages", "bob", "s1"),
                              ("messages", "alice", "s2")]:  # fmt: skip
        with pytest.raises(BadRequest):
            signer.decode(token, kind, user, scope)
    with pytest.raises(BadRequest):
        TokenSigner(b"other key").decode(token, "messages", "alice", "s1")


@settings(max_examples=100, deadline=None)
@given(token=st.text(max_size=200))
def test_arbitrary_tokens_are_bad_requests(token: str) -> None:
    with pytest.raises(BadRequest):
        TokenSigner(b"secret").decode(token, "sessions", "alice", "")
