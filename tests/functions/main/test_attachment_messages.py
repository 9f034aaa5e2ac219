"""``POST /sessions/{session_id}/messages`` with ``attachments``: files uploaded through the
presigned POST to moto's S3, checked by content, then sent to the Bedrock fake as Converse
``image`` and ``document`` blocks; every refusal comes before any budget hold or model call."""

from __future__ import annotations

import struct
import threading
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from fakes.bedrock import CONVERSE, BedrockFake
from functions.chat.attachments import MAX_IMAGE_TOKENS, attachment_tokens, load
from functions.contract import MAX_DOCUMENTS_PER_MESSAGE, MAX_IMAGE_BYTES, Env, attachment_key
from functions.core import aws
from functions.core.settings import get_settings
from functions.data.attachments import StoredObject
from functions.domain.errors import AttachmentRejected
from tests.functions.helpers import USER_B, RawBody, Rest
from tests.functions.main.test_attachments import ask, upload


def png(width: int, height: int) -> bytes:
    """The start of a PNG: its signature and an IHDR chunk giving its size."""
    return b"\x89PNG\r\n\x1a\n" + b"\0\0\0\x0dIHDR" + struct.pack(">II", width, height) + b"\0" * 9


SOURCE = b"print('hello')\n"


def uploaded(rest: Rest, session_id: str, data: bytes, **declared: Any) -> str:
    answer = ask(rest, session_id, size=len(data), **declared).json
    assert upload(answer, data).status_code == 204
    return answer["attachment_id"]


def send(rest: Rest, session_id: str, **body: Any) -> Any:
    return rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "q", **body})


def usage(rest: Rest) -> list[dict[str, Any]]:
    return rest.call("GET", "/usage").json["periods"]


@pytest.fixture
def session_id(rest: Rest) -> str:
    return rest.create_session()["session_id"]


def test_a_message_sends_its_attachments_as_converse_blocks(
    rest: Rest, session_id: str, bedrock: BedrockFake
) -> None:
    image = uploaded(rest, session_id, png(100, 75), name="shot.png", content_type="image/png")
    first = uploaded(rest, session_id, SOURCE, name="main.py")
    second = uploaded(rest, session_id, SOURCE, name="main py")  # same Converse name
    response = send(rest, session_id, attachments=[image, first, second])
    assert response.status == 200, response.text
    [request] = bedrock.requests_for(CONVERSE)
    blocks = request.body["messages"][-1]["content"]
    assert blocks[0] == {"text": "q"}
    assert blocks[1]["image"]["format"] == "png"
    assert [b["document"]["name"] for b in blocks[2:]] == ["main py", "main py (2)"]
    assert {b["document"]["format"] for b in blocks[2:]} == {"txt"}
    listed = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    assert listed[0]["attachments"] == [
        {"attachment_id": image, "name": "shot.png", "content_type": "image/png", "size": 33},
        {"attachment_id": first, "name": "main.py", "content_type": "text/plain", "size": 15},
        {"attachment_id": second, "name": "main py", "content_type": "text/plain", "size": 15},
    ]
    assert listed[1]["attachments"] == []


def test_a_regenerate_sends_the_replaced_questions_attachments(
    rest: Rest, session_id: str, bedrock: BedrockFake
) -> None:
    document = uploaded(rest, session_id, SOURCE, name="main.py")
    question = send(rest, session_id, attachments=[document])
    assert question.status == 200, question.text
    [asked] = [
        m
        for m in rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
        if m["role"] == "user"
    ]
    again = rest.call(
        "POST", f"/sessions/{session_id}/messages", body={"replaces": asked["message_id"]}
    )
    assert again.status == 200, again.text
    last = bedrock.requests_for(CONVERSE)[-1].body["messages"][-1]["content"]
    assert [block.get("document", {}).get("name") for block in last] == [None, "main py"]


def test_the_budget_hold_counts_the_images(
    rest: Rest, session_id: str, monkeypatch: pytest.MonkeyPatch, bedrock: BedrockFake
) -> None:
    """A daily limit the text fits in but not the image's estimate (1,600 tokens for a large
    one) refuses the turn before the model call."""
    image = uploaded(rest, session_id, png(4000, 3000), name="big.png", content_type="image/png")
    monkeypatch.setenv(Env.USER_DAILY_TOKEN_LIMIT, "1000")
    get_settings.cache_clear()
    send(rest, session_id, attachments=[image]).assert_error(429, "quota_exceeded")
    assert bedrock.requests_for(CONVERSE) == []
    assert send(rest, session_id).status == 200


