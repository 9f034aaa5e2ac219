"""Files sent with a message: checked here against the formats and limits the functions use
(the contract, standard library only), so a file the server would refuse is refused before
any request, then uploaded straight to S3 through the server's presigned POST."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatclient.client import ApiError, AssistantClient
from chatclient.safe import clean
from functions.contract import (
    ATTACHMENT_FORMATS_BY_NAME,
    ATTACHMENTS_PER_REQUEST,
    AttachmentFormat,
    AttachmentKind,
    attachment_size_limit,
)

# A file's format by its extension: each format's own name, and the usual other spellings.
FORMATS_BY_EXTENSION: dict[str, AttachmentFormat] = ATTACHMENT_FORMATS_BY_NAME | {
    "jpg": ATTACHMENT_FORMATS_BY_NAME["jpeg"],
    "htm": ATTACHMENT_FORMATS_BY_NAME["html"],
    "markdown": ATTACHMENT_FORMATS_BY_NAME["md"],
}


@dataclass(frozen=True)
class LocalFile:
    """A file read and checked, ready to upload."""

    name: str
    format: AttachmentFormat
    data: bytes


@dataclass(frozen=True)
class Attachment:
    """An uploaded file, named by the id a message refers to it with."""

    attachment_id: str
    session_id: str
    name: str
    kind: AttachmentKind
    size: int


def read(path: str) -> LocalFile:
    """The file at ``path``, or ``bad_request`` when the server would refuse it or it cannot
    be read: an unknown extension (naming the accepted ones), over its format's limit, empty."""
    file = Path(path).expanduser()
    extension = file.suffix.lower().removeprefix(".")
    attachment_format = FORMATS_BY_EXTENSION.get(extension)
    if attachment_format is None:
        accepted = ", ".join(sorted(FORMATS_BY_EXTENSION))
        raise ApiError("bad_request", f"{path}: not an accepted file type (accepted: {accepted})")
    try:
        size = file.stat().st_size
        limit = attachment_size_limit(attachment_format.kind)
        if size > limit:
            raise ApiError(
                "bad_request",
                f"{path}: {size:,} bytes; {attachment_format.kind}s may have at most {limit:,}",
            )
        data = file.read_bytes()
    except OSError as error:
        raise ApiError("bad_request", f"cannot read {path}: {error.strerror}") from None
    if not data:
        raise ApiError("bad_request", f"{path} is empty")
    return LocalFile(file.name, attachment_format, data)


def check_count(kinds: Iterable[AttachmentKind]) -> None:
    """``bad_request`` when one message would carry more documents or images than Converse
    takes."""
    for kind, count in Counter(kinds).items():
        if count > ATTACHMENTS_PER_REQUEST[kind]:
            limit = ATTACHMENTS_PER_REQUEST[kind]
            raise ApiError("bad_request", f"a message may carry at most {limit} {kind}s")


def upload(client: AssistantClient, session_id: str, file: LocalFile) -> Attachment:
    """Ask the server for an upload of ``file`` in ``session_id``, then send it to S3."""
    answer = client.create_attachment(
        session_id, file.name, file.format.content_type, len(file.data)
    )
    client.upload(answer["upload"], file.name, file.format.content_type, file.data)
    return Attachment(
        answer["attachment_id"], session_id, file.name, file.format.kind, len(file.data)
    )


# Why a turn did not send an earlier attachment again (the ``reason`` of the answer's
# ``unavailable_attachments``), and what the user can do about it.
_UNAVAILABLE = {
    "expired": "it has expired; /attach it again to use it",
    "limit": "the request already carried as many files of its kind as the model takes",
    "rejected": "it no longer passes the checks; /attach it again to use it",
}


def unavailable_notes(items: Iterable[dict[str, Any]]) -> list[str]:
    """One line per earlier attachment the model did not get this turn (server text, cleaned)."""
    return [
        f"not sent again: {clean(str(item.get('name', '')))} "
        f"({_UNAVAILABLE.get(str(item.get('reason')), clean(str(item.get('reason'))))})"
        for item in items
    ]
