"""``make bench``: every figure is the median of several runs next to a floor measured in the
same run, and their ratio. Prints a Markdown table and writes it to bench/results.md.

Timings are wall-clock medians of whole processes on this (shared, noisy) machine, which is
why only ratios against a side-by-side floor are meaningful.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
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
ORIGINAL_ENV = dict(os.environ)
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


def synth_figure(runs: int) -> Figure:
    from compute.provider_loader import node_options

    env = {
        **os.environ,
        "COMPUTE_CONFIG_DIR": str(ROOT / "config"),
    }
    # The floor loads the provider stock on both sides: without the Node-side loader that
    # importing ``compute`` adds to this process's NODE_OPTIONS (``main.py`` adds it itself).
    floor_env = {**env, "NODE_OPTIONS": node_options(env.get("NODE_OPTIONS", ""), stock=True)}
    with tempfile.TemporaryDirectory() as folder:
        # Warm the package cache once, as any second synth on a machine would find it.
        timed([PYTHON, str(ROOT / "main.py")], cwd=Path(folder), env=env)
        ours, floor = [], []
        for _ in range(runs):  # interleaved, so both see the same machine load
            ours.append(timed([PYTHON, str(ROOT / "main.py")], cwd=Path(folder), env=env))
            floor.append(
                timed(
                    [PYTHON, str(ROOT / "bench" / "floors.py"), "stock-synth"],
                    cwd=ROOT,
                    env=floor_env,
                )
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
    from devserver.lambda_runtime import extract, runtime_site
    from functions.contract import AUTHORIZER, MAIN, WEBSOCKET

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


def per_call(calls: int, call: Callable[[], object]) -> float:
    """Mean seconds per call over a tight loop of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def interleaved(
    runs: int, calls: int, ours: Callable[[], object], floor: Callable[[], object]
) -> tuple[float, float]:
    mine, base = [], []
    for _ in range(runs):
        mine.append(per_call(calls, ours))
        base.append(per_call(calls, floor))
    return statistics.median(mine), statistics.median(base)


def authorizer_warm_figure(runs: int) -> Figure:
    import jwt

    from fakes.oidc import AUDIENCE, LocalIssuer, SigningKey
    from functions.authorizer.handler import handler
    from tests.support.events import load_event

    key = SigningKey.rsa("bench")
    issuer = LocalIssuer(keys=[key]).start()
    try:
        os.environ.update({"JWT_ISSUER": issuer.url, "JWT_AUDIENCE": AUDIENCE, "JWKS_URL": ""})
        token = issuer.token(key, sub="bench-user")
        event = load_event("rest-token-authorizer")
        event["authorizationToken"] = f"Bearer {token}"
        handler(event, None)  # the JWKS is cached from here on, as in a warm container
        public = key.private_key.public_key()
        ours, floor = interleaved(
            runs,
            300,
            lambda: handler(event, None),
            lambda: jwt.decode(
                token, public, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer.url, leeway=60
            ),
        )
    finally:
        issuer.stop()
    return Figure(
        "authorizer warm verify",
        "valid RS256 token through the handler, JWKS cached; "
        "floor `jwt.decode` with the key in hand",
        ours * 1000,
        floor * 1000,
        "<= 2x",
        "ms",
    )


