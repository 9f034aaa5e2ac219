"""A failed test's report carries what the dev servers printed while it ran
(``tests/support/dev_server.py``): the gateway's 500 alone does not say which function failed
or why. Run in a real pytest of its own, with the plugin as the suite loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.compute.synth import ROOT

MODULE = """
from tests.support.dev_server import Logs

SERVER = Logs()
SERVER("main-fn", "printed before the test")


def test_passes():
    SERVER("main-fn", "printed by a test that passes")


def test_fails():
    SERVER("websocket-fn", "Task timed out after 3.00 seconds")
    assert False
"""


def test_a_failed_test_reports_the_lines_printed_while_it_ran(tmp_path: Path) -> None:
    (tmp_path / "test_module.py").write_text(MODULE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.dev_server"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "dev server output" in result.stdout
    assert "websocket-fn: Task timed out after 3.00 seconds" in result.stdout
    assert "printed before the test" not in result.stdout
    assert "printed by a test that passes" not in result.stdout