def test_image_and_document_estimates() -> None:
    image = {"image": {"format": "png", "source": {"bytes": png(100, 75)}}}
    assert attachment_tokens(image) == 10  # ceil(7,500 / 750)
    large = {"image": {"format": "png", "source": {"bytes": png(8000, 8000)}}}
    assert attachment_tokens(large) == MAX_IMAGE_TOKENS
    text = {"document": {"format": "txt", "name": "a", "source": {"bytes": b"x" * 400}}}
    assert attachment_tokens(text) == 100
    pdf = {"document": {"format": "pdf", "name": "a", "source": {"bytes": b"x" * 1600}}}
    assert attachment_tokens(pdf) == 100
    assert attachment_tokens({"text": "x" * 400}) == 0


def _missing(rest: Rest, session_id: str) -> list[str]:
    return ["0b515f04-62f1-415e-a225-f6913c371fab"]


def _other_sessions(rest: Rest, session_id: str) -> list[str]:
    return [uploaded(rest, rest.create_session()["session_id"], SOURCE)]


def _not_a_png(rest: Rest, session_id: str) -> list[str]:
    return [uploaded(rest, session_id, b"hello", name="a.png", content_type="image/png")]


def _not_utf8(rest: Rest, session_id: str) -> list[str]:
    return [uploaded(rest, session_id, b"\xff\xfe", name="a.txt")]


def _too_wide(rest: Rest, session_id: str) -> list[str]:
    return [uploaded(rest, session_id, png(8001, 10), name="a.png", content_type="image/png")]


def _oversize(rest: Rest, session_id: str) -> list[str]:
    """moto's S3 does not enforce the policy's size range: this stands for an object S3
    would have refused, or one put there by other means."""
    answer = ask(rest, session_id, name="a.png", content_type="image/png", size=10).json
    data = png(10, 10) + b"\0" * MAX_IMAGE_BYTES
    assert upload(answer, data).status_code == 204
    return [answer["attachment_id"]]


def _too_many_documents(rest: Rest, session_id: str) -> list[str]:
    return [uploaded(rest, session_id, SOURCE, name=f"f{n}.py") for n in range(6)]


@pytest.mark.parametrize(
    ("attachments", "says"),
    [
        (_missing, "expired or was never uploaded"),
        (_other_sessions, "expired or was never uploaded"),
        (_not_a_png, "its content is not png"),
        (_not_utf8, "not valid UTF-8"),
        (_too_wide, "8,000 pixels a side"),
        (_oversize, "at most 3,750,000 bytes"),
        (_too_many_documents, "at most 5 documents"),
    ],
)
def test_a_refused_attachment_costs_no_budget_and_no_model_call(
    rest: Rest, session_id: str, bedrock: BedrockFake, attachments: Any, says: str
) -> None:
    ids = attachments(rest, session_id)
    before = usage(rest)
    error = send(rest, session_id, attachments=ids).assert_error(422, "attachment_rejected")
    assert says in error["message"]
    assert bedrock.requests_for(CONVERSE) == []
    assert usage(rest) == before
    assert rest.call("GET", f"/sessions/{session_id}/messages").json["messages"] == []


def test_another_user_cannot_send_into_the_session(rest: Rest, session_id: str) -> None:
    document = uploaded(rest, session_id, SOURCE)
    response = rest.call(
        "POST",
        f"/sessions/{session_id}/messages",
        user=USER_B,
        body={"content": "q", "attachments": [document]},
    )
    response.assert_error(404, "not_found")


@pytest.mark.parametrize(
    "ids",
    [
        ["0b515f04-62f1-415e-a225-f6913c371fab"] * 2,  # twice
        ["not-an-id"],
        [f"0b515f04-62f1-415e-a225-{n:012d}" for n in range(26)],  # over 20 + 5
    ],
)
def test_malformed_attachment_lists_are_400(rest: Rest, session_id: str, ids: list[str]) -> None:
    send(rest, session_id, attachments=ids).assert_error(400, "bad_request")


def test_an_expired_object_is_refused(rest: Rest, session_id: str, app_env: dict[str, str]) -> None:
    document = uploaded(rest, session_id, SOURCE)
    boto3.client("s3").delete_object(
        Bucket=app_env[Env.ATTACHMENTS_BUCKET], Key=attachment_key(session_id, document)
    )
    error = send(rest, session_id, attachments=[document]).assert_error(422, "attachment_rejected")
    assert document in error["message"]


