"""The exit statuses of ``python -m chatclient`` (and ``make chat``), for scripts.

One status per thing a script may want to react to differently: retry later (quota), fix the
setup (auth, unavailable), or look at the answer (incomplete). docs/chat-client.md lists them.
"""

from __future__ import annotations

from enum import IntEnum

from chatclient.client import ApiError, Kind


class Exit(IntEnum):
    OK = 0  # a complete answer (one-shot), or the chat ended normally
    FAILED = 1  # the service failed on its side, or something unexpected
    USAGE = 2  # a bad command line, no prompt, a message or file refused as invalid or too long
    AUTH = 3  # the token was refused, or may not do that
    QUOTA = 4  # token budget spent, request quota or rate limit, too many answers, throttled
    UNAVAILABLE = 5  # no server, cannot connect, a wrong URL, or it took too long
    NOT_FOUND = 6  # the session (--session) does not exist or is not yours
    INCOMPLETE = 7  # an answer came, but incomplete (length, time, guardrail, cancelled)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


_BY_KIND: dict[Kind, Exit] = {
    "unauthorized": Exit.AUTH,
    "forbidden": Exit.AUTH,
    "not_found": Exit.NOT_FOUND,
    "bad_request": Exit.USAGE,
    "too_long": Exit.USAGE,
    "attachment_rejected": Exit.USAGE,
    "throttled": Exit.QUOTA,
    "quota": Exit.QUOTA,
    "quota_exceeded": Exit.QUOTA,
    "busy": Exit.QUOTA,
    "unavailable": Exit.UNAVAILABLE,
    "timeout": Exit.UNAVAILABLE,
    "wrong_url": Exit.UNAVAILABLE,
    "internal": Exit.FAILED,
}


def of_error(error: ApiError) -> Exit:
    return _BY_KIND.get(error.kind, Exit.FAILED)
