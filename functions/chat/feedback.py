"""Feedback on answers: a caller's rating of one answer of their own session, stored on the
answer and counted per model."""

from __future__ import annotations

from functions.core.clock import timestamp, utc_now
from functions.core.observability import record_feedback
from functions.data.messages import MESSAGE_NOT_FOUND
from functions.data.turns import Store
from functions.domain.errors import Conflict, NotFound
from functions.domain.models import Feedback, FeedbackCategory, Message, Rating


def rate(
    store: Store,
    user_id: str,
    session_id: str,
    message_id: str,
    rating: Rating,
    *,
    category: FeedbackCategory | None = None,
    comment: str | None = None,
) -> Message:
    """Store the caller's feedback on the answer ``message_id`` (replacing any earlier one) and
    count its rating for the answer's model; the answer as stored.

    Another user's session, or a message not in the session, is :class:`NotFound`; a question or
    a ``failed`` marker (nothing was answered) cannot be rated: :class:`Conflict`. A changed
    rating counts the new one only: the metrics count ratings given, not the current ones.
    """
    session = store.sessions.get(user_id, session_id)
    found = store.messages.find(session_id, message_id)
    if found is None:
        raise NotFound(MESSAGE_NOT_FOUND)
    if found.role != "assistant":
        raise Conflict(f"message {message_id} is a question; only answers can be rated")
    if found.status == "failed":
        raise Conflict(f"message {message_id} is a failed answer, with nothing to rate")
    feedback = Feedback(
        rating=rating, given_at=timestamp(utc_now()), category=category, comment=comment or None
    )
    answer = store.messages.set_feedback(session_id, found.seq, feedback)
    record_feedback(answer.model_id or session.model_id, rating)
    return answer
