"""The layers of ``functions/`` (docs/code-layout.md): each imports only the ones below it.

The rules are import-linter contracts in ``pyproject.toml``; running them here makes a
wrong-way import fail the suite, not only a separate lint step.
"""

from __future__ import annotations

import ast
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO_ROOT / "functions"


def test_the_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """Run in the worker, and leaving its loggers as they were: import-linter's entry point
    configures logging with ``dictConfig``, which disables every logger that exists already.
    That silenced urllib3's and the functions' loggers for every later test of the worker."""
    existing = logging.getLogger("tests.layers.existing")
    with loggers_left_enabled():
        status = lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True)
    assert status == 0, capsys.readouterr().out
    assert not existing.disabled


@contextmanager
def loggers_left_enabled() -> Iterator[None]:
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    disabled = {logger: logger.disabled for logger in loggers}
    try:
        yield
    finally:
        for logger, was_disabled in disabled.items():
            logger.disabled = was_disabled


def _top_level_imports(source: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_bytes())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            imported.add((node.module or "").split(".")[0])
    return imported


@pytest.mark.parametrize(
    "source",
    [FUNCTIONS / "contract.py", *sorted((FUNCTIONS / "domain").glob("*.py"))],
    ids=lambda path: path.relative_to(FUNCTIONS).as_posix(),
)
def test_the_bottom_layers_need_only_the_standard_library(source: Path) -> None:
    """The contract is imported by compute/ and the authorizer, the domain by every layer: no
    third-party package (boto3, Powertools, pydantic) may come in through them."""
    allowed = set(sys.stdlib_module_names) | {"__future__", "functions"}
    assert _top_level_imports(source) <= allowed
