"""Posting frames to one WebSocket connection without holding up the model stream.

Each ``post_to_connection`` is an HTTPS round trip (5-40 ms in region) while a model emits a
delta every 10-15 ms, so posting one frame per delta from the reading loop falls behind the
model by seconds. Instead the reader hands text to a :class:`StreamSender`, whose own thread
keeps one POST in flight at a time (so frames stay in order) and coalesces whatever text
arrived meanwhile into the next frame:

* the first text goes out at once, so the time to the first token is the model's;
* after that, at most one text frame per flush interval (0: as fast as POSTs return), each
  split to API Gateway's 32 KB frame limit;
* control frames (``start``, ``end``, ``error``) keep their place in the order, and closing
  the sender flushes the pending text at once.

The sender thread runs in a copy of the caller's context variables and with the caller's X-Ray
trace entity, so its POSTs appear in the invocation's trace and its logs carry the request's
keys.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from functions.core.aws_errors import error_code
from functions.core.observability import logger, tracer
from functions.websocket import frames

Frame = dict[str, Any]


@dataclass
class Poster:
    """Posts frames to one connection, synchronously, until it stops accepting them.

    ``gone`` means API Gateway said the client disconnected; any other posting failure also
    stops posting (the answer is still stored) but leaves the connection record alone.
    """

    client: Any
    connection_id: str
    open: bool = True
    gone: bool = False
    posts: int = 0

    def send(self, frame: Frame) -> bool:
        """Post ``frame``; False once the connection no longer accepts frames."""
        if not self.open:
            return False
        self.posts += 1
        try:
            self.client.post_to_connection(
                ConnectionId=self.connection_id, Data=frames.encode(frame)
            )
        except (ClientError, BotoCoreError) as error:
            self.open = False
            self.gone = isinstance(error, ClientError) and error_code(error) == "GoneException"
            if not self.gone:
                logger.warning("posting to the connection failed", extra={"error": str(error)})
            return False
        return True


class _Text:
    """Text accumulated since the last chunk frame."""

    def __init__(self) -> None:
        self.parts: list[str] = []


class StreamSender:
    """One turn's frames, posted from a thread of its own; see the module docstring.

    Use it as a context manager: leaving the block flushes what is pending and waits for the
    last POST, so frames sent afterwards (an error) come after every frame of the stream.
    """

    def __init__(
        self,
        poster: Poster,
        chunks: Callable[[str], Iterator[Frame]],
        flush_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poster = poster
        self._chunks = chunks
        self._interval = flush_interval
        self._clock = clock
        self._queue: deque[Frame | _Text] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._last_text_at: float | None = None
        trace_entity = None if tracer.disabled else tracer.provider.get_trace_entity()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, trace_entity), name="frame-sender", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, text: str) -> None:
        """Queue ``text`` for the next chunk frame; never waits for the network."""
        with self._ready:
            tail = self._queue[-1] if self._queue else None
            if not isinstance(tail, _Text):
                tail = _Text()
                self._queue.append(tail)
            tail.parts.append(text)
            self._ready.notify()

    def send(self, frame: Frame) -> None:
        """Queue a control frame after everything queued so far."""
        with self._ready:
            self._queue.append(frame)
            self._ready.notify()

    def close(self) -> None:
        """Flush at once, then wait until the last frame is posted (or posting stopped)."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self, trace_entity: Any) -> None:
        if trace_entity is not None:
            tracer.provider.set_trace_entity(trace_entity)
        while (batch := self._take()) is not None:
            for item in batch:
                if isinstance(item, _Text):
                    self._last_text_at = self._clock()
                    for frame in self._chunks("".join(item.parts)):
                        if not self._poster.send(frame):
                            break
                else:
                    self._poster.send(item)

    def _take(self) -> list[Frame | _Text] | None:
        """Everything queued, once it may go out; None when closed and drained."""
        with self._ready:
            while True:
                if self._queue:
                    wait = self._wait()
                    if wait <= 0:
                        batch = list(self._queue)
                        self._queue.clear()
                        return batch
                elif self._closing:
                    return None
                else:
                    wait = None
                self._ready.wait(wait)

    def _wait(self) -> float:
        """Seconds until the queue may go out (lock held): text alone waits out the flush
        interval; a control frame (``end``) or closing flushes it at once."""
        if (
            self._closing
            or self._last_text_at is None
            or any(not isinstance(item, _Text) for item in self._queue)
        ):
            return 0.0
        return self._last_text_at + self._interval - self._clock()
