"""Stopping a child process: the doubles that run as processes of their own (the Terraform
emulator, the enforcing moto, the real OIDC provider) and the dev server's Lambda workers all
stop the same way, so here once."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any], grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``grace_seconds``: a child that hangs
    on its shutdown must not outlive the test run or the dev server. Returns once it is reaped;
    a process that has already ended is left as it is."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
