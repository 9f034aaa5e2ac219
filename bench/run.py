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
sys.path.insert(0, str(ROOT))
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


# A fresh interpreter per run, isolated (-I) and without site-packages (-S): only the paths
# given on the command line, as in a Lambda sandbox. No bytecode is written, so every run
# compiles the package's sources, as Lambda does with a zip that ships none.
COLD_IMPORT = """
import sys, time
sys.path[:0] = sys.argv[1:]
start = time.perf_counter()
{statement}
print(time.perf_counter() - start)
"""
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def cold_import(statement: str, paths: list[Path], function_name: str) -> float:
    env = {
        **LAMBDA_ENV,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "LAMBDA_TASK_ROOT": str(paths[0]),  # libraries (the X-Ray SDK) detect Lambda by it
        "PATH": os.environ["PATH"],
    }
    code = COLD_IMPORT.format(statement=statement)
    result = subprocess.run(
        [PYTHON, "-I", "-S", "-B", "-c", code, *map(str, paths)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def cold_figures(runs: int, work: Path) -> list[Figure]:
    from compute.packaging import Target, build_function
    from functions.shared.contract import AUTHORIZER, MAIN, WEBSOCKET
    from tests.support.lambda_runtime import extract, runtime_site

    runtime = runtime_site(work / "runtime")
    cases = [
        (AUTHORIZER, "import jwt, cryptography", False, "<= 1.3x"),
        (MAIN, "import fastapi, mangum, boto3", True, "<= 1.3x"),
        (WEBSOCKET, "import boto3", True, "<= 1.5x"),
    ]
    figures = []
    for spec, floor_statement, with_boto3, target in cases:
        package = build_function(spec, Target("python3.11", "x86_64"))
        task = extract(package.path, work / spec.key)
        paths = [task, runtime] if with_boto3 else [task]
        module = spec.handler.rsplit(".", 1)[0]
        ours, floor = [], []
        for _ in range(runs):
            ours.append(cold_import(f"import {module}", paths, spec.suffix))
            floor.append(cold_import(floor_statement, paths, spec.suffix))
        figures.append(
            Figure(
                f"{spec.key} cold init",
                f"fresh interpreter, built package{' + boto3' if with_boto3 else ''} only; "
                f"floor `{floor_statement}`",
                statistics.median(ours),
                statistics.median(floor),
                target,
            )
        )
    return figures


def size_figures() -> list[Figure]:
    from compute.packaging import Target, build_function
    from functions.shared.contract import FUNCTIONS, MAIN

    figures = []
    for spec in FUNCTIONS:
        package = build_function(spec, Target("python3.11", "x86_64"))
        limit = 12 if spec.key == MAIN.key else 8
        figures.append(
            Figure(
                f"{spec.key} package",
                "zipped size (x86_64)",
                package.size / 1e6,
                None,
                f"<= {limit} MB",
                "MB",
            )
        )
    return figures


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
    with tempfile.TemporaryDirectory() as work:
        figures = [synth_figure(args.runs), *cold_figures(args.runs, Path(work)), *size_figures()]
    table = render(figures, args.runs)
    (ROOT / "bench" / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
