"""``make chat`` through a pseudo-terminal and ``make smoke``, against the dev server."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from devserver.model import answer
from devserver.server import DevServer
from tests.support.dev_server import DEV_GROUP, Api

pytestmark = DEV_GROUP

ROOT = Path(__file__).resolve().parents[2]


def make(target: str, dev: DevServer, token: str) -> list[str]:
    """``make <target>`` against the dev server; ``-o setup``: the tests never install."""
    return [
        "make",
        "--no-print-directory",
        "-o",
        "setup",
        target,
        f"REST_URL={dev.rest_url}",
        f"WS_URL={dev.ws_url}",
        f"TOKEN={token}",
    ]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return env | {"TERM": "xterm", "COLUMNS": "100"}


class Terminal:
    """A process on a pseudo-terminal, read until some text appears."""

    def __init__(self, command: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=clean_env()
        )
        os.close(slave)
        self.output = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared in:\n{self.output}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the process closed the terminal
                    assert text in self.output, self.output
        return self.output

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def close(self) -> int:
        try:
            return self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self.master)


def test_make_chat_streams_one_turn_in_a_terminal(dev: DevServer) -> None:
    frank = Api(dev, "frank")
    terminal = Terminal(make("chat", dev, frank.token or ""))
    try:
        terminal.expect("you>")
        terminal.type("hello from a terminal")
        terminal.expect("tokens:")
        terminal.expect("you>")
        terminal.type("/sessions")
        terminal.expect("hello from a terminal")  # the new session's title, in the table
        terminal.type("/resume 1")
        terminal.expect("resumed hello from a terminal")
        terminal.expect("assistant> You said")  # its history, replayed
        terminal.type("/usage")
        terminal.expect("1,000,000")  # the dev stack's daily limit, the default
        terminal.expect("at most 2")
        terminal.type("/quit")
    finally:
        status = terminal.close()
    assert status == 0, terminal.output
    expected = answer({"messages": [{"role": "user", "content": [{"text": "x"}]}]})
    [session] = frank.http.get("/api/v1/sessions").json()["sessions"]
    stored = frank.messages(session["session_id"])
    assert stored[-1]["content"] == answer(
        {"messages": [{"role": "user", "content": [{"text": "hello from a terminal"}]}]}
    )
    assert expected.split('"')[-1] in terminal.output.replace("\r\n", " ").replace("\n", " ")


def test_make_smoke_passes_against_the_dev_server(dev: DevServer) -> None:
    result = subprocess.run(
        make("smoke", dev, dev.token("smoke")),
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("health", "auth", "session crud", "streamed turn", "delete"):
        assert f"ok     {check}" in result.stdout


def test_make_smoke_names_what_failed(dev: DevServer) -> None:
    result = subprocess.run(
        make("smoke", dev, "not-a-token"),
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "ok     health" in result.stdout
    assert "FAILED auth: the token was refused" in result.stdout
