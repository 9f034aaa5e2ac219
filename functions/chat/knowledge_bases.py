"""The knowledge bases a session may ground its answers on: Bedrock's list, the configured one
marked as the default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.chat.upstream import upstream_errors
from functions.core import aws
from functions.domain.models import KnowledgeBase

if TYPE_CHECKING:
    from functions.core.chat_settings import ChatSettings


class KnowledgeBaseService:
    def __init__(self, settings: ChatSettings) -> None:
        self._settings = settings

    def list(self) -> list[KnowledgeBase]:
        """Every knowledge base of the account (all pages). Empty when knowledge-base features
        are off: sessions could not use any of them."""
        if not self._settings.knowledge_bases_enabled:
            return []
        paginator = aws.client("bedrock-agent").get_paginator("list_knowledge_bases")
        with upstream_errors("listing knowledge bases"):
            summaries = [
                summary
                for page in paginator.paginate()
                for summary in page.get("knowledgeBaseSummaries", [])
            ]
        return [self._knowledge_base(summary) for summary in summaries]

    def _knowledge_base(self, summary: dict[str, Any]) -> KnowledgeBase:
        return KnowledgeBase(
            knowledge_base_id=summary["knowledgeBaseId"],
            name=summary.get("name", ""),
            description=summary.get("description"),
            status=summary.get("status", ""),
            default=summary["knowledgeBaseId"] == self._settings.knowledge_base_id,
        )
