"""What a user's message may be: the one rule REST, the WebSocket and the chat client apply,
so a client can refuse a message before sending it for the same reason the server would."""

from __future__ import annotations

MAX_CONTENT_CHARS = 50_000  # far below DynamoDB's 400 KB item limit, even in 4-byte UTF-8


def content_problem(content: object) -> str | None:
    """What is wrong with a user's text, or None: the one rule both transports apply.

    Bedrock rejects blank text blocks, and text with a lone surrogate cannot be encoded as
    UTF-8, so DynamoDB and Bedrock would both refuse it after the turn had started.
    """
    if not isinstance(content, str) or not content.strip():
        return "content must be a non-blank string"
    if len(content) > MAX_CONTENT_CHARS:
        return f"content must be at most {MAX_CONTENT_CHARS} characters"
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        return "content must be valid Unicode text (it holds a lone surrogate)"
    return None
