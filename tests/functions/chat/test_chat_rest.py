"""Chat turns over REST: converse, knowledge-base grounding, history, knowledge-base listing,
and how Bedrock and DynamoDB failures reach the client."""

from __future__ import annotations

import json
import socket

import boto3
import pytest

from fakes.bedrock import CONVERSE, RETRIEVE, BedrockFake, passage
from functions.chat.prompting import GROUNDING_PROMPT, SYSTEM_PROMPT
from functions.contract import Env
from functions.core import aws
from functions.core.observability import logger
from functions.core.settings import get_settings
from tests.functions.conftest import SessionCleanup
from tests.functions.helpers import (
    DEFAULT_KNOWLEDGE_BASE_ID,
    MODELS,
    Rest,
    dynamodb_throttled,
    stored_messages,
    stored_session,
)


def _post(rest: Rest, session_id: str, content: str) -> dict:
    response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": content})
    assert response.status == 200, response.text
    return response.json


def test_a_turn_calls_converse_and_stores_both_turns(rest: Rest, bedrock: BedrockFake) -> None:
    bedrock.reply = "Paris."
    session = rest.create_session(model_id=MODELS[1], knowledge_base_id=None)
    answer = _post(rest, session["session_id"], "Capital of France?")

    assert answer["message"]["role"] == "assistant"
    assert answer["message"]["content"] == "Paris."
    assert answer["message"]["seq"] == 2
    assert (answer["message"]["status"], answer["message"]["stop_reason"]) == (
        "complete",
        "end_turn",
    )
    assert answer["citations"] == []
    assert answer["usage"]["output_tokens"] == 1
    [request] = bedrock.requests_for(CONVERSE)
    assert request.resource_id == MODELS[1]
    assert request.body["messages"] == [
        {"role": "user", "content": [{"text": "Capital of France?"}]}
    ]
    assert request.body["system"] == [{"text": SYSTEM_PROMPT}]
    assert bedrock.requests_for(RETRIEVE) == []

    history = rest.call("GET", f"/sessions/{session['session_id']}/messages").json
    assert [(m["seq"], m["role"], m["content"]) for m in history["messages"]] == [
        (1, "user", "Capital of France?"),
        (2, "assistant", "Paris."),
    ]
    assert history["messages"][1]["message_id"] == answer["message"]["message_id"]
    assert rest.call("GET", f"/sessions/{session['session_id']}").json["message_count"] == 2


def test_history_is_sent_back_to_the_model(rest: Rest, bedrock: BedrockFake) -> None:
    bedrock.reply = lambda body: f"answer {len(body['messages'])}"
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    _post(rest, session_id, "first")
    _post(rest, session_id, "second")
    last = bedrock.requests_for(CONVERSE)[-1]
    assert last.body["messages"] == [
        {"role": "user", "content": [{"text": "first"}]},
        {"role": "assistant", "content": [{"text": "answer 1"}]},
        {"role": "user", "content": [{"text": "second"}]},
    ]


def test_knowledge_base_grounds_the_prompt_and_returns_citations(
    rest: Rest, bedrock: BedrockFake
) -> None:
    bedrock.retrieval_results = [
        passage("Paris is the capital of France.", "s3://kb/france.md", 0.91),
        passage("The Seine flows through Paris.", "s3://kb/rivers.md", 0.42),
    ]
    bedrock.reply = "Paris [1]."
    session = rest.create_session()  # the configured knowledge base by default
    answer = _post(rest, session["session_id"], "Capital of France?")

    [retrieve] = bedrock.requests_for(RETRIEVE)
    assert retrieve.resource_id == DEFAULT_KNOWLEDGE_BASE_ID
    assert retrieve.body["retrievalQuery"] == {"text": "Capital of France?"}
    [converse] = bedrock.requests_for(CONVERSE)
    # The passages come with the question: the system prompt stays the same every turn.
    assert converse.body["system"] == [{"text": f"{SYSTEM_PROMPT}\n\n{GROUNDING_PROMPT}"}]
    [grounding, question] = converse.body["messages"][-1]["content"]
    assert question == {"text": "Capital of France?"}
    assert "[1] (source: s3://kb/france.md)\nParis is the capital of France." in grounding["text"]
    assert "[2] (source: s3://kb/rivers.md)\nThe Seine flows through Paris." in grounding["text"]
    assert answer["citations"] == [
        {
            "index": 1,
            "text": "Paris is the capital of France.",
            "source": "s3://kb/france.md",
            "score": 0.91,
        },
        {
            "index": 2,
            "text": "The Seine flows through Paris.",
            "source": "s3://kb/rivers.md",
            "score": 0.42,
        },
    ]
    stored = rest.call("GET", f"/sessions/{session['session_id']}/messages").json["messages"]
    assert stored[1]["citations"] == answer["citations"]


