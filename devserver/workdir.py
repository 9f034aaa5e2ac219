"""The dev server's temporary folder (the Lambda runtime's boto3, as links; the packages are
extracted into the package cache), named after its process so that a later server can remove
the folders of servers killed outright.

A server stopped by a signal removes its own folder; one killed by SIGKILL cannot. Each start
removes the folders whose process is gone. A folder whose process id a new process has
taken since stays until that process ends too: the sweep never removes the folder of a
running server. Another user's folders are left alone (their process cannot be checked, and
their files cannot be removed).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from devserver.endpoints import alive

PREFIX = "ai-assistant-dev-"


def create() -> Path:
    """A new folder for this process, after removing the folders of dead servers."""
    parent = Path(tempfile.gettempdir())
    remove_stale(parent)
    return new_folder(parent, PREFIX)


def new_folder(parent: Path, prefix: str) -> Path:
    """A new folder under ``parent``, ``<prefix><pid>-<random>``: :func:`remove_stale` removes
    it once this process is gone."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def remove_stale(parent: Path, prefix: str = PREFIX) -> list[Path]:
    """Remove the folders under ``parent`` named by :func:`new_folder` with ``prefix`` whose
    process is gone; returns them."""
    removed = []
    for folder in parent.glob(f"{prefix}*-*"):
        pid = folder.name.removeprefix(prefix).split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
