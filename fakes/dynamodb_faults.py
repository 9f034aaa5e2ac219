"""A fault-injecting proxy in front of moto: the functions' DynamoDB requests pass through it,
and a test makes a chosen one fail, lose its reply, or wait for something else to happen
first (a DELETE landing in the middle of a turn).

Usage::

    with DynamoFaults(moto.url) as faults:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", faults.url)
        faults.fail(answer_write)                      # next matching request: 500, not applied
        faults.lose_reply(answer_write)                # applied, then answered 500
        faults.before(answer_write, lambda: delete())  # run delete() first, then forward
        faults.throttle(answer_write, times=1000)     # ProvisionedThroughputExceeded
        faults.hold(answer_write)                      # no reply until release(); dropped
        ... run the code ...
        faults.operations                              # every request seen, in order

A *match* is a function of the operation name and the request's JSON body, e.g.
:func:`transaction_putting` below.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fakes.loopback import LoopbackServer, Request, Response, error_response
from functions.core import aws

Match = Callable[[str, dict[str, Any]], bool]
_FORWARDED = ("content-type", "x-amz-target", "authorization", "x-amz-date")


@dataclass
class _Fault:
    match: Match
    kind: str  # "fail", "lose_reply", "before" or "hold"
    remaining: int
    action: Callable[[], None] | None = None
    status: int = 500
    error_type: str = "InternalServerError"
    apply: bool = False  # "hold": forward the request once released (a late write)


def operation_is(name: str) -> Match:
    return lambda operation, _: operation == name


def operation_on(name: str, table: str) -> Match:
    """An operation ``name`` on the table named ``table``."""
    return lambda operation, body: operation == name and body.get("TableName") == table


def transaction_putting(role: str) -> Match:
    """A TransactWriteItems whose Put stores a message of ``role`` ("user" or "assistant")."""

    def match(operation: str, body: dict[str, Any]) -> bool:
        if operation != "TransactWriteItems":
            return False
        puts = [item["Put"]["Item"] for item in body["TransactItems"] if "Put" in item]
        return any(put.get("role", {}).get("S") == role for put in puts)

    return match


class DynamoFaults(LoopbackServer):
    """Forwards DynamoDB's JSON protocol to ``upstream``; see the module docstring."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self._http = httpx.Client(base_url=upstream, timeout=30)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._released = threading.Event()
        self.held = threading.Event()  # set when a request is first held
        self.late: list[int] = []  # DynamoDB's status for each held request applied late
        self.operations: list[str] = []
        self.injected: list[tuple[str, str]] = []  # (kind, operation) of each fault applied

    def fail(
        self,
        match: Match,
        times: int = 1,
        status: int = 500,
        error_type: str = "InternalServerError",
    ) -> None:
        """Answer the next ``times`` matching requests with an error, without applying them."""
        self._add(_Fault(match, "fail", times, status=status, error_type=error_type))

    def lose_reply(self, match: Match, times: int = 1) -> None:
        """Apply the next ``times`` matching requests, then answer 500 as if they had failed:
        the client cannot tell, and retries something that already happened."""
        self._add(_Fault(match, "lose_reply", times))

    def throttle(self, match: Match, times: int = 1) -> None:
        """Answer the next ``times`` matching requests as a throttled table does (HTTP 400,
        ``ProvisionedThroughputExceededException``), without applying them."""
        self.fail(match, times, status=400, error_type="ProvisionedThroughputExceededException")

    def hold(self, match: Match, times: int = 1, *, apply: bool = False) -> None:
        """Hold the next ``times`` matching requests without a reply until :meth:`release`
        (or the proxy stops), as a request lost in the network or stuck in the service is:
        the client waits for its read timeout. Released, a request is dropped, or with
        ``apply`` forwarded then (a write that lands late)."""
        self._add(_Fault(match, "hold", times, apply=apply))

    def clear(self) -> None:
        """Forget every fault not yet used up: requests go through again."""
        with self._lock:
            self._faults.clear()

    def release(self) -> None:
        """Let every held request go on (dropped, or applied)."""
        self._released.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    def before(self, match: Match, action: Callable[[], None], times: int = 1) -> None:
        """Run ``action`` (on the proxy's thread), then forward the matching request."""
        self._add(_Fault(match, "before", times, action=action))

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, operation: str, body: dict[str, Any]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match(operation, body):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self.injected.append((fault.kind, operation))
                    return fault
        return None

    def handle(self, request: Request) -> Response:
        operation = request.headers.get("x-amz-target", "").rsplit(".", 1)[-1]
        body = json.loads(request.body or b"{}")
        with self._lock:
            self.operations.append(operation)
        fault = self._take(operation, body)
        if fault is not None and fault.kind == "fail":
            return _dynamodb_error(fault.status, fault.error_type)
        if fault is not None and fault.kind == "hold":
            self.held.set()
            self._released.wait()
            if not fault.apply:
                return _dynamodb_error(500, "InternalServerError")
        if fault is not None and fault.action is not None:
            fault.action()
        upstream = self._http.post(
            "/",
            content=request.body,
            headers={name: request.headers[name] for name in _FORWARDED if name in request.headers},
        )
        if fault is not None and fault.kind == "hold":
            with self._lock:
                self.late.append(upstream.status_code)
        if fault is not None and fault.kind == "lose_reply":
            return error_response(500, "InternalServerError", "injected: the reply was lost")
        return Response(
            upstream.status_code,
            upstream.content,
            {"Content-Type": upstream.headers.get("content-type", "application/x-amz-json-1.0")},
        )


def _dynamodb_error(status: int, error_type: str) -> Response:
    """An error as DynamoDB's JSON protocol sends it: the type in the body's ``__type``."""
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{error_type}", "message": "injected"}
    response = error_response(status, error_type, "injected fault")
    return Response(status, json.dumps(body).encode(), response.headers)


@contextmanager
def routed_through_faults(
    upstream: str, monkeypatch: pytest.MonkeyPatch, *, attempts: int
) -> Iterator[DynamoFaults]:
    """The functions' DynamoDB clients sent through a fault proxy in front of ``upstream``,
    botocore making ``attempts`` tries of each request (1: a fault reaches the code)."""
    with DynamoFaults(upstream) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", str(attempts))
        aws.reset_clients()
        yield proxy
