"""Synthesis helpers for the stack tests.

``Testing.synth_scope`` cannot take a Python callback (hashicorp/terraform-cdk#2871), so
``synth_construct`` plays its role: it builds a construct inside a fresh stack from
``Testing.app()`` and returns the synthesized JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from compute.config import ComputeConfig, default_config, load_config

if TYPE_CHECKING:
    from cdktf import TerraformStack

Synth = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
_SHARED: dict[str, Synth] = {}  # by the configuration's JSON

# The modules that synthesize in their own process share one worker (``--dist loadgroup``): a
# worker that synthesizes starts jsii's Node process, loads the AWS provider's assembly and
# synthesizes the shipped stacks (:func:`shared_synth`) for itself, so three workers paid all
# of that three times (tests/compute alone: 62.9 CPU-seconds on three workers, 40.7 on one).
# The enforced runs of tests/security and tests/contract read the same stacks.
STACKS = pytest.mark.xdist_group("stacks")


# cdktf is imported where a stack is built: importing it starts jsii's Node process, which a test
# worker whose tests never synthesize (the Lambda-clock run's) need not pay for.


def synth_construct(build: Callable[[TerraformStack], object]) -> Synth:
    from cdktf import TerraformStack
    from cdktf import Testing as CdktfTesting  # aliased so pytest does not collect it

    app = CdktfTesting.app()
    stack = TerraformStack(app, "test")
    build(stack)
    return json.loads(CdktfTesting.synth(stack))


def synth_stack(config: ComputeConfig) -> Synth:
    from cdktf import Testing as CdktfTesting

    from compute.stack import ComputeStack

    stack = ComputeStack(CdktfTesting.app(), config)
    return json.loads(CdktfTesting.synth(stack))


def shared_synth(config: ComputeConfig) -> Synth:
    """``config``'s stack, synthesized once per process for every test that only reads it (the
    stack, dashboard, security and contract tests had each synthesized the shipped
    environments again). Readers must not change it; a test that watches synthesis itself
    (what it prints) calls :func:`synth_stack`."""
    key = config.model_dump_json()
    if key not in _SHARED:
        _SHARED[key] = synth_stack(config)
    return _SHARED[key]


def environment_config(environment: str) -> ComputeConfig:
    """``dev`` (the embedded default) or another environment of ``config/``."""
    if environment == "dev":
        return default_config({})
    return load_config(ROOT / "config" / f"{environment}.toml", {})


def resources(synth: Synth, kind: str) -> dict[str, dict[str, Any]]:
    """All resources of one Terraform type, keyed by their logical id."""
    return synth.get("resource", {}).get(kind, {})


def only(synth: Synth, kind: str) -> dict[str, Any]:
    found = list(resources(synth, kind).values())
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def by(synth: Synth, kind: str, **match: Any) -> dict[str, Any]:
    """The single resource of ``kind`` whose attributes equal ``match``."""
    found = [
        r for r in resources(synth, kind).values() if all(r.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, f"expected one {kind} with {match}, found {len(found)}"
    return found[0]


def ref(synth: Synth, kind: str, attribute: str, **match: Any) -> str:
    """The Terraform reference ``${kind.id.attribute}`` of the resource matching ``match``."""
    ids = [
        i for i, r in resources(synth, kind).items() if all(r.get(k) == v for k, v in match.items())
    ]
    assert len(ids) == 1, f"expected one {kind} with {match}, found {len(ids)}"
    return f"${{{kind}.{ids[0]}.{attribute}}}"


def data(synth: Synth, kind: str) -> dict[str, dict[str, Any]]:
    return synth.get("data", {}).get(kind, {})


def policy_document(synth: Synth, reference: str) -> dict[str, Any]:
    """The data.aws_iam_policy_document that ``${data.aws_iam_policy_document.X.json}`` names."""
    name = reference.removeprefix("${data.aws_iam_policy_document.").removesuffix(".json}")
    return data(synth, "aws_iam_policy_document")[name]
