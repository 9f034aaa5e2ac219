"""``make dev DEV_ARGS=--quiet``: only the log lines that need attention (warnings and errors),
without the invocations' START/END/REPORT lines, INFO records and access logs.

A log record may span several lines (a traceback under an ``[ERROR]`` line): a line that starts
no record of its own follows the decision for the record before it, from the same source.
"""

from __future__ import annotations

import json
import re
import threading

from devserver.lambda_pool import LogSink

ATTENTION = frozenset({"WARNING", "ERROR", "CRITICAL"})
# The Lambda runtime's text format, as devserver/bootstrap.py writes it: "[LEVEL]\t…".
_RUNTIME_RECORD = re.compile(r"^\[(?P<level>[A-Z]+)\]\t")
_INVOCATION_LINES = ("START RequestId:", "END RequestId:", "REPORT RequestId:")
_TROUBLE = re.compile(r"\b(error|errors|failed|failure|timed out|throttled)\b", re.I)


def needs_attention(line: str) -> bool | None:
    """Whether ``line`` starts a record worth showing; None when it starts none (it continues
    the record before it)."""
    runtime = _RUNTIME_RECORD.match(line)
    if runtime:
        return runtime["level"] in ATTENTION
    if line.startswith(_INVOCATION_LINES):
        return False
    if line.startswith("Traceback (most recent call last):"):
        return True
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):  # Powertools' JSON, or the runtime's error report
            return "errorType" in record or str(record.get("level", "")).upper() in ATTENTION
    if not line.strip() or line[:1].isspace():
        return None
    return bool(_TROUBLE.search(line))  # a plain line: a print, or the server's own message


class QuietLog:
    """A log sink that passes on only what needs attention to ``sink``."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._showing: dict[str, bool] = {}  # source -> the decision for its current record

    def __call__(self, source: str, line: str) -> None:
        decision = needs_attention(line)
        with self._lock:
            if decision is None:
                decision = self._showing.get(source, False)
            else:
                self._showing[source] = decision
        if decision:
            self._sink(source, line)
