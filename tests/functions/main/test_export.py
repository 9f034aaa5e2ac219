"""A session's export through the main handler: both formats, pages bounded by count and by
bytes followed through ``next_token`` and the ``Link`` header, the repair of abandoned slots;
ownership, validation and DynamoDB faults like the other routes."""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest

from fakes.bedrock import CONVERSE, BedrockFake, passage
from functions.contract import Env
from functions.main.export import MAX_PAGE_BYTES
from tests.functions.helpers import (
    USER_B,
    HttpResponse,
    Rest,
    dynamodb_throttled,
    seed_history,
)

UNKNOWN = "0b515f04-62f1-415e-a225-f6913c371fab"
LINK = re.compile(r'^<\?(?P<query>[^>]+)>; rel="next"$')


def _export(rest: Rest, session_id: str, **query: str) -> HttpResponse:
    return rest.call("GET", f"/sessions/{session_id}/export", query=query or None)


def _next_query(response: HttpResponse) -> dict[str, str] | None:
    """The query of the ``Link: <?...>; rel="next"`` header, None without one."""
    link = response.headers.get("link")
    if link is None:
        return None
    match = LINK.match(link)
    assert match, link
    return dict(parse_qsl(match["query"]))


def _pages(rest: Rest, session_id: str, **query: str) -> list[HttpResponse]:
    """Every page of an export, following the ``Link`` header as a client would."""
    pages = [_export(rest, session_id, **query)]
    while (following := _next_query(pages[-1])) is not None:
        assert pages[-1].status == 200, pages[-1].text
        pages.append(_export(rest, session_id, **following))
    assert pages[-1].status == 200, pages[-1].text
    return pages


def _chat(rest: Rest, bedrock: BedrockFake) -> tuple[str, list[dict[str, Any]]]:
    """A session with a grounded answer (two citations), a rated answer, and a failed one."""
    session_id = rest.create_session(title="Trip: Paris")["session_id"]
    bedrock.retrieval_results = [
        passage("Paris is the capital of France.", "s3://kb/france.md", 0.91),
        passage("The Seine flows through Paris.", "s3://kb/rivers.md", 0.42),
    ]
    bedrock.reply = "Paris [1], on the Seine [2]."
    for content in ("Capital of France?", "Thanks"):
        response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": content})
        assert response.status == 200, response.text
    bedrock.fail(400, "ValidationException", "bad request", CONVERSE)
    rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "More?"})
    messages = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]
    rated = rest.call(
        "PUT",
        f"/sessions/{session_id}/messages/{messages[3]['message_id']}/feedback",
        body={"rating": "up", "category": "helpful", "comment": "Clear."},
    )
    assert rated.status == 200, rated.text
    return session_id, rest.call("GET", f"/sessions/{session_id}/messages").json["messages"]


def test_json_export_is_the_session_and_its_messages_as_listed(
    rest: Rest, bedrock: BedrockFake
) -> None:
    session_id, listed = _chat(rest, bedrock)
    response = _export(rest, session_id)  # json is the default
    assert response.status == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == f'attachment; filename="{session_id}.json"'
    assert "link" not in response.headers
    export = response.json
    assert export["session"] == rest.call("GET", f"/sessions/{session_id}").json
    assert export["messages"] == listed
    assert export["next_token"] is None
    assert [len(message["citations"]) for message in export["messages"]] == [0, 2, 0, 2, 0, 2]
    assert export["messages"][3]["feedback"]["rating"] == "up"
    assert export["messages"][5]["status"] == "failed"
    assert _export(rest, session_id, format="json").json == export


def test_markdown_export_has_title_roles_times_statuses_citations_and_ratings(
    rest: Rest, bedrock: BedrockFake
) -> None:
    session_id, listed = _chat(rest, bedrock)
    response = _export(rest, session_id, format="md")
    assert response.status == 200, response.text
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{session_id}.md"'
    text = response.text
    assert text.startswith("# Trip: Paris\n")
    headings = re.findall(r"^## (User|Assistant) · (\S+)$", text, flags=re.MULTILINE)
    assert headings == [
        ("User" if message["role"] == "user" else "Assistant", message["created_at"])
        for message in listed
    ]
    assert "Sources:\n\n1. s3://kb/france.md: Paris is the capital of France.\n" in text
    assert "2. s3://kb/rivers.md: The Seine flows through Paris." in text
    assert "*Rated up (helpful): Clear.*" in text
    assert text.count("*Status:") == 1
    assert "*Status: failed (upstream_error)*" in text
    assert text.count("Paris [1], on the Seine [2].") == 2


def test_markdown_export_marks_replaced_versions(rest: Rest) -> None:
    """A regenerated turn keeps its old version; the Markdown says which one is current."""
    session_id = rest.create_session(title="Versions")["session_id"]
    path = f"/sessions/{session_id}/messages"
    assert rest.call("POST", path, body={"content": "hi"}).status == 200
    question = rest.call("GET", path).json["messages"][0]["message_id"]
    assert rest.call("POST", path, body={"replaces": question}).status == 200
    text = _export(rest, session_id, format="md").text
    marks = re.findall(r"^\*Version (\d)(, replaced by a later version)?\*$", text, re.MULTILINE)
    assert marks == [("1", ", replaced by a later version")] * 2 + [("2", "")] * 2


