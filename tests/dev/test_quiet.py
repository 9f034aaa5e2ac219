"""``--quiet``: which log lines need attention, lines of one record kept together."""

from __future__ import annotations

import json

import pytest

from devserver.quiet import QuietLog, needs_attention

RECORD = "[{level}]\t2026-12-06T09:11:49.772Z\t0b515f04-62f1-415e-a225-f6913c371fab\t{message}"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (RECORD.format(level="INFO", message='{"message": "unauthorized"}'), False),
        (RECORD.format(level="WARNING", message="the issuer is unreachable"), True),
        (RECORD.format(level="ERROR", message="unhandled error"), True),
        ("START RequestId: 1 Version: $LATEST", False),
        ("REPORT RequestId: 1\tDuration: 1.00 ms\tMemory Size: 512 MB", False),
        (json.dumps({"level": "INFO", "message": "chat turn stored"}), False),
        (json.dumps({"level": "ERROR", "message": "unhandled error"}), True),
        (json.dumps({"errorMessage": "boom", "errorType": "KeyError"}), True),
        (json.dumps({"_aws": {"CloudWatchMetrics": []}, "ChatTurns": 1}), False),
        ("Traceback (most recent call last):", True),
        ("Unauthorized: the request is refused (401)", False),
        ("GET /v1/api/v1/sessions 200 12ms", False),
        ("0b515f04 Task timed out after 3.00 seconds", True),
        ("retries spent; to the failure destination q: {}", True),
        ("invocation with 2 records failed: boom", True),
        ('  File "handler.py", line 3, in handler', None),
    ],
)
def test_what_needs_attention(line: str, shown: bool | None) -> None:
    assert needs_attention(line) is shown


def test_a_records_continuation_lines_follow_it_per_source() -> None:
    shown: list[tuple[str, str]] = []
    log = QuietLog(lambda source, line: shown.append((source, line)))
    log("main", RECORD.format(level="ERROR", message="unhandled error"))
    log("authorizer", RECORD.format(level="INFO", message="allowed"))
    log("main", "Traceback (most recent call last):")
    log("authorizer", "    an INFO record's second line")
    log("main", '  File "handler.py", line 3, in handler')
    log("main", "END RequestId: 1")
    log("main", "    after the invocation's END")
    assert [line for source, line in shown] == [
        RECORD.format(level="ERROR", message="unhandled error"),
        "Traceback (most recent call last):",
        '  File "handler.py", line 3, in handler',
    ]
