"""`make test`'s pytest: the Lambda-clock module in a run of its own, beside the suite's run.

The Lambda-clock module (``tests/functions/core/test_deadline.py``) spends about four minutes
waiting on real clocks counting down to real kills, for about 22 CPU-seconds. Inside the
suite's run it held one worker for all of that time, and the run could not end sooner. In a
run of its own its tests share several workers that mostly sleep, while the suite's workers
keep the two cores busy. A worker of the suite's run could not be given the module alone:
xdist hands any worker any work, and each extra one collects the whole suite and sets up its
own session fixtures (70 more CPU-seconds with five workers, measured).

The suite's run prints as it goes; the clock run's output follows it. The exit status is
the first failure's (a run that selected no test, pytest's 5, counts as a pass when the other
ran tests), so ``-k`` and ``--ignore`` in ``PYTEST_ARGS`` apply to both runs. Paths to run do
not belong in ``PYTEST_ARGS``: call pytest directly for those.

Usage: ``python tools/run_tests.py --workers 3 --clock-workers 4 -- [pytest options]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from types import FrameType

CLOCK_MODULE = "tests/functions/core/test_deadline.py"
NO_TESTS = 5  # pytest's exit status when nothing was selected


def _commands(workers: int, clock_workers: int, extra: Sequence[str]) -> tuple[list[str], ...]:
    pytest = [sys.executable, "-m", "pytest", "-q", *extra]
    suite = [*pytest, "-n", str(workers), "--dist", "loadgroup", f"--ignore={CLOCK_MODULE}"]
    # worksteal: the module's tests last from 0.3 s to 25 s, so a fixed share per worker
    # would leave one waiting on several long ones. No cache: the suite's run keeps it.
    clock = [*pytest, "-n", str(clock_workers), "--dist", "worksteal", "-p", "no:cacheprovider"]
    return suite, [*clock, CLOCK_MODULE]


def combined_status(statuses: Sequence[int]) -> int:
    """The first failure's status; 0 when every run passed or selected nothing while another
    ran tests; ``NO_TESTS`` when none selected anything."""
    failures = [status for status in statuses if status not in (0, NO_TESTS)]
    if failures:
        return failures[0]
    return NO_TESTS if all(status == NO_TESTS for status in statuses) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, required=True, help="the suite's run")
    parser.add_argument("--clock-workers", type=int, required=True, help="the clock run")
    parser.add_argument("pytest_args", nargs="*", help="options for both runs, after --")
    args = parser.parse_args(argv)
    suite_command, clock_command = _commands(args.workers, args.clock_workers, args.pytest_args)

    with tempfile.TemporaryFile(mode="w+") as clock_output:
        # Each run in a process group of its own, so a signal reaches all of its workers.
        clock = subprocess.Popen(
            clock_command, stdout=clock_output, stderr=subprocess.STDOUT, process_group=0
        )
        suite = subprocess.Popen(suite_command, process_group=0)

        def forward(signum: int, _frame: FrameType | None) -> None:
            for run in (suite, clock):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.pid, signum)

        # A Ctrl-C (SIGINT: pytest stops and reports) or a SIGTERM (a CI timeout, a kill)
        # is passed on to every process of both runs, so none is left behind. A background
        # job ignores SIGINT, and so do the runs it starts: that is left as it is.
        signal.signal(signal.SIGTERM, forward)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, forward)
        statuses = (suite.wait(), clock.wait())
        clock_output.seek(0)
        print(f"\n===== the Lambda-clock run ({CLOCK_MODULE}) =====", flush=True)
        sys.stdout.write(clock_output.read())
    return combined_status(statuses)


if __name__ == "__main__":
    sys.exit(main())