@pytest.mark.parametrize("export_format", ["json", "md"])
def test_a_long_export_is_paged_by_count_through_next_token_and_link(
    rest: Rest, export_format: str
) -> None:
    session_id = rest.create_session(title="Long")["session_id"]
    seed_history(session_id, 25, lambda seq: f"turn number {seq}")
    pages = _pages(rest, session_id, format=export_format, limit="10")
    assert len(pages) == 3
    if export_format == "json":
        bodies = [page.json for page in pages]
        assert [body["next_token"] is None for body in bodies] == [False, False, True]
        for page, body in zip(pages[:-1], bodies, strict=False):
            assert _next_query(page) == {
                "format": "json",
                "limit": "10",
                "next_token": body["next_token"],
            }
        seqs = [message["seq"] for body in bodies for message in body["messages"]]
    else:
        assert [page.text.startswith("# Long\n") for page in pages] == [True, False, False]
        contents = re.findall(r"^turn number (\d+)$", "".join(p.text for p in pages), re.MULTILINE)
        seqs = [int(seq) for seq in contents]
    assert seqs == list(range(1, 26))


def test_pages_are_cut_between_whole_messages_below_the_byte_bound(rest: Rest) -> None:
    """14 messages of 350 KB (about 4.9 MB) do not fit one page of at most 4 MB (a Lambda
    response is at most 6 MB): they come in two, each under the bound, every message whole.
    Non-ASCII text counts as the Lambda response may escape it (``\u00e9``: 6 bytes)."""
    session_id = rest.create_session()["session_id"]
    seed_history(session_id, 14, lambda seq: f"{seq:02d}" + "x" * 349_998)
    pages = _pages(rest, session_id)
    assert [len(page.json["messages"]) for page in pages] == [11, 3]
    for page in pages:
        assert len(json.dumps(page.text)) <= MAX_PAGE_BYTES + 10_000  # the envelope's share
    messages = [message for page in pages for message in page.json["messages"]]
    assert [message["content"][:2] for message in messages] == [f"{n:02d}" for n in range(1, 15)]
    assert all(len(message["content"]) == 350_000 for message in messages)
    escaped = rest.create_session()["session_id"]
    seed_history(escaped, 4, lambda seq: "é" * 175_000)  # 350 KB of UTF-8, 1 MB escaped
    assert [len(page.json["messages"]) for page in _pages(rest, escaped)] == [3, 1]


def test_the_export_repairs_abandoned_slots_as_the_listing_does(rest: Rest) -> None:
    """A question whose turn died long ago, its answer's slot empty: the export fills it
    with the ``failed`` marker (stop reason ``abandoned``) and shows it."""
    session_id = rest.create_session()["session_id"]
    seed_history(session_id, 3, lambda seq: f"turn {seq}")
    boto3.client("dynamodb").update_item(
        TableName=os.environ[Env.SESSIONS_TABLE],
        Key={"session_id": {"S": session_id}},
        UpdateExpression="SET message_count = :four",
        ExpressionAttributeValues={":four": {"N": "4"}},
    )
    exported = _export(rest, session_id).json["messages"]
    assert [(m["seq"], m["status"], m["stop_reason"]) for m in exported[2:]] == [
        (3, "complete", None),
        (4, "failed", "abandoned"),
    ]
    assert "*Status: failed (abandoned)*" in _export(rest, session_id, format="md").text


def test_another_users_and_unknown_sessions_are_404(rest: Rest) -> None:
    session_id = rest.create_session()["session_id"]
    _export(rest, UNKNOWN).assert_error(404, "not_found")
    response = rest.call("GET", f"/sessions/{session_id}/export", user=USER_B)
    response.assert_error(404, "not_found")


def test_bad_queries_are_400(rest: Rest) -> None:
    session_id = rest.create_session()["session_id"]
    seed_history(session_id, 3, lambda seq: f"turn {seq}")
    listing_token = rest.call("GET", f"/sessions/{session_id}/messages", query={"limit": "1"}).json[
        "next_token"
    ]
    export_token = _export(rest, session_id, limit="1").json["next_token"]
    for query in (
        {"format": "xml"},
        {"format": "MD"},
        {"limit": "0"},
        {"limit": "1001"},
        {"next_token": listing_token},  # another listing's
        {"next_token": export_token[:-2] + "AA"},
        {"next_token": "garbage"},
    ):
        error = _export(rest, session_id, **query).assert_error(400, "bad_request")
        assert error["message"]
    other = rest.call(
        "GET", f"/sessions/{session_id}/export", user=USER_B, query={"next_token": export_token}
    )
    other.assert_error(404, "not_found")  # the session is checked first


@pytest.mark.usefixtures("single_attempt")
@pytest.mark.parametrize("operation", ["GetItem", "Query"])
def test_dynamodb_throttling_is_503(rest: Rest, operation: str) -> None:
    session_id = rest.create_session()["session_id"]
    with dynamodb_throttled(operation):
        response = _export(rest, session_id)
    response.assert_error(503, "throttled")
    assert int(response.headers["retry-after"]) > 0
