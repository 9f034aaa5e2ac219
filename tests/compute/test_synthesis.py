"""Whole-app synthesis, as ``cdktf synth`` runs it: one stack per environment, byte-identical
output run after run, and identical output whether the provider is loaded fast or stock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.shared.contract import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Three synths of the shipped config, run side by side: fast twice, stock once."""
    runs = {}
    for name, stock in (("fast", "0"), ("again", "0"), ("stock", "1")):
        folder = tmp_path_factory.mktemp(name)
        env = {
            **os.environ,
            "COMPUTE_CONFIG_DIR": str(ROOT / "config"),
            "COMPUTE_STOCK_PROVIDER": stock,
        }
        runs[name] = (folder, subprocess.Popen(
            [sys.executable, str(ROOT / "main.py")], cwd=folder, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    outputs = {}
    for name, (folder, process) in runs.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        outputs[name] = tree(folder / "cdktf.out")
    return outputs


def test_one_synth_gives_one_stack_per_environment(synths: dict[str, dict[str, bytes]]) -> None:
    manifest = json.loads(synths["fast"]["manifest.json"])
    assert set(manifest["stacks"]) == {"compute-dev", "compute-prod"}
    dev = json.loads(synths["fast"]["stacks/compute-dev/cdk.tf.json"])
    prod = json.loads(synths["fast"]["stacks/compute-prod/cdk.tf.json"])
    assert dev["terraform"]["backend"] != prod["terraform"]["backend"]
    zips = [name for name in synths["fast"] if name.endswith(".zip")]
    assert len(zips) == 8 == 2 * len(FUNCTIONS)  # one package per function and environment


def test_two_synths_are_byte_identical(synths: dict[str, dict[str, bytes]]) -> None:
    assert list(synths["fast"]) == list(synths["again"])
    for name, content in synths["fast"].items():
        assert content == synths["again"][name], f"{name} differs between two synths"


def test_fast_loader_gives_the_stock_output(synths: dict[str, dict[str, bytes]]) -> None:
    assert list(synths["fast"]) == list(synths["stock"])
    for name, content in synths["fast"].items():
        assert content == synths["stock"][name], f"{name} differs from the stock provider's synth"


def test_fast_loader_skips_the_eager_imports() -> None:
    code = (
        "import sys, compute.provider\n"
        "loaded = [m for m in sys.modules if m.startswith('cdktf_cdktf_provider_aws.')]\n"
        "print(len(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "COMPUTE_STOCK_PROVIDER": "0"},
    )  # fmt: skip
    assert int(result.stdout) < 100  # the stock package imports all 2,212


def test_the_cdktf_cli_synthesizes_the_same_app(
    synths: dict[str, dict[str, bytes]], tmp_path: Path
) -> None:
    """`npx cdktf synth` (the README's `make synth`) runs the app from cdktf.json and gets the
    very same stacks as the direct runs above."""
    if not (ROOT / "node_modules" / ".bin" / "cdktf").exists():
        pytest.fail("the CDKTF CLI is not installed: run `make setup`")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "COMPUTE_CONFIG_DIR": str(ROOT / "config")}
    result = subprocess.run(
        ["npx", "--no-install", "cdktf", "synth", "--output", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    cli = tree(tmp_path / "out")
    stacks = [name for name in synths["fast"] if name.startswith("stacks/")]
    assert stacks == [name for name in cli if name.startswith("stacks/")]
    for name in stacks:
        assert cli[name] == synths["fast"][name], f"{name} differs between the CLI and main.py"
