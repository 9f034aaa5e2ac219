"""The API client: REST with httpx, the streamed turn over WebSocket with the websockets library.

Every failure becomes an :class:`ApiError` whose ``kind`` is one of a few plain categories
(``unauthorized``, ``forbidden``, ``not_found``, ``bad_request``, ``conflict``, ``throttled``,
``quota``,
``quota_exceeded``, ``busy``, ``unavailable``, ``timeout``, ``internal``, ``wrong_url``,
``too_long``, ``attachment_rejected``, ``upload_refused``), so the terminal can say what
happened in words whether API Gateway, the function, S3 or the network answered.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import CloseCode
from websockets.sync.client import ClientConnection, connect

from chatclient.limits import (
    API_BASE_PATH,
    MAX_FRAME_BYTES,
    MAX_WEBSOCKET_MESSAGE_BYTES,
    content_problem,
    too_long,
)

Kind = Literal[
    "unauthorized",
    "forbidden",
    "not_found",
    "bad_request",
    "conflict",
    "throttled",
    "quota",
    "quota_exceeded",
    "busy",
    "unavailable",
    "timeout",
    "internal",
    "wrong_url",
    "too_long",
    "attachment_rejected",
    "upload_refused",
]
TURN_TIMEOUT_SECONDS = 180  # between two frames of one answer
RECV_SLICE_SECONDS = 0.2  # how soon a Ctrl-C is noticed while waiting for a frame
START_WAIT_SECONDS = 5.0  # how long an abandoned turn waits for its message_id to cancel it
# How long the first answer of a new session waits for the server's title frame: it comes
# right after the end frame when the server names sessions (a small model's call).
TITLE_WAIT_SECONDS = 3.0

_MESSAGES: dict[Kind, str] = {
    "unauthorized": "the token was refused (missing, expired or from another issuer)",
    "forbidden": "this token may not do that",
    "not_found": "no such session (it may have been deleted, or belong to someone else)",
    "bad_request": "the request was refused as invalid",
    "conflict": "the session changed meanwhile (another answer came, or this turn was replaced)",
    "throttled": "the service is busy (throttled); wait a few seconds and try again",
    "quota": "the request quota or rate limit is used up; try again later",
    "quota_exceeded": "your token budget is spent until it resets (/usage shows it)",
    "busy": "you have as many answers generating as allowed; wait for one to finish",
    "unavailable": "the service cannot be reached",
    "timeout": "the service took too long to answer",
    "internal": "the service failed on its side",
    "wrong_url": "this is not the API's URL; check the stage in REST_URL (e.g. https://…/v1)",
    "too_long": "the message is too long to send",
    "attachment_rejected": "the service does not take this file",
    "upload_refused": "the file storage refused the upload",
}


@dataclass
class ApiError(Exception):
    kind: Kind
    detail: str = ""
    status: int | None = None

    def __str__(self) -> str:
        words = _MESSAGES[self.kind]
        return f"{words}: {self.detail}" if self.detail else words


_STATUS_KINDS: dict[int, Kind] = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    429: "quota",  # API Gateway's usage-plan quota and rate limits
    503: "throttled",  # the function's answer once Bedrock or DynamoDB throttle
    504: "timeout",
}


def _kind_of_status(status: int, code: str | None) -> Kind:
    if code in _MESSAGES:
        return code  # type: ignore[return-value]
    return _STATUS_KINDS.get(status, "bad_request" if 400 <= status < 500 else "internal")


def _error_of(response: httpx.Response) -> ApiError:
    detail, code = response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # the function's one error shape
            detail, code = str(error.get("message", detail)), error.get("code")
        elif body.get("message"):  # API Gateway's own answers
            detail = str(body["message"])
    if code not in _MESSAGES and response.headers.get("retry-after"):
        code = "throttled"  # a 503 (or API Gateway's 429) that says when to retry
    return ApiError(_kind_of_status(response.status_code, code), detail, response.status_code)


def _upload_error(response: httpx.Response) -> ApiError:
    """S3's refusal of a presigned POST (an XML ``<Error>``) in words: its code and message."""
    found = {
        tag: re.search(rf"<{tag}>([^<]*)</{tag}>", response.text) for tag in ("Code", "Message")
    }
    said = ": ".join(match.group(1) for match in found.values() if match)
    detail = f"HTTP {response.status_code}" + (f", {said}" if said else "")
    return ApiError("upload_refused", detail, response.status_code)


def _frame_error(frame: dict[str, Any]) -> ApiError:
    """An ``error`` frame of the function, or API Gateway's own error frame, as an error."""
    code = frame.get("code")
    kind: Kind = code if code in _MESSAGES else "internal"  # type: ignore[assignment]
    return ApiError(kind, str(frame.get("message", "")))


