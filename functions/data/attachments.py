"""The attachments bucket: presigned uploads into a session's prefix.

A client never sends a file through the API: it asks for an upload
(``POST /sessions/{session_id}/attachments``) and posts the file straight to S3 with the form
this signs. The form's policy pins everything the client could change: the exact key, the
content type it declared, a size between 1 byte and its format's limit, and the original name
as metadata. S3 refuses any other upload with that form, and the form expires soon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.contract import ATTACHMENT_UPLOAD_EXPIRY_SECONDS, AttachmentFormat, attachment_key

if TYPE_CHECKING:
    from botocore.client import BaseClient

# The object metadata holding the uploader's file name (sanitized), as S3 returns it.
NAME_METADATA = "name"


@dataclass(frozen=True)
class PresignedUpload:
    """An HTML-form upload: POST ``fields`` and then the file (as field ``file``) to ``url``."""

    url: str
    fields: dict[str, str]


class AttachmentStore:
    """One bucket's attachments, each under ``sessions/<session_id>/<attachment_id>``."""

    def __init__(self, client: BaseClient, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

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
