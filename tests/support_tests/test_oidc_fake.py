"""The local OIDC provider (fakes/oidc.py) as a server."""

from __future__ import annotations

import socket
import struct
import threading
from urllib.parse import urlsplit

import pytest

from fakes.oidc import JWKS_PATH, LocalIssuer, SigningKey


def test_a_client_that_hangs_up_before_the_answer_prints_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A client gone before its answer (say, an authorizer killed at its timeout while it
    fetches the JWKS) is not a server error: the plain ThreadingHTTPServer the issuer used
    printed a BrokenPipeError traceback into a passing CI run's output."""
    issuer = LocalIssuer(keys=[SigningKey.rsa("k1")], delay=0.2).start()
    handled = threading.Event()
    server = issuer._server
    assert server is not None
    shutdown_request = server.shutdown_request

    def shut_down(request: socket.socket) -> None:  # the last step of handling a request
        shutdown_request(request)
        handled.set()

    server.shutdown_request = shut_down  # type: ignore[method-assign]
    try:
        origin = urlsplit(issuer.origin)
        with socket.create_connection((origin.hostname, origin.port)) as client:
            client.sendall(f"GET {urlsplit(issuer.url).path}{JWKS_PATH} HTTP/1.1\r\n\r\n".encode())
            # Closed with a reset while the issuer waits: its answer's writes fail at once.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert handled.wait(5), "the issuer never finished the request"
    finally:
        issuer.stop()
    assert "Traceback" not in capsys.readouterr().err
