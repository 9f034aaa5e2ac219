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

Starting a server costs ~0.1 s; share one per session (see ``tests.support.fixtures``) and
call :func:`reset` between tests instead of starting a new one.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import httpx
from moto.dynamodb.models import dynamodb_backends
from moto.kms import models as kms_models
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

REGION = "us-east-1"
FAKE_CREDENTIAL = "testing"
# moto's DynamoDB tables by account and region: what MotoServer.checkpoint_tables keeps.
TablesCheckpoint = dict[tuple[str, str], dict[str, Any]]


class SerializedMotoServer(ThreadedMotoServer):
    """moto's threaded server, answering one request at a time.

    moto's ``UpdateItem`` is not atomic across threads: two concurrent ``ADD``s can return the
    same value, which DynamoDB never does. Serialized, concurrency tests check the project's
    atomicity (conditions, counters, transactions) rather than moto's. The Terraform
    emulator uses it too: the provider's parallel deletes raced inside moto's Lambda backend.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()  # held while a request is answered

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)

        def one_at_a_time(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            with self.lock:
                return list(app(environ, start_response))

        self._server = make_server(
            self._ip_address, self._port, one_at_a_time, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class MotoServer:
    """moto's server on ``host:port`` (by default 127.0.0.1 and a free port), one request at a
    time (see :class:`SerializedMotoServer`); usable as a context manager. The only way the
    project starts moto: the tests, ``make dev`` and the Terraform emulator all run this."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = SerializedMotoServer(ip_address=host, port=port, verbose=False)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:50123``; only valid between start() and stop()."""
        if self._url is None:
            raise RuntimeError("MotoServer is not running: call start() or use it in a with block")
        return self._url

    def start(self) -> MotoServer:
        # moto's werkzeug logs every request at INFO, which buries the cause of a failed test.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
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
