"""``make bench``'s OpenAI-compatible rows, run by bench/run.py in a process of its own.

Streaming over SSE: the real app (functions/openai_api) under uvicorn against moto and the
Bedrock fake paced like a real model (as bench/streaming.py: first delta after 300 ms, then 80
deltas a second, 600 deltas), read by an httpx client in this process. The floor, interleaved
in the same run on the same fakes, is bench/sse_floor.py under the same uvicorn: each delta
relayed as it is read, nothing else. Times come from one clock: when the fake sent a delta,
when the client had the chunk carrying it.

Cold start: ``python -m uvicorn … functions.openai_api.app:app`` (what run.sh starts) from
process start to the first response (``GET /v1/models``, a 401 without the adapter's
headers), against the same for the floor app.

Prints one JSON document as its last line: {"figures": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.streaming import DELTAS, MODEL  # noqa: E402 - after the path is set

COLD_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Turn:
    ttft_overhead: float  # client had the first content chunk - model's first delta
    tail_lag: float  # client had the last content chunk - model's last delta


def serve(app: Any) -> tuple[Any, str]:
    """``app`` under uvicorn on a free port, in a thread; the server and its URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def sse_turn(url: str, headers: dict[str, str], bedrock: Any) -> Turn:
    """One streamed answer; when each content chunk reached the client."""
    import httpx

    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a story"}],
        "stream": True,
    }
    arrivals = []
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.monotonic())
    record = bedrock.streams[-1]
    assert len(arrivals) == len(record.delta_times) == DELTAS, (len(arrivals), DELTAS)
    return Turn(arrivals[0] - record.delta_times[0], arrivals[-1] - record.delta_times[-1])


def streaming_rows(runs: int, bedrock: Any) -> list[dict[str, Any]]:
    from fakes.bedrock import model_like_deltas
    from functions.contract import REQUEST_CONTEXT_HEADER
    from functions.openai_api.app import app

    ours_server, ours_url = serve(app)
    floor_server, floor_url = serve(_floor_app())
    context = {"authorizer": {"principalId": "bench-user", "user_id": "bench-user"}}
    headers = {REQUEST_CONTEXT_HEADER: json.dumps(context)}
    bedrock.stream_chunks = model_like_deltas(DELTAS)
    bedrock.pacing = None  # one unmeasured turn of each, so every client is warm
    sse_turn(ours_url, headers, bedrock)
    sse_turn(floor_url, {}, bedrock)
    bedrock.pace(first_delta_ms=300, deltas_per_second=80)
    ours, floor = [], []
    for _ in range(runs):
        ours.append(sse_turn(ours_url, headers, bedrock))
        floor.append(sse_turn(floor_url, {}, bedrock))
    for server in (ours_server, floor_server):
        server.should_exit = True
    return [
        {
            "name": "sse first chunk overhead",
            "how": "client has the first content chunk minus the model's first delta; "
            "floor: a bare relay app under the same uvicorn",
            "median": 1000 * statistics.median(turn.ttft_overhead for turn in ours),
            "floor": 1000 * statistics.median(turn.ttft_overhead for turn in floor),
            "target": "<= floor + 50 ms",
            "unit": "ms",
        },
        {
            "name": "sse tail lag",
            "how": "client has the last content chunk minus the model's last delta; "
            "floor: the same bare relay",
            "median": 1000 * statistics.median(turn.tail_lag for turn in ours),
            "floor": 1000 * statistics.median(turn.tail_lag for turn in floor),
            "target": "<= floor + 20 ms",
            "unit": "ms",
        },
    ]


def _floor_app() -> Any:
    from bench.sse_floor import app

    return app


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cold_start(app: str, env: dict[str, str]) -> float:
    """Seconds from starting uvicorn with ``app`` to its first HTTP response."""
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "--port", str(port), "--no-access-log", app]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < COLD_TIMEOUT_SECONDS:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            except httpx.TransportError:
                time.sleep(0.005)
                continue
            return time.perf_counter() - started
        raise RuntimeError(f"{app} did not answer within {COLD_TIMEOUT_SECONDS} s")
    finally:
        process.terminate()
        process.wait(10)


def cold_rows(runs: int) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    ours, floor = [], []
    for _ in range(runs):  # interleaved, so both see the same machine load
        ours.append(cold_start("functions.openai_api.app:app", env))
        floor.append(cold_start("bench.sse_floor:app", env))
    return [
        {
            "name": "openai_api cold start",
            "how": "`python -m uvicorn … app` (run.sh) to its first response, from the source "
            "tree; floor: the bare relay app (FastAPI, boto3)",
            "median": statistics.median(ours),
            "floor": statistics.median(floor),
            "target": "<= 1.5x",
            "unit": "s",
        }
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import boto3

    from fakes.bedrock import BedrockFake
    from fakes.moto import MotoServer, aws_env
    from functions.contract import Env
    from functions.core.settings import get_settings
    from tests.support.moto_server import create_tables

    figures = cold_rows(args.runs)
    with MotoServer() as moto, BedrockFake() as bedrock:
        os.environ.update(aws_env(moto.url))
        os.environ.update(bedrock.env())
        os.environ.update(create_tables(boto3.client("dynamodb"), "bench"))
        os.environ.update({
            Env.BEDROCK_MODELS: MODEL, Env.KNOWLEDGE_BASE_ID: "", Env.SESSION_TTL_DAYS: "30",
            Env.ATTACHMENTS_BUCKET: "bench-attachments",  # named, never called: no turn attaches
            Env.USER_MAX_CONCURRENT_ANSWERS: "0", Env.USER_DAILY_TOKEN_LIMIT: "0",
            Env.POWERTOOLS_SERVICE_NAME: "bench", Env.POWERTOOLS_METRICS_NAMESPACE: "bench",
            "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
        })  # fmt: skip
        get_settings.cache_clear()
        figures = streaming_rows(args.runs, bedrock) + figures
    print("\n" + json.dumps({"figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
