"""The stacks and runs these tests read are fixtures of :mod:`tests.security.fixtures`."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # GET /health records no metric, so Powertools warns; that is expected.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish")