def test_the_exports_list_the_attachments(rest: Rest, session_id: str) -> None:
    document = uploaded(rest, session_id, SOURCE, name="main.py")
    assert send(rest, session_id, attachments=[document]).status == 200
    path = f"/sessions/{session_id}/export"
    markdown = rest.call("GET", path, query={"format": "md"}).text
    assert "Attachments:\n\n- `main.py` (text/plain, 15 bytes)" in markdown
    exported = rest.call("GET", path, query={"format": "json"}).json["messages"]
    assert exported[0]["attachments"][0]["attachment_id"] == document


def test_s3_slowing_down_is_503_before_any_budget_hold_or_model_call(
    rest: Rest, session_id: str, bedrock: BedrockFake
) -> None:
    """S3's own "slow down" (HTTP 503, the wire answer moto cannot give), on every attempt of
    the attachment's read: the turn is a retryable 503, nothing stored, nothing held."""
    document = uploaded(rest, session_id, SOURCE)
    before = usage(rest)
    attempts: list[str] = []

    def slow_down(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        attempts.append(request.method)
        body = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
        return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, RawBody(body))

    events = aws.client("s3").meta.events
    events.register("before-send.s3.GetObject", slow_down, unique_id="test-slow-down")
    try:
        response = send(rest, session_id, attachments=[document])
    finally:
        events.unregister("before-send.s3.GetObject", unique_id="test-slow-down")
    response.assert_error(503, "throttled")
    assert "retry-after" in response.headers
    assert attempts and set(attempts) == {"GET"}
    assert bedrock.requests_for(CONVERSE) == []
    assert usage(rest) == before
    assert rest.call("GET", f"/sessions/{session_id}/messages").json["messages"] == []


def test_a_turn_without_attachments_builds_no_s3_client(
    rest: Rest, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building S3's client costs about 50 ms of a cold start; only a request that touches an
    attachment pays it."""
    monkeypatch.setattr(aws, "_clients", {})
    assert send(rest, session_id).status == 200
    assert {service for service, _ in aws._clients} >= {"dynamodb", "bedrock-runtime"}
    assert "s3" not in {service for service, _ in aws._clients}


class _Body:
    def __init__(self, reads: list[str], name: str) -> None:
        self.reads, self.name = reads, name

    def read(self) -> bytes:
        self.reads.append(self.name)
        return SOURCE

    def close(self) -> None:
        pass


class RecordingStore:
    """Objects as GetObject answers them, recording which bodies were downloaded. With
    ``together``, each GetObject waits (at most 5 s) until that many are in flight at once:
    calls made one after another break the barrier and fail."""

    def __init__(self, together: int = 1, gone: frozenset[str] = frozenset()) -> None:
        self.reads: list[str] = []
        self.asked: list[str] = []
        self._barrier = threading.Barrier(together) if together > 1 else None
        self._gone = gone

    def get(self, session_id: str, attachment_id: str) -> StoredObject | None:
        self.asked.append(attachment_id)
        if self._barrier is not None:
            self._barrier.wait(timeout=5)
        if attachment_id in self._gone:
            return None
        return StoredObject(
            "text/plain", attachment_id, len(SOURCE), _Body(self.reads, attachment_id)
        )


def test_a_kind_over_its_count_is_refused_before_any_body_is_downloaded() -> None:
    store = RecordingStore()
    ids = [f"f{n}" for n in range(MAX_DOCUMENTS_PER_MESSAGE + 3)]
    with pytest.raises(AttachmentRejected, match="at most 5 documents; attachment f5 would be"):
        load(store, "s", ids)  # type: ignore[arg-type]
    assert store.reads == []


def test_a_messages_attachments_are_asked_for_at_once() -> None:
    """Five GetObjects in flight together (the store's barrier needs all five), so a
    question's files cost the slowest read, not the sum of them; the order stays the
    question's."""
    ids = [f"f{n}" for n in range(MAX_DOCUMENTS_PER_MESSAGE)]
    store = RecordingStore(together=len(ids))
    loaded = load(store, "s", ids)  # type: ignore[arg-type]
    assert [attachment.ref.attachment_id for attachment in loaded] == ids
    assert sorted(store.reads) == ids


def test_a_missing_attachment_refuses_the_message_and_closes_the_others() -> None:
    closed: list[str] = []

    class Closing(_Body):
        def close(self) -> None:
            closed.append(self.name)

    class Store(RecordingStore):
        def get(self, session_id: str, attachment_id: str) -> StoredObject | None:
            if attachment_id == "f1":
                return None
            return StoredObject("text/plain", attachment_id, 1, Closing(self.reads, attachment_id))

    with pytest.raises(AttachmentRejected, match="attachment f1: it has expired"):
        load(Store(), "s", ["f0", "f1", "f2"])  # type: ignore[arg-type]
    assert sorted(closed) == ["f0", "f2"]
