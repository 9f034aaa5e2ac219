"""The attachments bucket: presigned uploads into a session's prefix.

A client never sends a file through the API: it asks for an upload
(``POST /sessions/{session_id}/attachments``) and posts the file straight to S3 with the form
this signs. The form's policy pins everything the client could change: the exact key, the
content type it declared, a size between 1 byte and its format's limit, and the original name
as metadata. S3 refuses any other upload with that form, and the form expires soon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.contract import (
    ATTACHMENT_UPLOAD_EXPIRY_SECONDS,
    AttachmentFormat,
    attachment_key,
    attachments_prefix,
)
from functions.core import aws, deadline
from functions.core.aws_errors import error_code
from functions.domain.errors import Throttled

if TYPE_CHECKING:
    from botocore.client import BaseClient

# The object metadata holding the uploader's file name (sanitized), as S3 returns it.
NAME_METADATA = "name"
# DeleteObjects takes at most this many keys per request.
DELETE_BATCH_SIZE = 1_000
# Tries at a batch whose keys S3 answered with per-key errors (SlowDown, InternalError): those
# are in a 200 response, which botocore's retries never see.
DELETE_ATTEMPTS = 5
# What one more DeleteObjects of a full batch needs after a pause: S3 answers it in well under
# a second; this keeps a retry from starting where it could not end before the deadline.
DELETE_ATTEMPT_SECONDS = 2.0


@dataclass(frozen=True)
class PresignedUpload:
    """An HTML-form upload: POST ``fields`` and then the file (as field ``file``) to ``url``."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class StoredObject:
    """An attachment as GetObject answers it, its body not read yet: the size and the type
    are checked first, so an oversized object is never downloaded."""

    content_type: str
    name: str
    size: int
    body: Any  # botocore's StreamingBody

    def read(self) -> bytes:
        return bytes(self.body.read())

    def close(self) -> None:
        self.body.close()


class AttachmentStore:
    """One bucket's attachments, each under ``sessions/<session_id>/<attachment_id>``."""

    def __init__(self, bucket: str) -> None:
        self._bucket = bucket

    @property
    def _client(self) -> BaseClient:
        """The container's S3 client, built on first use: most requests touch no attachment,
        and building it (loading S3's service model) costs about 50 ms of a cold start."""
        return aws.client("s3")

    def presign_upload(
        self,
        session_id: str,
        attachment_id: str,
        *,
        attachment_format: AttachmentFormat,
        size_limit: int,
        name: str,
    ) -> PresignedUpload:
        """Sign a POST policy for one upload; no call to S3 (signing is local)."""
        content_type = attachment_format.content_type
        fields = {"Content-Type": content_type, f"x-amz-meta-{NAME_METADATA}": name}
        signed = self._client.generate_presigned_post(
            Bucket=self._bucket,
            Key=attachment_key(session_id, attachment_id),  # botocore adds {"key": ...}
            Fields=fields,
            Conditions=[
                {"Content-Type": content_type},
                {f"x-amz-meta-{NAME_METADATA}": name},
                ["content-length-range", 1, size_limit],
            ],
            ExpiresIn=ATTACHMENT_UPLOAD_EXPIRY_SECONDS,
        )
        return PresignedUpload(url=signed["url"], fields=dict(signed["fields"]))

    def get(self, session_id: str, attachment_id: str) -> StoredObject | None:
        """The object of one attachment, or None when there is none (never uploaded, expired,
        or deleted with its session)."""
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=attachment_key(session_id, attachment_id)
            )
        except ClientError as error:
            if error_code(error) in {"NoSuchKey", "404"}:
                return None
            raise
        return StoredObject(
            content_type=response.get("ContentType", ""),
            name=response.get("Metadata", {}).get(NAME_METADATA, ""),
            size=int(response.get("ContentLength", 0)),
            body=response["Body"],
        )

    def delete_session(self, session_id: str) -> int:
        """Delete every attachment of a session (its prefix); returns how many were deleted.

        Idempotent: a session without attachments, or one already cleaned, costs one list.
        """
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._bucket, Prefix=attachments_prefix(session_id))
        deleted = 0
        batch: list[str] = []
        for page in pages:
            for listed in page.get("Contents", []):
                batch.append(listed["Key"])
                if len(batch) == DELETE_BATCH_SIZE:
                    deleted += self._delete_batch(batch)
                    batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def _delete_batch(self, keys: list[str]) -> int:
        """DeleteObjects until every key is gone, backing off on the keys S3 reported failed."""
        pending = keys
        for attempt in range(DELETE_ATTEMPTS):
            response = self._client.delete_objects(
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": key} for key in pending], "Quiet": True},
            )
            failed = {error["Key"] for error in response.get("Errors", [])}
            if not failed:
                return len(keys)
            pending = [key for key in pending if key in failed]
            deadline.pause(
                min(0.05 * 2**attempt, 1.0), DELETE_ATTEMPT_SECONDS, "a batch of attachment deletes"
            )
        raise Throttled("S3 kept failing to delete attachments; retry later")
