"""A local moto server for DynamoDB, bedrock-agent and every other AWS API moto implements.

Shared by the tests and ``make dev`` (which creates its tables from the synthesized stack);
the tests' contract-based table helpers stay in ``tests.support.moto_server``.

Code under test builds ordinary boto3 clients; pointing ``AWS_ENDPOINT_URL`` at the server sends
them all here (a service-specific ``AWS_ENDPOINT_URL_<SERVICE>`` still wins, which is how
:mod:`fakes.bedrock` serves converse/converse_stream/retrieve, which moto
lacks). moto itself implements bedrock-agent ``create_knowledge_base`` and
``list_knowledge_bases`` with ``nextToken`` paging, so knowledge-base listings need no fake.

Usage::

    import boto3
    from fakes.moto import MotoServer, aws_env
    from tests.support.moto_server import create_tables

    with MotoServer() as server:
        for name, value in aws_env(server.url).items():
            monkeypatch.setenv(name, value)
        tables = create_tables(boto3.client("dynamodb"), prefix="aiassist-test")
        # tables == {"SESSIONS_TABLE_NAME": "aiassist-test-sessions", ...}
        server.reset()  # forget every resource, cheaply, between tests

A server starts in milliseconds, but its first call to a service costs about 0.25 s while moto
loads that backend; share one per session (see ``tests.support.fixtures``) and call
:func:`reset` between tests instead of starting a new one.
"""

from __future__ import annotations

import copy
import functools
import io
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from cheroot import server as cheroot_server
from cheroot import wsgi
from moto.dynamodb.models import dynamodb_backends
from moto.kms import models as kms_models
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

REGION = "us-east-1"
FAKE_CREDENTIAL = "testing"
# moto's DynamoDB tables by account and region: what MotoServer.checkpoint_tables keeps.
TablesCheckpoint = dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class Answered:
    """One request moto answered: what an :data:`Observer` is given, after the answer."""

    environ: dict[str, Any]  # the WSGI request
    status: int
    body: list[bytes]
    waited: float  # seconds queued behind the request being answered
    took: float  # seconds moto took to answer


Observer = Callable[[Answered], None]


class _OneWriteRequest(cheroot_server.HTTPRequest):
    """An answer sent in one write, its headers and body together, as AWS's endpoints send a
    small one. cheroot writes the headers, then the body, each at once (its sockets have
    TCP_NODELAY), so they left in two segments. In packet captures of the Terraform group,
    the provider's Go client sometimes closed the connection right after the headers segment,
    before reading the body, and retried the call on a new connection: about one request in
    a thousand, and a retried create then failed on what its first attempt had created."""

    def respond(self) -> None:
        wire = self.conn.wfile
        answer = io.BytesIO()
        self.conn.wfile = answer
        try:
            super().respond()
        finally:
            self.conn.wfile = wire
            wire.write(answer.getvalue())


class _OneWriteConnection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _OneWriteRequest


