"""The attachments a question names: read from the bucket and checked before the turn holds
any budget or calls the model, then sent to Converse as ``image`` and ``document`` blocks.

An upload's POST policy pins its type and size, but the bytes are the client's: so every
object is checked again here, by what S3 stored (its size before its body is read, its
Content-Type) and by its content (:mod:`functions.domain.attachments`). Any refusal is
:class:`~functions.domain.errors.AttachmentRejected` naming the attachment and the rule. A
turn's objects are read at once (:func:`functions.core.deadline.gather`): it waits for the
slowest, not for their sum.

Budget: Converse counts attachments as input tokens, which the text estimate cannot see, so
:func:`attachment_tokens` adds an estimate per block (docs/functions.md, Attachments).

Later turns: history keeps references, so each turn sends the attachments of the questions in
its history again (:func:`resend`), newest first, while the request has room for their kind.
One that cannot be sent (expired, over the request's limit, no longer valid) is replaced by a
note the model reads in its question's place, and reported to the client.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from functions.contract import (
    ATTACHMENT_CONTENT_TYPES,
    ATTACHMENT_FORMATS_BY_NAME,
    ATTACHMENTS_PER_REQUEST,
    AttachmentFormat,
    attachment_size_limit,
)
from functions.core import deadline
from functions.domain.attachments import content_problem, image_dimensions, image_problem
from functions.domain.errors import AttachmentRejected
from functions.domain.models import (
    AttachmentRef,
    Message,
    UnavailableAttachment,
    UnavailableReason,
)

if TYPE_CHECKING:
    from functions.data.attachments import AttachmentStore, StoredObject

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

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    """A checked attachment: its reference (what history keeps) and its bytes."""

    ref: AttachmentRef
    format: AttachmentFormat
    data: bytes


def load(store: AttachmentStore, session_id: str, ids: Sequence[str]) -> tuple[Attachment, ...]:
    """The attachments ``ids`` of the session, each checked; the first one that fails refuses
    the whole question, before any of it costs budget or a model call. The objects are asked
    for at once, their type, size and kind's count checked on what GetObject answers first
    (so a body that would be refused is never downloaded), then the bodies read at once."""
    opened = _open(store, session_id, ids)
    try:
        counts: Counter[str] = Counter()
        formats = []
        for attachment_id, stored in zip(ids, opened, strict=True):
            if stored is None:
                raise AttachmentRejected(f"attachment {attachment_id}: {MISSING}")
            found = _format_of(attachment_id, stored)
            most = ATTACHMENTS_PER_REQUEST[found.kind]
            if counts[found.kind] >= most:
                raise AttachmentRejected(
                    f"a message may carry at most {most} {found.kind}s; attachment "
                    f"{attachment_id} would be {found.kind} {most + 1}"
                )
            counts[found.kind] += 1
            formats.append(found)
        bodies = _read(opened)
    finally:
        _close(opened)
    return tuple(
        _checked(attachment_id, stored, found, data)
        for attachment_id, stored, found, data in zip(ids, opened, formats, bodies, strict=True)
    )


def _open(store: AttachmentStore, session_id: str, ids: Sequence[str]) -> list[StoredObject | None]:
    """GetObject for each id at once: each object as S3 answers it, its body not read yet, or
    None when it is gone."""
    calls = [partial(store.get, session_id, attachment_id) for attachment_id in ids]
    return deadline.gather(calls, "attachment-get", discard=_close_one)


def _read(opened: Sequence[StoredObject | None]) -> list[bytes]:
    """The bodies of ``opened`` (no None among them), read at once."""
    reads = [stored.read for stored in opened if stored is not None]
    return deadline.gather(reads, "attachment-read")


def _close(opened: Sequence[StoredObject | None]) -> None:
    for stored in opened:
        _close_one(stored)


def _close_one(stored: StoredObject | None) -> None:
    if stored is not None:
        stored.close()


def _format_of(attachment_id: str, stored: StoredObject) -> AttachmentFormat:
    """The format of an object by its stored type, which must be accepted and within its
    kind's size, or :class:`AttachmentRejected`."""
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
    return found


def _checked(
    attachment_id: str, stored: StoredObject, found: AttachmentFormat, data: bytes
) -> Attachment:
    """The attachment, once its content is what its type says, or :class:`AttachmentRejected`."""
    problem = content_problem(found, data)
    if problem is None and found.kind == "image":
        problem = image_problem(found.format, data)
    if problem is not None:
        raise AttachmentRejected(f"attachment {attachment_id} ({found.format}): {problem}")
    ref = AttachmentRef(attachment_id, stored.name, found.content_type, len(data))
    return Attachment(ref, found, data)


def blocks(
    attachments: Sequence[Attachment], names: set[str] | None = None
) -> list[dict[str, Any]]:
    """Converse content blocks, in order; document names made valid and unique among
    themselves and the ``names`` already taken in the request (which gains theirs)."""
    names = set() if names is None else names
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
        document_format = ATTACHMENT_FORMATS_BY_NAME[document["format"]]
        return _document_tokens(document_format, len(document["source"]["bytes"]))
    return 0


def estimated_tokens(ref: AttachmentRef) -> int:
    """An upper estimate of an earlier question's attachment, from its reference alone (so
    history is measured before anything is read): an image's size is in its header, so it
    counts as the largest image costs."""
    found = ATTACHMENT_CONTENT_TYPES.get(ref.content_type)
    if found is None:
        return 0
    if found.kind == "image":
        return MAX_IMAGE_TOKENS
    return _document_tokens(found, ref.size)


def _document_tokens(document_format: AttachmentFormat, size: int) -> int:
    per_token = TEXT_BYTES_PER_TOKEN if document_format.text else BINARY_BYTES_PER_TOKEN
    return math.ceil(size / per_token)


