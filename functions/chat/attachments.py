"""The attachments a question names: read from the bucket and checked before the turn holds
any budget or calls the model, then sent to Converse as ``image`` and ``document`` blocks.

An upload's POST policy pins its type and size, but the bytes are the client's: so every
object is checked again here, by what S3 stored (its size before its body is read, its
Content-Type) and by its content (:mod:`functions.domain.attachments`). Any refusal is
:class:`~functions.domain.errors.AttachmentRejected` naming the attachment and the rule.

Budget: Converse counts attachments as input tokens, which the text estimate cannot see, so
:func:`attachment_tokens` adds an estimate per block (docs/functions.md, Attachments).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.contract import (
    ATTACHMENT_CONTENT_TYPES,
    ATTACHMENT_FORMATS,
    MAX_DOCUMENTS_PER_MESSAGE,
    MAX_IMAGES_PER_MESSAGE,
    AttachmentFormat,
    attachment_size_limit,
)
from functions.domain.attachments import content_problem, image_dimensions, image_problem
from functions.domain.errors import AttachmentRejected
from functions.domain.models import AttachmentRef

if TYPE_CHECKING:
    from functions.data.attachments import AttachmentStore

# Anthropic's image cost: width * height / 750 tokens, and an image whose cost would pass
# about 1,600 tokens is resized down to it first ("Vision", image costs).
IMAGE_PIXELS_PER_TOKEN = 750
MAX_IMAGE_TOKENS = 1_600
# Text documents cost as text does: about 4 bytes a token.
TEXT_BYTES_PER_TOKEN = 4
# Binary documents (pdf, doc(x), xls(x)): the model reads the text Bedrock extracts, which is a
# fraction of the file; one token per 16 bytes errs on the high side for text-heavy files.
BINARY_BYTES_PER_TOKEN = 16
# Converse document names: alphanumerics, hyphens, parentheses and square brackets, words
# separated by single spaces.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9\-()\[\] ]")
MISSING = "it has expired or was never uploaded"
_BY_FORMAT = {f.format: f for f in ATTACHMENT_FORMATS}


@dataclass(frozen=True)
class Attachment:
    """A checked attachment: its reference (what history keeps) and its bytes."""

    ref: AttachmentRef
    format: AttachmentFormat
    data: bytes


def load(store: AttachmentStore, session_id: str, ids: Sequence[str]) -> tuple[Attachment, ...]:
    """The attachments ``ids`` of the session, each checked; the first one that fails refuses
    the whole question, before any of it costs budget or a model call."""
    loaded = tuple(_load_one(store, session_id, attachment_id) for attachment_id in ids)
    _check_counts(loaded)
    return loaded


def _load_one(store: AttachmentStore, session_id: str, attachment_id: str) -> Attachment:
    stored = store.get(session_id, attachment_id)
    if stored is None:
        raise AttachmentRejected(f"attachment {attachment_id}: {MISSING}")
    try:
        found = ATTACHMENT_CONTENT_TYPES.get(stored.content_type.split(";", 1)[0].strip().lower())
        if found is None:
            raise AttachmentRejected(
                f"attachment {attachment_id}: its type {stored.content_type!r} is not accepted"
            )
        limit = attachment_size_limit(found.kind)
        if stored.size > limit:
            raise AttachmentRejected(
                f"attachment {attachment_id}: a {found.format} {found.kind} may be at most "
                f"{limit:,} bytes; this one is {stored.size:,}"
            )
        data = stored.read()
    finally:
        stored.close()
    problem = content_problem(found, data)
    if problem is None and found.kind == "image":
        problem = image_problem(found.format, data)
    if problem is not None:
        raise AttachmentRejected(f"attachment {attachment_id} ({found.format}): {problem}")
    ref = AttachmentRef(attachment_id, stored.name, found.content_type, len(data))
    return Attachment(ref, found, data)


def _check_counts(loaded: Sequence[Attachment]) -> None:
    for kind, most in (("image", MAX_IMAGES_PER_MESSAGE), ("document", MAX_DOCUMENTS_PER_MESSAGE)):
        count = sum(1 for attachment in loaded if attachment.format.kind == kind)
        if count > most:
            raise AttachmentRejected(
                f"a message may carry at most {most} {kind}s; this has {count}"
            )


def blocks(attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """Converse content blocks, in order; document names made valid and unique."""
    names: set[str] = set()
    result: list[dict[str, Any]] = []
    for attachment in attachments:
        source = {"format": attachment.format.format, "source": {"bytes": attachment.data}}
        if attachment.format.kind == "image":
            result.append({"image": source})
        else:
            name = document_name(attachment.ref.name, names)
            names.add(name)
            result.append({"document": {**source, "name": name}})
    return result


def document_name(name: str, taken: set[str]) -> str:
    """``name`` as Converse takes a document name (its extension's dot becomes a space, other
    characters it refuses a hyphen), numbered " (2)", " (3)"... when another has it."""
    words = _NAME_UNSAFE.sub("-", name.replace(".", " ")).split()
    base = " ".join(words) or "document"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base} ({number})"
    return candidate


def attachment_tokens(block: dict[str, Any]) -> int:
    """Estimated input tokens of one image or document block (0 for any other block)."""
    if "image" in block:
        size = image_dimensions(block["image"]["format"], block["image"]["source"]["bytes"])
        if size is None:
            return MAX_IMAGE_TOKENS
        return min(math.ceil(size[0] * size[1] / IMAGE_PIXELS_PER_TOKEN), MAX_IMAGE_TOKENS)
    if "document" in block:
        document = block["document"]
        text = _BY_FORMAT[document["format"]].text
        per_token = TEXT_BYTES_PER_TOKEN if text else BINARY_BYTES_PER_TOKEN
        return math.ceil(len(document["source"]["bytes"]) / per_token)
    return 0
