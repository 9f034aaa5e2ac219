"""``/sessions/{session_id}/attachments``: uploads for the model to read, straight to S3."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from functions.contract import API_BASE_PATH, ATTACHMENT_UPLOAD_EXPIRY_SECONDS
from functions.contract import attachment_size_limit as size_limit
from functions.core.clock import epoch_seconds, utc_now
from functions.core.observability import count
from functions.domain.attachments import declared_format, safe_name
from functions.main.deps import Attachments, Repositories, User
from functions.main.errors import ERROR, SESSION_RESPONSES
from functions.main.schemas import AttachmentCreate, AttachmentUploadOut, PresignedPostOut

router = APIRouter(prefix=API_BASE_PATH)


@router.post(
    "/sessions/{session_id}/attachments",
    responses={
        **SESSION_RESPONSES,
        422: {
            **ERROR,
            "description": (
                "`attachment_rejected`: the content type is not one Converse accepts, or the "
                "size is over its format's limit (the message names it)."
            ),
        },
    },
)
async def create_attachment(
    session_id: str,
    body: AttachmentCreate,
    *,
    user: User,
    repositories: Repositories,
    attachments: Attachments,
) -> AttachmentUploadOut:
    """A presigned S3 upload for one file of the caller's session, and the id that names it.

    Nothing is stored until the client uploads; the session cleanup deletes what was.
    """
    repositories.sessions.get(user, session_id)
    attachment_format = declared_format(body.content_type, body.size)
    attachment_id = str(uuid.uuid4())
    upload = attachments.presign_upload(
        session_id,
        attachment_id,
        attachment_format=attachment_format,
        size_limit=size_limit(attachment_format.kind),
        name=safe_name(body.name),
    )
    count("AttachmentUploadsSigned")
    return AttachmentUploadOut(
        attachment_id=attachment_id,
        upload=PresignedPostOut(url=upload.url, fields=upload.fields),
        expires_at=epoch_seconds(utc_now()) + ATTACHMENT_UPLOAD_EXPIRY_SECONDS,
    )
