"""The synthesized stacks and the enforced runs as session fixtures, each built once per test
process and shared by ``tests/security`` and ``tests/contract``: a plugin of the top-level
conftest, so both packages have the same fixture rather than one each.

``dev`` is the embedded default; ``prod`` (config/prod.toml) adds a VPC, a knowledge base and
a cross-region inference profile. Both let the stack create the function roles.
"""

from __future__ import annotations

import pytest

from tests.security.code_paths import Run, enforced_run
from tests.security.synthesized import Stack, synthesized

ENVIRONMENTS = ("dev", "prod")


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def stack(request: pytest.FixtureRequest) -> Stack:
    return synthesized(request.param)


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def run(request: pytest.FixtureRequest) -> Run:
    return enforced_run(request.param)
