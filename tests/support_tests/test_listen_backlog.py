"""The local servers the functions call queue a burst of connections, as an AWS endpoint does.

Connections that arrive while a server's accept loop cannot run (its process busy with other
threads on a loaded machine) wait in the listen backlog. The backlog of 5 that cheroot and
``socketserver`` default to dropped the rest: their SYNs were retried after 1 s, which is
DynamoDB's connect timeout (``functions.core.deadline``), and twenty concurrent turns failed
against moto. Each server runs in a process of its own, stopped while the burst arrives, so
nothing of it can accept until every connection has been tried.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.compute.synth import ROOT

BURST = 64  # twenty concurrent turns open about forty connections to moto (two clients each)
SERVE = """
import time
from {module} import {server}
url = {server}().start().url
print(url.rsplit(":", 1)[1], flush=True)
time.sleep(120)
"""
SERVERS = {
    "moto": ("fakes.moto", "MotoServer"),
    "loopback": ("fakes.bedrock", "BedrockFake"),  # the fakes' and the REST gateway's server
}


@pytest.mark.parametrize("server", SERVERS)
def test_a_burst_of_connections_waits_for_a_busy_server(server: str) -> None:
    module, name = SERVERS[server]
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(module=module, server=name)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    sockets: list[socket.socket] = []
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        os.kill(process.pid, signal.SIGSTOP)
        for _ in range(BURST):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
        connected = _connected_within(sockets, seconds=0.5)
        os.kill(process.pid, signal.SIGCONT)
        assert connected == BURST, f"{BURST - connected} of {BURST} did not connect in 0.5 s"
    finally:
        for sock in sockets:
            sock.close()
        process.kill()
        process.wait()


def _connected_within(sockets: list[socket.socket], seconds: float) -> int:
    """How many of ``sockets`` (connecting, non-blocking) completed their handshake."""
    pending, done = list(sockets), 0
    deadline = time.monotonic() + seconds
    while pending and (left := deadline - time.monotonic()) > 0:
        _, writable, _ = select.select([], pending, [], left)
        for sock in writable:
            pending.remove(sock)
            done += sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    return done
