"""One error model: each domain error carries its HTTP status and its code, and both transports
answer with exactly those, from the same raise."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.data.sessions import SessionRepository
from functions.domain.errors import (
    ERROR_CODES,
    ERRORS,
    BadRequest,
    DomainError,
    QuotaExceeded,
    QuotaState,
)
from tests.functions.helpers import Rest, WebSocket

ROOT = Path(__file__).resolve().parents[3]
CASES = [kind for kind in ERRORS if kind is not DomainError]


def test_every_error_has_its_own_status_and_a_code_in_the_documented_list() -> None:
    assert {kind.code for kind in ERRORS} == set(ERROR_CODES)
    assert ERROR_CODES[-1] == "internal"
    for kind in CASES:
        assert 400 <= kind.status < 600, kind
        assert kind.code != DomainError.code, kind


def test_the_docs_error_table_lists_every_code_with_its_status() -> None:
    """docs/functions.md's "Error codes" table: one row per code, with the status it answers."""
    page = (ROOT / "docs" / "functions.md").read_text(encoding="utf-8")
    table = page.split("### Error codes", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = {
        cells[0].strip("` "): int(cells[1])
        for line in table.splitlines()[2:]
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert rows == {kind.code: kind.status for kind in ERRORS}


QUOTA = QuotaState("day", limit=1000, used=1000, resets_at="2026-12-03T00:00:00.000000Z")


def _raise(kind: type[DomainError]) -> DomainError:
    if kind is BadRequest:
        return BadRequest("the message", ())
    if kind is QuotaExceeded:
        return QuotaExceeded("the message", QUOTA, retry_after=3600)
    return kind("the message")


@pytest.mark.parametrize("kind", CASES, ids=lambda kind: kind.__name__)
def test_rest_and_websocket_answer_the_same_raise_alike(
    kind: type[DomainError], rest: Rest, ws: WebSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutations caught: a status or code table kept by one transport only, a transport that
    maps a class to "internal", Retry-After missing where the error says when to retry, the
    error's own fields (a spent quota) missing on one transport."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()

    def failing(*_: object, **__: object) -> None:
        raise _raise(kind)

    monkeypatch.setattr(SessionRepository, "get", failing)
    response = rest.call("GET", f"/sessions/{session_id}")
    body = response.assert_error(kind.status, kind.code)
    error = _raise(kind)
    assert body == {"code": kind.code, "message": "the message", **error.fields()}
    assert response.headers.get("retry-after") == (
        None if error.retry_after is None else str(error.retry_after)
    )
    expected_frame = {"type": "error", "code": kind.code, "message": "the message"}
    expected_frame |= error.fields()
    if error.retry_after is not None:
        expected_frame["retry_after"] = error.retry_after

    ws.send(connection_id, {"action": "sendMessage", "session_id": session_id, "content": "hi"})
    [frame] = ws.frames(connection_id)
    assert frame == expected_frame


def test_the_errors_that_say_when_to_retry() -> None:
    """Throttling and both refusals carry Retry-After; nothing else invents one."""
    retrying = {kind.__name__ for kind in CASES if _raise(kind).retry_after is not None}
    assert retrying == {"Throttled", "QuotaExceeded", "Busy"}
    assert _raise(QuotaExceeded).fields() == {"quota": vars(QUOTA)}


def test_a_bug_is_internal_on_both_transports(
    rest: Rest, ws: WebSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    connection_id = ws.open()

    def failing(*_: object, **__: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(SessionRepository, "get", failing)
    body = rest.call("GET", f"/sessions/{session_id}").assert_error(500, "internal")
    assert body["message"] == "internal error"
    ws.send(connection_id, {"action": "sendMessage", "session_id": session_id, "content": "hi"})
    assert ws.frames(connection_id) == [
        {"type": "error", "code": "internal", "message": "internal error"}
    ]
