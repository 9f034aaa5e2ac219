"""A loopback fake of one Bedrock knowledge base, for the real boto3 clients: the knowledge-base
path of ``make dev`` (and its tests) without AWS.

It speaks the two services' restJson wire formats, so the functions' own clients reach it
through ``AWS_ENDPOINT_URL_BEDROCK_AGENT`` and ``AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME``
(:meth:`KnowledgeBaseFake.env`), as they reach the model fake (:mod:`fakes.bedrock`):

* bedrock-agent ``ListKnowledgeBases``   POST /knowledgebases/                        (one page)
* bedrock-agent ``GetKnowledgeBase``     GET  /knowledgebases/{knowledgeBaseId}
* bedrock-agent-runtime ``Retrieve``     POST /knowledgebases/{knowledgeBaseId}/retrieve

Retrieval is real enough to prove the path: the corpus is split into passages (paragraphs), a
query's terms are matched against each passage's, and the passages sharing the most (weighted
by how rare each term is in the corpus) come first, with Bedrock's result shape (``content``,
``location``, ``score`` between 0 and 1). A passage sharing no term is not returned. It is not
a vector search: synonyms do not match.

Like the service it answers 404 ``ResourceNotFoundException`` for another knowledge base's id,
400 ``ValidationException`` for a blank query or ``numberOfResults`` outside 1..100, and takes
a moment to answer (``latency_s``, as a vector store's round trip does).

The corpus is a small built-in one (:data:`BUILT_IN`, about this assistant) or a folder of
``.md`` and ``.txt`` files (:meth:`Corpus.from_folder`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fakes.loopback import LoopbackServer, Request, Response, error_response, json_response

DEFAULT_NUMBER_OF_RESULTS = 5  # Bedrock's default for retrieve
MAX_NUMBER_OF_RESULTS = 100
DEFAULT_LATENCY_SECONDS = 0.1  # a retrieve's round trip to a vector store, roughly
TEXT_SUFFIXES = (".md", ".txt")
MIN_PASSAGE_WORDS = 4  # shorter paragraphs (headings, rules) are not worth citing
CREATED_AT = "2026-01-01T00:00:00Z"
_WORD = re.compile(r"[a-z0-9]+")
# Words too common to say what a passage is about.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "may",
        "me",
        "my",
        "not",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)
_LIST = re.compile(r"^/knowledgebases/?$")
_GET = re.compile(r"^/knowledgebases/(?P<id>[^/]+)$")
_RETRIEVE = re.compile(r"^/knowledgebases/(?P<id>[^/]+)/retrieve$")


class CorpusError(ValueError):
    """The folder given as a corpus cannot be one; the message says why and what to do."""


@dataclass(frozen=True)
class Passage:
    """One retrievable piece of text and where it comes from (a Bedrock location)."""

    text: str
    location: dict[str, Any]

    def terms(self) -> set[str]:
        return terms(self.text)


def terms(text: str) -> set[str]:
    """The distinct, lower-cased words of ``text`` that say what it is about."""
    return {word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS}


def paragraphs(text: str) -> list[str]:
    """``text``'s blank-line-separated paragraphs, each on one line, short ones left out."""
    pieces = (" ".join(piece.split()) for piece in re.split(r"\n\s*\n", text))
    return [piece for piece in pieces if len(piece.split()) >= MIN_PASSAGE_WORDS]


def _s3(name: str) -> dict[str, Any]:
    return {"type": "S3", "s3Location": {"uri": f"s3://local-knowledge-base/{name}"}}


