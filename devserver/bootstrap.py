"""The Lambda runtime stand-in inside one worker process: loads a handler, answers invocations.

Run as ``python -I -S bootstrap.py <task root> <runtime site> <handler>``: isolated mode and no
site-packages, so only the extracted package and what the Python runtime provides (boto3 and its
dependencies, see :mod:`devserver.lambda_runtime`) are importable, as in a Lambda sandbox. It
therefore uses the standard library only and imports nothing from this repository.

Protocol: one JSON line per invocation on stdin (``{"id", "event", "deadline_ms",
"request_id"}``), one JSON line per answer on the original stdout (``{"id", "result"}`` or
``{"id", "error": {"errorMessage", "errorType"}}``). The handler's own stdout is sent to stderr,
which the parent prints prefixed with the function's name, as CloudWatch would hold it.

Logging is set up as Lambda's Python runtime sets it up before it loads the handler: a handler on
the root logger, in the runtime's text format (level, UTC time, request id, message), so what a
function logs through the standard ``logging`` module (the authorizer's reasons for a refusal)
shows as it would in CloudWatch. A TOKEN or REQUEST authorizer's ``Exception("Unauthorized")``
is API Gateway's way of answering 401, not a failure: it is logged as one line, without a stack
trace.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes and method of the Python runtime's context object that code reads."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self._deadline_ms = deadline_ms
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.invoked_function_arn = os.environ["DEV_LAMBDA_FUNCTION_ARN"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
REFUSAL = "Unauthorized"  # the one exception message API Gateway turns into a 401


class _RequestId(logging.Filter):
    """Stamps every record with the current invocation's request id, as the runtime does."""

    current = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.current
        return True


def install_root_handler() -> _RequestId:
    """The Lambda runtime's root handler: records of every logger reach the function's log
    (stderr here) in the runtime's format, at the levels the loggers themselves allow."""
    formatter = logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT)
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    request_id = _RequestId()
    handler.addFilter(request_id)
    logging.getLogger().addHandler(handler)
    return request_id


def is_refusal(error: BaseException) -> bool:
    """An authorizer's ``raise Exception("Unauthorized")``: an answer, not a failure."""
    return type(error) is Exception and str(error) == REFUSAL


def _error(error: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_exception(error),
    }


def main() -> None:
    task_root, runtime_site, handler_name = sys.argv[1:4]
    sys.path[:0] = [task_root, runtime_site]
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the handler's prints join its logs
    sys.stdout = os.fdopen(1, "w", encoding="utf-8", buffering=1)
    os.chdir(task_root)
    request_id = install_root_handler()
    handler: Any = None
    init_error: dict[str, Any] | None = None
    try:
        module_name, attribute = handler_name.rsplit(".", 1)
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as error:
        init_error = _error(error) | {"errorType": "Runtime.ImportModuleError"}
        traceback.print_exc()
    answers.write(json.dumps({"ready": init_error is None}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, Any] = {"id": request["id"]}
        if init_error is not None:
            answer["error"] = init_error
        else:
            context = LambdaContext(request["request_id"], request["deadline_ms"])
            request_id.current = context.aws_request_id
            print(f"START RequestId: {context.aws_request_id} Version: $LATEST", file=sys.stderr)
            started = time.monotonic()
            try:
                answer["result"] = handler(request["event"], context)
            except Exception as error:
                answer["error"] = _error(error)
                if is_refusal(error):  # the reason is the authorizer's own log line above
                    print(f"{REFUSAL}: the request is refused (401)", file=sys.stderr)
                else:
                    print(json.dumps(answer["error"]), file=sys.stderr)
            elapsed = (time.monotonic() - started) * 1000
            print(
                f"END RequestId: {context.aws_request_id}\n"
                f"REPORT RequestId: {context.aws_request_id}\tDuration: {elapsed:.2f} ms\t"
                f"Memory Size: {context.memory_limit_in_mb} MB",
                file=sys.stderr,
            )
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            answers.write(json.dumps(answer, default=str) + "\n")
        except (TypeError, ValueError) as error:  # a result JSON cannot carry
            answers.write(json.dumps({"id": request["id"], "error": _error(error)}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
