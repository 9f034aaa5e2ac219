"""Synthesized stacks shared by the stack tests: each variant is synthesized once per process."""

from __future__ import annotations

import pytest

from compute.config import ComputeConfig
from tests.compute.synth import Synth, environment_stack


@pytest.fixture(scope="session")
def dev_config() -> ComputeConfig:
    return environment_stack("dev")[0]


@pytest.fixture(scope="session")
def dev() -> Synth:
    return environment_stack("dev")[1]


@pytest.fixture(scope="session")
def prod_config() -> ComputeConfig:
    return environment_stack("prod")[0]


@pytest.fixture(scope="session")
def prod() -> Synth:
    return environment_stack("prod")[1]
