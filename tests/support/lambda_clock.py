"""Run a handler as Lambda does: in a process of its own, with a context whose clock counts
down from the function's timeout, and killed when it reaches zero.

Lambda ends the execution environment at the timeout: nothing after that runs, no ``finally``,
no late write. A thread cannot be stopped like that, so the handler runs in a forked child
(which reaches moto, the fault proxy and the fakes over HTTP, as the function reaches AWS) and
the parent sends it ``SIGKILL`` when the countdown ends, or earlier on request (a crash).
What the client then sees is API Gateway's answer to a dead integration: a 504 for REST, no
frame for the WebSocket.

Usage::

    context = LambdaContext(timeout_ms=10_000)          # the function's configured timeout
    invocation = invoke(main_handler, event, context)
    invocation.killed                                   # True: it ran into the timeout
    invocation.result                                   # the handler's return value
    invocation.remaining_ms                             # on the countdown, when it answered
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from functions.core import aws

Handler = Callable[[dict[str, Any], Any], Any]


class Countdown(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Invocation:
    result: Any  # the handler's return value; None when killed or raised
    killed: bool  # ended by SIGKILL: at the timeout, or by kill_when
    remaining_ms: int  # the context's countdown when the answer (or the kill) came
    error: str | None = None  # repr of what the handler raised


@contextmanager
def dedicated_cpu(boost: int = 10) -> Iterator[bool]:
    """This process's threads (the test, and moto and the fakes the function calls) and the
    functions it forks, at a higher CPU priority while the block runs.

    Lambda gives each execution environment its own share of CPU, so a deployed function is
    never starved by its neighbours. On a 2-core test machine, the other test worker's synths
    and Terraform runs can starve a forked function for seconds, and a test about what
    happens before its deadline then measures the machine. Linux sets priority per thread, so
    each existing thread is raised (threads they start inherit it) and restored afterwards.
    Raising priority takes CAP_SYS_NICE (root, as in CI); without it nothing changes, and
    the block is told so (``False``)."""
    before = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        with contextlib.suppress(ProcessLookupError):
            before[tid] = os.getpriority(os.PRIO_PROCESS, tid)
    try:
        _set_priorities({tid: nice - boost for tid, nice in before.items()})
    except PermissionError:
        _set_priorities(before)
        yield False
        return
    try:
        yield True
    finally:
        _set_priorities(before)


def _set_priorities(priorities: dict[int, int]) -> None:
    for tid, nice in priorities.items():
        with contextlib.suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, tid, nice)


def invoke(
    handler: Handler,
    event: dict[str, Any],
    context: Countdown,
    *,
    kill_when: threading.Event | None = None,
) -> Invocation:
    """Run ``handler(event, context)`` in a child process until it answers, its countdown
    reaches zero, or ``kill_when`` is set; killed in the latter two cases."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the execution environment
        os.close(read_end)
        _run(handler, event, context, write_end)
    os.close(write_end)
    try:
        return _wait(pid, read_end, context, kill_when)
    finally:
        os.close(read_end)


def _run(handler: Handler, event: dict[str, Any], context: Countdown, out: int) -> None:
    try:
        aws.reset_clients()  # the parent's pooled connections are not this process's
        answer = {"result": handler(event, context)}
    except BaseException as error:  # reported to the parent, like Lambda's error payload
        answer = {"error": repr(error)}
    data = json.dumps(answer, default=str).encode()
    while data:
        data = data[os.write(out, data) :]
    os._exit(0)


def _wait(pid: int, pipe: int, context: Countdown, kill_when: threading.Event | None) -> Invocation:
    data = b""
    while True:
        left = context.get_remaining_time_in_millis() / 1000
        if left <= 0 or (kill_when is not None and kill_when.is_set()):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return Invocation(None, True, context.get_remaining_time_in_millis())
        readable, _, _ = select.select([pipe], [], [], min(left, 0.05))
        if not readable:
            continue
        chunk = os.read(pipe, 1 << 16)
        if chunk:
            data += chunk
            continue
        remaining = context.get_remaining_time_in_millis()
        os.waitpid(pid, 0)
        answer = json.loads(data)
        return Invocation(answer.get("result"), False, remaining, answer.get("error"))