def test_sessions_own_knowledge_base_is_used(rest: Rest, bedrock: BedrockFake) -> None:
    session = rest.create_session(knowledge_base_id="OTHERKB123")
    _post(rest, session["session_id"], "hello")
    assert [r.resource_id for r in bedrock.requests_for(RETRIEVE)] == ["OTHERKB123"]


def test_missing_knowledge_base_is_the_clients_mistake(rest: Rest, bedrock: BedrockFake) -> None:
    session = rest.create_session(knowledge_base_id="MISSINGKB1")
    bedrock.fail(404, "ResourceNotFoundException", operation=RETRIEVE)
    response = rest.call(
        "POST", f"/sessions/{session['session_id']}/messages", body={"content": "hi"}
    )
    error = response.assert_error(400, "bad_request")
    assert "MISSINGKB1" in error["message"]
    assert stored_messages(session["session_id"]) == []  # nothing stored before retrieval


def test_model_refusal_is_502_and_keeps_the_user_turn(rest: Rest, bedrock: BedrockFake) -> None:
    session = rest.create_session(knowledge_base_id=None)
    bedrock.fail(403, "AccessDeniedException", operation=CONVERSE)
    response = rest.call(
        "POST", f"/sessions/{session['session_id']}/messages", body={"content": "hi"}
    )
    response.assert_error(502, "upstream_error")
    # The question is kept; the answer's slot holds a visible failure marker, not an answer.
    question, marker = stored_messages(session["session_id"])
    assert (question["role"]["S"], question["content"]["S"]) == ("user", "hi")
    assert marker["role"]["S"] == "assistant"
    assert marker["content"]["S"] == ""
    assert (marker["status"]["S"], marker["stop_reason"]["S"]) == ("failed", "upstream_error")
    listed = rest.call("GET", f"/sessions/{session['session_id']}/messages").json["messages"]
    assert [(m["role"], m["status"], m["stop_reason"]) for m in listed] == [
        ("user", "complete", None),
        ("assistant", "failed", "upstream_error"),
    ]
    assert rest.call("GET", f"/sessions/{session['session_id']}").json["message_count"] == 2


def test_bedrock_throttling_is_retried_then_503(rest: Rest, bedrock: BedrockFake) -> None:
    session = rest.create_session(knowledge_base_id=None)
    bedrock.throttle(2, operation=CONVERSE)
    response = rest.call(
        "POST", f"/sessions/{session['session_id']}/messages", body={"content": "hi"}
    )
    response.assert_error(503, "throttled")
    assert int(response.headers["retry-after"]) > 0
    # botocore retried (AWS_MAX_ATTEMPTS=2 in the tests) before giving up; the second attempt
    # also waited for adaptive mode's client-side rate limiter (~2 s on a fresh client).
    assert [r.status for r in bedrock.requests_for(CONVERSE)] == [429, 429]


def test_dynamodb_throttling_is_retried_then_503(rest: Rest) -> None:
    with dynamodb_throttled("PutItem") as attempts:
        response = rest.call("POST", "/sessions", body={"title": "t"})
    response.assert_error(503, "throttled")
    assert int(response.headers["retry-after"]) > 0
    assert attempts == ["PutItem", "PutItem"]  # retried once (AWS_MAX_ATTEMPTS=2)


@pytest.mark.usefixtures("single_attempt")
def test_dynamodb_throttling_on_reads_is_503(rest: Rest) -> None:
    with dynamodb_throttled("Query"):
        response = rest.call("GET", "/sessions")
    response.assert_error(503, "throttled")


def test_blank_or_oversized_content_is_400(rest: Rest, bedrock: BedrockFake) -> None:
    session_id = rest.create_session()["session_id"]
    for body in (
        {"content": ""},
        {"content": " \n\t"},
        {"content": "x" * 50_001},
        {},
        {"content": 1},
        {"content": "hi", "role": "system"},
    ):
        response = rest.call("POST", f"/sessions/{session_id}/messages", body=body)
        response.assert_error(400, "bad_request")
    assert bedrock.requests == []
    assert stored_messages(session_id) == []


def test_messages_are_listed_oldest_first_across_pages(rest: Rest, bedrock: BedrockFake) -> None:
    bedrock.reply = lambda body: "re: " + body["messages"][-1]["content"][0]["text"]
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    for number in range(4):
        _post(rest, session_id, f"q{number}")
    contents: list[str] = []
    token = None
    while True:
        query = {"limit": "3"} | ({"next_token": token} if token else {})
        page = rest.call("GET", f"/sessions/{session_id}/messages", query=query).json
        contents.extend(message["content"] for message in page["messages"])
        token = page["next_token"]
        if not token:
            break
    assert contents == [text for n in range(4) for text in (f"q{n}", f"re: q{n}")]


