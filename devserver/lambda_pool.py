"""Lambda execution for the dev server: each function runs from its built zip in worker processes.

Like Lambda, one worker (an execution environment) handles one invocation at a time and stays
warm afterwards; a function gets a new worker (a cold start) when all of its workers are busy,
up to its reserved concurrency. Beyond that the invocation is **throttled**, not queued, as
Lambda throttles synchronous invocations (API Gateway's are all synchronous): :class:`Throttled`.
An invocation that outlives the function's timeout kills its worker, as Lambda ends the sandbox.

Workers are real separate processes (:mod:`devserver.bootstrap`) with the function's
environment and only the package and the runtime's boto3 importable; their output is printed
line by line with the function's name in front.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devserver.lambda_runtime import runtime_site
from devserver.package_cache import PackageCache
from devserver.stack import Function
from fakes.process import stop_process

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
READY_TIMEOUT_SECONDS = 30
ACCOUNT_ID = "123456789012"

LogSink = Callable[[str, str], None]  # (function name, line)


class InvocationError(Exception):
    """The invocation did not produce a result."""


class Throttled(InvocationError):
    """Every execution the function's reserved concurrency allows is busy."""


class FunctionTimeout(InvocationError):
    """The handler ran past the function's timeout; its worker was stopped."""


class FunctionError(InvocationError):
    """The handler raised (or could not be loaded); ``error`` is Lambda's error payload."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.error = dict(error)

    @property
    def message(self) -> str:
        return str(self.error.get("errorMessage", ""))


def print_log(source: str, line: str) -> None:
    """The default sink: ``<function or server> | <line>`` on stdout, one write a line so
    lines from concurrent workers never interleave."""
    sys.stdout.write(f"{source} | {line}\n")
    sys.stdout.flush()


HOST_ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
HOST_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"


class UnrunnablePackage(ValueError):
    """The package cannot run on this machine as Lambda would run it."""


def verify_package(function: Function) -> str:
    """The zip must be the one the stack deploys (its hash is ``source_code_hash``), built for
    this machine's architecture and Python, or its compiled dependencies would not load.
    Returns its SHA-256, in hex."""
    host = HOST_ARCHITECTURE.get(platform.machine().lower(), platform.machine())
    if function.architecture != host:
        raise UnrunnablePackage(
            f"{function.name} is built for {function.architecture} and this machine is {host}: "
            f'serve an environment with lambda_architecture = "{host}" (or override it with '
            f"COMPUTE_<ENV>__LAMBDA_ARCHITECTURE={host})"
        )
    if function.runtime != HOST_RUNTIME:
        raise UnrunnablePackage(
            f"{function.name} runs {function.runtime} and the dev server runs {HOST_RUNTIME}"
        )
    if not function.package.is_file():
        raise FileNotFoundError(f"{function.name}: package {function.package} does not exist")
    digest = hashlib.sha256(function.package.read_bytes()).digest()
    if function.source_code_hash and base64.b64encode(digest).decode() != function.source_code_hash:
        raise UnrunnablePackage(
            f"{function.name}: {function.package} does not match source_code_hash"
        )
    return digest.hex()


class _Worker:
    """One warm process; used by one invocation at a time."""

    def __init__(
        self,
        function: Function,
        task_root: Path,
        runtime: Path,
        env: Mapping[str, str],
        log: LogSink,
    ) -> None:
        self.function = function
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(BOOTSTRAP),
                str(task_root),
                str(runtime),
                function.handler,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=task_root,
            text=True,
            # Out of the terminal's process group: Ctrl-C or a closed terminal signals the dev
            # server, which stops its workers itself (no KeyboardInterrupt in each of them).
            start_new_session=True,
            bufsize=1,
        )
        self.answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._read_answers, daemon=True),
            threading.Thread(target=self._read_logs, args=(log,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            ready = self._next(READY_TIMEOUT_SECONDS)
        except queue.Empty:
            ready = None
        if ready is None:
            self.stop()
            raise InvocationError(f"{function.name}: the worker did not start")

    def _read_answers(self) -> None:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        for line in stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def _read_logs(self, log: LogSink) -> None:
        stderr: IO[str] = self.process.stderr  # type: ignore[assignment]
        for line in stderr:
            log(self.function.name, line.rstrip("\n"))

    def _next(self, timeout: float) -> dict[str, Any] | None:
        return self.answers.get(timeout=timeout)

    def invoke(self, event: Any, request_id: str) -> Any:
        timeout = self.function.timeout
        deadline_ms = int((time.time() + timeout) * 1000)
        line = json.dumps(
            {"id": request_id, "event": event, "deadline_ms": deadline_ms, "request_id": request_id}
        )
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        try:
            stdin.write(line + "\n")
            stdin.flush()
            answer = self._next(timeout)
        except queue.Empty:
            raise FunctionTimeout(f"Task timed out after {timeout:.2f} seconds") from None
        except (BrokenPipeError, OSError):
            answer = None
        if answer is None:
            raise FunctionError(
                {"errorType": "Runtime.ExitError", "errorMessage": "the worker exited"}
            )
        if "error" in answer:
            raise FunctionError(answer["error"])
        return answer.get("result")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process, grace_seconds=3)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@dataclass
class FunctionPool:
    """The workers of one function, at most ``function.concurrency_limit`` at once."""

    function: Function
    task_root: Path
    runtime: Path
    env: Mapping[str, str]
    log: LogSink = print_log

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._count = 0  # idle + busy + starting
        self._all: list[_Worker] = []
        self._closed = False
        self.cold_starts = 0

    @property
    def busy(self) -> int:
        """Executions running now (or starting)."""
        with self._lock:
            return self._count - len(self._idle)

    def warm(self) -> None:
        """Start one worker ahead of the first invocation, as a provisioned environment."""
        with self._lock:
            self._count += 1
        self._release(self._start())

    def _start(self) -> _Worker:
        try:
            worker = _Worker(self.function, self.task_root, self.runtime, self.env, self.log)
        except Exception:
            with self._lock:
                self._count -= 1
            raise
        with self._lock:
            self._all.append(worker)
            self.cold_starts += 1
        return worker

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise InvocationError(f"{self.function.name}: the dev server is stopping")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self._count -= 1
            if self._count >= self.function.concurrency_limit:
                raise Throttled(
                    f"Rate Exceeded: {self.function.name} is at its reserved concurrency "
                    f"({self.function.concurrency_limit})"
                )
            self._count += 1
        return self._start()

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if worker.alive and not self._closed:
                self._idle.append(worker)
                return
            self._count -= 1
        worker.stop()

    def invoke(self, event: Any) -> Any:
        """Run one invocation to its end (or its timeout); raises :class:`InvocationError`."""
        worker = self._acquire()
        request_id = str(uuid.uuid4())
        try:
            return worker.invoke(event, request_id)
        except FunctionTimeout as error:
            self.log(self.function.name, f"{request_id} {error}")
            worker.stop()
            raise
        finally:
            self._release(worker)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all, self._idle = list(self._all), [], []
        for worker in workers:
            worker.stop()


class Lambda:
    """Every function of the stack, ready to invoke by resource id."""

    def __init__(
        self,
        workdir: Path,
        packages: PackageCache,
        log: LogSink = print_log,
        region: str = "us-east-1",
    ) -> None:
        self._packages = packages
        self._region = region
        self._runtime = runtime_site(workdir / "runtime")
        self._log = log
        self._pools: dict[str, FunctionPool] = {}
        # The latest events by function name, to show (and test) what API Gateway sent.
        self.recent_events: deque[tuple[str, Any]] = deque(maxlen=200)
        # Threads that wait for invocations, so a gateway can give up (29 s) while one runs on.
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="invoke")

    def add(self, function: Function, env: Mapping[str, str]) -> FunctionPool:
        task_root = self._packages.task_root(function.package, verify_package(function))
        full_env = lambda_environment(function, task_root, self._runtime, self._region)
        full_env |= env
        pool = FunctionPool(function, task_root, self._runtime, full_env, self._log)
        self._pools[function.resource_id] = pool
        return pool

    def warm_all(self) -> None:
        """One warm worker per function, started in parallel (startup takes the slowest)."""
        with ThreadPoolExecutor(max_workers=max(1, len(self._pools))) as starters:
            list(starters.map(lambda pool: pool.warm(), self._pools.values()))

    def pool(self, resource_id: str) -> FunctionPool:
        return self._pools[resource_id]

    def invoke(self, resource_id: str, event: Any) -> Any:
        pool = self._pools[resource_id]
        self.recent_events.append((pool.function.name, event))
        try:
            return pool.invoke(event)
        except Throttled as error:  # Lambda would only count it; locally, say it
            self._log(pool.function.name, f"throttled: {error}")
            raise

    def submit(self, resource_id: str, event: Any) -> Future[Any]:
        return self._executor.submit(self.invoke, resource_id, event)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._packages.close()


def lambda_environment(
    function: Function, task_root: Path, runtime: Path, region: str
) -> dict[str, str]:
    """What the Lambda runtime itself sets in every execution environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(runtime),
        "_HANDLER": function.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "DEV_LAMBDA_FUNCTION_ARN": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function.name}",
        # X-Ray is not emulated: without a daemon and a trace header the SDK only complains.
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",  # the task root is read-only in Lambda
    }
