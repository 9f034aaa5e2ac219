"""``deadline.gather``: independent calls at once, each under the invocation's deadline."""

from __future__ import annotations

import threading

import pytest

from functions.core import deadline


def _deadline(seconds: float) -> deadline.Deadline:
    class Context:
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return int(seconds * 1000)

    return deadline.Deadline.of(Context())


def test_the_calls_run_together_under_the_bound_deadline_and_answer_in_order() -> None:
    barrier = threading.Barrier(3)  # met only when all three run at once
    seen: list[deadline.Deadline | None] = []

    def call(value: int) -> int:
        barrier.wait(timeout=5)
        seen.append(deadline.current())
        return value

    bound = _deadline(20)
    with deadline.bound(bound):
        results = deadline.gather([lambda n=n: call(n) for n in range(3)], "test")
    assert results == [0, 1, 2]
    assert seen == [bound] * 3


def test_the_first_failure_in_order_is_raised_and_the_results_discarded() -> None:
    discarded: list[str] = []

    def fail(message: str) -> str:
        raise ValueError(message)

    calls = [lambda: "a", lambda: fail("second"), lambda: "c", lambda: fail("fourth")]
    with pytest.raises(ValueError, match="second"):
        deadline.gather(calls, "test", discard=discarded.append)
    assert sorted(discarded) == ["a", "c"]


def test_one_call_runs_on_this_thread() -> None:
    assert deadline.gather([threading.current_thread], "test") == [threading.current_thread()]
    assert deadline.gather([], "test") == []