def main_warm_figure(runs: int) -> Figure:
    """GET /api/v1/sessions through Mangum, DynamoDB answered by a botocore Stubber."""
    import contextlib
    import io

    import boto3
    from botocore.stub import Stubber

    from functions.contract import Env

    os.environ.update({
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        Env.SESSIONS_TABLE: "bench-sessions", Env.MESSAGES_TABLE: "bench-messages",
        Env.CONNECTIONS_TABLE: "bench-connections", Env.IDEMPOTENCY_TABLE: "bench-idempotency",
        Env.USAGE_TABLE: "bench-usage",
        Env.BEDROCK_MODELS: "anthropic.claude-3-haiku-20240307-v1:0", Env.KNOWLEDGE_BASE_ID: "",
        Env.SESSION_TTL_DAYS: "30", Env.CORS_ALLOWED_ORIGINS: "*",
        Env.PAGINATION_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/bench",
        Env.ATTACHMENTS_BUCKET: "bench-attachments",
        Env.POWERTOOLS_SERVICE_NAME: "bench", Env.POWERTOOLS_METRICS_NAMESPACE: "bench",
    })  # fmt: skip
    from functions.core import aws
    from functions.main.handler import handler
    from tests.functions.helpers import LambdaContext, Rest

    client = boto3.client("dynamodb", region_name="us-east-1")
    aws._clients[("dynamodb", None)] = client  # the container's cached client, stubbed
    stubber = Stubber(client)
    stubber.activate()
    items = [_session_item(n) for n in range(20)]
    response = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
    # The very call SessionRepository.list makes for this request.
    query = {
        "TableName": "bench-sessions",
        "IndexName": "UserIndex",
        "KeyConditionExpression": "#user = :user",
        "FilterExpression": "#expires > :now",
        "ExpressionAttributeNames": {"#user": "user_id", "#expires": "expires_at"},
        "ExpressionAttributeValues": {
            ":user": {"S": "user-a"},
            ":now": {"N": str(int(time.time()))},
        },
        "ScanIndexForward": False,
        "Limit": 20,
    }
    context = LambdaContext()
    event = Rest(context).event("GET", "/sessions")

    def ours() -> object:
        stubber.add_response("query", response)
        with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics lines
            answer = handler(event, context)
        assert answer["statusCode"] == 200, answer
        return answer

    def floor() -> object:
        stubber.add_response("query", response)
        return client.query(**query)

    mine, base = interleaved(runs, 200, ours, floor)
    return Figure(
        "main warm request",
        "`GET /api/v1/sessions` through Mangum, stubbed DynamoDB; floor the same stubbed query",
        mine * 1000,
        base * 1000,
        f"<= 3x and < 3 ms above floor (here {1000 * (mine - base):.2f} ms)",
        "ms",
    )


def _session_item(n: int) -> dict[str, dict[str, str]]:
    return {
        "session_id": {"S": f"00000000-0000-4000-8000-{n:012d}"},
        "user_id": {"S": "user-a"},
        "title": {"S": f"Session {n}"},
        "model_id": {"S": "anthropic.claude-3-haiku-20240307-v1:0"},
        "created_at": {"S": "2026-11-28T10:00:00.000000Z"},
        "last_activity": {"S": f"2026-11-28T10:{n:02d}:00.000000Z"},
        "expires_at": {"N": str(int(time.time()) + 86400)},
        "message_count": {"N": str(n)},
    }


def _make_variable(name: str) -> str:
    """A variable `make test` runs with: from the environment if set, else the Makefile's."""
    default = re.search(rf"^{name} \?= (\d+)$", (ROOT / "Makefile").read_text(), re.M)
    return ORIGINAL_ENV.get(name) or (default.group(1) if default else "?")


# A fixed pure-Python workload, run once per core at the same time: the suite's floor.
SPEED_REFERENCE = "sum(i * i for i in range(20_000_000))"


def _speed_reference() -> float:
    """Seconds for :data:`SPEED_REFERENCE` on every core at once."""
    start = time.perf_counter()
    runs = [
        subprocess.Popen([PYTHON, "-I", "-S", "-c", SPEED_REFERENCE])
        for _ in range(os.cpu_count() or 1)
    ]
    if any(run.wait() != 0 for run in runs):
        raise SystemExit("the speed reference failed")
    return time.perf_counter() - start


