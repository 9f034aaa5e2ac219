"""A conftest that imports another module's fixture registers a second fixture of the same
name: a session fixture imported that way is built once more per worker (tests/chatclient had
started its own synth and dev server that way). Shared fixtures wider than a test are plugins
of the top-level conftest (``pytest_plugins``), and each is built once."""

from __future__ import annotations

import importlib
from pathlib import Path

from _pytest.fixtures import FixtureFunctionDefinition

TESTS = Path(__file__).resolve().parents[1]


def _imported_wide_fixtures(conftest: Path) -> list[str]:
    name = ".".join(conftest.relative_to(TESTS.parent).with_suffix("").parts)
    module = importlib.import_module(name)
    return [
        f"{name} imports {value.__module__}.{attribute} ({value._fixture_function_marker.scope})"
        for attribute, value in vars(module).items()
        if isinstance(value, FixtureFunctionDefinition)
        and value.__module__ != name
        and value._fixture_function_marker.scope != "function"
    ]


def test_no_conftest_imports_a_fixture_wider_than_a_test() -> None:
    conftests = sorted(TESTS.rglob("conftest.py"))
    assert len(conftests) > 5
    imported = [line for conftest in conftests for line in _imported_wide_fixtures(conftest)]
    assert imported == []
