"""The one clock and time format of stored records.

Times are ISO-8601 UTC strings in one fixed format (microseconds, ``Z``), so a string sort key
(the sessions' UserIndex) orders them chronologically; TTL attributes are epoch seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """A sortable ISO-8601 UTC timestamp, e.g. ``2025-01-31T09:05:00.000123Z``."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def parse_timestamp(text: str) -> datetime:
    """The moment a :func:`timestamp` names."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