def test_messages_token_is_bound_to_its_session(rest: Rest, bedrock: BedrockFake) -> None:
    first = rest.create_session(knowledge_base_id=None)["session_id"]
    second = rest.create_session(knowledge_base_id=None)["session_id"]
    _post(rest, first, "a")
    token = rest.call("GET", f"/sessions/{first}/messages", query={"limit": "1"}).json["next_token"]
    assert token
    response = rest.call("GET", f"/sessions/{second}/messages", query={"next_token": token})
    response.assert_error(400, "bad_request")


def test_delete_removes_every_message(
    rest: Rest, bedrock: BedrockFake, session_cleanup: SessionCleanup
) -> None:
    """DELETE removes the session item at once; the stream then hands the removal to the
    session cleanup, which removes the messages."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    for number in range(15):  # 30 turns: more than one BatchWriteItem of 25
        _post(rest, session_id, f"q{number}")
    assert len(stored_messages(session_id)) == 30
    assert rest.call("DELETE", f"/sessions/{session_id}").status == 204
    assert stored_session(session_id) is None
    rest.call("GET", f"/sessions/{session_id}/messages").assert_error(404, "not_found")
    session_cleanup.drain()
    assert stored_messages(session_id) == []


def test_model_no_longer_configured_falls_back_to_the_default(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = rest.create_session(model_id=MODELS[1], knowledge_base_id=None)["session_id"]
    monkeypatch.setenv(Env.BEDROCK_MODELS, MODELS[0])
    get_settings.cache_clear()
    _post(rest, session_id, "hi")
    assert bedrock.requests_for(CONVERSE)[0].resource_id == MODELS[0]


def _create_knowledge_bases(count: int) -> list[str]:
    agent = boto3.client("bedrock-agent")
    return [
        agent.create_knowledge_base(
            name=f"kb-{number}",
            description=f"knowledge base {number}",
            roleArn="arn:aws:iam::123456789012:role/kb",
            knowledgeBaseConfiguration={"type": "VECTOR"},
            storageConfiguration={"type": "OPENSEARCH_SERVERLESS"},
        )["knowledgeBase"]["knowledgeBaseId"]
        for number in range(count)
    ]


def test_knowledge_bases_are_listed_across_every_page(
    rest: Rest, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _create_knowledge_bases(105)  # moto pages list_knowledge_bases by 100
    monkeypatch.setenv(Env.KNOWLEDGE_BASE_ID, ids[50])
    get_settings.cache_clear()
    response = rest.call("GET", "/knowledge-bases")
    assert response.status == 200, response.text
    listed = response.json["knowledge_bases"]
    assert sorted(kb["knowledge_base_id"] for kb in listed) == sorted(ids)
    assert [kb["knowledge_base_id"] for kb in listed if kb["default"]] == [ids[50]]
    by_id = {kb["knowledge_base_id"]: kb for kb in listed}
    assert by_id[ids[3]]["name"] == "kb-3"
    assert by_id[ids[3]]["description"] == "knowledge base 3"
    assert by_id[ids[3]]["status"]


def test_no_knowledge_bases_when_the_feature_is_off(
    rest: Rest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create_knowledge_bases(2)
    monkeypatch.setenv(Env.KNOWLEDGE_BASE_ID, "")
    get_settings.cache_clear()
    assert rest.call("GET", "/knowledge-bases").json == {"knowledge_bases": []}


def test_an_unreachable_knowledge_base_service_is_named_as_such(
    rest: Rest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens at bedrock-agent's endpoint: the listing says the dependency is
    unreachable (502), not that it is throttled (503)."""
    with socket.socket() as closed:  # bound, never listening: every connect is refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENT", url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        aws.reset_clients()
        try:
            response = rest.call("GET", "/knowledge-bases")
        finally:
            aws.reset_clients()
    body = response.assert_error(502, "dependency_unreachable")
    assert f"could not connect to 127.0.0.1:{url.rsplit(':', 1)[1]}" in body["message"]
    assert "retry-after" not in response.headers


def test_observability_logs_carry_the_request_id_and_metrics_are_emf(
    rest: Rest,
    bedrock: BedrockFake,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    capsys.readouterr()
    caplog.clear()
    _post(rest, session_id, "hi")
    # Powertools' handler writes to the stdout of import time, out of pytest's reach; format
    # the captured records with its own JSON formatter instead.
    [record] = [r for r in caplog.records if r.getMessage() == "chat turn stored"]
    log = json.loads(logger.registered_formatter.format(record))
    assert log["level"] == "INFO"
    assert log["function_request_id"] == rest.context.aws_request_id
    assert log["correlation_id"] == "id="  # requestContext.requestId of the recorded event
    assert log["session_id"] == session_id
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    [emf] = [line for line in lines if "_aws" in line]
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "AiAssistantTest"
    assert {"ChatTurns", "OutputTokens"} <= {metric["Name"] for metric in directive["Metrics"]}
    assert emf["ChatTurns"] == [1.0]