def test_suite_figure() -> Figure:
    """`make test` after setup, in the environment `make bench` started with (the warm
    figures point this process at a local issuer and a stubbed DynamoDB), the Terraform group
    aside: its target is its own (:func:`terraform_figure`).

    Its floor is how fast the machine is during the run: a fixed CPU workload on every core,
    timed before and after the suite (the mean). Between two runs of the same tree the suite's
    time moved by up to 15% with the machine (the Lambda-clock run, which no change touched,
    as much); the ratio is what compares runs."""
    subprocess.run(["make", "setup"], cwd=ROOT, env=ORIGINAL_ENV, check=True, capture_output=True)
    before = _speed_reference()
    start = time.perf_counter()
    result = subprocess.run(
        ["make", "test", "PYTEST_ARGS=--ignore=tests/terraform"],
        cwd=ROOT, env=ORIGINAL_ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"make test failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    floor = (before + _speed_reference()) / 2
    return Figure(
        "test suite",
        f"`make test` after setup (lint, then pytest -n {_make_variable('PYTEST_WORKERS')}, "
        f"checkov's gate included, beside the Lambda-clock run's -n "
        f"{_make_variable('CLOCK_WORKERS')}), the Terraform group aside; floor: "
        f"`{SPEED_REFERENCE}` on each core at once, before and after",
        elapsed,
        floor,
        "<= 120 s",
    )


def terraform_figure() -> Figure:
    """The Terraform group alone (`pytest tests/terraform -n 0`): every environment's full
    cycle and every variant's plan, as the suite runs them. Once: a run takes minutes. The
    per-stack breakdown (init, validate, apply, plan, destroy) is printed, to show where the
    time goes."""
    with tempfile.TemporaryDirectory() as work:
        timings = Path(work) / "terraform.json"
        env = {**ORIGINAL_ENV, "COMPUTE_TERRAFORM_TIMINGS": str(timings)}
        start = time.perf_counter()
        result = subprocess.run(
            [PYTHON, "-m", "pytest", "tests/terraform", "-q", "-n", "0"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"the Terraform tests failed:\n{result.stdout[-3000:]}")
        print(timings.read_text())
    return Figure(
        "Terraform group", "`pytest tests/terraform -n 0` (all cycles and plans)", elapsed, None,
        "<= 120 s",
    )  # fmt: skip


def streaming_figures(runs: int) -> tuple[list[Figure], list[dict[str, object]]]:
    """bench/streaming.py in a process of its own (it runs moto and the fakes, and sets the
    functions' environment): the streaming figures and the per-turn DynamoDB capacity rows."""
    result = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "streaming.py"), "--runs", str(runs)],
        cwd=ROOT, env=ORIGINAL_ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"bench/streaming.py failed:\n{result.stderr[-3000:]}")
    document = json.loads(result.stdout.strip().splitlines()[-1])
    figures = [Figure(**figure) for figure in document["figures"]]
    return figures, document["capacity"]


def sse_figures(runs: int) -> list[Figure]:
    """bench/sse.py in a process of its own: the OpenAI-compatible API's streaming over SSE and
    its cold start under uvicorn, each against its floor."""
    result = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "sse.py"), "--runs", str(runs)],
        cwd=ROOT, env=ORIGINAL_ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"bench/sse.py failed:\n{result.stderr[-3000:]}")
    return [
        Figure(**figure) for figure in json.loads(result.stdout.strip().splitlines()[-1])["figures"]
    ]


def with_figure_rows(results: str, rows: str) -> str:
    """``results`` with the rows of the same figures (by name) replaced by ``rows`` where
    they are; rows of figures it lacks end the figures table (the first table)."""
    new = {line.split(" | ", 1)[0]: line for line in rows.splitlines()}
    lines = [new.pop(line.split(" | ", 1)[0], line) for line in results.splitlines()]
    first_row = next((i for i, line in enumerate(lines) if line.startswith("| ")), len(lines))
    end = first_row
    while end < len(lines) and lines[end].startswith("| "):
        end += 1
    return "\n".join([*lines[:end], *new.values(), *lines[end:]]) + "\n"


def render_capacity(rows: list[dict[str, object]]) -> str:
    lines = [
        "Per streamed turn (a ~2 KB question and a ~2 KB answer), by prior turns of ~2 KB: "
        "DynamoDB request units priced by DynamoDB's published rules from the requests a "
        "recording proxy saw (fakes/dynamodb_meter.py), and the model input sent.",
        "",
        "| prior turns | read units | write units | requests | model input | history turns sent |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        requests = ", ".join(f"{name} {count}" for name, count in sorted(row["requests"].items()))
        lines.append(
            f"| {row['prior_turns']} | {row['read_units']} | {row['write_units']} | {requests} "
            f"| {row['model_input_bytes']:,} bytes, ~{row['model_input_tokens_estimated']:,} "
            f"tokens | {row['history_turns_sent']} |"
        )
    return "\n".join(lines) + "\n"


CACHING_HEADING = "Model input tokens billed per turn, 50-turn conversation, with and without"
CACHING_TURNS = (1, 2, 5, 8, 10, 15, 20, 21, 22, 23, 25, 30, 40, 50)


def caching_rows() -> list[dict[str, object]]:
    """bench/caching.py in a process of its own: per-turn usage with and without caching."""
    result = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "caching.py")],
        cwd=ROOT, env=ORIGINAL_ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"bench/caching.py failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["caching"]


