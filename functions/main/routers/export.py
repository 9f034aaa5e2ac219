"""``/sessions/{session_id}/export``: a whole session, page by page, as JSON or Markdown."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Response

from functions.contract import API_BASE_PATH
from functions.main.deps import NextToken, Repositories, User
from functions.main.errors import SESSION_RESPONSES
from functions.main.export import MAX_PAGE_BYTES, MAX_PAGE_MESSAGES, RENDERERS, ExportFormat
from functions.main.schemas import SessionExport

router = APIRouter(prefix=API_BASE_PATH)

_NEXT = (
    'The next page, when there is one: `<?format=...&next_token=...>; rel="next"` (RFC 8288), '
    "relative to this page's URL."
)


@router.get(
    "/sessions/{session_id}/export",
    response_model=SessionExport,
    responses={
        **SESSION_RESPONSES,
        200: {
            "description": (
                "One page of the export: `application/json` (`format=json`) or "
                "`text/markdown` (`format=md`)."
            ),
            "content": {"text/markdown": {"schema": {"type": "string"}}},
            "headers": {
                "Link": {"description": _NEXT, "schema": {"type": "string"}},
                "Content-Disposition": {
                    "description": '`attachment; filename="<session_id>.json"` (or `.md`).',
                    "schema": {"type": "string"},
                },
            },
        },
    },
)
async def export_session(
    session_id: str,
    *,
    user: User,
    repositories: Repositories,
    export_format: Annotated[
        ExportFormat, Query(alias="format", description="`json` (the default) or `md`.")
    ] = "json",
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_MESSAGES, description="Most messages in one page.")
    ] = MAX_PAGE_MESSAGES,
    next_token: NextToken = None,
) -> Response:
    """The session and its messages, oldest first, in pages of whole messages (each page is
    at most about 4 MB); follow `next_token`, or the `Link` header, to the end."""
    session = repositories.sessions.get(user, session_id)
    renderer = RENDERERS[export_format]
    page = repositories.messages.export_page(
        user,
        session_id,
        max_items=limit,
        max_bytes=MAX_PAGE_BYTES,
        size=renderer.message_size,
        next_token=next_token,
    )
    messages = repositories.repair(user, session, page.items, to_end=page.next_token is None)
    body = renderer.page(session, messages, page.next_token, first=next_token is None)
    headers = {"Content-Disposition": f'attachment; filename="{session_id}.{export_format}"'}
    if page.next_token:
        query = {"format": export_format, "limit": limit, "next_token": page.next_token}
        headers["Link"] = f'<?{urlencode(query)}>; rel="next"'
    return Response(body, media_type=renderer.media_type, headers=headers)
