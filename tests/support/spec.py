"""The specification (``docs/spec/compute-module.md``) as the tests read it: its variable
tables and its outputs.

The file is a copy of the team's shared specification (``../shared/spec``), kept in the
repository so a clone tests itself; ``tests/support_tests/test_shared_copies.py`` checks the
copy is identical where the original is present.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = REPO_ROOT / "docs" / "spec" / "compute-module.md"


@dataclass(frozen=True)
class SpecVariable:
    name: str
    required: bool
    type: str | None  # the required table's type column
    default: str | None  # the optional table's default column, as written


@functools.cache
def spec_text() -> str:
    return SPEC.read_text(encoding="utf-8")


def spec_variables() -> dict[str, SpecVariable]:
    """Both variable tables: required (name, description, type) and optional (name,
    description, default)."""
    text = spec_text()
    required_part, optional_part = text.split("### Optional Variables", 1)
    found: dict[str, SpecVariable] = {}
    for part, required in ((required_part, True), (optional_part.split("## Outputs")[0], False)):
        for line in part.splitlines():
            if not line.startswith("| `"):
                continue
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            name, last = cells[0].strip("`"), cells[-1].strip("`")
            found[name] = SpecVariable(
                name, required, last if required else None, None if required else last
            )
    return found


def spec_outputs() -> list[str]:
    """The output names of the spec's Outputs section."""
    section = spec_text().split("## Outputs", 1)[1].split("## Usage", 1)[0]
    return re.findall(r"^- `(\w+)`", section, flags=re.MULTILINE)