def render_caching(conversations: list[dict[str, object]]) -> str:
    from bench.caching import MODEL
    from functions.domain.models import CACHE_READ_BUDGET_RATE, CACHE_WRITE_BUDGET_RATE

    lines = [
        f"{CACHING_HEADING} prompt caching, through the real ChatService and the Bedrock "
        f"fake's prompt cache (`{MODEL}`, one token a word). A token count, not a timing: no "
        f"floor. Billed = uncached input + cache reads x {CACHE_READ_BUDGET_RATE} + cache "
        f"writes x {CACHE_WRITE_BUDGET_RATE} (`Usage.budget_tokens` minus output); the first "
        "turns stay under the model's 1,024-token minimum and are not cached.",
    ]
    for conversation in conversations:
        turns = conversation["turns"]
        without = sum(turn["without"] for turn in turns)
        cached = sum(turn["with"] for turn in turns)
        lines += [
            "",
            f"{str(conversation['conversation']).capitalize()}: {without:,} billed without "
            f"caching, {cached:,} with, {1 - cached / without:.0%} less.",
            "",
            "| turn | without caching | with caching | uncached | cache read | cache write |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for turn in turns:
            if turn["turn"] in CACHING_TURNS:
                lines.append(
                    f"| {turn['turn']} | {turn['without']:,} | {turn['with']:,} "
                    f"| {turn['uncached']:,} | {turn['read']:,} | {turn['write']:,} |"
                )
    return "\n".join(lines) + "\n"


def with_caching_section(results: str, section: str) -> str:
    """``results`` with its caching section (always the last) replaced by ``section``."""
    kept = results.split(CACHING_HEADING, 1)[0].rstrip("\n")
    return f"{kept}\n\n{section}" if kept else section


def size_figures() -> list[Figure]:
    from compute.packaging import Target, build_function
    from functions.contract import FUNCTIONS, MAIN

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


def render(figures: list[Figure], runs: int, stream_runs: int) -> str:
    lines = [
        f"Measured {dt.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; median of {runs} runs each "
        f"({stream_runs} for the 7.8 s streamed answers).",
        "",
        "| figure | how | median | floor | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        floor = f"{f.floor:.3f} {f.unit}".strip() if f.floor else "none"
        median = f"{f.median:.3f} {f.unit}".strip()
        lines.append(f"| {f.name} | {f.how} | {median} | {floor} | {f.ratio} | {f.target} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stream-runs", type=int, default=3, help="runs of each 7.8 s answer")
    parser.add_argument("--skip-suite", action="store_true", help="do not time `make test`")
    parser.add_argument(
        "--skip-terraform", action="store_true", help="do not time the Terraform tests"
    )
    parser.add_argument(
        "--only",
        choices=["caching", "sizes", "sse", "suite", "synth", "terraform"],
        help="run one part only and replace its section of bench/results.md",
    )
    args = parser.parse_args()
    results = ROOT / "bench" / "results.md"
    rows_of = {
        "sse": lambda: sse_figures(args.stream_runs),
        "sizes": size_figures,
        "suite": lambda: [test_suite_figure()],
        "synth": lambda: [synth_figure(args.runs)],
        "terraform": lambda: [terraform_figure()],
    }
    if args.only in rows_of:
        rows = render(rows_of[args.only](), args.runs, args.stream_runs).splitlines()[4:]
        previous = results.read_text() if results.exists() else ""
        results.write_text(with_figure_rows(previous, "\n".join(rows)))
        print("\n".join(rows))
        return 0
    if args.only == "caching":
        section = render_caching(caching_rows())
        previous = results.read_text() if results.exists() else ""
        results.write_text(with_caching_section(previous, section))
        print(section)
        return 0
    streaming, capacity = streaming_figures(args.stream_runs)
    with tempfile.TemporaryDirectory() as work:
        figures = [
            synth_figure(args.runs),
            *cold_figures(args.runs, Path(work)),
            authorizer_warm_figure(args.runs),
            main_warm_figure(args.runs),
            *size_figures(),
            *streaming,
            *sse_figures(args.stream_runs),
        ]
    if not args.skip_suite:
        figures.append(test_suite_figure())
    if not args.skip_terraform:
        figures.append(terraform_figure())
    table = render(figures, args.runs, args.stream_runs) + "\n" + render_capacity(capacity)
    table += "\n" + render_caching(caching_rows())
    results.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
