"""The API client: REST with httpx, the streamed turn over WebSocket with the websockets library.

Every failure becomes an :class:`ApiError` whose ``kind`` is one of a few plain categories
(``unauthorized``, ``forbidden``, ``not_found``, ``bad_request``, ``throttled``, ``quota``,
``quota_exceeded``, ``busy``, ``unavailable``, ``timeout``, ``internal``), so the terminal can
say what happened in words whether API Gateway, the function or the network answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

Kind = Literal[
    "unauthorized",
    "forbidden",
    "not_found",
    "bad_request",
    "throttled",
    "quota",
    "quota_exceeded",
    "busy",
    "unavailable",
    "timeout",
    "internal",
]
TURN_TIMEOUT_SECONDS = 180  # between two frames of one answer

_MESSAGES: dict[Kind, str] = {
    "unauthorized": "the token was refused (missing, expired or from another issuer)",
    "forbidden": "this token may not do that",
    "not_found": "no such session (it may have been deleted, or belong to someone else)",
    "bad_request": "the request was refused as invalid",
    "throttled": "the service is busy (throttled); wait a few seconds and try again",
    "quota": "the request quota or rate limit is used up; try again later",
    "quota_exceeded": "your token budget is spent until it resets (/usage shows it)",
    "busy": "you have as many answers generating as allowed; wait for one to finish",
    "unavailable": "the service cannot be reached",
    "timeout": "the service took too long to answer",
    "internal": "the service failed on its side",
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


@dataclass
class Turn:
    """One streamed answer as it arrives: iterate for text, then read usage and citations."""

    frames: Iterator[dict[str, Any]]
    session_id: str
    message_id: str | None = None
    text: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    citations: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        for frame in self.frames:
            kind = frame.get("type")
            if kind == "start":
                self.message_id = frame.get("message_id")
            elif kind == "chunk":
                content = str(frame.get("content", ""))
                self.text += content
                yield content
            elif kind == "end":
                self.usage = dict(frame.get("usage") or {})
                self.citations = list(frame.get("citations") or [])
                self.end = frame
                return
            elif kind == "error":
                code = frame.get("code")
                kind_ = code if code in _MESSAGES else "internal"
                raise ApiError(kind_, str(frame.get("message", "")))  # type: ignore[arg-type]
            elif "message" in frame and "type" not in frame:  # API Gateway's own error frame
                raise ApiError("internal", str(frame["message"]))


class AssistantClient:
    """One user's view of one deployment."""

    def __init__(self, rest_url: str, ws_url: str, token: str | None) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_url
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.rest_url, headers=headers, timeout=60)
        self._ws: ClientConnection | None = None

    def close(self) -> None:
        self.http.close()
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # ---- REST ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, f"/api/v1{path}", **kwargs)
        except httpx.TimeoutException as error:
            raise ApiError("timeout", str(error)) from None
        except httpx.HTTPError as error:
            raise ApiError("unavailable", f"{self.rest_url}: {error}") from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def sessions(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._call("GET", "/sessions", params={"limit": limit})["sessions"]

    def create_session(self, title: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/sessions", json={"title": title} if title else {})

    def session(self, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sessions/{session_id}")

    def rename(self, session_id: str, title: str) -> dict[str, Any]:
        return self._call("PATCH", f"/sessions/{session_id}", json={"title": title})

    def delete(self, session_id: str) -> None:
        self._call("DELETE", f"/sessions/{session_id}")

    def usage(self) -> dict[str, Any]:
        return self._call("GET", "/usage")

    def messages(self, session_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", f"/sessions/{session_id}/messages", params={"limit": limit})[
            "messages"
        ]

    # ---- WebSocket -----------------------------------------------------------------------

    def _socket(self) -> ClientConnection:
        if self._ws is None:
            headers = {"Authorization": self.token} if self.token else {}
            try:
                self._ws = connect(self.ws_url, additional_headers=headers, open_timeout=15)
            except InvalidStatus as error:
                status = error.response.status_code
                raise ApiError(_kind_of_status(status, None), f"HTTP {status}", status) from None
            except (OSError, WebSocketException) as error:
                raise ApiError("unavailable", f"{self.ws_url}: {error}") from None
        return self._ws

    def stream(self, session_id: str, content: str) -> Turn:
        """Send one message; the returned :class:`Turn` yields the answer as it streams."""
        request = json.dumps(
            {"action": "sendMessage", "session_id": session_id, "content": content}
        )
        try:
            self._socket().send(request)
        except ConnectionClosed:  # idle for 10 minutes, or 2 hours old: API Gateway closed it
            self._ws = None
            self._socket().send(request)
        return Turn(self._frames(), session_id)

    def _frames(self) -> Iterator[dict[str, Any]]:
        socket = self._socket()
        while True:
            try:
                raw = socket.recv(timeout=TURN_TIMEOUT_SECONDS)
            except TimeoutError:
                raise ApiError("timeout", "no answer frame for 3 minutes") from None
            except ConnectionClosed as error:
                self._ws = None
                raise ApiError("unavailable", f"the WebSocket closed ({error})") from None
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if isinstance(frame, dict):
                yield frame
