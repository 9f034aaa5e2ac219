"""The OpenAI-compatible API governed like every other turn: identity only from the authorizer's
context, every unsupported field refused by name, budgets, answer slots, idempotency keys,
guardrails, sessions and the deadline; every error in OpenAI's shape, raised by the SDK as the
exception class of its status."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import httpx
import openai
import pytest

from fakes.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake, passage
from functions.contract import (
    OPENAI_KNOWLEDGE_BASE_HEADER,
    OPENAI_REPLACED_MESSAGES_HEADER,
    OPENAI_SESSION_HEADER,
    Env,
)
from functions.core.settings import get_settings
from functions.data.items import plain_item
from functions.openai_api import app as app_module
from tests.functions.helpers import (
    DEFAULT_KNOWLEDGE_BASE_ID,
    MODELS,
    USER_A,
    USER_B,
    Rest,
    stored_messages,
    table,
)
from tests.functions.openai_api.conftest import Api, adapter_headers, ask


def openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is OpenAI's error object with this status and this project's code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    return error


# Identity ---------------------------------------------------------------------------------------


def test_without_the_authorizers_context_every_route_is_401(api: Api) -> None:
    client = api.client(user=None)

    with pytest.raises(openai.AuthenticationError, match="no authenticated caller"):
        client.models.list()
    with pytest.raises(openai.AuthenticationError, match="no authenticated caller"):
        client.chat.completions.create(**ask())
    error = openai_error(api.post(ask(), user=None), 401, "unauthorized")
    assert error["type"] == "authentication_error"


def test_a_bearer_token_alone_is_not_an_identity(api: Api, bedrock: BedrockFake) -> None:
    """Only API Gateway's context counts: whatever the Authorization header says, no model call."""
    response = httpx.post(
        f"{api.base_url}/chat/completions",
        json=ask(),
        headers={"Authorization": "Bearer anything", "x-amzn-request-context": "{not json"},
    )

    openai_error(response, 401, "unauthorized")
    assert bedrock.requests == []


# Refusals ---------------------------------------------------------------------------------------

TEXT_PART = {"type": "text", "text": "hi"}
IMAGE_PART = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"n": 2}, "n", "n must be 1"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "tools"),
        ({"tool_choice": "auto"}, "tool_choice", "tools"),
        ({"functions": [{"name": "f"}]}, "functions", "functions"),
        ({"logprobs": True}, "logprobs", "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs", "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format", "text"),
        ({"seed": 7}, "seed", "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty", "presence_penalty"),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities", "text"),
        ({"store": True}, "store", "X-Session-Id"),
        ({"frobnicate": 1}, "frobnicate", "unknown field"),
        ({"temperature": 1.5}, "temperature", "from 0 to 1"),
        ({"top_p": -0.1}, "top_p", "from 0 to 1"),
        ({"max_tokens": 0}, "max_tokens", "positive integer"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, "max_tokens", "send one"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "1 to 4"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed with"),
        ({"stream": True, "stream_options": {"x": 1}}, "stream_options", "include_usage"),
        ({"stream": "yes"}, "stream", "boolean"),
        ({"model": "gpt-4o"}, "model", "must be one of"),
        ({"model": None}, "model", "model is required"),
        ({"messages": []}, "messages", "non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role", "calls no tools"),
        ({"messages": [{"role": "critic", "content": "x"}]}, "messages[0].role", "unknown role"),
        (
            {"messages": [{"role": "user", "content": [TEXT_PART, IMAGE_PART]}]},
            "messages[0].content[1]",
            "no images",
        ),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages[0].content", "non-blank"),
        (
            {
                "messages": [
                    {"role": "user", "content": [TEXT_PART | {"cache_control": {"type": "x"}}]}
                ]
            },
            "messages[0].content[0].cache_control",
            "not cache_control",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "name": "bob"}]},
            "messages[0].name",
            "not supported",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "messages",
            "the user's question",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    api: Api, bedrock: BedrockFake, fields: dict[str, Any], param: str, words: str
) -> None:
    response = api.post(ask() | fields)

    error = openai_error(response, 400, "bad_request")
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]
    assert bedrock.requests == []


def test_the_sdk_raises_bad_request_with_the_message(api: Api) -> None:
    with pytest.raises(openai.BadRequestError, match="n must be 1") as raised:
        api.client().chat.completions.create(**ask(n=3))
    assert raised.value.code == "bad_request"
    assert raised.value.param == "n"


