"""Frame splitting and encoding on their own."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.websocket import frames


@settings(max_examples=25, deadline=None)
@given(text=st.text(min_size=1, max_size=50_000).map(lambda t: t * 3))
def test_frame_split_fits_and_reassembles(text: str) -> None:
    pieces = list(frames.chunks("s" * 36, "m" * 36, text))
    assert "".join(piece["content"] for piece in pieces) == text
    assert all(len(frames.encode(piece)) <= frames.MAX_FRAME_BYTES for piece in pieces)


def test_lone_surrogates_cannot_break_a_frame() -> None:
    encoded = frames.encode(frames.error("internal", "bad \ud800 text"))
    assert json.loads(encoded)["message"] == "bad ? text"
