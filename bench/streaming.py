"""``make bench``'s streaming and DynamoDB rows, run by bench/run.py in a process of their own.

Streaming: the real WebSocket handler against moto, the Bedrock fake paced like a real model
(first delta after 300 ms, then 80 deltas a second of 3 to 15 characters, 600 deltas: a 7.8 s
answer) and the management-API fake answering each POST after a fixed latency. Two floors run
on the same fakes in the same run, interleaved with ours: an ideal sender (a thread that posts
whatever text accumulated, as fast as POSTs return) and the same sender flushing at most every
100 ms. Times come from the fakes' own clocks: when the model sent a delta, when a POST was
answered.

DynamoDB: one streamed turn per history length, through a proxy that prices each request by
DynamoDB's published rules (fakes/dynamodb_meter.py), and the model input that turn
sent.

Prints one JSON document as its last line: {"figures": [...], "capacity": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LATENCIES_MS = tuple(int(v) for v in os.environ.get("BENCH_LATENCIES", "5,15,40").split(","))
TARGET_LATENCY_MS = 15
DELTAS = 600
HISTORY_LENGTHS = (0, 10, 100, 1000)
TURN_CHARS = 2048
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@dataclass(frozen=True)
class Turn:
    """One streamed answer as the fakes saw it, in seconds."""

    ttft_overhead: float  # first text frame answered - model's first delta
    tail_lag: float  # last text frame answered - model's last delta
    posts: int
    duration_ratio: float  # turn's wall time / model stream time


def _measure(bedrock: Any, ws: Any, connection_id: str, elapsed: float) -> Turn:
    record = bedrock.streams[-1]
    times = ws.frame_times(connection_id)
    texts = [
        at for at, frame in zip(times, ws.frames(connection_id), strict=True) if _is_text(frame)
    ]
    return Turn(
        ttft_overhead=texts[0] - record.delta_times[0],
        tail_lag=texts[-1] - record.delta_times[-1],
        posts=len(times),
        duration_ratio=elapsed / (record.finished - record.started),
    )


def _is_text(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "chunk"


def floor_turn(bedrock: Any, ws: Any, connection_id: str, interval: float) -> Turn:
    """The floor: converse_stream read in this thread, a second thread posting the text that
    accumulated (at most every ``interval`` s). No storage, no splitting, no control frames."""
    from functions.core import aws

    runtime = aws.client("bedrock-runtime")
    management = aws.client("apigatewaymanagementapi", endpoint_url=ws.callback_url)
    pending: list[str] = []
    ready = threading.Condition()
    done = False

    def post() -> None:
        last: float | None = None
        while True:
            with ready:
                while not pending and not done:
                    ready.wait()
                if not pending:
                    return
                wait = 0.0 if done or last is None else last + interval - time.monotonic()
                if wait > 0:
                    ready.wait(wait)
                    continue
                text = "".join(pending)
                pending.clear()
            last = time.monotonic()
            frame = {"type": "chunk", "content": text}
            management.post_to_connection(ConnectionId=connection_id, Data=json.dumps(frame))

    started = time.monotonic()
    sender = threading.Thread(target=post)
    sender.start()
    response = runtime.converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Tell me a story"}]}]
    )
    for event in response["stream"]:
        text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
        if text:
            with ready:
                pending.append(text)
                ready.notify()
    with ready:
        done = True
        ready.notify()
    sender.join()
    return _measure(bedrock, ws, connection_id, time.monotonic() - started)


def fresh_clocks(*invokers: Any) -> None:
    """Give each invoker a new Lambda context: every invocation has its own clock, and one
    shared for the whole run would reach its deadline minutes in (the handlers then refuse
    with ``no time left``)."""
    from tests.functions.helpers import LambdaContext

    for invoker in invokers:
        invoker.context = LambdaContext(timeout_ms=120_000)


def our_turn(rest: Any, socket: Any, bedrock: Any, ws: Any) -> Turn:
    fresh_clocks(rest, socket)
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = socket.open()
    payload = {"action": "sendMessage", "session_id": session_id, "content": "Tell me a story"}
    started = time.monotonic()
    socket.send(connection_id, payload)
    elapsed = time.monotonic() - started
    frames = ws.frames(connection_id)
    assert frames[-1]["type"] == "end" and frames[-1]["status"] == "complete", frames[-1]
    return _measure(bedrock, ws, connection_id, elapsed)


def streaming_figures(runs: int, fakes: dict[str, Any]) -> list[dict[str, Any]]:
    from fakes.bedrock import model_like_deltas

    bedrock, ws, rest, socket = fakes["bedrock"], fakes["ws"], fakes["rest"], fakes["socket"]
    bedrock.stream_chunks = model_like_deltas(DELTAS)
    figures = []
    for latency in LATENCIES_MS:
        ws.latency_ms = latency
        bedrock.pacing = None  # one unmeasured turn of each, so every client is warm
        our_turn(rest, socket, bedrock, ws)
        floor_turn(bedrock, ws, socket.new_connection_id(), 0)
        bedrock.pace(first_delta_ms=300, deltas_per_second=80)
        ours, ideal, hundred = [], [], []
        for _ in range(runs):
            ours.append(our_turn(rest, socket, bedrock, ws))
            ideal.append(floor_turn(bedrock, ws, socket.new_connection_id(), 0))
            hundred.append(floor_turn(bedrock, ws, socket.new_connection_id(), 0.1))
        figures += _rows(latency, ours, ideal, hundred)
    return figures


def _median(turns: list[Turn], field: str) -> float:
    return statistics.median(getattr(turn, field) for turn in turns)


def _rows(latency: int, ours: list[Turn], ideal: list[Turn], hundred: list[Turn]) -> list[dict]:
    at_target = latency == TARGET_LATENCY_MS
    where = f"@ {latency} ms/POST"

    def target(text: str) -> str:
        return text if at_target else "reported"

    return [
        {
            "name": f"stream first text overhead {where}",
            "how": "first text frame answered minus the model's first delta; floor: ideal sender",
            "median": 1000 * _median(ours, "ttft_overhead"),
            "floor": 1000 * _median(ideal, "ttft_overhead"),
            "target": target(f"<= 1 POST + 30 ms ({latency + 30} ms)"),
            "unit": "ms",
        },
        {
            "name": f"stream tail lag {where}",
            "how": "last text frame answered minus the model's last delta; floor: ideal sender",
            "median": 1000 * _median(ours, "tail_lag"),
            "floor": 1000 * _median(ideal, "tail_lag"),
            "target": target(f"<= 2 POSTs + 50 ms ({2 * latency + 50} ms)"),
            "unit": "ms",
        },
        {
            "name": f"stream POSTs per answer {where}",
            "how": f"{DELTAS} deltas; ours counts start and end; floor: 100 ms flush sender",
            "median": _median(ours, "posts"),
            "floor": _median(hundred, "posts"),
            "target": target("<= 1.5x"),
            "unit": "",
        },
        {
            "name": f"stream turn duration / model stream {where}",
            "how": "handler wall time over the model's stream time; floor: ideal sender's",
            "median": _median(ours, "duration_ratio"),
            "floor": _median(ideal, "duration_ratio"),
            "target": target("<= 1.05x"),
            "unit": "x",
        },
    ]


def capacity_rows(fakes: dict[str, Any]) -> list[dict[str, Any]]:
    """Request units and model input of one streamed turn after N prior turns of ~2 KB."""
    from fakes.bedrock import CONVERSE_STREAM
    from functions.chat.service import estimate_tokens
    from functions.core import aws
    from tests.functions.helpers import seed_history

    bedrock, ws, rest, socket, meter = (
        fakes[k] for k in ("bedrock", "ws", "rest", "socket", "meter")
    )
    bedrock.pacing = None
    bedrock.stream_chunks = ["x" * 64 + " " for _ in range(TURN_CHARS // 65)]  # a ~2 KB answer
    ws.latency_ms = 0
    rows = []
    for prior in HISTORY_LENGTHS:
        fresh_clocks(rest, socket)
        session_id = rest.create_session(knowledge_base_id=None)["session_id"]
        seed_history(session_id, prior, lambda seq: f"turn {seq:04d} ".ljust(TURN_CHARS, "x"))
        connection_id = socket.open()
        bedrock.reset()
        aws.reset_clients()
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = meter.url
        meter.reset()
        payload = {"action": "sendMessage", "session_id": session_id, "content": "y" * TURN_CHARS}
        socket.send(connection_id, payload)
        totals = meter.totals()
        del os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
        aws.reset_clients()
        [request] = bedrock.requests_for(CONVERSE_STREAM)
        texts = [
            block["text"]
            for message in request.body["messages"] + [{"content": request.body["system"]}]
            for block in message["content"]
        ]
        sent_bytes = sum(len(text.encode()) for text in texts)
        rows.append(
            {
                "prior_turns": prior,
                "read_units": totals["read_units"],
                "write_units": totals["write_units"],
                "requests": totals["requests"],
                "model_input_bytes": sent_bytes,
                "model_input_tokens_estimated": sum(estimate_tokens(text) for text in texts),
                "history_turns_sent": len(request.body["messages"]) - 1,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import boto3

    from fakes.bedrock import BedrockFake
    from fakes.connections import WsManagementFake
    from fakes.dynamodb_meter import CapacityMeter
    from fakes.moto import MotoServer, aws_env
    from functions.contract import TABLES, Env
    from functions.core.settings import get_settings
    from tests.functions.helpers import LambdaContext, Rest, WebSocket
    from tests.support.moto_server import create_tables

    with MotoServer() as moto, BedrockFake() as bedrock, WsManagementFake() as ws:
        os.environ.update(aws_env(moto.url))
        os.environ.update(bedrock.env())
        tables = create_tables(boto3.client("dynamodb"), "bench")
        os.environ.update(tables)
        os.environ.update({
            Env.WEBSOCKET_CALLBACK_URL: ws.callback_url,
            Env.BEDROCK_MODELS: MODEL, Env.KNOWLEDGE_BASE_ID: "", Env.SESSION_TTL_DAYS: "30",
            Env.ATTACHMENTS_BUCKET: "bench-attachments",  # named, never called: no turn attaches
            Env.PAGINATION_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/bench",
            Env.POWERTOOLS_SERVICE_NAME: "bench", Env.POWERTOOLS_METRICS_NAMESPACE: "bench",
            "POWERTOOLS_METRICS_DISABLED": "true",
        })  # fmt: skip
        get_settings.cache_clear()
        schemas = {tables[schema.env]: schema for schema in TABLES}
        context = LambdaContext(timeout_ms=120_000)
        with CapacityMeter(moto.url, schemas) as meter:
            fakes = {
                "bedrock": bedrock,
                "ws": ws,
                "meter": meter,
                "rest": Rest(context),
                "socket": WebSocket(context, ws),
            }
            figures = streaming_figures(args.runs, fakes)
            capacity = capacity_rows(fakes)
    print("\n" + json.dumps({"figures": figures, "capacity": capacity}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