@dataclass
class Turn:
    """One streamed answer as it arrives: iterate for text, then read usage and citations.

    The connection is shared by every turn, and frames of an answer the user abandoned may still
    arrive (the server stops at the next look for the cancel), so a turn takes only its own
    frames: the ``start`` that echoes its ``idempotency_key``, then frames with that
    ``message_id``; the others are handed to ``stray`` (the client's bookkeeping of abandoned
    turns) and otherwise dropped.
    """

    frames: Iterator[dict[str, Any]]
    session_id: str
    idempotency_key: str
    stray: Callable[[dict[str, Any]], None] = lambda frame: None
    message_id: str | None = None
    text: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    citations: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    # Earlier attachments the server could not send the model again (the start frame's).
    unavailable: list[dict[str, Any]] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        for frame in self.frames:
            if not self._ours(frame):
                self.stray(frame)
                continue
            kind = frame.get("type")
            if kind == "start":
                self.message_id = frame.get("message_id")
                self.unavailable = list(frame.get("unavailable_attachments") or [])
            elif kind == "chunk":
                content = str(frame.get("content", ""))
                self.text += content
                yield content
            elif kind == "end":
                self.usage = dict(frame.get("usage") or {})
                self.citations = list(frame.get("citations") or [])
                self.end = frame
                return
            elif kind == "error" or "type" not in frame:
                raise _frame_error(frame)

    def _ours(self, frame: dict[str, Any]) -> bool:
        """Whether ``frame`` belongs to this turn. A frame naming neither a key nor a message
        (API Gateway's own error frame) can only be taken as the current turn's."""
        key, message_id = frame.get("idempotency_key"), frame.get("message_id")
        if key is not None:
            return key == self.idempotency_key
        if message_id is not None:
            return self.message_id is not None and message_id == self.message_id
        return frame.get("type") in ("error", None)