@dataclass
class Resent:
    """What a turn sends of its history's attachments: per question (``message_id``), the
    blocks after its text, and the attachments it could not send."""

    blocks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unavailable: list[UnavailableAttachment] = field(default_factory=list)


def resend(
    store: AttachmentStore,
    session_id: str,
    history: Sequence[Message],
    current: Sequence[Attachment],
    names: set[str],
) -> Resent:
    """The attachments of ``history``'s questions, sent again while they exist, newest
    question first, as long as the request (``current`` included) has room for their kind.

    Each is read and checked again: its object may have expired with the lifecycle rule, or
    been replaced through its upload form while that was valid (one that no longer has its
    reference's kind counts as rejected). Document names extend ``names``, the question's.
    Every attachment left out gets a note in its question's place, so the model does not
    answer as if it had read it.

    The reads run at once, in rounds: each round reads, in order, as many as each kind still
    has room for; one that cannot be sent frees its room for the next round. So nothing is
    read that the request has no room for, and the outcome is the one reading them one by one
    would give.
    """
    questions = [m for m in reversed(history) if m.role == "user" and m.attachments]
    refs = [ref for message in questions for ref in message.attachments]
    outcomes = _resend_rounds(store, session_id, refs, current)
    result = Resent()
    position = 0
    for message in questions:
        loaded: list[Attachment] = []
        notes: list[str] = []
        for ref in message.attachments:
            outcome = outcomes.get(position, "limit")
            position += 1
            if isinstance(outcome, Attachment):
                loaded.append(outcome)
                continue
            result.unavailable.append(UnavailableAttachment(ref.attachment_id, ref.name, outcome))
            notes.append(_note(ref, outcome))
        sent = blocks(loaded, names)
        if notes:
            sent.append({"text": "\n".join(notes)})
        if sent:
            result.blocks[message.message_id] = sent
    result.unavailable.reverse()  # oldest first, as the conversation reads
    return result


def _resend_rounds(
    store: AttachmentStore,
    session_id: str,
    refs: Sequence[AttachmentRef],
    current: Sequence[Attachment],
) -> dict[int, Attachment | UnavailableReason]:
    """What became of each of ``refs`` (by position) that was decided: the attachment, or why
    it is not sent. One left undecided found its kind full: ``limit``."""
    counts = Counter(attachment.format.kind for attachment in current)
    kinds = [ATTACHMENT_CONTENT_TYPES.get(ref.content_type) for ref in refs]
    outcomes: dict[int, Attachment | UnavailableReason] = {
        position: "rejected" for position, found in enumerate(kinds) if found is None
    }  # a type no longer accepted
    while True:
        room = {kind: most - counts[kind] for kind, most in ATTACHMENTS_PER_REQUEST.items()}
        batch = []
        for position, found in enumerate(kinds):
            if position not in outcomes and found is not None and room[found.kind] > 0:
                room[found.kind] -= 1
                batch.append(position)
        if not batch:
            return outcomes
        fetched = _fetch_again(store, session_id, [refs[position] for position in batch])
        for position, fetched_one in zip(batch, fetched, strict=True):
            outcomes[position] = _sent_as(fetched_one, kinds[position], counts)


def _sent_as(
    outcome: Attachment | UnavailableReason,
    expected: AttachmentFormat | None,
    counts: Counter[str],
) -> Attachment | UnavailableReason:
    """``outcome`` counted in ``counts``; an object that no longer has its reference's kind
    (replaced through its upload form) is ``rejected``: it is not the file that was sent."""
    if not isinstance(outcome, Attachment):
        return outcome
    if expected is None or outcome.format.kind != expected.kind:
        return "rejected"
    counts[outcome.format.kind] += 1
    return outcome


def _fetch_again(
    store: AttachmentStore, session_id: str, refs: Sequence[AttachmentRef]
) -> list[Attachment | UnavailableReason]:
    """Each of ``refs`` read and checked again, at once: the attachment, ``expired`` or
    ``rejected``."""
    opened = _open(store, session_id, [ref.attachment_id for ref in refs])
    try:
        formats: list[AttachmentFormat | UnavailableReason] = []
        for ref, stored in zip(refs, opened, strict=True):
            if stored is None:
                formats.append("expired")
                continue
            try:
                formats.append(_format_of(ref.attachment_id, stored))
            except AttachmentRejected as rejected:
                formats.append(_rejected(rejected))
        readable = [
            stored
            for stored, found in zip(opened, formats, strict=True)
            if isinstance(found, AttachmentFormat)
        ]
        bodies = iter(_read(readable))
    finally:
        _close(opened)
    outcomes: list[Attachment | UnavailableReason] = []
    for ref, stored, found in zip(refs, opened, formats, strict=True):
        if not isinstance(found, AttachmentFormat):
            outcomes.append(found)
            continue
        assert stored is not None  # its format is the stored object's
        try:
            outcomes.append(_checked(ref.attachment_id, stored, found, next(bodies)))
        except AttachmentRejected as rejected:
            outcomes.append(_rejected(rejected))
    return outcomes


def _rejected(rejected: AttachmentRejected) -> UnavailableReason:
    logger.warning("an earlier attachment no longer passes", extra={"reason": str(rejected)})
    return "rejected"


def _note(ref: AttachmentRef, reason: UnavailableReason) -> str:
    """What the model reads in place of an attachment it is not sent."""
    why = {
        "expired": "it has expired, and its content is no longer available",
        "limit": "a request carries only so many attachments, and newer ones came first",
        "rejected": "its content is no longer available",
    }[reason]
    return f"[The attachment {ref.name!r} sent with this message is not included: {why}.]"
