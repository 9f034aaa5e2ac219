"""``POST /sessions/{session_id}/attachments`` through the main Lambda handler: the presigned
upload it returns really uploads to moto's S3, within its conditions only."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from typing import Any

import boto3
import httpx
import pytest

from functions.contract import (
    MAX_DOCUMENT_BYTES,
    MAX_IMAGE_BYTES,
    Env,
    attachment_key,
)
from tests.functions.helpers import USER_B, Rest, dynamodb_throttled

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
SOURCE = b"print('hello')\n"


def ask(rest: Rest, session_id: str, **body: Any) -> Any:
    declared = {"name": "main.py", "content_type": "text/plain", "size": len(SOURCE), **body}
    return rest.call("POST", f"/sessions/{session_id}/attachments", body=declared)


def upload(answer: dict[str, Any], data: bytes, **fields: str) -> httpx.Response:
    """POST the form as a client does: the signed fields, then the file."""
    form = {**answer["upload"]["fields"], **fields}
    return httpx.post(answer["upload"]["url"], data=form, files={"file": ("f", data)})


def stored(bucket: str, session_id: str, attachment_id: str) -> dict[str, Any]:
    s3 = boto3.client("s3")
    return s3.get_object(Bucket=bucket, Key=attachment_key(session_id, attachment_id))


@pytest.fixture
def session_id(rest: Rest) -> str:
    return rest.create_session()["session_id"]


def test_the_presigned_post_uploads_into_the_sessions_prefix(
    rest: Rest, session_id: str, app_env: dict[str, str]
) -> None:
    before = int(time.time())
    response = ask(rest, session_id, name="../src/main (1).py")
    assert response.status == 200, response.text
    answer = response.json
    assert set(answer) == {"attachment_id", "upload", "expires_at"}
    assert before + 15 * 60 <= answer["expires_at"] <= int(time.time()) + 15 * 60
    fields = answer["upload"]["fields"]
    assert fields["key"] == attachment_key(session_id, answer["attachment_id"])
    assert fields["Content-Type"] == "text/plain"
    assert fields["x-amz-meta-name"] == "main (1).py"  # the last path part only
    assert upload(answer, SOURCE).status_code == 204
    obj = stored(app_env[Env.ATTACHMENTS_BUCKET], session_id, answer["attachment_id"])
    assert obj["Body"].read() == SOURCE
    assert obj["ContentType"] == "text/plain"
    assert obj["Metadata"] == {"name": "main (1).py"}


def test_each_request_gets_its_own_attachment_id(rest: Rest, session_id: str) -> None:
    ids = {ask(rest, session_id).json["attachment_id"] for _ in range(3)}
    assert len(ids) == 3


def test_a_name_of_nothing_safe_gets_a_neutral_one(rest: Rest, session_id: str) -> None:
    answer = ask(rest, session_id, name="日本語").json
    assert answer["upload"]["fields"]["x-amz-meta-name"] == "___"
    answer = ask(rest, session_id, name="dir/").json
    assert answer["upload"]["fields"]["x-amz-meta-name"] == "attachment"


def test_an_image_type_is_signed_as_declared(rest: Rest, session_id: str) -> None:
    response = ask(rest, session_id, name="shot.png", content_type="image/png", size=len(PNG))
    assert response.status == 200, response.text
    assert response.json["upload"]["fields"]["Content-Type"] == "image/png"
    assert upload(response.json, PNG).status_code == 204


@pytest.mark.parametrize(
    "content_type",
    ["application/x-sh", "image/svg+xml", "application/zip", "text/x-python"],
)
def test_a_type_converse_does_not_take_is_422(
    rest: Rest, session_id: str, content_type: str
) -> None:
    error = ask(rest, session_id, content_type=content_type).assert_error(
        422, "attachment_rejected"
    )
    assert content_type in error["message"]
    assert "application/pdf" in error["message"]  # the accepted ones are listed


@pytest.mark.parametrize(
    ("content_type", "limit"),
    [("application/pdf", MAX_DOCUMENT_BYTES), ("image/jpeg", MAX_IMAGE_BYTES)],
)
def test_a_size_over_the_formats_limit_is_422_naming_it(
    rest: Rest, session_id: str, content_type: str, limit: int
) -> None:
    assert ask(rest, session_id, content_type=content_type, size=limit).status == 200
    error = ask(rest, session_id, content_type=content_type, size=limit + 1).assert_error(
        422, "attachment_rejected"
    )
    assert f"{limit:,} bytes" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a.txt", "content_type": "text/plain"},
        {"name": "a.txt", "content_type": "text/plain", "size": 0},
        {"name": "", "content_type": "text/plain", "size": 1},
        {"name": "a.txt", "content_type": "text/plain", "size": 1, "extra": True},
        {"name": "a" * 256, "content_type": "text/plain", "size": 1},
    ],
)
def test_a_malformed_declaration_is_400(rest: Rest, session_id: str, body: dict) -> None:
    response = rest.call("POST", f"/sessions/{session_id}/attachments", body=body)
    response.assert_error(400, "bad_request")


def test_another_users_or_a_missing_session_is_404(rest: Rest, session_id: str) -> None:
    theirs = rest.call(
        "POST",
        f"/sessions/{session_id}/attachments",
        user=USER_B,
        body={"name": "a.txt", "content_type": "text/plain", "size": 1},
    )
    theirs.assert_error(404, "not_found")
    ask(rest, "0b515f04-62f1-415e-a225-f6913c371fab").assert_error(404, "not_found")


def test_a_deleted_session_takes_no_more_uploads(rest: Rest, session_id: str) -> None:
    assert rest.call("DELETE", f"/sessions/{session_id}").status == 204
    ask(rest, session_id).assert_error(404, "not_found")


def signed_policy(answer: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(answer["upload"]["fields"]["policy"]))


def test_the_signed_policy_pins_key_type_name_size_and_expiry(
    rest: Rest, session_id: str, app_env: dict[str, str]
) -> None:
    """What S3 enforces of the form (moto's S3 accepts any POST: it enforces none of it, so
    the policy document is what is checked here): the exact key, the declared content type,
    the name, 1 byte to the format's limit, SigV4, and a 15-minute expiry."""
    answer = ask(rest, session_id, name="a.pdf", content_type="application/pdf", size=10).json
    policy = signed_policy(answer)
    key = attachment_key(session_id, answer["attachment_id"])
    conditions = policy["conditions"]
    assert {"bucket": app_env[Env.ATTACHMENTS_BUCKET]} in conditions
    assert {"key": key} in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert {"x-amz-meta-name": "a.pdf"} in conditions
    assert ["content-length-range", 1, MAX_DOCUMENT_BYTES] in conditions
    assert {"x-amz-algorithm": "AWS4-HMAC-SHA256"} in conditions
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert abs(expiration.timestamp() - answer["expires_at"]) <= 2
    # Every form field is covered by a condition, so S3 refuses a changed one.
    covered = {name.lower() for c in conditions if isinstance(c, dict) for name in c}
    fields = {name.lower() for name in answer["upload"]["fields"]} - {"policy", "x-amz-signature"}
    assert fields <= covered


@pytest.mark.usefixtures("single_attempt")
def test_dynamodb_throttling_is_503(rest: Rest, session_id: str) -> None:
    with dynamodb_throttled("GetItem"):
        response = ask(rest, session_id)
    response.assert_error(503, "throttled")
    assert int(response.headers["retry-after"]) > 0
