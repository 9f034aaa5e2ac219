"""Each function's ``requirements.txt`` pins what ``Pipfile.lock`` locks.

The tests run the Lambda code against the locked environment, so a package must ship at
the version the tests ran: every pin agrees with the lock, and with the Pipfile where the
Pipfile pins the package itself."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from functions.contract import FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
# What compute/packaging.py installs into each package.
REQUIREMENTS = [ROOT / spec.requirements for spec in FUNCTIONS]


def pins(requirements: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a requirements file, each line an exact pin."""
    found = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        if not (line := line.partition("#")[0].strip()):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirements}: {line} is not an exact pin"
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def locked() -> dict[str, str]:
    """``{canonical name: version}`` of Pipfile.lock's default (non-dev) packages."""
    lock = json.loads((ROOT / "Pipfile.lock").read_text(encoding="utf-8"))
    return {
        canonicalize_name(name): entry["version"].removeprefix("==")
        for name, entry in lock["default"].items()
    }


def pipfile_pins() -> dict[str, str]:
    """``{canonical name: version}`` of the Pipfile's exact ``[packages]`` pins."""
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text(encoding="utf-8"))
    found = {}
    for name, entry in pipfile["packages"].items():
        version = entry if isinstance(entry, str) else entry.get("version", "*")
        if version.startswith("=="):
            found[canonicalize_name(name)] = version.removeprefix("==")
    return found


def test_every_function_has_pinned_requirements() -> None:
    """Every function folder with a requirements file is one the packaging installs."""
    assert sorted(ROOT.glob("functions/*/requirements.txt")) == sorted(REQUIREMENTS)
    for path in REQUIREMENTS:
        assert pins(path), f"{path} pins nothing"


@pytest.mark.parametrize("requirements", REQUIREMENTS, ids=lambda path: path.parent.name)
def test_requirements_pin_the_locked_versions(requirements: Path) -> None:
    lock, pipfile = locked(), pipfile_pins()
    for name, version in pins(requirements).items():
        assert name in lock, f"{requirements}: {name} is not in Pipfile.lock's packages"
        assert version == lock[name], f"{requirements}: {name}=={version}, locked {lock[name]}"
        if name in pipfile:
            assert version == pipfile[name], (
                f"{requirements}: {name}=={version}, the Pipfile pins {pipfile[name]}"
            )
