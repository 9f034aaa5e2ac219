"""The contract tests read the same synthesized stacks and enforced runs as tests/security,
built once per test process by the fixtures defined there."""

from tests.security.conftest import pytest_configure, run, stack

__all__ = ["pytest_configure", "run", "stack"]
