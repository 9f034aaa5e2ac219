"""Whole-app synthesis, as ``cdktf synth`` runs it: one stack per environment, byte-identical
output run after run, identical output whether the provider is loaded fast (the CLI's run) or
stock (``main.py`` run directly), on the Python side and in jsii's Node process, and checkov's
gate passed by every environment of that output (``make test``'s scan)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from compute.provider_loader import node_options
from functions.contract import FUNCTIONS
from tests.compute.provider_modules import (
    NODE_INDEX,
    STOCK_AWS_SUBMODULES,
    facade_submodules,
    node_modules,
    node_modules_for,
    provider_submodules,
    stock_submodules,
)

ROOT = Path(__file__).resolve().parents[2]
CHECKOV_PYTHON = ROOT / ".tools" / "checkov" / "bin" / "python"
PROBE = Path(__file__).resolve().parent / "import_probe"
NODE_PROBE = PROBE / "node_probe.cjs"
STACK_NAMES = ("compute-dev", "compute-prod")
# One worker runs the module, so its two synth processes run once, not once per worker.
pytestmark = pytest.mark.xdist_group("synthesis")


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class Run:
    out: Path  # the run's cdktf.out/
    files: dict[str, bytes]  # cdktf.out/, by relative path
    provider_submodules: frozenset[str]  # what the run imported (the probe's list)
    node_modules: frozenset[str]  # what its jsii process loaded of the AWS package
    log: str  # what it printed, stdout then stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Two synths of the shipped config, run side by side: ``npx cdktf synth`` (the README's
    ``make synth``), which runs the app from cdktf.json with the fast provider loader, and
    ``main.py`` run directly with the stock one. Two separate processes, so they also show that
    a synth is reproducible: a third run proved nothing more.

    Each lists the modules it imported, and its Node processes those of the AWS package
    (``import_probe/``): the CLI's app command leaves no room for ``python -X importtime``.
    The direct run's first ``node`` on its ``PATH`` is a machine's other Node, which fails: the
    app starts jsii on the locked one whatever the machine has (``compute/__init__.py``). The
    CLI cannot be given that ``PATH``: ``npx`` runs on it."""
    if not (ROOT / "node_modules" / ".bin" / "cdktf").exists():
        pytest.fail("the CDKTF CLI is not installed: run `make setup`")
    # NODE_OPTIONS as a user's shell has it, without the Node-side loader that importing
    # ``compute`` put there: the CLI's run must add it by itself. The stock run is given it, as
    # a process started from a fast one would be, and must drop it.
    user_options = node_options(os.environ.get("NODE_OPTIONS", ""), stock=True)
    environ = {
        **_without_jsii_node(),
        "COMPUTE_CONFIG_DIR": str(ROOT / "config"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE), os.environ.get("PYTHONPATH")])),
        "NODE_OPTIONS": f'{user_options} --require "{NODE_PROBE}"'.strip(),
    }
    fast, stock = tmp_path_factory.mktemp("fast"), tmp_path_factory.mktemp("stock")
    terraformrc = fast / "terraformrc"
    terraformrc.write_text("", encoding="utf-8")
    machines_node = _failing_node(tmp_path_factory.mktemp("machine-bin"))
    commands = {
        # Terraform's complaint about a missing CLI configuration file (TF_CLI_CONFIG_FILE
        # naming none, as on this machine) is the machine's, not the project's: the run gets
        # an existing, empty one.
        "fast": (
            ["npx", "--no-install", "cdktf", "synth", "--output", str(fast / "cdktf.out")],
            ROOT,
            {**environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(terraformrc),
             "IMPORTS_PROBE_OUT": str(fast / "imports.json"), "NODE_PROBE_DIR": str(fast)},
        ),
        "stock": (
            [sys.executable, str(ROOT / "main.py")],
            stock,
            {**environ, "PATH": f"{machines_node}{os.pathsep}{environ['PATH']}",
             "COMPUTE_STOCK_PROVIDER": "1", "IMPORTS_PROBE_OUT": str(stock / "imports.json"),
             "NODE_PROBE_DIR": str(stock),
             "NODE_OPTIONS": node_options(environ["NODE_OPTIONS"], stock=False)},
        ),
    }  # fmt: skip
    processes = {
        name: subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (command, cwd, env) in commands.items()
    }
    folders = {"fast": fast, "stock": stock}
    outputs = {}
    for name, process in processes.items():
        folder = folders[name]
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stdout + stderr
        imported = json.loads((folder / "imports.json").read_text(encoding="utf-8"))
        loaded = [json.loads(probe.read_text()) for probe in folder.glob("node-*.json")]
        assert len(loaded) == 1, f"{len(loaded)} Node processes loaded the AWS package"
        out = folder / "cdktf.out"
        outputs[name] = Run(
            out, tree(out), provider_submodules(imported), node_modules(loaded[0]), stdout + stderr
        )
    return outputs


