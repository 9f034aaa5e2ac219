"""boto3 clients, created once per container and shared by every invocation it serves.

Creating a client costs tens of milliseconds (endpoint rules, service model loading), so each
(service, endpoint) pair is built once, on first use: the main function never pays for the Bedrock
clients on requests that do not chat, and ``/health`` pays for none. boto3 itself is imported on
first use for the same reason.

Endpoints are boto3's business: ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` (how the
tests reach moto and the Bedrock fake) are honoured by boto3 itself. The only explicit endpoint
is the WebSocket management API's, which API Gateway defines per API and stage.

Retries use botocore's adaptive mode: exponential backoff with jitter, plus a client-side rate
limiter that slows down after throttling, so a burst is absorbed before a 503 reaches the user.
The number of attempts is botocore's own setting (``AWS_MAX_ATTEMPTS``, default 3 attempts and 4
for DynamoDB), so it can be tuned per function without a code change. Whatever the number,
no attempt starts, and no retry sleeps, past the invocation's deadline
(:func:`functions.core.deadline.install`): one call cannot outlive it. DynamoDB's timeouts are
short (1 s to connect, 2 s to read: it answers in milliseconds), so a held request is given up
while there is still time to try again or to answer.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from functions.core import deadline

if TYPE_CHECKING:
    from botocore.client import BaseClient

CONNECT_TIMEOUT_SECONDS = 2
DEFAULT_READ_TIMEOUT_SECONDS = 10
CONNECT_TIMEOUTS = {"dynamodb": deadline.DYNAMODB_CONNECT_SECONDS}
# Bedrock answers after the whole completion (converse) or between stream events; long answers
# take tens of seconds, bounded anyway by the function's own timeout.
READ_TIMEOUT_SECONDS = {
    "bedrock-runtime": 120,
    "bedrock-agent-runtime": 30,
    "dynamodb": deadline.DYNAMODB_READ_SECONDS,
}
MAX_POOL_CONNECTIONS = 20
# S3 presigned POSTs (attachment uploads) signed with SigV4, which every region accepts; some
# regions refuse the SigV2 forms botocore may otherwise sign.
SIGNATURE_VERSIONS = {"s3": "s3v4"}

_lock = threading.Lock()
_clients: dict[tuple[str, str | None], Any] = {}
_session: Any = None  # one boto3 Session: its loader caches the service models clients share


def client(service: str, endpoint_url: str | None = None) -> BaseClient:
    """The container's client for ``service`` (optionally at an explicit ``endpoint_url``)."""
    key = (service, endpoint_url)
    cached = _clients.get(key)
    if cached is not None:
        return cached
    with _lock:  # boto3 sessions are not thread-safe to create clients from concurrently
        if key not in _clients:
            _clients[key] = _new_client(service, endpoint_url)
        return _clients[key]


def quick_client(service: str, read_timeout: float) -> BaseClient:
    """A client for an optional call whose failure costs nothing (a session's title): one
    attempt (no retry, no client-side rate limiting), and ``read_timeout`` seconds instead of
    the service's usual patience, so it never holds up what it runs beside. Built once per
    (service, timeout), like the others; the deadline checks apply as to every client."""
    key = (service, f"quick:{read_timeout}")
    cached = _clients.get(key)
    if cached is not None:
        return cached
    with _lock:
        if key not in _clients:
            _clients[key] = _new_client(
                service,
                None,
                read_timeout=read_timeout,
                # standard: with one attempt, adaptive mode's rate limiter would only make
                # the next call wait after a throttled one
                retries={"mode": "standard", "total_max_attempts": 1},
            )
        return _clients[key]


def reset_clients() -> None:
    """Forget every client and the session, so the next ones read the environment (endpoints,
    credentials) again."""
    global _session  # noqa: PLW0603 - the per-container session, dropped with its clients
    with _lock:
        _clients.clear()
        _session = None


def _new_client(
    service: str,
    endpoint_url: str | None,
    *,
    read_timeout: float | None = None,
    retries: dict[str, Any] | None = None,
) -> BaseClient:
    """Called with the lock held."""
    global _session  # noqa: PLW0603 - the per-container session, created on first use
    import boto3  # deferred: /health and cold starts should not pay for it
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUTS.get(service, CONNECT_TIMEOUT_SECONDS),
        read_timeout=read_timeout
        or READ_TIMEOUT_SECONDS.get(service, DEFAULT_READ_TIMEOUT_SECONDS),
        retries={"mode": "adaptive", **(retries or {})},
        max_pool_connections=MAX_POOL_CONNECTIONS,
        tcp_keepalive=True,
        signature_version=SIGNATURE_VERSIONS.get(service),
    )
    if _session is None:
        _session = boto3.session.Session()
    created = _session.client(service, endpoint_url=endpoint_url, config=config)
    deadline.install(created, service)
    return created
