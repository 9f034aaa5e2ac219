"""``tools/run_tests.py`` (what ``make test`` runs): the Lambda-clock module in a run of its
own beside the suite's, one exit status for both, and nothing left running when stopped.

Each case runs the real runner, with real pytest and xdist, in a folder of two small test
modules laid out as the repository's: the clock module where the runner looks for it, and
one other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.compute.synth import ROOT
from tests.support.processes import processes
from tools.run_tests import CLOCK_MODULE, NO_TESTS, combined_status

RUNNER = ROOT / "tools" / "run_tests.py"


def _project(tmp_path: Path, clock_body: str, suite_body: str = "assert True") -> Path:
    clock = tmp_path / CLOCK_MODULE
    clock.parent.mkdir(parents=True)
    clock.write_text(f"def test_clock():\n    {clock_body}\n")
    (tmp_path / "tests" / "test_other.py").write_text(f"def test_other():\n    {suite_body}\n")
    return tmp_path


# Only xdist among the installed plugins: each run starts four Python processes, and the
# others (Hypothesis, Schemathesis) would add a second of imports to each.
PYTEST_OPTIONS = ["-p", "xdist", "-p", "no:cacheprovider"]
ENV = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _command(*pytest_args: str) -> list[str]:
    runner = [sys.executable, str(RUNNER), "--workers", "1", "--clock-workers", "1"]
    return [*runner, "--", *PYTEST_OPTIONS, *pytest_args]


def _run(project: Path, *pytest_args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*pytest_args),
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_failure_of_the_clock_run_fails_the_whole_and_is_reported_after_the_suite(
    tmp_path: Path,
) -> None:
    result = _run(_project(tmp_path, "assert 1 == 2, 'clock broke'"))
    assert result.returncode == 1
    suite_report, clock_report = result.stdout.split("the Lambda-clock run")
    assert "1 passed" in suite_report
    assert "clock broke" in clock_report
    assert "1 failed" in clock_report


def test_a_selection_that_leaves_one_run_empty_passes(tmp_path: Path) -> None:
    result = _run(_project(tmp_path, "assert 1 == 2"), "-k", "other")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def _interruptible() -> None:
    """SIGINT as a terminal's foreground job has it (a test worker may ignore it, and what
    a process ignores, the processes it starts ignore too)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stop_signal_stops_both_runs(tmp_path: Path, signum: int) -> None:
    project = _project(tmp_path, "import time; time.sleep(300)", "import time; time.sleep(300)")
    runner = subprocess.Popen(
        _command(),
        cwd=project,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its session holds both runs: what is left is found by it
        preexec_fn=_interruptible,  # noqa: PLW1509 - a signal disposition, before exec
    )
    try:
        started = time.monotonic() + 60
        # the runner, both runs' pytest and each run's worker
        while len(_session_members(runner.pid)) < 5 and time.monotonic() < started:
            time.sleep(0.1)
        assert len(_session_members(runner.pid)) >= 5, "the runs did not start"
        time.sleep(1)  # the workers in their tests
        runner.send_signal(signum)
        output, _ = runner.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _session_members(runner.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session_members(runner.pid) == []
        assert runner.returncode != 0
        if signum == signal.SIGINT:  # pytest stopped, and both runs said so
            assert output.count("KeyboardInterrupt !!!") == 2, output
    finally:
        for pid in _session_members(runner.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        runner.wait()


def _session_members(session: int) -> list[int]:
    return [p.pid for p in processes() if p.session == session and p.state != "Z"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((0, 0), 0),
        ((0, NO_TESTS), 0),
        ((NO_TESTS, 0), 0),
        ((NO_TESTS, NO_TESTS), NO_TESTS),
        ((1, 0), 1),
        ((0, 2), 2),
        ((NO_TESTS, 1), 1),
        ((2, 1), 2),
    ],
)
def test_the_first_failure_decides_the_status(statuses: tuple[int, int], expected: int) -> None:
    assert combined_status(statuses) == expected
