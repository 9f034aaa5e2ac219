"""The knowledge-base fake, through the real bedrock-agent and bedrock-agent-runtime clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fakes.knowledge_base import BUILT_IN, Corpus, CorpusError, KnowledgeBaseFake

KB_ID = "LOCALKB001"
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


def _client(service: str, fake: KnowledgeBaseFake) -> Any:
    return boto3.client(
        service,
        endpoint_url=fake.env()[f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"],
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=ONE_ATTEMPT,
    )


@pytest.fixture
def fake() -> Iterator[KnowledgeBaseFake]:
    with KnowledgeBaseFake(KB_ID, latency_s=0.01) as server:
        yield server


def _retrieve(fake: KnowledgeBaseFake, text: str, results: int = 5) -> list[dict[str, Any]]:
    response = _client("bedrock-agent-runtime", fake).retrieve(
        knowledgeBaseId=KB_ID,
        retrievalQuery={"text": text},
        retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": results}},
    )
    return response["retrievalResults"]


def test_it_is_listed_and_described_as_bedrock_agent_does(fake: KnowledgeBaseFake) -> None:
    agent = _client("bedrock-agent", fake)
    pages = list(agent.get_paginator("list_knowledge_bases").paginate())
    [summary] = [s for page in pages for s in page["knowledgeBaseSummaries"]]
    assert summary["knowledgeBaseId"] == KB_ID
    assert summary["status"] == "ACTIVE"
    assert summary["updatedAt"].year == 2026  # parsed by botocore as a timestamp
    described = agent.get_knowledge_base(knowledgeBaseId=KB_ID)["knowledgeBase"]
    assert described["knowledgeBaseArn"].endswith(f":knowledge-base/{KB_ID}")


def test_retrieve_ranks_passages_by_the_terms_they_share(fake: KnowledgeBaseFake) -> None:
    results = _retrieve(fake, "How does the token budget reset?")
    assert results[0]["location"]["s3Location"]["uri"].endswith("/token-budgets.md")
    assert "token budget" in results[0]["content"]["text"]
    scores = [result["score"] for result in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < score <= 1 for score in scores)
    assert _retrieve(fake, "citations knowledge base", results=1)[0]["location"]["s3Location"][
        "uri"
    ].endswith("/knowledge-bases.md")


def test_a_query_sharing_no_term_finds_nothing(fake: KnowledgeBaseFake) -> None:
    assert _retrieve(fake, "zebra xylophone") == []


def test_results_are_capped_at_number_of_results(fake: KnowledgeBaseFake) -> None:
    assert len(_retrieve(fake, "session model answer", results=2)) == 2


@pytest.mark.parametrize(
    ("knowledge_base_id", "text", "results", "code"),
    [
        ("OTHERKB001", "sessions", 5, "ResourceNotFoundException"),
        (KB_ID, "   ", 5, "ValidationException"),
        (KB_ID, "sessions", 101, "ValidationException"),
    ],
)
def test_the_services_refusals(
    fake: KnowledgeBaseFake, knowledge_base_id: str, text: str, results: int, code: str
) -> None:
    with pytest.raises(ClientError) as raised:
        _client("bedrock-agent-runtime", fake).retrieve(
            knowledgeBaseId=knowledge_base_id,
            retrievalQuery={"text": text},
            retrievalConfiguration={"vectorSearchConfiguration": {"numberOfResults": results}},
        )
    assert raised.value.response["Error"]["Code"] == code


def test_a_folder_is_a_corpus_of_its_paragraphs(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "llamas.md").write_text(
        "# Llamas\n\nLlamas are domesticated South American camelids kept for wool.\n\n"
        "They hum when they are anxious or curious.\n",
        encoding="utf-8",
    )
    (tmp_path / "notes.txt").write_text("Kettles boil water for tea quickly.\n", "utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    corpus = Corpus.from_folder(tmp_path)
    assert len(corpus.passages) == 3  # the heading is too short to cite
    with KnowledgeBaseFake(KB_ID, corpus, latency_s=0) as fake:
        [best, *_] = _retrieve(fake, "do llamas hum when anxious?")
    assert best["content"]["text"] == "They hum when they are anxious or curious."
    assert best["location"] == {
        "type": "CUSTOM",
        "customDocumentLocation": {"id": "guide/llamas.md"},
    }


def test_a_folder_that_cannot_be_a_corpus_says_why(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="is not a folder"):
        Corpus.from_folder(tmp_path / "missing")
    with pytest.raises(CorpusError, match=r"holds no \.md or \.txt file"):
        Corpus.from_folder(tmp_path)
    (tmp_path / "short.md").write_text("# Title\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no passage"):
        Corpus.from_folder(tmp_path)


def test_the_built_in_corpus_has_something_to_cite() -> None:
    assert len(BUILT_IN.passages) >= 5
