"""One chat completion: a turn of :class:`~functions.chat.service.ChatService`, stored in a
session or not, run once per ``Idempotency-Key``, answered as one body or as SSE chunks.

**Sessions.** Without :data:`~functions.contract.OPENAI_SESSION_HEADER` a request is
stateless: the client's messages are the whole conversation, nothing is stored, and the turn
is budgeted, leased, guarded and measured like any other. With it, the turn belongs to that
session of the caller's (404 otherwise): the question (the last message) and the answer are
stored, numbered and listed like a REST or WebSocket turn, and the model sees the session's
stored history, not the request's: the request's earlier user and assistant messages are not
sent (the response's :data:`~functions.contract.OPENAI_REPLACED_MESSAGES_HEADER` says how
many), while its system messages still apply to this turn (they are not stored).

Everything blocking here (DynamoDB, Bedrock) runs on a worker thread with the invocation's
deadline bound; a stream's lines are produced on their own thread (:mod:`functions.openai_api.app`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from functions.chat.service import ChatReply, ChatService, ChatStream, Conversation
from functions.contract import (
    OPENAI_KNOWLEDGE_BASE_HEADER,
    OPENAI_REPLACED_MESSAGES_HEADER,
    OPENAI_SESSION_HEADER,
)
from functions.core import deadline
from functions.core.aws_errors import for_client
from functions.core.observability import logger
from functions.data.idempotency import Claim, IdempotencyStore, Scope, checked_key, once
from functions.domain.models import Message
from functions.openai_api.errors import InvalidParameter, error_body
from functions.openai_api.invocation import lease_seconds
from functions.openai_api.schemas import (
    Completion,
    CompletionRequest,
    finish_reason,
    usage_body,
)

OPERATION = "POST /v1/chat/completions"
# Kept back from the deadline once a stream stops being read: store the answer, end the stream.
STOP_MARGIN_SECONDS = deadline.STORE_SECONDS + deadline.ANSWER_SECONDS
_KNOWLEDGE_BASE_ID = re.compile(r"[0-9A-Za-z]{10}")
DONE = b"data: [DONE]\n\n"


def sse(data: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as JSON."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


@dataclass(frozen=True)
class Binding:
    """The extension headers: the session to store the turn in, the knowledge base of a
    stateless turn, the idempotency key."""

    session_id: str | None = None
    knowledge_base_id: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Binding:
        session_id = headers.get(OPENAI_SESSION_HEADER) or None
        knowledge_base_id = headers.get(OPENAI_KNOWLEDGE_BASE_HEADER) or None
        key = headers.get("Idempotency-Key")
        if session_id is not None and knowledge_base_id is not None:
            raise InvalidParameter(
                OPENAI_KNOWLEDGE_BASE_HEADER,
                f"{OPENAI_KNOWLEDGE_BASE_HEADER} is for stateless requests: a session "
                "answers from its own knowledge base (set it with PATCH /api/v1/sessions/{id})",
            )
        if knowledge_base_id is not None and not _KNOWLEDGE_BASE_ID.fullmatch(knowledge_base_id):
            raise InvalidParameter(
                OPENAI_KNOWLEDGE_BASE_HEADER,
                f"{OPENAI_KNOWLEDGE_BASE_HEADER} must be a knowledge base id: 10 letters or digits",
            )
        return cls(session_id, knowledge_base_id, None if key is None else checked_key(key))


@dataclass(frozen=True)
class Turn:
    """A request checked against the caller's session (if bound) and the configuration."""

    chat: ChatService
    user_id: str
    request: CompletionRequest
    binding: Binding

    @classmethod
    def resolve(
        cls, chat: ChatService, user_id: str, request: CompletionRequest, binding: Binding
    ) -> Turn:
        """The turn, or the error for a model or knowledge base it may not use (a session
        that is not the caller's is :class:`~functions.domain.errors.NotFound`)."""
        settings = chat.settings
        if binding.session_id is not None:
            session = chat.store.sessions.get(user_id, binding.session_id)
            model = (
                session.model_id
                if session.model_id in settings.bedrock_models
                else settings.default_model
            )
            if request.model != model:
                raise InvalidParameter(
                    "model", f"session {session.session_id} answers with {model}: send that model"
                )
        elif request.model not in settings.bedrock_models:
            allowed = ", ".join(settings.bedrock_models)
            raise InvalidParameter("model", f"model must be one of: {allowed}")
        if request.attachments and binding.session_id is None:
            raise InvalidParameter(
                OPENAI_SESSION_HEADER,
                f"file parts name uploads of a session: send {OPENAI_SESSION_HEADER} with them",
            )
        if binding.knowledge_base_id is not None and not settings.knowledge_bases_enabled:
            raise InvalidParameter(
                OPENAI_KNOWLEDGE_BASE_HEADER, "knowledge bases are not enabled on this deployment"
            )
        return cls(chat, user_id, request, binding)

    @property
    def headers(self) -> dict[str, str]:
        if self.binding.session_id is None:
            return {}
        return {
            OPENAI_SESSION_HEADER: self.binding.session_id,
            OPENAI_REPLACED_MESSAGES_HEADER: str(len(self.request.history)),
        }

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, OPERATION, self.binding.idempotency_key)

    def fingerprint(self) -> dict[str, Any]:
        return self.request.fingerprint() | {
            "session_id": self.binding.session_id,
            "knowledge_base_id": self.binding.knowledge_base_id,
        }

    def conversation(self) -> Conversation:
        history = tuple(
            Message(
                session_id="",
                seq=seq,
                message_id="",
                role=role,
                content=content,
                created_at="",
            )
            for seq, (role, content) in enumerate(self.request.history, start=1)
        )
        return Conversation(
            self.request.model, history, self.request.question, self.binding.knowledge_base_id
        )

    def reply(self, lease: int) -> ChatReply:
        options = self.request.options
        if self.binding.session_id is None:
            return self.chat.reply_unstored(
                self.user_id, self.conversation(), lease_seconds=lease, options=options
            )
        return self.chat.reply(
            self.user_id,
            self.binding.session_id,
            self.request.question,
            lease_seconds=lease,
            options=options,
            attachments=self.request.attachments,
        )

    def stream(self, bound: deadline.Deadline) -> ChatStream:
        def time_left() -> float:
            return bound.remaining() - STOP_MARGIN_SECONDS

        options, lease = self.request.options, lease_seconds(bound)
        if self.binding.session_id is None:
            return self.chat.stream_unstored(
                self.user_id, self.conversation(), time_left, lease_seconds=lease, options=options
            )
        return self.chat.stream(
            self.user_id,
            self.binding.session_id,
            self.request.question,
            time_left,
            lease_seconds=lease,
            options=options,
            attachments=self.request.attachments,
        )

    def logged(self, reply: ChatReply) -> None:
        logger.info(
            "chat completion",
            extra={
                "session_id": self.binding.session_id,
                "seq": reply.message.seq if self.binding.session_id else None,
                "status": reply.message.status,
                "stop_reason": reply.message.stop_reason,
                "usage": reply.usage.to_dict(),
                "openai_user": self.request.user,
            },
        )


