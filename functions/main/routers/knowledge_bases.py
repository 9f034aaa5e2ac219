"""``/knowledge-bases``: what a session may ground its answers on."""

from __future__ import annotations

from fastapi import APIRouter

from functions.contract import API_BASE_PATH
from functions.main.deps import KnowledgeBases, User
from functions.main.errors import AUTH_RESPONSES
from functions.main.schemas import KnowledgeBaseList, KnowledgeBaseOut

router = APIRouter(prefix=API_BASE_PATH)


@router.get("/knowledge-bases", responses=AUTH_RESPONSES)
async def list_knowledge_bases(user: User, service: KnowledgeBases) -> KnowledgeBaseList:
    """Every knowledge base of the account (all pages), the configured one marked ``default``.

    Empty when knowledge-base features are off: sessions could not use any of them.
    """
    return KnowledgeBaseList(knowledge_bases=[KnowledgeBaseOut.of(base) for base in service.list()])
