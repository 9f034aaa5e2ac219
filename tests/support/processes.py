"""This machine's processes as ``/proc`` lists them, for the tests that check what a command
leaves running when it is stopped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    pid: int
    state: str  # "Z": ended, waiting for its parent to reap it
    parent: int
    session: int


def processes() -> Iterator[Process]:
    """Every process listed now; one that ends while it is read is left out."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces and parentheses of its own.
        state, parent, _group, session = stat[stat.rfind(")") + 2 :].split()[:4]
        yield Process(int(entry.name), state, int(parent), int(session))
