"""Session titles: a short name for an untitled session, written by a small model after its
first complete answer, as bedrock-chat and LibreChat name their conversations.

A title is a convenience, never worth a turn: it is generated only when the session has none
(:func:`~functions.domain.models.untitled`) and titles are on
(:attr:`ChatSettings.title_model_id`), with one ``converse`` call of at most
:data:`MAX_TITLE_TOKENS` at temperature 0 on a short fixed prompt, from the exchange truncated
to :data:`EXCERPT_CHARS` characters a side. Its tokens are held and settled in the user's
budget like a turn's (not counted as one): a user whose budget is spent gets no title. The call
makes one attempt with a short read timeout (:func:`functions.core.aws.quick_client`), and is
given up while the invocation still has the time to answer. Whatever goes wrong (the model
failed, throttled, was slow or blocked by the guardrail, the output is empty) is logged, counted
(:attr:`Metric.TITLE_FAILED`), and there is simply no title: the next turn tries again.

The title is stored only while the session still has none, so a title its user set meanwhile
wins, and a session deleted meanwhile stays deleted (:meth:`SessionRepository.name`).

When: the WebSocket sends the answer's ``end`` frame first, then generates the title from the
question and the answer, then sends a ``title`` frame. A REST response cannot go out before the
work is done, so a REST turn (and a session-bound turn of the OpenAI-compatible API) starts the
title from the question alone on a worker thread as soon as the question is stored
(:class:`PendingTitle`), and collects it once the answer is stored, waiting at most
:data:`REST_WAIT_SECONDS` for it.
"""

from __future__ import annotations

import math
import queue
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from functions.contract import Metric
from functions.core import aws, deadline
from functions.core.observability import GUARDRAIL_INTERVENED, count, logger
from functions.domain.errors import QuotaExceeded, UpstreamError
from functions.domain.models import Usage, content_bytes

if TYPE_CHECKING:
    from functions.core.chat_settings import ChatSettings
    from functions.data.quota import UsageLedger
    from functions.data.sessions import SessionRepository

PROMPT = (
    "You name conversations. Reply with a title of at most six words for the conversation "
    "below, in its language: the title alone, without quotes or a final period."
)
MAX_TITLE_TOKENS = 20  # six words and then some; the model's output is capped there
MAX_TITLE_CHARS = 80
EXCERPT_CHARS = 2_000  # of the question and of the answer: their openings say what it is about
# One attempt, read for at most this long: a small model names a conversation in well under a
# second, and a title not ready by then is not worth waiting for.
READ_TIMEOUT_SECONDS = 5.0
# How long a REST turn waits, once its answer is stored, for a title still being generated.
REST_WAIT_SECONDS = 1.0
BYTES_PER_TOKEN = 4  # the chat service's estimate (functions.chat.service)
# Quotation marks a model may wrap a title in, by code point: straight, typographic, guillemets.
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e"
_LABEL = re.compile(r"^(title|titre|titel|título)\s*:\s*", re.IGNORECASE)


def title_request(
    settings: ChatSettings, question: str, answer: str | None = None
) -> dict[str, Any]:
    """The ``converse`` request of a title: the prompt as system text, the exchange (or the
    question alone) as the one user message, the guardrail on it as on every model call."""
    text = f"Question:\n{question[:EXCERPT_CHARS]}"
    if answer:
        text += f"\n\nAnswer:\n{answer[:EXCERPT_CHARS]}"
    request: dict[str, Any] = {
        "modelId": settings.title_model_id,
        "system": [{"text": PROMPT}],
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"maxTokens": MAX_TITLE_TOKENS, "temperature": 0},
    }
    if settings.guardrail is not None:
        request["guardrailConfig"] = {
            "guardrailIdentifier": settings.guardrail.identifier,
            "guardrailVersion": settings.guardrail.version,
        }
    return request


