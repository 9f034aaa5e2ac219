"""Synthesized stacks shared by the stack tests: each variant is synthesized once per process."""

from __future__ import annotations

from pathlib import Path

import pytest

from compute.config import ComputeConfig, default_config, load_config
from tests.compute.synth import Synth, synth_stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dev_config() -> ComputeConfig:
    return default_config({})


@pytest.fixture(scope="session")
def dev(dev_config: ComputeConfig) -> Synth:
    return synth_stack(dev_config)


@pytest.fixture(scope="session")
def prod_config() -> ComputeConfig:
    return load_config(ROOT / "config" / "prod.toml", {})


@pytest.fixture(scope="session")
def prod(prod_config: ComputeConfig) -> Synth:
    return synth_stack(prod_config)