def test_fields_clients_send_at_their_off_value_are_accepted(api: Api) -> None:
    body = ask(
        n=1,
        logprobs=False,
        presence_penalty=0,
        frequency_penalty=0.0,
        response_format={"type": "text"},
        tools=[],
        service_tier="auto",
        stop=[],
    )
    body["messages"].insert(0, {"role": "assistant", "content": "hi", "refusal": None})

    assert api.post(body).status_code == 200


def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    response = httpx.post(
        f"{api.base_url}/chat/completions",
        content=b"{model:",
        headers={"x-amzn-request-context": '{"authorizer": {"principalId": "user-a"}}'},
    )

    openai_error(response, 400, "bad_request")


def test_an_unknown_path_is_404_in_openais_shape(api: Api) -> None:
    response = httpx.get(f"{api.base_url}/embeddings")

    assert openai_error(response, 404, "not_found")["type"] == "invalid_request_error"


# Budgets and answer slots -----------------------------------------------------------------------


def _limits(monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()


@pytest.mark.parametrize("stream", [False, True])
def test_a_spent_budget_is_429_quota_exceeded_with_retry_after(
    api: Api, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """A first turn spends the day's budget (its answer is capped to what was left); the next
    is refused before any model call."""
    _limits(monkeypatch, **{Env.USER_DAILY_TOKEN_LIMIT: 100})
    bedrock.reply = " ".join(f"w{number}" for number in range(200))
    bedrock.stream_chunks = None
    assert api.post(ask()).json()["choices"][0]["finish_reason"] == "length"
    calls = len(bedrock.requests)

    response = api.post(ask(stream=stream))

    error = openai_error(response, 429, "quota_exceeded")
    assert error["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) > 0
    assert "of 100 tokens used this day" in error["message"]
    with pytest.raises(openai.RateLimitError):
        api.client().chat.completions.create(**ask())
    assert len(bedrock.requests) == calls


def test_the_budget_caps_max_tokens_and_a_lower_max_tokens_wins(
    api: Api, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, **{Env.USER_DAILY_TOKEN_LIMIT: 200})
    client = api.client()

    client.chat.completions.create(**ask(max_tokens=100_000))
    client.chat.completions.create(**ask(max_tokens=3))

    capped, lower = (request.body["inferenceConfig"]["maxTokens"] for request in bedrock.requests)
    assert capped < 200
    assert lower == 3


def test_more_concurrent_answers_than_allowed_are_busy(
    api: Api, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, **{Env.USER_MAX_CONCURRENT_ANSWERS: 1})
    released = threading.Event()
    bedrock.hold(after_chunks=1, until=released)
    first = threading.Thread(target=lambda: api.post(ask(stream=True)))
    first.start()
    deadline = time.monotonic() + 10
    while not bedrock.requests_for(CONVERSE_STREAM) and time.monotonic() < deadline:
        time.sleep(0.01)

    response = api.post(ask())

    openai_error(response, 429, "busy")
    assert response.headers["retry-after"]
    assert api.post(ask(), user=USER_B).status_code == 200  # another user's slots are theirs
    released.set()
    first.join(10)
    assert api.post(ask()).status_code == 200


# Idempotency ------------------------------------------------------------------------------------


@pytest.mark.parametrize("first_streamed", [False, True])
def test_a_repeated_idempotency_key_replays_the_answer_without_a_model_call(
    api: Api, bedrock: BedrockFake, first_streamed: bool
) -> None:
    bedrock.stream_chunks = ["Hello ", "from ", "the fake model."]
    client = api.client(**{"Idempotency-Key": "key-1"})
    body = ask(stream_options={"include_usage": True}) if first_streamed else ask()

    if first_streamed:
        first = list(client.chat.completions.create(**body, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in first if c.choices)
        first_id, first_usage = first[0].id, first[-1].usage
    else:
        original = client.chat.completions.create(**body)
        text, first_id, first_usage = (
            original.choices[0].message.content,
            original.id,
            original.usage,
        )
    again = client.chat.completions.create(**ask())
    replayed = list(client.chat.completions.create(**ask(stream=True)))

    assert len(bedrock.requests) == 1
    assert (again.id, again.choices[0].message.content, again.usage) == (
        first_id,
        text,
        first_usage,
    )
    assert {chunk.id for chunk in replayed} == {first_id}
    assert "".join(c.choices[0].delta.content or "" for c in replayed) == text
    assert replayed[-1].choices[0].finish_reason == "stop"


def test_an_idempotency_key_reused_for_another_request_is_422(
    api: Api, bedrock: BedrockFake
) -> None:
    headers = {"Idempotency-Key": "key-2"}
    assert api.post(ask("first"), headers=headers).status_code == 200

    openai_error(api.post(ask("second"), headers=headers), 422, "idempotency_key_reused")
    assert len(bedrock.requests) == 1


def test_a_failed_stream_gives_its_idempotency_key_back(api: Api, bedrock: BedrockFake) -> None:
    bedrock.stream_chunks = ["one ", "two"]
    bedrock.break_stream(after_chunks=1)
    headers = {"Idempotency-Key": "key-3"}

    assert '"upstream_error"' in api.post(ask(stream=True), headers=headers).text
    bedrock.reset()  # the model works again
    again = api.post(ask(stream=True), headers=headers)

    assert again.text.endswith("data: [DONE]\n\n")
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == 1  # it ran again, not a replay


# Guardrails and knowledge bases -----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_guardrail_intervention_is_finish_reason_content_filter(
    api: Api, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setenv(Env.BEDROCK_GUARDRAIL_ID, "gr0123abcd")
    monkeypatch.setenv(Env.BEDROCK_GUARDRAIL_VERSION, "7")
    get_settings.cache_clear()
    bedrock.intervene(after_chunks=1, message="Blocked.")
    client = api.client()

    if stream:
        chunks = list(client.chat.completions.create(**ask(stream=True)))
        finish = chunks[-1].choices[0].finish_reason
    else:
        finish = client.chat.completions.create(**ask()).choices[0].finish_reason

    assert finish == "content_filter"
    [request] = bedrock.requests
    assert request.body["guardrailConfig"]["guardrailIdentifier"] == "gr0123abcd"


def test_the_knowledge_base_header_grounds_a_stateless_turn(api: Api, bedrock: BedrockFake) -> None:
    bedrock.retrieval_results = [passage("Paris is in France.", "s3://kb/geo.md", 0.9)]
    client = api.client(**{OPENAI_KNOWLEDGE_BASE_HEADER: DEFAULT_KNOWLEDGE_BASE_ID})

    client.chat.completions.create(**ask("Where is Paris?"))

    [retrieve] = bedrock.requests_for("retrieve")
    assert retrieve.resource_id == DEFAULT_KNOWLEDGE_BASE_ID
    [converse] = bedrock.requests_for(CONVERSE)
    assert "Paris is in France." in converse.body["messages"][-1]["content"][0]["text"]


def test_the_knowledge_base_header_is_refused_when_knowledge_bases_are_off(
    api: Api, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(Env.KNOWLEDGE_BASE_ID)
    get_settings.cache_clear()
    headers = {OPENAI_KNOWLEDGE_BASE_HEADER: DEFAULT_KNOWLEDGE_BASE_ID}

    error = openai_error(api.post(ask(), headers=headers), 400, "bad_request")
    assert error["param"] == OPENAI_KNOWLEDGE_BASE_HEADER
    assert bedrock.requests == []


# Sessions ---------------------------------------------------------------------------------------


def test_a_bound_turn_is_stored_and_answered_from_the_stored_history(
    api: Api, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    rest.call("POST", f"/sessions/{session_id}/messages", body={"content": "My name is Ada."})
    client = api.client(**{OPENAI_SESSION_HEADER: session_id})
    sent = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Something the server never saw."},
        {"role": "assistant", "content": "Nor this."},
        {"role": "user", "content": "What is my name?"},
    ]

    response = client.chat.completions.with_raw_response.create(model=MODELS[0], messages=sent)
    stream = client.chat.completions.create(
        model=MODELS[0], messages=[{"role": "user", "content": "And again?"}], stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream)

    assert response.headers[OPENAI_REPLACED_MESSAGES_HEADER] == "2"
    completion = response.parse()
    stored = [plain_item(item) for item in stored_messages(session_id)]
    assert [(m["seq"], m["role"], m["content"]) for m in stored] == [
        (1, "user", "My name is Ada."),
        (2, "assistant", bedrock.reply),
        (3, "user", "What is my name?"),
        (4, "assistant", completion.choices[0].message.content),
        (5, "user", "And again?"),
        (6, "assistant", streamed),
    ]
    assert completion.id == f"chatcmpl-{stored[3]['message_id']}"
    request = bedrock.requests_for(CONVERSE)[-1]
    texts = [block.get("text") for m in request.body["messages"] for block in m["content"]]
    assert "Something the server never saw." not in texts
    assert texts[:2] == ["My name is Ada.", bedrock.reply]
    assert request.body["system"][1] == {"text": "Be terse."}


def test_another_users_session_is_not_found(api: Api, rest: Rest, bedrock: BedrockFake) -> None:
    session_id = rest.create_session(user=USER_B, knowledge_base_id=None)["session_id"]

    with pytest.raises(openai.NotFoundError):
        api.client(user=USER_A, **{OPENAI_SESSION_HEADER: session_id}).chat.completions.create(
            **ask()
        )
    assert bedrock.requests == []


def test_a_bound_turn_must_use_the_sessions_model(api: Api, rest: Rest) -> None:
    session_id = rest.create_session(model_id=MODELS[1], knowledge_base_id=None)["session_id"]

    response = api.post(ask(), headers={OPENAI_SESSION_HEADER: session_id})

    error = openai_error(response, 400, "bad_request")
    assert error["param"] == "model"
    assert MODELS[1] in error["message"]


# Deadline ---------------------------------------------------------------------------------------


def test_a_stream_stops_in_time_and_ends_with_finish_reason_length(
    api: Api, rest: Rest, bedrock: BedrockFake
) -> None:
    """The model stalls; the stream stops reading while there is still time to store the
    answer, and ends as an answer cut short."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    bedrock.stream_chunks = ["one ", "two"]
    stalled = threading.Event()
    bedrock.hold(after_chunks=1, until=stalled, timeout_s=30)
    client = api.client(deadline_in=7, **{OPENAI_SESSION_HEADER: session_id})

    chunks = list(client.chat.completions.create(**ask(stream=True)))
    stalled.set()

    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one "
    answer = plain_item(stored_messages(session_id)[-1])
    assert (answer["status"], answer["stop_reason"]) == ("incomplete", "timeout")


def test_no_time_left_for_the_model_is_503_with_retry_after(api: Api, bedrock: BedrockFake) -> None:
    """The invocation's deadline (the adapter's Lambda context) has passed: nothing is tried."""
    response = httpx.post(
        f"{api.base_url}/chat/completions", json=ask(), headers=adapter_headers(deadline_in=-1)
    )

    openai_error(response, 503, "throttled")
    assert response.headers["retry-after"]
    assert bedrock.requests == []


def test_the_usage_ledger_counts_stateless_turns(api: Api, bedrock: BedrockFake) -> None:
    api.client().chat.completions.create(**ask())

    items = boto3.client("dynamodb").scan(TableName=table(Env.USAGE_TABLE))["Items"]
    day = [item for item in items if item["period"]["S"].startswith("day#")]
    assert day and int(day[0]["turns"]["N"]) == 1


@pytest.mark.parametrize(("stream", "limit"), [(False, 29), (True, 900)])
def test_only_a_stream_may_outlast_rests_integration_timeout(
    api: Api, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch, stream: bool, limit: int
) -> None:
    """With 15 minutes left to the function, a body must still be ready within REST's 29 s;
    a stream (a streaming integration) may use the function's whole time."""
    seen: list[float] = []

    def recording(original: Any) -> Any:
        def run(turn: Any, bound: Any) -> Any:
            seen.append(bound.total)
            return original(turn, bound)

        return run

    monkeypatch.setattr(app_module, "answer", recording(app_module.answer))
    monkeypatch.setattr(app_module, "start_stream", recording(app_module.start_stream))
    headers = adapter_headers(deadline_in=900)

    response = httpx.post(
        f"{api.base_url}/chat/completions", json=ask(stream=stream), headers=headers, timeout=30
    )

    assert response.status_code == 200
    [total] = seen
    assert limit - 5 < total <= limit


def test_a_throttled_model_before_the_stream_starts_is_503_with_retry_after(
    api: Api, bedrock: BedrockFake, single_attempt: None
) -> None:
    bedrock.throttle(1, operation=CONVERSE_STREAM)

    response = api.post(ask(stream=True))

    error = openai_error(response, 503, "throttled")
    assert error["type"] == "server_error"
    assert response.headers["retry-after"]
    with pytest.raises(openai.InternalServerError):
        bedrock.throttle(1, operation=CONVERSE_STREAM)
        api.client().chat.completions.create(**ask(stream=True))


def test_a_knowledge_base_header_with_a_session_is_refused(api: Api, rest: Rest) -> None:
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    headers = {
        OPENAI_SESSION_HEADER: session_id,
        OPENAI_KNOWLEDGE_BASE_HEADER: DEFAULT_KNOWLEDGE_BASE_ID,
    }

    error = openai_error(api.post(ask(), headers=headers), 400, "bad_request")
    assert error["param"] == OPENAI_KNOWLEDGE_BASE_HEADER