class SerializedMotoServer:
    """moto's WSGI app on a cheroot server, answering one request at a time.

    moto's ``UpdateItem`` is not atomic across threads: two concurrent ``ADD``s can return the
    same value, which DynamoDB never does. Serialized, concurrency tests check the project's
    atomicity (conditions, counters, transactions) rather than moto's. The Terraform
    emulator uses it too: the provider's parallel deletes raced inside moto's Lambda backend.

    Not moto's own ``ThreadedMotoServer``: its werkzeug server closes the connection after every
    answer, so each call paid a new TCP connection and a new server thread, which AWS's
    endpoints never make a client pay. cheroot keeps connections alive as AWS does: a GetItem
    round trip took 1.8-2.2 ms of CPU, against 2.4-3.1 ms on werkzeug with the lookup below
    and 3.5-4.8 ms without it (this machine, 500-1,000 calls a run).
    """

    def __init__(self, host: str, port: int, observe: Observer | None = None) -> None:
        self.lock = threading.Lock()  # held while a request is answered
        app = _Dispatcher(create_backend_app)

        def one_at_a_time(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            if observe is None:
                with self.lock:
                    return list(app(environ, start_response))
            arrived = time.monotonic()
            status: list[str] = []

            def recording(line: str, headers: Any, exc_info: Any = None) -> Any:
                status.append(line)
                return start_response(line, headers, exc_info)

            with self.lock:
                started = time.monotonic()
                body = list(app(environ, recording))
            took = time.monotonic() - started
            observe(Answered(environ, int(status[0].split()[0]), body, started - arrived, took))
            return body

        # A listen backlog as long as the system allows: connections that arrive while the
        # accept loop waits for a core queue up, as at an AWS endpoint. cheroot's default of 5
        # dropped the rest, whose clients retried after 1 s, DynamoDB's connect timeout.
        self._server = wsgi.Server((host, port), one_at_a_time, request_queue_size=socket.SOMAXCONN)
        self._server.ConnectionClass = _OneWriteConnection
        # Every idle kept-alive connection stays open until its client closes it or the
        # server's timeout (10 s) passes, as on AWS; cheroot's default keeps only ten, and a
        # test process holds more clients than that.
        self._server.keep_alive_conn_limit = None
        # How often its connection loop wakes when idle, and so how long stop() waits for it:
        # cheroot's 0.5 s made every stop take half a second.
        self._server.expiration_interval = 0.05
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server.prepare()  # binds, so the port is known before the first request
        self._thread = threading.Thread(target=self._server.serve, daemon=True)
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.bind_addr[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join()


class _Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host name.

    moto looks the host up anew for every request, listing its package's ~200 folders on disk
    each time: 13% of the server's CPU in the tests' profile. The answer for a host never
    changes while the process runs."""

    def __init__(self, create_app: Callable[[Any], Any]) -> None:
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        # Called under the dispatcher's own lock (get_application), so no race on the dict.
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


class MotoServer:
    """moto's server on ``host:port`` (by default 127.0.0.1 and a free port), one request at a
    time (see :class:`SerializedMotoServer`); usable as a context manager. The only way the
    project starts moto: the tests, ``make dev`` and the Terraform emulator all run this.
    ``observe``, if given, is called with each request once it is answered (the emulator's
    request log)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, observe: Observer | None = None
    ) -> None:
        self._server = SerializedMotoServer(host, port, observe)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:50123``; only valid between start() and stop()."""
        if self._url is None:
            raise RuntimeError("MotoServer is not running: call start() or use it in a with block")
        return self._url

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self._url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._url is not None:
            self._server.stop()
            self._url = None

    def reset(self, tables: TablesCheckpoint | None = None) -> None:
        """Forget every resource in every backend (see :func:`reset`), then restore the
        DynamoDB tables of ``tables``, if given."""
        reset(self.url)
        if tables is not None:
            with self._server.lock:
                for (account, region), checkpoint in tables.items():
                    dynamodb_backends[account][region].tables = copy.deepcopy(checkpoint)

    def checkpoint_tables(self) -> TablesCheckpoint:
        """Every DynamoDB table as it is now, items included, for :meth:`reset` to restore.

        Creating the five tables of the contract through the API took 37-50 ms of CPU, for
        each of about 540 tests; copying them back takes 0.3 ms. Restored tables describe
        exactly as created ones do (``tests/support_tests/test_moto_checkpoint.py``)."""
        with self._server.lock:
            return {
                (account, region): copy.deepcopy(backend.tables)
                for account, regions in dynamodb_backends.items()
                for region, backend in regions.items()
                if backend.tables
            }

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def aws_env(endpoint_url: str) -> dict[str, str]:
    """Environment that sends boto3 to ``endpoint_url`` with fake credentials in us-east-1.

    ``AWS_REGION`` is set too because the Lambda runtime sets it and Powertools reads it.
    """
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIAL,
        "AWS_SECURITY_TOKEN": FAKE_CREDENTIAL,
        "AWS_SESSION_TOKEN": FAKE_CREDENTIAL,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def reset(endpoint_url: str) -> None:
    """Wipe all moto state through its reset API (``POST /moto-api/reset``)."""
    _http().post(f"{endpoint_url}/moto-api/reset").raise_for_status()


@functools.cache
def _http() -> httpx.Client:
    """One client per process: each new httpx client loads the CA bundle, whatever the URL's
    scheme (45 ms of CPU), and the tests reset once per test."""
    return httpx.Client(timeout=10)


class _KeyPairOnFirstUse:
    """moto's private key of a KMS key, generated when first used rather than when the key
    is created: moto makes an RSA-2048 pair for every key, the symmetric and HMAC ones too
    (50-100 ms of CPU each), and only an asymmetric key ever uses it. The stacks' keys and
    the tests' pagination key are symmetric or HMAC, and the tests create one per test."""

    def __init__(self, key_spec: str) -> None:
        self._key_spec = key_spec
        self._key: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy and pickle probe for hooks before __init__ has run
            raise AttributeError(name)
        if self._key is None:
            self._key = _generate_private_key(self._key_spec)
        return getattr(self._key, name)


_generate_private_key = kms_models.generate_private_key
kms_models.generate_private_key = _KeyPairOnFirstUse
