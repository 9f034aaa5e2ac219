"""Fixtures for the OpenAPI contract run: the function tests' environment (moto, the Bedrock
fake, every variable the stack sets) plus data for the generated requests to find.

Without seeded data every path parameter names a missing session and every listing is empty,
so the run would only ever see 404s and empty 200s; the seeds make it reach real sessions,
real messages with citations, real knowledge bases and real ``next_token`` values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from fakes.bedrock import BedrockFake, passage
from functions.core.observability import metrics
from tests.functions.conftest import app_env, context, pytest_configure, rest
from tests.functions.helpers import USER_B, Rest

# The function tests' fixtures, shared as they are rather than copied.
__all__ = ["app_env", "context", "pytest_configure", "rest"]


@dataclass(frozen=True)
class Seeded:
    """What exists before the run, as the caller (``USER_A``) can see it."""

    session_ids: tuple[str, ...]  # the caller's; the first has a chat turn
    foreign_session_id: str  # another user's: must be a 404 for the caller
    sessions_token: str  # a genuine next_token of the caller's session listing
    messages_token: str  # a genuine next_token of the first session's message listing
    message_ids: tuple[str, ...] = ()  # the first session's question and answer
    export_token: str = ""  # a genuine next_token of the first session's export


@pytest.fixture
def seeded(rest: Rest, bedrock: BedrockFake) -> Iterator[Seeded]:
    """Sessions (one chatted in, grounded on a knowledge base), a foreign session, a knowledge
    base, and next_tokens, created through the real handler."""
    bedrock.retrieval_results = [passage("Paris is in France.", "s3://kb/geo.md", 0.75)]
    boto3.client("bedrock-agent").create_knowledge_base(
        name="docs",
        description="product documentation",
        roleArn="arn:aws:iam::123456789012:role/kb",
        knowledgeBaseConfiguration={"type": "VECTOR"},
        storageConfiguration={"type": "OPENSEARCH_SERVERLESS"},
    )
    chatted = rest.create_session(title="Geography")["session_id"]
    sent = rest.call("POST", f"/sessions/{chatted}/messages", body={"content": "Where is Paris?"})
    assert sent.status == 200, sent.text
    plain = rest.create_session(knowledge_base_id=None)["session_id"]
    foreign = rest.create_session(user=USER_B)["session_id"]
    sessions = rest.call("GET", "/sessions", query={"limit": "1"}).json
    messages = rest.call("GET", f"/sessions/{chatted}/messages", query={"limit": "1"}).json
    listed = rest.call("GET", f"/sessions/{chatted}/messages").json["messages"]
    export = rest.call("GET", f"/sessions/{chatted}/export", query={"limit": "1"}).json
    yield Seeded(
        session_ids=(chatted, plain),
        foreign_session_id=foreign,
        sessions_token=sessions["next_token"],
        messages_token=messages["next_token"],
        message_ids=tuple(message["message_id"] for message in listed),
        export_token=export["next_token"],
    )
    # Requests that bypass the handler leave metrics behind that its next flush would publish.
    metrics.clear_metrics()
