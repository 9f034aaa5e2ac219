"""Exec a command that the kernel ends when the process that started it ends, however it ends.

The dev server's Lambda workers end by themselves when the server dies (their stdin closes),
but the OpenAI app's uvicorn reads no pipe from it: a dev server killed outright (``kill -9``,
the out-of-memory killer, a CI job's timeout) would leave uvicorn running and holding its port.
Linux's ``PR_SET_PDEATHSIG`` survives ``exec`` and has the kernel send ``SIGTERM`` then, which
uvicorn handles as a normal stop. It fires when the *thread* that started the child ends, so
the dev server starts it from its main thread. Elsewhere (macOS) the command runs unguarded.

    python -I -S devserver/tied.py <parent pid> <command> [arguments...]
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is not None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # it died before the signal was armed: nothing to serve
            sys.exit(1)
    os.execvp(command[0], command)  # noqa: S606 - the dev server's own command, as given


if __name__ == "__main__":
    main(sys.argv[1:])
