"""Every stack through real Terraform: each environment of ``config/`` initializes offline,
validates against the mirrored provider, applies to the emulator, plans no change a second
time, reads back as the contract says, and destroys (all but what deletion protection
keeps); each variant the stack tests synthesize validates and plans."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.conftest import Runs
from tests.terraform.harness import refused_section
from tests.terraform.stacks import EMULATOR_GAPS, VARIANTS

pytestmark = pytest.mark.xdist_group("terraform")

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = sorted(path.stem for path in (ROOT / "config").glob("*.toml"))
REFERENCE = re.compile(r"\$\{((?:aws|random)_[a-z0-9_]+)\.([A-Za-z0-9_\-]+)\.")


def synthesized(runs: Runs, name: str) -> dict[str, Any]:
    return json.loads((runs.roots[name] / "cdk.tf.json").read_text())


def managed(document: dict[str, Any]) -> set[str]:
    """The address of every resource the document declares (no ``count``/``for_each``
    index: the one counted resource expands to ``[0]`` in Terraform's addresses)."""
    return {
        f"{kind}.{name}" for kind, items in document.get("resource", {}).items() for name in items
    }


def base_address(address: str) -> str:
    return re.sub(r"\[[^\]]*\]$", "", address)


def dependencies(document: dict[str, Any], addresses: set[str]) -> set[str]:
    """Every resource that ``addresses`` reference, transitively."""
    resources = document.get("resource", {})
    found: set[str] = set()
    todo = list(addresses)
    while todo:
        kind, name = todo.pop().split(".", 1)
        body = json.dumps(resources.get(kind, {}).get(name, {}))
        for ref_kind, ref_name in REFERENCE.findall(body):
            address = f"{ref_kind}.{ref_name}"
            if address not in found:
                found.add(address)
                todo.append(address)
    return found


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_applies_and_converges(terraform_runs: Runs, environment: str) -> None:
    """Apply fails on exactly the emulator's known gaps, and a second plan changes nothing
    that was applied: a perpetual diff (the provider normalizing what we wrote) fails here
    with its resource and attribute."""
    result = terraform_runs.cycle(environment)
    document = synthesized(terraform_runs, environment)
    gaps = {kind for kind in EMULATOR_GAPS if kind in document["resource"]}
    failed = {base_address(a).split(".")[0] for a in result.apply_failed}
    errors = [f"{a}: {e}" for a, e in result.apply_failed.items()]
    refused = refused_section(result.refused_requests)
    assert failed == gaps, "\n".join(["apply failed on:", *errors, refused])
    if not gaps:
        assert result.second_plan == [], "the second plan is not empty:\n" + "\n".join(
            result.second_plan
        )
    else:
        changed = [c for c in result.second_plan if not c.endswith(" create")]
        assert changed == [], "the second plan changes applied resources:\n" + "\n".join(changed)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_reads_back_as_the_contract_says(
    terraform_runs: Runs, environment: str
) -> None:
    """Routes, authorizers, tables, the cleanup stream mapping and the alarms' dimensions,
    read from the emulator after apply (tests/terraform/readback.py)."""
    result = terraform_runs.cycle(environment)
    if result.readback_error is not None:
        raise result.readback_error


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_destroys_all_but_its_protected_tables(
    terraform_runs: Runs, environment: str
) -> None:
    """Destroy removes everything, except that the emulator (as DynamoDB) refuses exactly
    the tables with deletion protection; those, and what they use (the stack key), stay."""
    result = terraform_runs.cycle(environment)
    document = synthesized(terraform_runs, environment)
    protected = {
        f"aws_dynamodb_table.{name}"
        for name, table in document["resource"].get("aws_dynamodb_table", {}).items()
        if table.get("deletion_protection_enabled") is True
    }
    errors = [f"{a}: {e}" for a, e in result.destroy_failed.items()]
    refused = refused_section(result.refused_requests)
    assert set(result.destroy_failed) == protected, "\n".join([*errors, refused])
    for address, error in result.destroy_failed.items():
        assert "DeletionProtectionEnabled" in error, f"{address}: {error}"
    left = {base_address(a) for a in result.left_in_state if not a.startswith("data.")}
    assert left <= protected | dependencies(document, protected), sorted(
        left - protected - dependencies(document, protected)
    )
    assert protected <= left


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_validates_and_plans(terraform_runs: Runs, variant: str) -> None:
    """The variant validates, and plans to create exactly what it declares, every data
    source read from the emulator."""
    planned = terraform_runs.plan(variant)
    document = synthesized(terraform_runs, variant)
    not_creates = [c for c in planned.changes if not c.endswith(" create")]
    assert not_creates == [], not_creates
    assert {base_address(c.split(" ")[0]) for c in planned.changes} == managed(document)
