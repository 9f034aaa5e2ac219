"""Cold-start weight and the Lambda package's pinned dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from devserver.lambda_runtime import RUNTIME_DISTRIBUTIONS
from functions.contract import AUTHORIZER

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAVY_MODULES = ("boto3", "botocore", "fastapi", "pydantic", "aws_lambda_powertools", "mangum")
# Provided by the Lambda python3.11 runtime, so never packaged.
RUNTIME_PROVIDED = set(RUNTIME_DISTRIBUTIONS)


def test_importing_the_handler_loads_no_heavy_module() -> None:
    module, _, function = AUTHORIZER.handler.rpartition(".")
    script = (
        "import importlib, json, sys\n"
        f"handler = getattr(importlib.import_module({module!r}), {function!r})\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))

    assert "jwt" in loaded  # the import really happened
    assert loaded.isdisjoint(HEAVY_MODULES), loaded & set(HEAVY_MODULES)


def pins() -> dict[str, str]:
    lines = (REPO_ROOT / AUTHORIZER.requirements).read_text().split()
    assert lines == sorted(lines, key=str.lower)
    return {
        canonicalize_name(name): version for name, version in (line.split("==") for line in lines)
    }


def test_requirements_pin_the_venv_versions_and_a_safe_pyjwt() -> None:
    pinned = pins()

    assert {name: metadata.version(name) for name in pinned} == pinned
    assert Version(pinned["pyjwt"]) >= Version("2.13")  # earlier ones take a JWK as HMAC secret


def test_requirements_are_the_full_dependency_closure() -> None:
    """The build installs with --no-deps, so every transitive dependency must be listed."""
    closure: set[str] = set()
    pending = [Requirement("pyjwt[crypto]")]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in RUNTIME_PROVIDED or name in closure:
            continue
        closure.add(name)
        for spec in metadata.requires(name) or []:
            dependency = Requirement(spec)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in extras
            ):
                pending.append(dependency)

    assert closure == set(pins())
