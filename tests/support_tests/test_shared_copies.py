"""The repository's copies of the team's shared files are identical to the originals, where a
workspace has them beside the repository (a clone elsewhere tests itself on the copies)."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from tests.support.events import EVENTS_DIR
from tests.support.spec import REPO_ROOT, SPEC

SHARED = REPO_ROOT.parent / "shared"
COPIES = [
    (SHARED / "spec" / "compute-module.md", SPEC),
    *((path, EVENTS_DIR / path.name) for path in sorted((SHARED / "events").glob("*"))),
]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no {SHARED} beside the repository to compare")
@pytest.mark.parametrize(("original", "copy"), COPIES, ids=lambda path: path.name)
def test_the_copy_is_identical(original: Path, copy: Path) -> None:
    assert copy.is_file(), f"{copy} is missing: copy {original} into the repository"
    assert filecmp.cmp(original, copy, shallow=False), f"{copy} differs from {original}"


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no {SHARED} beside the repository to compare")
def test_every_shared_event_is_copied() -> None:
    originals = {path.name for path in (SHARED / "events").glob("*")}
    assert originals <= {path.name for path in EVENTS_DIR.glob("*")}
