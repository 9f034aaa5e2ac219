"""Single-line JSON log records through the standard ``logging`` module.

Powertools would pull in more than the authorizer needs at cold start; one JSON object per line
is enough for CloudWatch Logs Insights to filter on the fields.
"""

from __future__ import annotations

import json
import logging

logger = logging.getLogger("functions.authorizer")
logger.setLevel(logging.INFO)

MAX_FIELD_CHARS = 300  # reasons can quote attacker-chosen header values; keep records bounded


def log(level: int, message: str, **fields: object) -> None:
    """Log ``message`` with ``fields`` as one JSON object (newlines in values stay escaped)."""
    if not logger.isEnabledFor(level):
        return
    record = {"level": logging.getLevelName(level), "message": message}
    record.update({name: _bounded(value) for name, value in fields.items() if value is not None})
    logger.log(level, json.dumps(record, default=str))


def _bounded(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[:MAX_FIELD_CHARS] + "…"
    return value
