"""``dedicated_cpu``: every thread of the process, and what it forks, raised, then restored."""

from __future__ import annotations

import os
import threading

import pytest

from tests.support.lambda_clock import dedicated_cpu


def _priorities() -> dict[int, int]:
    return {
        int(tid): os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir("/proc/self/task")
    }


def test_every_thread_and_a_forked_child_run_raised_until_the_block_ends() -> None:
    stop = threading.Event()
    waiting = threading.Thread(target=stop.wait)
    waiting.start()
    try:
        before = _priorities()
        with dedicated_cpu(boost=5) as raised:
            if not raised:
                pytest.skip("raising priority needs CAP_SYS_NICE (root); here it is a no-op")
            during = _priorities()
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(write, str(os.getpriority(os.PRIO_PROCESS, 0)).encode())
                os._exit(0)
            os.waitpid(pid, 0)
            child = int(os.read(read, 16))
            os.close(read)
            os.close(write)
        after = _priorities()
    finally:
        stop.set()
        waiting.join()
    # Other threads of the worker (an earlier test's server winding down) may end or start
    # between two readings: the threads alive through all three are the ones to compare, and
    # this test's own two are among them.
    through = before.keys() & during.keys() & after.keys()
    assert {threading.get_native_id(), waiting.native_id} <= through
    assert {tid: before[tid] - 5 for tid in through} == {tid: during[tid] for tid in through}
    assert child == during[threading.get_native_id()]
    assert {tid: after[tid] for tid in through} == {tid: before[tid] for tid in through}
