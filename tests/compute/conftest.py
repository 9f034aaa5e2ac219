"""Synthesized stacks shared by the stack tests: each variant is synthesized once per process."""

from __future__ import annotations

import pytest

from compute.config import ComputeConfig
from tests.compute.synth import Synth, environment_config, shared_synth


@pytest.fixture(scope="session")
def dev_config() -> ComputeConfig:
    return environment_config("dev")


@pytest.fixture(scope="session")
def dev(dev_config: ComputeConfig) -> Synth:
    return shared_synth(dev_config)


@pytest.fixture(scope="session")
def prod_config() -> ComputeConfig:
    return environment_config("prod")


@pytest.fixture(scope="session")
def prod(prod_config: ComputeConfig) -> Synth:
    return shared_synth(prod_config)
