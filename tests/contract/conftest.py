"""The contract tests read the same synthesized stacks and enforced runs as tests/security
(:mod:`tests.security.fixtures`), and expect the same warning."""

from tests.security.conftest import pytest_configure

__all__ = ["pytest_configure"]
