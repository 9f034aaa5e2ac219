"""A session's export, page by page, in JSON or Markdown (``GET .../export``).

Each page is one Lambda response, which may not exceed 6 MB as the Lambda service encodes it
(the body is a JSON string there, non-ASCII escaped as ``\\uXXXX``): pages are cut between
whole messages at :data:`MAX_PAGE_BYTES` of that encoding, leaving room for the envelope.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from functions.domain.models import Message, Session
from functions.main.schemas import MessageOut, SessionExport, SessionOut

ExportFormat = Literal["json", "md"]
MAX_PAGE_BYTES = 4_000_000
MAX_PAGE_MESSAGES = 1_000
ROLE_NAMES = {"user": "User", "assistant": "Assistant"}
EXCERPT_CHARS = 200  # of a cited passage, in Markdown


def wire_bytes(text: str) -> int:
    """``text``'s size as the Lambda response carries it: a JSON string, ASCII-escaped."""
    return len(json.dumps(text))


class Renderer(ABC):
    """One export format: how a message and a page are written."""

    media_type: ClassVar[str]

    def message_size(self, message: Message) -> int:
        """What ``message`` adds to a page, as :data:`MAX_PAGE_BYTES` counts."""
        return wire_bytes(self.message(message))

    @abstractmethod
    def message(self, message: Message) -> str: ...

    @abstractmethod
    def page(
        self, session: Session, messages: list[Message], next_token: str | None, *, first: bool
    ) -> str:
        """A whole page; ``first``: the export's first page, which carries the title."""


class JsonRenderer(Renderer):
    media_type = "application/json"

    def message(self, message: Message) -> str:
        return MessageOut.of(message).model_dump_json()

    def page(
        self, session: Session, messages: list[Message], next_token: str | None, *, first: bool
    ) -> str:
        export = SessionExport(
            session=SessionOut.of(session),
            messages=[MessageOut.of(message) for message in messages],
            next_token=next_token,
        )
        return export.model_dump_json()


class MarkdownRenderer(Renderer):
    media_type = "text/markdown; charset=utf-8"

    def message(self, message: Message) -> str:
        """One message: a heading with its role and time, which version of its turn it is
        when there are several (a replaced one is marked, so a reader can tell the current
        conversation), its status when it is not complete, its content, the files it was sent
        with (their names: the bytes are not exported), the citations under it as a numbered
        list, and the caller's rating."""
        parts = [f"## {ROLE_NAMES[message.role]} · {message.created_at}"]
        if message.superseded_by:
            parts.append(f"*Version {message.version}, replaced by a later version*")
        elif message.version > 1:
            parts.append(f"*Version {message.version}*")
        if message.status != "complete":
            reason = f" ({message.stop_reason})" if message.stop_reason else ""
            parts.append(f"*Status: {message.status}{reason}*")
        if message.content:
            parts.append(message.content)
        if message.attachments:
            parts.append(
                "Attachments:\n\n"
                + "\n".join(
                    f"- `{ref.name}` ({ref.content_type}, {ref.size:,} bytes)"
                    for ref in message.attachments
                )
            )
        if message.citations:
            parts.append(
                "Sources:\n\n"
                + "\n".join(
                    f"{citation.index}. {_cited(citation.source, citation.text)}"
                    for citation in message.citations
                )
            )
        if message.feedback is not None:
            feedback = message.feedback
            about = f" ({feedback.category})" if feedback.category else ""
            comment = f": {feedback.comment}" if feedback.comment else ""
            parts.append(f"*Rated {feedback.rating}{about}{comment}*")
        return "\n\n".join(parts) + "\n\n"

    def page(
        self, session: Session, messages: list[Message], next_token: str | None, *, first: bool
    ) -> str:
        head = ""
        if first:
            head = (
                f"# {session.title}\n\n"
                f"Session `{session.session_id}`, model `{session.model_id}`, "
                f"created {session.created_at}, {session.message_count} messages.\n\n"
            )
        return head + "".join(self.message(message) for message in messages)


def _cited(source: str | None, text: str) -> str:
    excerpt = " ".join(text.split())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    return f"{source}: {excerpt}" if source else excerpt


RENDERERS: dict[str, Renderer] = {
    "json": JsonRenderer(),
    "md": MarkdownRenderer(),
}
