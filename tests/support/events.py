"""Recorded AWS event samples (``tests/events/*.json``) for handler tests.

The samples are copies of the team's shared recordings (``../shared/events`` beside the
repository, where a workspace has it), kept in the repository so a clone tests itself;
``tests/support_tests/test_shared_copies.py`` checks the copies are identical where the
originals are present. Every call returns a fresh deep copy, so a test may mutate its event
freely::

    from tests.support.events import load_event

    event = load_event("rest-proxy-request")
    event["path"] = "/api/v1/health"
    event["httpMethod"] = "GET"
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "tests" / "events"


@functools.cache
def _read(name: str) -> dict[str, Any]:
    """Parse one sample once per process; callers only ever see copies."""
    path = EVENTS_DIR / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in EVENTS_DIR.glob("*.json")) if EVENTS_DIR.is_dir() else []
        raise FileNotFoundError(
            f"no recorded event {name!r}: {path} does not exist "
            f"(available in {EVENTS_DIR}: {', '.join(available) or 'none'})"
        )
    event = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(event, dict):
        raise ValueError(f"{path} holds a {type(event).__name__}, not a JSON object")
    return event


def load_event(name: str) -> dict[str, Any]:
    """Return a deep copy of ``shared/events/<name>.json`` (``name`` without ``.json``)."""
    return copy.deepcopy(_read(name))
