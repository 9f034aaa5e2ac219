"""``make bench``: every figure is the median of several runs next to a floor measured in the
same run, and their ratio. Prints a Markdown table and writes it to bench/results.md.

Timings are wall-clock medians of whole processes on this (shared, noisy) machine, which is
why only ratios against a side-by-side floor are meaningful.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass(frozen=True)
class Figure:
    name: str
    how: str
    median: float
    floor: float | None
    target: str
    unit: str = "s"

    @property
    def ratio(self) -> str:
        return f"{self.median / self.floor:.2f}x" if self.floor else "n/a"


def timed(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def synth_figure(runs: int) -> Figure:
    env = {
        **os.environ,
        "COMPUTE_CONFIG_DIR": str(ROOT / "config"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    with tempfile.TemporaryDirectory() as folder:
        # Warm the package cache once, as any second synth on a machine would find it.
        timed([PYTHON, str(ROOT / "main.py")], cwd=Path(folder), env=env)
        ours, floor = [], []
        for _ in range(runs):  # interleaved, so both see the same machine load
            ours.append(timed([PYTHON, str(ROOT / "main.py")], cwd=Path(folder), env=env))
            floor.append(
                timed([PYTHON, str(ROOT / "bench" / "floors.py"), "stock-synth"], cwd=ROOT, env=env)
            )
    return Figure(
        "synth",
        "`python main.py` (what `cdktf synth` runs), dev + prod stacks",
        statistics.median(ours),
        statistics.median(floor),
        "<= 0.35x",
    )


def render(figures: list[Figure], runs: int) -> str:
    lines = [
        f"Measured {dt.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; median of {runs} runs each.",
        "",
        "| figure | how | median | floor | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        floor = f"{f.floor:.3f} {f.unit}" if f.floor else "none"
        lines.append(
            f"| {f.name} | {f.how} | {f.median:.3f} {f.unit} | {floor} | {f.ratio} | {f.target} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = [synth_figure(args.runs)]
    table = render(figures, args.runs)
    (ROOT / "bench" / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
