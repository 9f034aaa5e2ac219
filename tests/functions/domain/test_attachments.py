"""What an attachment may be, by declaration and by content: the pure rules of
``functions.domain.attachments``, on files built byte by byte as each format lays them out."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest

from functions.contract import (
    ATTACHMENT_CONTENT_TYPES,
    ATTACHMENT_FORMATS,
    ATTACHMENT_FORMATS_BY_NAME,
)
from functions.domain.attachments import (
    content_problem,
    declared_format,
    image_dimensions,
    image_problem,
    safe_name,
)
from functions.domain.errors import AttachmentRejected

FORMATS = ATTACHMENT_FORMATS_BY_NAME


def png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(header))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\0\0\0"


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + b"\0" * 9
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def ooxml(part: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(f"{part}document.xml", "<x/>")
    return buffer.getvalue()


OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504
SAMPLES = {
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    "csv": b"a,b\n1,2\n",
    "doc": OLE2,
    "docx": ooxml("word/"),
    "xls": OLE2,
    "xlsx": ooxml("xl/"),
    "html": "<p>caf\u00e9</p>".encode(),
    "txt": b"print('hello')\n",
    "md": b"# Title\n",
    "png": png(10, 20),
    "jpeg": jpeg(10, 20),
    "gif": gif(10, 20),
    "webp": webp_vp8x(10, 20),
}


def test_every_accepted_format_has_a_sample() -> None:
    assert set(SAMPLES) == set(FORMATS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_format_passes_with_its_own_content(name: str) -> None:
    assert content_problem(FORMATS[name], SAMPLES[name]) is None


@pytest.mark.parametrize(
    ("declared", "actual"),
    [
        ("pdf", "txt"),
        ("png", "jpeg"),
        ("jpeg", "gif"),
        ("webp", "png"),
        ("docx", "xlsx"),  # a ZIP, but of the other part
        ("xlsx", "pdf"),
        ("doc", "docx"),
        ("gif", "webp"),
    ],
)
def test_content_that_is_another_format_is_refused(declared: str, actual: str) -> None:
    problem = content_problem(FORMATS[declared], SAMPLES[actual])
    assert problem == f"its content is not {declared}"


@pytest.mark.parametrize("name", ["txt", "md", "csv", "html"])
def test_text_must_be_utf8_without_nul_bytes(name: str) -> None:
    assert "NUL" in (content_problem(FORMATS[name], b"abc\0def") or "")
    assert "UTF-8" in (content_problem(FORMATS[name], b"caf\xe9") or "")
    assert "UTF-8" in (content_problem(FORMATS[name], SAMPLES["png"][:8]) or "")


def test_empty_content_is_refused_whatever_the_format() -> None:
    for attachment_format in ATTACHMENT_FORMATS:
        assert content_problem(attachment_format, b"") == "it is empty"


def test_a_zip_that_is_not_one_is_refused() -> None:
    assert content_problem(FORMATS["docx"], b"PK\x03\x04broken") == "its content is not docx"


@pytest.mark.parametrize(
    ("name", "build"), [("png", png), ("gif", gif), ("jpeg", jpeg), ("webp", webp_vp8x)]
)
def test_image_sides_are_read_from_the_header(name: str, build) -> None:
    assert image_dimensions(name, build(1234, 567)) == (1234, 567)
    assert image_problem(name, build(8000, 8000)) is None
    problem = image_problem(name, build(8001, 10))
    assert problem is not None and "8,000 pixels a side" in problem
    assert image_problem(name, build(10, 8001)) is not None


def test_an_image_header_too_short_to_read_is_refused() -> None:
    assert image_problem("png", SAMPLES["png"][:12]) == "its png header does not give its size"
    assert image_problem("jpeg", b"\xff\xd8\xff") is not None


def test_declared_types_map_to_formats_and_limits() -> None:
    assert declared_format("text/plain; charset=utf-8", 1).format == "txt"
    assert declared_format("IMAGE/PNG", 3_750_000).format == "png"
    with pytest.raises(AttachmentRejected, match="at most 3,750,000 bytes"):
        declared_format("image/png", 3_750_001)
    with pytest.raises(AttachmentRejected, match="at most 4,500,000 bytes"):
        declared_format("application/pdf", 4_500_001)
    with pytest.raises(AttachmentRejected, match="not accepted"):
        declared_format("application/octet-stream", 1)
    assert len(ATTACHMENT_CONTENT_TYPES) == len(ATTACHMENT_FORMATS)


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("main.py", "main.py"),
        ("C:\\Users\\me\\report (final).pdf", "report (final).pdf"),
        ("a/b/c.txt", "c.txt"),
        ("résumé.docx", "r_sum_.docx"),
        ("  many   spaces  .md", "many spaces .md"),
        ("", "attachment"),
        ("x" * 300, "x" * 255),
    ],
)
def test_names_are_kept_as_safe_ascii(name: str, kept: str) -> None:
    assert safe_name(name) == kept