def _completion(message_id: str, model: str) -> Completion:
    return Completion(f"chatcmpl-{message_id}", int(time.time()), model)


def answer(turn: Turn, bound: deadline.Deadline) -> dict[str, Any]:
    """The non-streaming body (``chat.completion``), or a repeat's stored one."""

    def run() -> dict[str, Any]:
        reply = turn.reply(lease)
        turn.logged(reply)
        completion = _completion(reply.message.message_id, turn.request.model)
        return completion.body(reply.message.content, reply.message.stop_reason, reply.usage)

    lease = lease_seconds(bound)
    store = turn.chat.store.idempotency
    return once(store, turn.scope, turn.fingerprint(), run, lease_seconds=lease).result


def start_stream(turn: Turn, bound: deadline.Deadline) -> Iterator[bytes]:
    """Start the turn (errors before its first delta raise here, as HTTP errors) and return
    its SSE lines; a repeat's stored answer is replayed as the same kind of lines."""
    store = turn.chat.store.idempotency
    claim: Claim | None = None
    if turn.binding.idempotency_key is not None:
        assert store is not None, "chat functions have the idempotency table"
        outcome = store.claim(
            turn.user_id,
            OPERATION,
            turn.binding.idempotency_key,
            turn.fingerprint(),
            now=int(time.time()),
            lease_seconds=lease_seconds(bound),
        )
        if not isinstance(outcome, Claim):
            return replay(outcome, include_usage=turn.request.include_usage)
        claim = outcome
    try:
        stream = turn.stream(bound)
    except BaseException:
        _release(store, claim)
        raise
    return _lines(turn, stream, store, claim)


def _lines(
    turn: Turn, stream: ChatStream, store: IdempotencyStore | None, claim: Claim | None
) -> Iterator[bytes]:
    """The answer's chunks as the model writes them; the stored answer's status, then usage
    (with ``include_usage``) and ``[DONE]``. A failure mid-stream ends it with an error event
    in OpenAI's shape (and no ``[DONE]``)."""
    completion = _completion(stream.message_id, turn.request.model)
    yield sse(completion.chunk({"role": "assistant", "content": ""}))
    try:
        for delta in stream:
            yield sse(completion.chunk({"content": delta}))
        reply = stream.complete()
    except Exception as error:
        _release(store, claim)
        yield sse(error_body(for_client(error)))
        return
    turn.logged(reply)
    yield sse(completion.chunk({}, finish_reason(reply.message.stop_reason)))
    if turn.request.include_usage:
        yield sse(completion.usage_chunk(usage_body(reply.usage)))
    if claim is not None and store is not None:
        body = completion.body(reply.message.content, reply.message.stop_reason, reply.usage)
        store.complete(claim, body)
    yield DONE


def replay(body: Mapping[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """A stored completion as the chunks it was (or would have been) streamed as."""
    completion = Completion(body["id"], body["created"], body["model"])
    [choice] = body["choices"]
    yield sse(completion.chunk({"role": "assistant", "content": ""}))
    if choice["message"]["content"]:
        yield sse(completion.chunk({"content": choice["message"]["content"]}))
    yield sse(completion.chunk({}, choice["finish_reason"]))
    if include_usage:
        yield sse(completion.usage_chunk(body["usage"]))
    yield DONE


def _release(store: IdempotencyStore | None, claim: Claim | None) -> None:
    """Give the key back after a failure, so a retry with it runs again; a failure to do so
    is logged (the request's own error is the one to report, and the claim's lease runs out)."""
    if store is None or claim is None:
        return
    try:
        store.release(claim)
    except Exception:
        logger.exception("releasing an idempotency key failed")