class AssistantClient:
    """One user's view of one deployment.

    One WebSocket carries every turn. Each turn sends an ``idempotency_key`` of its own, so its
    frames can be told from those of a turn the user abandoned (:class:`Turn`); an abandoned
    turn is cancelled as soon as its ``message_id`` is known (:meth:`abandon`).
    """

    def __init__(self, rest_url: str, ws_url: str, token: str | None) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_url
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.rest_url, headers=headers, timeout=60)
        # Uploads go to S3's presigned POST, which must not see the token.
        self.uploads = httpx.Client(timeout=120)
        self._ws: ClientConnection | None = None
        self._abandoned_keys: set[str] = set()  # turns left before their start frame came
        self.titles: dict[str, str] = {}  # session_id -> the title the server gave it
        self.interrupt = threading.Event()  # set by the terminal's Ctrl-C during an answer

    def close(self) -> None:
        self.http.close()
        self.uploads.close()
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # ---- REST ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, f"{API_BASE_PATH}{path}", **kwargs)
        except httpx.TimeoutException as error:
            raise ApiError("timeout", str(error)) from None
        except httpx.HTTPError as error:
            raise ApiError("unavailable", f"{self.rest_url}: {error}") from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        """``GET /health``, which needs no token. API Gateway answers a path it does not know
        with 403 (``Missing Authentication Token`` for an unknown resource, ``Forbidden`` for an
        unknown stage), so a 403 here means the URL is wrong (most often the stage), never the
        token."""
        try:
            return self._call("GET", "/health")
        except ApiError as error:
            if error.status == 403:
                detail = f"{self.rest_url}{API_BASE_PATH}/health does not exist"
                raise ApiError("wrong_url", detail, error.status) from None
            raise

    def sessions(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._call("GET", "/sessions", params={"limit": limit})["sessions"]

    def create_session(
        self,
        title: str | None = None,
        *,
        model_id: str | None = None,
        knowledge_base_id: str | None = None,
    ) -> dict[str, Any]:
        body = {"title": title, "model_id": model_id, "knowledge_base_id": knowledge_base_id}
        return self._call(
            "POST", "/sessions", json={name: value for name, value in body.items() if value}
        )

    def session(self, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sessions/{quote(session_id, safe='')}")

    def update(self, session_id: str, **changes: str) -> dict[str, Any]:
        return self._call("PATCH", f"/sessions/{quote(session_id, safe='')}", json=changes)

    def rename(self, session_id: str, title: str) -> dict[str, Any]:
        return self.update(session_id, title=title)

    def delete(self, session_id: str) -> None:
        self._call("DELETE", f"/sessions/{quote(session_id, safe='')}")

    def usage(self) -> dict[str, Any]:
        return self._call("GET", "/usage")

    def knowledge_bases(self) -> list[dict[str, Any]]:
        return self._call("GET", "/knowledge-bases")["knowledge_bases"]

    def messages(self, session_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._call(
            "GET", f"/sessions/{quote(session_id, safe='')}/messages", params={"limit": limit}
        )["messages"]

    def last_question(self, session_id: str) -> dict[str, Any] | None:
        """The session's current last question (the one ``/retry`` and ``/edit`` replace):
        the last one not superseded, read through every page of the listing."""
        path = f"/sessions/{quote(session_id, safe='')}/messages"
        params: dict[str, Any] = {"limit": 100}
        last = None
        while True:
            page = self._call("GET", path, params=params)
            for message in page["messages"]:
                if message["role"] == "user" and not message.get("superseded_by"):
                    last = message
            if not page.get("next_token"):
                return last
            params["next_token"] = page["next_token"]

    def feedback(
        self, session_id: str, message_id: str, rating: str, comment: str | None = None
    ) -> dict[str, Any]:
        """Rate an answer; a second rating replaces the first."""
        body = {"rating": rating} | ({"comment": comment} if comment else {})
        path = f"/sessions/{quote(session_id, safe='')}/messages/{quote(message_id, safe='')}"
        return self._call("PUT", f"{path}/feedback", json=body)

    def export_pages(self, session_id: str, export_format: str) -> Iterator[httpx.Response]:
        """Every page of a session's export, following each page's ``Link: <...>; rel="next"``
        header (relative to the page's URL) until a page has none."""
        path = f"{API_BASE_PATH}/sessions/{quote(session_id, safe='')}/export"
        url = self.http.build_request("GET", path, params={"format": export_format}).url
        while True:
            try:
                response = self.http.get(url)
            except httpx.HTTPError as error:
                raise ApiError("unavailable", f"{self.rest_url}: {error}") from None
            if response.status_code >= 400:
                raise _error_of(response)
            yield response
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            url = response.url.join(following)

    def create_attachment(
        self, session_id: str, name: str, content_type: str, size: int
    ) -> dict[str, Any]:
        """An upload of one file for ``session_id``: its id and the presigned POST."""
        body = {"name": name, "content_type": content_type, "size": size}
        return self._call("POST", f"/sessions/{quote(session_id, safe='')}/attachments", json=body)

    def upload(self, form: dict[str, Any], name: str, content_type: str, data: bytes) -> None:
        """POST ``data`` to a presigned upload ``form`` (``{"url", "fields"}``): every field as
        given, the file last as ``file`` (S3 ignores fields after it)."""
        try:
            response = self.uploads.post(
                form["url"], data=form["fields"], files={"file": (name, data, content_type)}
            )
        except httpx.TimeoutException as error:
            raise ApiError("timeout", str(error)) from None
        except httpx.HTTPError as error:
            raise ApiError("unavailable", f"{form['url']}: {error}") from None
        if not response.is_success:
            raise _upload_error(response)

    # ---- WebSocket -----------------------------------------------------------------------

    def _socket(self) -> ClientConnection:
        if self._ws is None:
            headers = {"Authorization": self.token} if self.token else {}
            try:
                self._ws = connect(
                    self.ws_url,
                    additional_headers=headers,
                    open_timeout=15,
                    max_size=MAX_WEBSOCKET_MESSAGE_BYTES,
                    # Held open across turns and closed by close(), not by a with block.
                    legacy=True,
                )
            except InvalidStatus as error:
                status = error.response.status_code
                raise ApiError(_kind_of_status(status, None), f"HTTP {status}", status) from None
            except (OSError, WebSocketException) as error:
                raise ApiError("unavailable", f"{self.ws_url}: {error}") from None
        return self._ws

    def _send(self, request: dict[str, Any]) -> None:
        """Send one message, in frames of at most API Gateway's 32 KB; reconnect once when the
        connection was closed (10 minutes idle, or 2 hours old)."""
        fragments = list(_fragments(json.dumps(request, ensure_ascii=False)))
        try:
            self._socket().send(fragments if len(fragments) > 1 else fragments[0])
        except ConnectionClosed:
            self._ws = None
            self._socket().send(fragments if len(fragments) > 1 else fragments[0])

    def stream(
        self,
        session_id: str,
        content: str | None,
        *,
        replaces: str | None = None,
        attachments: list[str] | None = None,
    ) -> Turn:
        """Send one message; the returned :class:`Turn` yields the answer as it streams.
        ``replaces``: the last question's ``message_id``, answered again as a new version,
        with ``content`` as its edit, or with None as it was (regenerate). ``attachments``:
        the ids of files uploaded for this message."""
        request: dict[str, Any] = {"action": "sendMessage", "session_id": session_id}
        if content is not None:
            check(content)
            request["content"] = content
        if replaces is not None:
            request["replaces"] = replaces
        if attachments:
            request["attachments"] = attachments
        key = str(uuid.uuid4())
        self._send({**request, "idempotency_key": key})
        return Turn(self._frames(), session_id, key, stray=self._stray)

    def abandon(self, turn: Turn, wait: float = START_WAIT_SECONDS) -> None:
        """The user stopped waiting for ``turn``: cancel it on the server. Before its ``start``
        frame its ``message_id`` is unknown: wait up to ``wait`` seconds for it, and failing
        that, cancel it whenever its ``start`` shows up among a later turn's frames."""
        if turn.message_id is None:
            self._abandoned_keys.add(turn.idempotency_key)
            deadline = time.monotonic() + wait
            with contextlib.suppress(ApiError):
                while turn.idempotency_key in self._abandoned_keys:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    frame = self._next_frame(left)
                    if frame is not None:
                        self._stray(frame)
            return
        self.cancel(turn.message_id)

    def cancel(self, message_id: str) -> None:
        """Ask the server to stop generating ``message_id``; its ``end`` frame says how the
        answer was stored. Best effort: a connection that is gone has nothing to cancel."""
        with contextlib.suppress(ConnectionClosed, ApiError):
            self._send({"action": "cancel", "message_id": message_id})

    def title(self, session_id: str, wait: float = TITLE_WAIT_SECONDS) -> str | None:
        """The title the server gave ``session_id`` (its ``title`` frame, which follows the
        first answer's ``end``), waiting up to ``wait`` seconds for it; None if none came."""
        deadline = time.monotonic() + wait
        with contextlib.suppress(ApiError):
            while session_id not in self.titles:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                frame = self._next_frame(min(left, RECV_SLICE_SECONDS))
                if frame is not None:
                    self._stray(frame)
        return self.titles.get(session_id)

    def _stray(self, frame: dict[str, Any]) -> None:
        """A frame of another turn: the start of an abandoned one gets it cancelled; a title
        is kept for :meth:`title`."""
        if frame.get("type") == "title" and isinstance(frame.get("title"), str):
            self.titles[str(frame.get("session_id"))] = frame["title"]
            return
        key = frame.get("idempotency_key")
        if frame.get("type") == "start" and key in self._abandoned_keys:
            self._abandoned_keys.discard(key)
            if frame.get("message_id"):
                self.cancel(str(frame["message_id"]))

    def _frames(self) -> Iterator[dict[str, Any]]:
        """Frames as they arrive; ``KeyboardInterrupt`` between two frames once
        :attr:`interrupt` is set (by the terminal's Ctrl-C handler), so no frame is lost."""
        waited = 0.0
        while True:
            if self.interrupt.is_set():
                self.interrupt.clear()
                raise KeyboardInterrupt
            frame = self._next_frame(RECV_SLICE_SECONDS)
            if frame is None:
                waited += RECV_SLICE_SECONDS
                if waited >= TURN_TIMEOUT_SECONDS:
                    raise ApiError("timeout", "no answer frame for 3 minutes")
                continue
            waited = 0.0
            yield frame

    def _next_frame(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON object frame, or None when none came within ``timeout``."""
        try:
            raw = self._socket().recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as error:
            self._ws = None
            raise _closed(error) from None
        try:
            frame = json.loads(raw)
        except ValueError:
            return None
        return frame if isinstance(frame, dict) else None


def check(content: str) -> None:
    """:class:`ApiError` (``too_long`` or ``bad_request``) for a message the API would refuse,
    before anything is sent or created for it."""
    length = too_long(content)
    if length is not None:
        raise ApiError("too_long", length)
    problem = content_problem(content)
    if problem is not None:
        raise ApiError("bad_request", problem)


def _fragments(message: str) -> Iterator[str]:
    """``message`` in pieces of at most :data:`MAX_FRAME_BYTES` in UTF-8, cut between
    characters."""
    piece: list[str] = []
    size = 0
    for character in message:
        width = len(character.encode("utf-8", "surrogatepass"))
        if size + width > MAX_FRAME_BYTES:
            yield "".join(piece)
            piece, size = [], 0
        piece.append(character)
        size += width
    yield "".join(piece)


def _closed(error: ConnectionClosed) -> ApiError:
    """A closed WebSocket in words; 1009 is the server refusing a message as too big."""
    code = error.rcvd.code if error.rcvd is not None else None
    if code == CloseCode.MESSAGE_TOO_BIG:
        return ApiError("too_long", "the server closed the connection: the message is too big")
    return ApiError("unavailable", f"the WebSocket closed ({error})")
