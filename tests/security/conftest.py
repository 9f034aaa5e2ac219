"""The synthesized stacks and the enforced runs, each built once per test process.

``dev`` is the embedded default; ``prod`` (config/prod.toml) adds a VPC, a knowledge base and
a cross-region inference profile. Both let the stack create the function roles.
"""

from __future__ import annotations

import pytest

from tests.security.code_paths import Run, enforced_run
from tests.security.synthesized import Stack, synthesized

ENVIRONMENTS = ("dev", "prod")


def pytest_configure(config: pytest.Config) -> None:
    # GET /health records no metric, so Powertools warns; that is expected.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish")


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def stack(request: pytest.FixtureRequest) -> Stack:
    return synthesized(request.param)


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def run(request: pytest.FixtureRequest) -> Run:
    return enforced_run(request.param)