class Corpus:
    """The passages of one knowledge base, and the ranking of them for a query."""

    def __init__(self, passages: Sequence[Passage], description: str) -> None:
        if not passages:
            raise CorpusError(f"{description} holds no passage of {MIN_PASSAGE_WORDS}+ words")
        self.passages = tuple(passages)
        self.description = description
        self._terms = [passage.terms() for passage in self.passages]
        counts = Counter(term for found in self._terms for term in found)
        total = len(self.passages)
        # A term in every passage still weighs something: a query of only such terms matches.
        self._weight = {term: math.log(1 + total / count) for term, count in counts.items()}

    @classmethod
    def from_folder(cls, folder: Path) -> Corpus:
        """Every paragraph of every ``.md`` and ``.txt`` file under ``folder``; each passage's
        location is a custom document named by its path relative to ``folder``."""
        if not folder.is_dir():
            raise CorpusError(f"{folder} is not a folder: give --kb-dir a folder of text files")
        files = sorted(p for p in folder.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
        if not files:
            raise CorpusError(f"{folder} holds no {' or '.join(TEXT_SUFFIXES)} file")
        passages = [
            Passage(text, {"type": "CUSTOM", "customDocumentLocation": {"id": str(relative)}})
            for path in files
            for relative in [path.relative_to(folder)]
            for text in paragraphs(path.read_text(encoding="utf-8", errors="replace"))
        ]
        return cls(passages, f"{len(files)} files in {folder}")

    def rank(self, query: str, limit: int) -> list[tuple[Passage, float]]:
        """The ``limit`` passages sharing most of the query's terms, best first, scored by the
        share of the query's (rarity-weighted) terms each holds; ties keep corpus order."""
        wanted = terms(query)
        total = sum(self._weight.get(term, math.log(2)) for term in wanted)
        scored = []
        for index, found in enumerate(self._terms):
            shared = sum(self._weight[term] for term in wanted & found)
            if shared > 0:
                scored.append((-shared, index))
        scored.sort()
        return [(self.passages[index], round(-score / total, 4)) for score, index in scored[:limit]]


def _built_in(texts: Iterable[tuple[str, str]]) -> Corpus:
    return Corpus([Passage(text, _s3(name)) for name, text in texts], "the built-in corpus")


# What the built-in knowledge base knows: how this assistant works, so that questions a
# developer tries it with find something to cite.
BUILT_IN_TEXTS = (
    (
        "sessions.md",
        "A session holds one conversation with the assistant: its title, its model, its "
        "knowledge base and its messages. Sessions expire after 30 days without activity, "
        "and deleting a session removes its messages too.",
    ),
    (
        "knowledge-bases.md",
        "A knowledge base grounds the assistant's answers: before the model is called, the "
        "passages that match the question best are retrieved and given to the model, which "
        "cites them as [1], [2] and so on. The answer lists those citations with their source.",
    ),
    (
        "token-budgets.md",
        "Every user has a token budget per day and per month. A turn is refused with "
        "quota_exceeded when the budget is spent, and Retry-After says how many seconds remain "
        "until the period resets.",
    ),
    (
        "streaming.md",
        "Over the WebSocket API an answer streams as it is generated: a start frame, chunk "
        "frames with the text, then an end frame with the status, the usage and the citations.",
    ),
    (
        "retries.md",
        "A client may retry a request safely with the same Idempotency-Key header: within the "
        "idempotency window a repeat returns the original result without running again.",
    ),
    (
        "models.md",
        "The deployment lists the Bedrock models a session may use; the first one is the "
        "default. A session's model can be changed at any time and applies to its next turn.",
    ),
)
BUILT_IN = _built_in(BUILT_IN_TEXTS)


class KnowledgeBaseFake(LoopbackServer):
    """One knowledge base, ``knowledge_base_id``, over ``corpus``; see the module docstring."""

    def __init__(
        self,
        knowledge_base_id: str,
        corpus: Corpus = BUILT_IN,
        *,
        name: str = "local-knowledge-base",
        region: str = "us-east-1",
        latency_s: float = DEFAULT_LATENCY_SECONDS,
    ) -> None:
        super().__init__()
        self.knowledge_base_id = knowledge_base_id
        self.corpus = corpus
        self.name = name
        self.region = region
        self.latency_s = latency_s

    def env(self) -> dict[str, str]:
        """Service-specific endpoint variables that send both knowledge-base clients here."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_AGENT": self.url,
            "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME": self.url,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "knowledgeBaseId": self.knowledge_base_id,
            "name": self.name,
            "description": f"dev server knowledge base: {self.corpus.description}",
            "status": "ACTIVE",
            "updatedAt": CREATED_AT,
        }

    def handle(self, request: Request) -> Response:
        time.sleep(self.latency_s)
        if request.method == "POST" and _LIST.match(request.path):
            return json_response({"knowledgeBaseSummaries": [self.summary()]})
        get, retrieve = _GET.match(request.path), _RETRIEVE.match(request.path)
        match = get if request.method == "GET" else retrieve if request.method == "POST" else None
        if match is None:
            return error_response(
                404, "UnknownOperationException", f"{request.method} {request.path}"
            )
        knowledge_base_id = unquote(match["id"])
        if knowledge_base_id != self.knowledge_base_id:
            return error_response(
                404,
                "ResourceNotFoundException",
                f"Knowledge base {knowledge_base_id} does not exist (this one is "
                f"{self.knowledge_base_id})",
            )
        if match is get:
            return json_response({"knowledgeBase": self._knowledge_base()})
        return self._retrieve(request.body)

    def _knowledge_base(self) -> dict[str, Any]:
        account = "123456789012"
        return self.summary() | {
            "knowledgeBaseArn": (
                f"arn:aws:bedrock:{self.region}:{account}:knowledge-base/{self.knowledge_base_id}"
            ),
            "roleArn": f"arn:aws:iam::{account}:role/local-knowledge-base",
            "knowledgeBaseConfiguration": {"type": "VECTOR"},
            "storageConfiguration": {"type": "OPENSEARCH_SERVERLESS"},
            "createdAt": CREATED_AT,
        }

    def _retrieve(self, raw: bytes) -> Response:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as error:
            return error_response(400, "ValidationException", f"invalid JSON: {error}")
        query = str((body.get("retrievalQuery") or {}).get("text", ""))
        if not query.strip():
            return error_response(400, "ValidationException", "retrievalQuery.text is blank")
        vector = (body.get("retrievalConfiguration") or {}).get("vectorSearchConfiguration", {})
        limit = vector.get("numberOfResults", DEFAULT_NUMBER_OF_RESULTS)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_NUMBER_OF_RESULTS:
            return error_response(
                400,
                "ValidationException",
                f"numberOfResults must be between 1 and {MAX_NUMBER_OF_RESULTS}, not {limit}",
            )
        results = [
            {
                "content": {"text": passage.text, "type": "TEXT"},
                "location": passage.location,
                "score": score,
            }
            for passage, score in self.corpus.rank(query, limit)
        ]
        return json_response({"retrievalResults": results})
