"""``python -m devserver`` (what ``make dev`` runs after synthesizing): the banner, and Ctrl-C
stopping every process it started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from devserver import workdir
from devserver.model import answer
from devserver.server import DevServer, Settings
from devserver.stack import stack_file
from fakes.moto import FAKE_CREDENTIAL
from fakes.process import stop_process
from tests.support.dev_server import DEV_GROUP, wait_for
from tests.support.processes import processes

pytestmark = DEV_GROUP

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc."""
    parents = {process.pid: process.parent for process in processes()}
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def still_running(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def spawn(stacks_dir: Path, tmp_path: Path, package_cache: Path) -> Spawn:
    """``python -m devserver`` as ``make dev`` runs it from a terminal: its own process group
    (the terminal's foreground job), its temporary folders under ``tmp_path / "tmp"``."""

    def start(*options: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "devserver", "--stacks-dir", str(stacks_dir)]
        command += ["--state-dir", str(tmp_path / "state"), "--package-cache", str(package_cache)]
        command += options
        for port in ("--rest-port", "--ws-port", "--oidc-port", "--management-port"):
            command += [port, "0"]
        (tmp_path / "tmp").mkdir()
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    return start


def read_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    """The lines printed up to the first holding ``marker``."""
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while not any(marker in line for line in lines):
        assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
        lines.append(process.stdout.readline())
    return lines


def assert_banner_says_how_to_connect(lines: list[str]) -> None:
    """Checked on the stop-signal tests' own servers: each start costs about 5 CPU-seconds."""
    banner = "".join(lines)
    rest_url = next(line.split()[-1] for line in lines if "REST API" in line)
    assert "WebSocket API  ws://127.0.0.1:" in banner
    assert "export AI_ASSISTANT_TOKEN=ey" in banner
    assert f'curl -s -H "Authorization: Bearer $AI_ASSISTANT_TOKEN" {rest_url}' in banner
    assert 'python -m websockets "ws://127.0.0.1:' in banner
    assert "lost when the dev server stops" in banner
    assert httpx.get(f"{rest_url}/api/v1/health").status_code == 200


@pytest.mark.parametrize(
    ("signum", "to_group", "options"),
    [
        (signal.SIGINT, True, ()),  # Ctrl-C: the terminal signals its whole foreground job
        (signal.SIGHUP, True, ()),  # the terminal closed
        (signal.SIGTERM, False, ("--quiet",)),  # kill, a process manager
    ],
    ids=["ctrl-c", "hang-up", "sigterm-quiet"],
)
def test_each_stop_signal_stops_everything_cleanly(
    spawn: Spawn, tmp_path: Path, signum: int, to_group: bool, options: tuple[str, ...]
) -> None:
    """The banner says how to connect (``--quiet`` prints a one-line one). No traceback, every
    worker ended, the temporary folder and endpoints.json removed. Mutations caught: workers
    in the terminal's process group (a KeyboardInterrupt traceback each), SIGHUP not handled
    (the folder and the file left behind), an untimed wait that a signal delivered to another
    thread never ends."""
    process = spawn(*options)
    try:
        marker = "ai-assistant dev server: REST" if options else "Ctrl-C stops everything"
        lines = read_until(process, marker)
        if not options:
            assert_banner_says_how_to_connect(lines)
        # The banner's REST URL (the OpenAI app's uvicorn prints a URL of its own before it).
        found = (re.search(r"REST(?: API)?\s+(http://\S+)", line) for line in lines)
        rest_url = next(match[1] for match in found if match)
        endpoints = tmp_path / "state" / "endpoints.json"
        assert endpoints.is_file()
        assert os.listdir(tmp_path / "tmp"), "no temporary folder to remove"
        refused = httpx.get(
            f"{rest_url}/api/v1/sessions", headers={"Authorization": "Bearer not-a-jwt"}
        )
        assert refused.status_code == 401  # threads busy: the case an untimed wait missed
        children = descendants(process.pid)
        assert len(children) >= 3  # a warm worker per function
        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        assert process.wait(timeout=30) == 0
        assert process.stdout is not None
        after = process.stdout.read()
        assert "Traceback" not in after and "KeyboardInterrupt" not in after, after
        assert not endpoints.exists()
        assert os.listdir(tmp_path / "tmp") == []
        assert not still_running(children)
        if options:  # --quiet: the refusal's INFO lines and the access log are not shown
            assert [line for line in after.splitlines() if line.strip()] == ["stopping..."]
    finally:
        stop_process(process, grace_seconds=30)


def test_killed_outright_it_leaves_no_process_behind(spawn: Spawn, tmp_path: Path) -> None:
    """SIGKILL (``kill -9``, an out-of-memory kill, a CI job's timeout) gives the dev server no
    chance to stop anything: its Lambda workers and the OpenAI app's uvicorn end on their own,
    and the ports they held are free again. Mutation caught: uvicorn, which reads no pipe from
    the server, kept running and kept its port."""
    process = spawn()
    try:
        read_until(process, "Ctrl-C stops everything")
        children = descendants(process.pid)
        assert len(children) >= 4  # a warm worker per function, and uvicorn
        process.kill()
        process.wait(timeout=10)
        with contextlib.suppress(AssertionError):  # timed out: the assertion below says on what
            wait_for(lambda: not still_running(children), timeout=10)
        left = still_running(children)
        assert not left, [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]
        # Its temporary folder stays, until the next server's start removes it.
        (folder,) = (tmp_path / "tmp").iterdir()
        assert workdir.remove_stale(tmp_path / "tmp") == [folder]
        assert not folder.exists()
    finally:
        stop_process(process, grace_seconds=30)


def test_only_the_folders_of_dead_servers_are_removed(tmp_path: Path) -> None:
    ended = subprocess.Popen(["true"])  # a process that has ended and been reaped
    ended.wait()
    dead = tmp_path / f"{workdir.PREFIX}{ended.pid}-abc"
    running = tmp_path / f"{workdir.PREFIX}{os.getpid()}-def"
    unnamed = tmp_path / f"{workdir.PREFIX}k3j_x9q2"  # a folder without a process id
    for folder in (dead, running, unnamed):
        folder.mkdir()
        (folder / "package.zip").write_bytes(b"x")
    assert workdir.remove_stale(tmp_path) == [dead]
    assert sorted(tmp_path.iterdir()) == sorted([running, unnamed])


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


def test_the_local_models_hint_is_a_command_make_accepts() -> None:
    """``make dev --bedrock aws`` is an option to make itself, which make refuses: the hint
    names DEV_ARGS, which the dev target passes on to the dev server."""
    text = answer({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert 'make dev DEV_ARGS="--bedrock aws"' in text
    assert "make dev with --bedrock" not in text
    recipe = (ROOT / "Makefile").read_text().split("\ndev: setup\n", 1)[1].split("\n\n", 1)[0]
    assert "$(PY) -m devserver $(DEV_ARGS)" in recipe
