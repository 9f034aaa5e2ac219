"""``python -m devserver`` (what ``make dev`` runs after synthesizing): the banner, and Ctrl-C
stopping every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from devserver.server import DevServer, Settings
from devserver.stack import stack_file
from fakes.moto import FAKE_CREDENTIAL
from tests.dev.conftest import DEV_GROUP

pytestmark = DEV_GROUP

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_banner_and_ctrl_c_stops_everything(stacks_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "devserver", "--stacks-dir", str(stacks_dir)]
    command += ["--state-dir", str(tmp_path)]
    for port in ("--rest-port", "--ws-port", "--oidc-port", "--management-port"):
        command += [port, "0"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        banner = "".join(lines)
        rest_url = next(line.split()[-1] for line in lines if "REST API" in line)
        assert "WebSocket API  ws://127.0.0.1:" in banner
        assert "export AI_ASSISTANT_TOKEN=ey" in banner
        assert f'curl -s -H "Authorization: Bearer $AI_ASSISTANT_TOKEN" {rest_url}' in banner
        assert 'python -m websockets "ws://127.0.0.1:' in banner
        assert httpx.get(f"{rest_url}/api/v1/health").status_code == 200
        children = descendants(process.pid)
        assert len(children) >= 3  # a warm worker per function
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert not children & descendants(os.getpid()), "processes left behind"
        assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bedrock_aws_uses_the_callers_credentials_and_no_local_model(
    stacks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--bedrock aws`` (not run here: no credentials): no model endpoint override and no fake
    credentials reach the functions, the caller's do; DynamoDB stays local."""
    monkeypatch.setenv("AWS_PROFILE", "my-profile")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = Settings(stack_path=stack_file(stacks_dir, "dev"), state_dir=tmp_path)
    env = DevServer(replace(settings, bedrock="aws")).backend_env("http://127.0.0.1:9")
    assert env["AWS_PROFILE"] == "my-profile"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:9"
    assert not any(name.startswith("AWS_ENDPOINT_URL_BEDROCK") for name in env)
    assert "AWS_ACCESS_KEY_ID" not in env or env["AWS_ACCESS_KEY_ID"] != FAKE_CREDENTIAL
    local = DevServer(settings).backend_env("http://127.0.0.1:9")
    assert local["AWS_ACCESS_KEY_ID"] == FAKE_CREDENTIAL
