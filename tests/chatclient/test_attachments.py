"""``/attach`` and ``--file``: a file is checked before any request, uploaded through the
server's presigned POST (every field, then the file), and its id goes with the next message
only; the server's and S3's refusals are said in words."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from chatclient.__main__ import main
from chatclient.chat import Chat
from chatclient.client import ApiError, AssistantClient
from chatclient.oneshot import ask
from chatclient.status import Exit
from devserver.server import DevServer
from functions.contract import MAX_DOCUMENTS_PER_MESSAGE, MAX_IMAGE_BYTES, attachment_key
from tests.chatclient.test_turns_and_messages import Socket, _frames
from tests.support.dev_server import DEV_GROUP, Api, local_client

S3 = "https://bucket.s3.example"
FIELDS = {"key": "sessions/s-1/a-1", "Content-Type": "application/pdf", "policy": "p"}


class Backend:
    """The REST API and S3 behind ``httpx.MockTransport``: what was asked of each."""

    def __init__(self, s3_status: int = 204, api_error: tuple[int, str] | None = None) -> None:
        self.s3_status = s3_status
        self.api_error = api_error
        self.api: list[httpx.Request] = []
        self.uploads: list[httpx.Request] = []

    def rest(self, request: httpx.Request) -> httpx.Response:
        self.api.append(request)
        if request.url.path == "/api/v1/sessions":
            return httpx.Response(201, json={"session_id": "s-1", "title": None})
        if self.api_error is not None:
            status, code = self.api_error
            return httpx.Response(status, json={"error": {"code": code, "message": "too big"}})
        number = sum(r.url.path.endswith("/attachments") for r in self.api)
        fields = {**FIELDS, "key": f"sessions/s-1/a-{number}"}
        upload = {"url": S3, "fields": fields}
        return httpx.Response(
            200, json={"attachment_id": f"a-{number}", "upload": upload, "expires_at": 1}
        )

    def s3(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.uploads.append(request)
        if self.s3_status >= 300:
            body = "<Error><Code>AccessDenied</Code><Message>Policy expired</Message></Error>"
            return httpx.Response(self.s3_status, text=body)
        return httpx.Response(self.s3_status)


def _client(backend: Backend, socket: Socket) -> AssistantClient:
    client = AssistantClient("http://rest", "ws://ws", "token")
    client._ws = socket  # type: ignore[assignment]
    client.http = httpx.Client(
        transport=httpx.MockTransport(backend.rest),
        base_url="http://rest",
        headers={"Authorization": "Bearer token"},
    )
    client.uploads = httpx.Client(transport=httpx.MockTransport(backend.s3))
    return client


def _answering(socket: Socket, **start: Any) -> Socket:
    """Answer every message sent, with the frames of its own key (``start``: more fields of
    the start frame), and title a session after its first answer, as the server does."""
    send = socket.send
    titled: set[str] = set()

    def answering(message: str | list[str]) -> None:
        send(message)
        sent = socket.sent[-1]
        frames = _frames("m-1", sent["idempotency_key"], "read it")
        frames[0].update(start)
        if sent["session_id"] not in titled:
            titled.add(sent["session_id"])
            frames.append({"type": "title", "session_id": sent["session_id"], "title": "Files"})
        socket.incoming += [json.dumps(f) for f in frames]

    socket.send = answering  # type: ignore[method-assign]
    return socket


def _chat(backend: Backend) -> tuple[Chat, Socket, io.StringIO]:
    socket, out = _answering(Socket([])), io.StringIO()
    return Chat(_client(backend, socket), Console(file=out, width=300)), socket, out


def _file(tmp_path: Path, name: str, data: bytes = b"%PDF-1.7 report") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _form(request: httpx.Request) -> tuple[dict[str, str], tuple[str, str, bytes]]:
    """The multipart body's fields, in order, and its file part (name, type, bytes)."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    fields: dict[str, str] = {}
    file: tuple[str, str, bytes] = ("", "", b"")
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part.strip(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode().split("\r\n")
        name = disposition[0].split('name="')[1].split('"')[0]
        assert not file[0], f"field {name} after the file: S3 ignores it"
        if "filename=" in disposition[0]:
            filename = disposition[0].split('filename="')[1].split('"')[0]
            assert name == "file"
            file = (filename, disposition[1].removeprefix("Content-Type: "), body)
        else:
            fields[name] = body.decode()
    return fields, file


def test_attach_uploads_through_the_presigned_post_and_the_next_message_carries_it(
    tmp_path: Path,
) -> None:
    backend = Backend()
    chat, socket, out = _chat(backend)
    chat.command(f"/attach {_file(tmp_path, 'report.pdf')}")
    chat.command(f"/attach {_file(tmp_path, 'chart.PNG', b'png bytes')}")
    [created, first, second] = backend.api
    assert created.url.path == "/api/v1/sessions"  # no session yet: one is created, as send does
    assert first.url.path == "/api/v1/sessions/s-1/attachments"
    assert json.loads(first.content) == {
        "name": "report.pdf",
        "content_type": "application/pdf",
        "size": 15,
    }
    assert json.loads(second.content)["content_type"] == "image/png"
    upload = backend.uploads[0]
    assert (upload.method, str(upload.url)) == ("POST", S3)
    assert "authorization" not in upload.headers  # the token never goes to S3
    assert _form(upload) == (
        {**FIELDS, "key": "sessions/s-1/a-1"},
        ("report.pdf", "application/pdf", b"%PDF-1.7 report"),
    )
    assert socket.sent == []

    chat.command("/attach")
    assert "1. report.pdf (15 bytes)" in out.getvalue()
    assert "2. chart.PNG (9 bytes)" in out.getvalue()

    chat.send("what do these say?")
    chat.send("and now?")
    first_message, second_message = socket.sent
    assert first_message["attachments"] == ["a-1", "a-2"]
    assert first_message["content"] == "what do these say?"
    assert "attachments" not in second_message  # sent once, then cleared


def test_attach_clear_drops_the_pending_ones(tmp_path: Path) -> None:
    chat, socket, out = _chat(Backend())
    chat.command(f"/attach {_file(tmp_path, 'notes.md', b'# notes')}")
    chat.command("/attach clear")
    chat.command("/attach")
    assert "no pending attachments" in out.getvalue()
    chat.send("hello")
    assert "attachments" not in socket.sent[0]


def test_pending_attachments_of_a_session_left_are_not_sent_in_another(tmp_path: Path) -> None:
    chat, socket, _ = _chat(Backend())
    chat.command(f"/attach {_file(tmp_path, 'notes.txt', b'notes')}")
    chat.session = {"session_id": "s-2"}  # as /resume leaves it
    chat.send("hello")
    assert "attachments" not in socket.sent[0]


@pytest.mark.parametrize(
    ("name", "size", "said"),
    [
        ("archive.zip", 3, "not an accepted file type (accepted: csv, doc, docx, gif, htm, "),
        ("photo.jpg", MAX_IMAGE_BYTES + 1, f"images may have at most {MAX_IMAGE_BYTES:,}"),
        ("empty.txt", 0, "is empty"),
    ],
)
def test_a_file_the_server_would_refuse_is_refused_before_any_request(
    tmp_path: Path, name: str, size: int, said: str
) -> None:
    backend = Backend()
    chat, _, _ = _chat(backend)
    with pytest.raises(ApiError, match=re.escape(said)) as refused:
        chat.command(f"/attach {_file(tmp_path, name, b'x' * size)}")
    assert refused.value.kind == "bad_request"
    assert backend.api == []
    assert chat.session is None


def test_a_missing_file_and_a_directory_are_said_so(tmp_path: Path) -> None:
    chat, _, _ = _chat(Backend())
    with pytest.raises(ApiError, match=r"cannot read .*missing\.pdf: No such file"):
        chat.command(f"/attach {tmp_path / 'missing.pdf'}")
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(ApiError, match=r"cannot read .*folder\.txt: Is a directory"):
        chat.command(f"/attach {tmp_path / 'folder.txt'}")


def test_more_documents_than_one_message_takes_are_refused(tmp_path: Path) -> None:
    backend = Backend()
    chat, _, _ = _chat(backend)
    for number in range(MAX_DOCUMENTS_PER_MESSAGE):
        chat.command(f"/attach {_file(tmp_path, f'{number}.txt', b'x')}")
    with pytest.raises(ApiError, match=f"at most {MAX_DOCUMENTS_PER_MESSAGE} documents"):
        chat.command(f"/attach {_file(tmp_path, 'one-more.txt', b'x')}")
    assert len(backend.uploads) == MAX_DOCUMENTS_PER_MESSAGE


def test_the_chat_says_the_server_and_s3_refusals_in_words(tmp_path: Path) -> None:
    """Run as typed (``run`` prints each error and goes on): a 422 ``attachment_rejected``,
    a 404 session, and S3's XML refusal of the upload; nothing stays pending."""
    path = _file(tmp_path, "report.pdf")
    said = []
    for backend in (
        Backend(api_error=(422, "attachment_rejected")),
        Backend(api_error=(404, "not_found")),
        Backend(s3_status=403),
    ):
        chat, _, out = _chat(backend)
        chat.reader = _Typed([f"/attach {path}", "/attach"])
        chat.run({"status": "ok"})
        said.append(out.getvalue())
        assert "no pending attachments" in out.getvalue()
    assert "error: the service does not take this file: too big" in said[0]
    assert "error: no such session" in said[1]
    assert (
        "error: the file storage refused the upload: HTTP 403, AccessDenied: Policy expired"
        in said[2]
    )


class _Typed:
    """A line editor that types ``lines``, then Ctrl-D."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def read(self, default: str = "") -> str:
        if not self.lines:
            raise EOFError
        return self.lines.pop(0)


def test_oneshot_uploads_every_file_then_asks_with_them(tmp_path: Path) -> None:
    backend = Backend()
    socket, out, err = _answering(Socket([])), io.StringIO(), io.StringIO()
    files = [_file(tmp_path, "a.pdf"), _file(tmp_path, "b.csv", b"x,y\n1,2\n")]
    status = ask(_client(backend, socket), "compare", files=files, out=out, err=err)
    assert status == Exit.OK, err.getvalue()
    assert [_form(upload)[1][0] for upload in backend.uploads] == ["a.pdf", "b.csv"]
    [sent] = socket.sent
    assert (sent["content"], sent["attachments"]) == ("compare", ["a-1", "a-2"])
    assert out.getvalue() == "read it\n"


@pytest.mark.parametrize(
    ("backend", "name", "status"),
    [
        (Backend(), "virus.exe", Exit.USAGE),  # refused before any request
        (Backend(api_error=(422, "attachment_rejected")), "a.pdf", Exit.USAGE),
        (Backend(s3_status=400), "a.pdf", Exit.FAILED),
    ],
)
def test_oneshot_a_refused_file_exits_with_a_status_and_asks_nothing(
    tmp_path: Path, backend: Backend, name: str, status: Exit
) -> None:
    socket, err = Socket([]), io.StringIO()
    files = [_file(tmp_path, name)]
    assert ask(_client(backend, socket), "q", files=files, out=io.StringIO(), err=err) == status
    assert socket.sent == []
    assert err.getvalue().startswith("error: ")
    if name == "virus.exe":
        assert backend.api == []  # not even a session


def test_file_without_a_prompt_on_a_terminal_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert main(["--file", "a.pdf"]) == Exit.USAGE
    assert "--file goes with a prompt; in the chat, /attach PATH" in capsys.readouterr().err


GONE = [
    {"attachment_id": "a-1", "name": "main.py", "reason": "expired"},
    {"attachment_id": "a-2", "name": "\x1b[2Jf4.py", "reason": "limit"},
]


def test_the_chat_says_which_earlier_attachments_the_model_did_not_get() -> None:
    socket, out = _answering(Socket([]), unavailable_attachments=GONE), io.StringIO()
    chat = Chat(_client(Backend(), socket), Console(file=out, width=300))
    chat.session = {"session_id": "s-1"}
    chat.send("and now?")
    said = out.getvalue()
    assert "not sent again: main.py (it has expired; /attach it again to use it)" in said
    assert "not sent again: f4.py (the request already carried as many" in said  # cleaned


def test_oneshot_says_them_on_stderr() -> None:
    socket = _answering(Socket([]), unavailable_attachments=GONE[:1])
    out, err = io.StringIO(), io.StringIO()
    assert ask(_client(Backend(), socket), "q", session_id="s-1", out=out, err=err) == Exit.OK
    assert out.getvalue() == "read it\n"
    said = err.getvalue()
    assert said == "not sent again: main.py (it has expired; /attach it again to use it)\n"


def test_the_client_sends_attachments_only_when_there_are_some() -> None:
    socket = Socket([])
    client = AssistantClient("http://rest", "ws://ws", "token")
    client._ws = socket  # type: ignore[assignment]
    client.stream("s", "one", attachments=["a-1"])
    client.stream("s", "two", attachments=[])
    assert [sent.get("attachments") for sent in socket.sent] == [["a-1"], None]


@DEV_GROUP
def test_attach_stores_the_file_in_the_dev_servers_s3(
    dev: DevServer, alice: Api, tmp_path: Path
) -> None:
    """The real form: the dev server's main function signs it for the stack's bucket and the
    client's multipart POST satisfies its policy (moto checks it as S3 does); the next message
    carries it, through the dev gateway, to the model, and the history keeps its name. Once
    the object is gone, the next question's answer says it was not sent again."""
    client = AssistantClient(dev.rest_url, dev.ws_url, alice.token)
    said = io.StringIO()
    chat = Chat(client, Console(file=said, width=300))
    path = _file(tmp_path, "notes.md", b"# notes\n")
    s3 = local_client(dev, "s3")
    [bucket] = dev.stack.buckets.values()
    try:
        chat.command(f"/attach {path}")
        [attachment] = chat.pending
        chat.send("What is in the notes?")
        assert chat.session is not None
        key = attachment_key(chat.session["session_id"], attachment.attachment_id)
        stored = s3.get_object(Bucket=bucket, Key=key)
        assert (stored["Body"].read(), stored["ContentType"]) == (b"# notes\n", "text/markdown")
        assert "not sent again" not in said.getvalue()
        s3.delete_object(Bucket=bucket, Key=key)
        chat.send("And now?")
    finally:
        client.close()
    assert chat.pending == []
    question, answer, _, _ = alice.messages(chat.session["session_id"])
    assert [a["name"] for a in question["attachments"]] == ["notes.md"]
    assert answer["status"] == "complete"
    assert "not sent again: notes.md (it has expired; /attach it again" in said.getvalue()