def _without_jsii_node() -> dict[str, str]:
    """This process's environment without the ``JSII_NODE`` that importing ``compute`` set, so
    that a child finds the locked Node by itself, as a user's shell would."""
    return {name: value for name, value in os.environ.items() if name != "JSII_NODE"}


def _failing_node(folder: Path) -> Path:
    node = folder / "node"
    node.write_text('#!/bin/sh\necho "the machine\'s node, not the locked one" >&2\nexit 1\n')
    node.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def synths(runs: dict[str, Run]) -> dict[str, dict[str, bytes]]:
    return {name: run.files for name, run in runs.items()}


def test_one_synth_gives_one_stack_per_environment(synths: dict[str, dict[str, bytes]]) -> None:
    manifest = json.loads(synths["fast"]["manifest.json"])
    assert set(manifest["stacks"]) == set(STACK_NAMES)
    dev = json.loads(synths["fast"]["stacks/compute-dev/cdk.tf.json"])
    prod = json.loads(synths["fast"]["stacks/compute-prod/cdk.tf.json"])
    assert dev["terraform"]["backend"] != prod["terraform"]["backend"]
    zips = [name for name in synths["fast"] if name.endswith(".zip")]
    assert len(zips) == 10 == 2 * len(FUNCTIONS)  # one package per function and environment


def test_two_synths_are_byte_identical_with_either_provider_loader(runs: dict[str, Run]) -> None:
    fast, stock = runs["fast"], runs["stock"]
    # The two runs really took the two paths: the fast one imported exactly the façade's
    # submodules, the stock one every submodule both stock packages import eagerly.
    assert fast.provider_submodules == facade_submodules()
    assert stock.provider_submodules == stock_submodules() > facade_submodules()
    # So did jsii's Node processes: the fast one loaded the AWS package's index and the modules
    # of the types the stacks hold, and nothing else; the stock one every module.
    stacks = [json.loads(fast.files[f"stacks/{name}/cdk.tf.json"]) for name in STACK_NAMES]
    assert fast.node_modules == {NODE_INDEX}.union(*map(node_modules_for, stacks))
    assert len(stock.node_modules) == STOCK_AWS_SUBMODULES + 1 > len(fast.node_modules)
    assert list(fast.files) == list(stock.files)
    for name, content in fast.files.items():
        assert content == stock.files[name], f"{name} differs from the stock provider's synth"


def test_the_cdktf_cli_synthesizes_the_app_without_an_error_line(runs: dict[str, Run]) -> None:
    """`npx cdktf synth` (the README's `make synth`) ran the app from cdktf.json: the synth
    compared above. The CLI shows all the app writes to stderr as ``[ERROR]``: the app's own
    warnings show, but not as errors, and neither do Node's deprecation notices from jsii's
    process: no ``[ERROR]`` line at all."""
    output = runs["fast"].log
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert "warning: compute-dev: identity_center_issuer_url is empty" in output
    assert "Generated Terraform code for the stacks: compute-dev, compute-prod" in output
    assert errors == []


def test_checkov_passes_every_environment(runs: dict[str, Run]) -> None:
    """``make scan``'s gate (``tools/scan.py``, checkov from its own environment) on the synth
    above, which is ``make scan``'s own: the same app and config. Run here rather than before
    pytest, ``make test``'s scan costs neither a synth of its own nor its wait before the suite
    starts. Its summary, what each skip hides, is printed on failure; ``make scan`` prints it
    always."""
    if not CHECKOV_PYTHON.exists():
        pytest.fail("checkov's environment is missing: `make test` or `make scan` builds it")
    result = subprocess.run(
        [str(CHECKOV_PYTHON), str(ROOT / "tools" / "scan.py"), str(runs["fast"].out),
         "--config-dir", str(ROOT / ".checkov")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 environments clean" in result.stdout, result.stdout