def sanitize(text: str) -> str | None:
    """The model's output as a title: its first non-empty line, without a ``Title:`` label,
    surrounding quotes or markup, or a final period, at most :data:`MAX_TITLE_CHARS`
    characters (cut at a word); None when nothing is left."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = " ".join(line.replace("**", " ").split()).lstrip("#").strip()
    line = _LABEL.sub("", line).strip().strip(_QUOTES).strip()
    if len(line) > MAX_TITLE_CHARS:
        cut = line[: MAX_TITLE_CHARS + 1]
        line = cut.rsplit(" ", 1)[0] if " " in cut else cut[:MAX_TITLE_CHARS]
    return line.rstrip(" .,;:-") or None


class Titles:
    """Generate and store session titles for one function's chat service."""

    def __init__(
        self, settings: ChatSettings, ledger: UsageLedger, sessions: SessionRepository
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._sessions = sessions

    @property
    def enabled(self) -> bool:
        return bool(self._settings.title_model_id)

    def generate(self, user_id: str, question: str, answer: str | None = None) -> str | None:
        """A title for the exchange, or None (budget spent, or the call failed: logged and
        counted). Never raises."""
        request = title_request(self._settings, question, answer)
        try:
            reservation = self._ledger.reserve(user_id, _estimate(request))
        except QuotaExceeded:
            logger.info("no session title: the user's token budget is spent")
            return None
        except Exception:
            return _failed("reserving the title's tokens failed")
        if reservation.max_tokens is not None:
            request["inferenceConfig"]["maxTokens"] = min(MAX_TITLE_TOKENS, reservation.max_tokens)
        usage = None
        try:
            response = deadline.bounded(
                lambda: aws.quick_client("bedrock-runtime", READ_TIMEOUT_SECONDS).converse(
                    **request
                ),
                keep=deadline.DYNAMODB_ATTEMPT_SECONDS,
                late=lambda: UpstreamError("the title model did not answer in time"),
            )
            usage = Usage.of_bedrock(response.get("usage"))
        except Exception:
            return _failed("generating a session title failed")
        finally:
            self._ledger.settle(reservation, usage, turn=False)
        if response.get("stopReason") == GUARDRAIL_INTERVENED:
            logger.info("no session title: the guardrail blocked it")
            return None
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        title = sanitize("".join(block.get("text", "") for block in blocks))
        if title is None:
            logger.warning("the title model answered no usable title")
            count(Metric.TITLE_FAILED)
        return title

    def store(self, user_id: str, session_id: str, title: str) -> bool:
        """Name the session if it still has no title; False otherwise or on a failure (logged
        and counted). Never raises."""
        try:
            return self._sessions.name(user_id, session_id, title)
        except Exception:
            _failed("storing a session title failed")
            return False

    def start(self, user_id: str, question: str) -> PendingTitle:
        """Generate a title from the question alone, on a worker thread (REST)."""
        return PendingTitle(lambda: self.generate(user_id, question))


class PendingTitle:
    """A title generated on a daemon thread beside the answer (:func:`deadline.beside`: the
    invocation's deadline and trace); a title not collected in time is dropped, and the
    thread finishes on its own (its tokens are settled either way)."""

    def __init__(self, generate: Callable[[], str | None]) -> None:
        self._outcome = deadline.beside(generate, "session-title")

    def result(self) -> str | None:
        """The title, waiting at most :data:`REST_WAIT_SECONDS`, and never into the time the
        invocation keeps for storing it and answering."""
        wait = REST_WAIT_SECONDS
        bound = deadline.current()
        if bound is not None:
            wait = min(wait, bound.remaining() - bound.needs(deadline.DYNAMODB_ATTEMPT_SECONDS))
        try:
            generated, value = self._outcome.get(timeout=max(wait, 0.0))
        except queue.Empty:
            return _failed("the session title was not ready in time; dropped")
        if not generated:  # generate never raises; a bug must not fail the turn
            logger.error("the title thread failed", exc_info=value)
            return None
        return value


def _estimate(request: dict[str, Any]) -> int:
    texts = [request["system"][0]["text"], request["messages"][0]["content"][0]["text"]]
    return sum(math.ceil(content_bytes(text) / BYTES_PER_TOKEN) for text in texts)


def _failed(what: str) -> None:
    """Log (with the exception being handled, if any) and count a title that is not to be."""
    logger.warning(what, exc_info=sys.exc_info()[0] is not None)
    count(Metric.TITLE_FAILED)
