"""The synthesized stacks the contract tests read, and the enforced runs of the functions'
code paths (tests/security/code_paths.py), each built once per test process."""

from __future__ import annotations

import pytest

from tests.security.code_paths import Run, enforced_run
from tests.security.synthesized import Stack, synthesized

ENVIRONMENTS = ("dev", "prod")


def pytest_configure(config: pytest.Config) -> None:
    # The enforced run's GET /health records no metric, so Powertools warns; that is expected.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish")


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def stack(request: pytest.FixtureRequest) -> Stack:
    return synthesized(request.param)


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def run(request: pytest.FixtureRequest) -> Run:
    return enforced_run(request.param)
