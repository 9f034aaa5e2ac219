"""What an attachment may be: the formats Converse accepts and their limits
(``functions.contract``), applied to what a client declares before it uploads.

Pure: the upload route checks a declaration with it, and the chat client can refuse a file
for the same reason before asking for an upload.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile

from functions.contract import (
    ATTACHMENT_CONTENT_TYPES,
    MAX_DOCUMENTS_PER_MESSAGE,
    MAX_IMAGE_SIDE_PIXELS,
    MAX_IMAGES_PER_MESSAGE,
    AttachmentFormat,
    attachment_size_limit,
)
from functions.domain.errors import AttachmentRejected, BadRequest

MAX_NAME_CHARS = 255
# What an original file name keeps in the object's metadata (x-amz-meta-name): S3 stores
# metadata as US-ASCII header values, so everything else becomes "_".
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9 ._()\[\]-]")
FALLBACK_NAME = "attachment"
# Attachment ids are UUIDs (the upload route makes them); a message names at most one per
# image and document Converse takes in one message, each once.
ATTACHMENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_ATTACHMENTS_PER_MESSAGE = MAX_IMAGES_PER_MESSAGE + MAX_DOCUMENTS_PER_MESSAGE


def attachment_ids(value: object) -> tuple[str, ...]:
    """A message's ``attachments`` as the WebSocket protocol receives them (JSON), or
    :class:`BadRequest`: a list of at most :data:`MAX_ATTACHMENTS_PER_MESSAGE` distinct ids."""
    if not isinstance(value, list) or not all(
        isinstance(item, str) and ATTACHMENT_ID.fullmatch(item) for item in value
    ):
        raise BadRequest("attachments must be a list of attachment ids")
    if len(value) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise BadRequest(
            f"a message may name at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments "
            f"({MAX_IMAGES_PER_MESSAGE} images, {MAX_DOCUMENTS_PER_MESSAGE} documents)"
        )
    if len(set(value)) != len(value):
        raise BadRequest("attachments names an attachment more than once")
    return tuple(value)


def declared_format(content_type: str, size: int) -> AttachmentFormat:
    """The format a declared upload is, if Converse takes it at that size; else
    :class:`AttachmentRejected` naming the accepted types or the format's limit."""
    found = ATTACHMENT_CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())
    if found is None:
        accepted = ", ".join(sorted(ATTACHMENT_CONTENT_TYPES))
        raise AttachmentRejected(
            f"content type {content_type!r} is not accepted; accepted types: {accepted}"
        )
    limit = attachment_size_limit(found.kind)
    if size > limit:
        raise AttachmentRejected(
            f"a {found.format} {found.kind} may be at most {limit:,} bytes; this one is {size:,}"
        )
    return found


def safe_name(name: str) -> str:
    """``name`` as object metadata can hold it: its last path part, ASCII letters, digits,
    spaces and ``._()[]-`` only, at most :data:`MAX_NAME_CHARS` characters."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = " ".join(_UNSAFE_NAME_CHARS.sub("_", base).split())[:MAX_NAME_CHARS]
    return cleaned or FALLBACK_NAME


# What a file's first bytes say it is (each format's published signature), for the formats
# that have one. ``doc`` and ``xls`` share the OLE2 compound-file signature, ``docx`` and
# ``xlsx`` the ZIP one; their parts (``word/``, ``xl/``) tell the latter apart.
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = b"PK\x03\x04"
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "doc": (_OLE2,),
    "xls": (_OLE2,),
    "docx": (_ZIP,),
    "xlsx": (_ZIP,),
}
_OOXML_PART = {"docx": "word/", "xlsx": "xl/"}


def content_problem(attachment_format: AttachmentFormat, data: bytes) -> str | None:
    """Why ``data`` is not a file of ``attachment_format``, or None: the check by content that
    a declared type (or a file name) cannot pass for. Text formats must be UTF-8 without NUL
    bytes; the others must start with their format's signature (WebP: a RIFF container of
    type WEBP; docx and xlsx: a ZIP holding the format's part)."""
    name = attachment_format.format
    if not data:
        return "it is empty"
    if attachment_format.text:
        if b"\0" in data:
            return f"it is not {name} text (it holds NUL bytes)"
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return f"it is not {name} text (it is not valid UTF-8)"
        return None
    if name == "webp":
        matches = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    else:
        matches = data.startswith(_SIGNATURES[name])
    if matches and name in _OOXML_PART:
        matches = _zip_holds(data, _OOXML_PART[name])
    return None if matches else f"its content is not {name}"


def _zip_holds(data: bytes, prefix: str) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(entry.startswith(prefix) for entry in archive.namelist())
    except zipfile.BadZipFile:
        return False


def image_problem(image_format: str, data: bytes) -> str | None:
    """Why an image (already checked by :func:`content_problem`) is too large a picture for
    Converse, or None: either side over :data:`MAX_IMAGE_SIDE_PIXELS`, or a header too
    damaged to read the size from."""
    size = image_dimensions(image_format, data)
    if size is None:
        return f"its {image_format} header does not give its size"
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE_PIXELS:
        return (
            f"it is {width}x{height} pixels; Converse takes at most "
            f"{MAX_IMAGE_SIDE_PIXELS:,} pixels a side"
        )
    return None


def image_dimensions(image_format: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header, as each format's specification lays it out."""
    try:
        if image_format == "png":  # IHDR, the first chunk: width, height (big-endian)
            return struct.unpack(">II", data[16:24])
        if image_format == "gif":  # logical screen: width, height (little-endian)
            return struct.unpack("<HH", data[6:10])
        if image_format == "webp":
            return _webp_dimensions(data)
        if image_format == "jpeg":
            return _jpeg_dimensions(data)
    except struct.error:
        return None
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # canvas size minus one, 24-bit little-endian each
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":  # lossy: after the frame tag and start code, 14 bits each
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: after the signature byte, 14 bits each minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


# JPEG start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC), which hold the frame's size.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        offset += 2 + length
    return None
