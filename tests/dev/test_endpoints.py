"""``devserver.endpoints.running``: what every client of the dev server calls to find it, and
how it tells a running server from a file left behind by one that did not clean up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from devserver import endpoints
from devserver.endpoints import Endpoints, NoDevServer


def _write(state: Path, pid: int, port: int) -> Endpoints:
    found = Endpoints(
        rest_url=f"http://127.0.0.1:{port}/v1",
        openai_base_url=f"http://127.0.0.1:{port}/v1/v1",
        ws_url=f"ws://127.0.0.1:{port + 1}/v1",
        issuer="http://127.0.0.1:3002",
        token_shape={"audience": "a", "user_claims": ["sub"], "claims": {}, "typ": "JWT"},
        pid=pid,
    )
    endpoints.write(state, found)
    return found


def _ended_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def test_no_file_is_no_server(tmp_path: Path) -> None:
    with pytest.raises(NoDevServer, match=r"no dev server is running \(there is no .*make dev"):
        endpoints.running(tmp_path)


def test_a_file_whose_process_is_gone_is_stale(tmp_path: Path) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        _write(tmp_path, _ended_pid(), listening.getsockname()[1])
        with pytest.raises(NoDevServer, match=r"left from one that stopped .* is gone.*make dev"):
            endpoints.running(tmp_path)


def test_a_live_process_whose_port_refuses_is_not_a_running_server(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        _write(tmp_path, os.getpid(), closed.getsockname()[1])
        with pytest.raises(NoDevServer, match=r"does not accept connections at http://127"):
            endpoints.running(tmp_path)


def test_a_live_process_and_an_open_port_are_a_running_server(tmp_path: Path) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        written = _write(tmp_path, os.getpid(), listening.getsockname()[1])
        assert endpoints.running(tmp_path) == written
    endpoints.remove(tmp_path)
    assert not (tmp_path / endpoints.ENDPOINTS_FILE).exists()


@pytest.mark.parametrize("content", ["not json", json.dumps({"rest_url": "http://x"})])
def test_an_unreadable_file_says_so(tmp_path: Path, content: str) -> None:
    (tmp_path / endpoints.ENDPOINTS_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(NoDevServer, match="is not a dev server's endpoints file"):
        endpoints.running(tmp_path)


def test_the_file_holds_what_clients_need(tmp_path: Path) -> None:
    written = _write(tmp_path, 1234, 3000)
    stored = json.loads((tmp_path / endpoints.ENDPOINTS_FILE).read_text())
    assert stored == asdict(written)
