"""``/v1/models`` and ``/v1/chat/completions`` through the official SDK and raw HTTP: the
shapes (parsed by the SDK's own types), the options sent to Bedrock, the usage and the
finish reasons."""

from __future__ import annotations

import json
import re

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fakes.bedrock import CONVERSE, CONVERSE_STREAM, BedrockFake
from functions.chat.prompting import SYSTEM_PROMPT
from functions.contract import Env
from functions.core.settings import get_settings
from tests.functions.helpers import MODELS, Rest
from tests.functions.openai_api.conftest import Api, ask


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    events = [block for block in text.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in events), events
    return [block.removeprefix("data: ") for block in events]


def test_models_lists_the_configured_models_default_first(api: Api) -> None:
    models = api.client().models.list()

    assert [model.id for model in models] == list(MODELS)
    assert {model.owned_by for model in models} == {"anthropic"}


def test_a_completion_answers_with_the_models_text_and_usage(
    api: Api, bedrock: BedrockFake
) -> None:
    bedrock.reply = "Paris is the capital."

    completion = api.client().chat.completions.create(
        model=MODELS[0], messages=[{"role": "user", "content": "Capital of France?"}]
    )

    assert isinstance(completion, ChatCompletion)
    assert completion.object == "chat.completion"
    assert completion.model == MODELS[0]
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Paris is the capital."
    assert choice.finish_reason == "stop"
    [request] = bedrock.requests_for(CONVERSE)
    assert completion.usage is not None
    # The fake counts a token per word: the system prompt and the question in, four words out.
    words_in = len(SYSTEM_PROMPT.split()) + len(["Capital", "of", "France?"])
    assert completion.usage.prompt_tokens == words_in
    assert completion.usage.completion_tokens == 4
    assert completion.usage.total_tokens == words_in + 4
    assert request.resource_id == MODELS[0]


def test_the_request_history_system_texts_and_options_reach_bedrock(
    api: Api, bedrock: BedrockFake
) -> None:
    api.client().chat.completions.create(
        model=MODELS[1],
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "How are you?"},
        ],
        max_completion_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        user="someone@example.com",
    )

    [request] = bedrock.requests_for(CONVERSE)
    assert request.resource_id == MODELS[1]
    assert [block.get("text") for block in request.body["system"]] == [
        SYSTEM_PROMPT,
        "Answer in French.",
        "Be brief.",
    ]
    texts = [
        (message["role"], [block["text"] for block in message["content"] if "text" in block])
        for message in request.body["messages"]
    ]
    assert texts == [("user", ["Hi"]), ("assistant", ["Bonjour"]), ("user", ["How are you?"])]
    assert request.body["inferenceConfig"] == {
        "maxTokens": 50,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
    }


def test_a_stream_arrives_as_chunks_ending_with_usage_and_done(
    api: Api, bedrock: BedrockFake
) -> None:
    bedrock.stream_chunks = ["Hel", "lo ", "there"]
    body = ask(stream=True, stream_options={"include_usage": True})

    response = api.post(body)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    *events, done = sse_events(response.text)
    assert done == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(event) for event in events]
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Hello there"
    *_, finish, usage = chunks
    assert finish.choices[0].finish_reason == "stop"
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.completion_tokens == 2  # "Hello there"
    assert [chunk.choices[0].delta.content for chunk in chunks[1:4]] == ["Hel", "lo ", "there"]


def test_without_include_usage_no_chunk_carries_usage(api: Api, bedrock: BedrockFake) -> None:
    stream = api.client().chat.completions.create(**ask(stream=True))

    chunks = list(stream)

    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == bedrock.reply


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cuts_the_answer_with_finish_reason_length(
    api: Api, bedrock: BedrockFake, stream: bool
) -> None:
    bedrock.reply = "one two three four five six"
    bedrock.stream_chunks = ["one ", "two ", "three ", "four ", "five ", "six"]
    client = api.client()

    if stream:
        chunks = list(client.chat.completions.create(**ask(stream=True, max_tokens=2)))
        finish = chunks[-1].choices[0].finish_reason
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
    else:
        completion = client.chat.completions.create(**ask(max_tokens=2))
        finish = completion.choices[0].finish_reason
        text = completion.choices[0].message.content

    assert finish == "length"
    assert text.split() == ["one", "two"]


def test_a_stop_sequence_ends_the_answer_with_finish_reason_stop(
    api: Api, bedrock: BedrockFake
) -> None:
    completion = api.client().chat.completions.create(**ask(stop="END"))

    assert completion.choices[0].finish_reason == "stop"
    [request] = bedrock.requests_for(CONVERSE)
    assert request.body["inferenceConfig"]["stopSequences"] == ["END"]


def test_a_model_failure_mid_stream_ends_with_an_openai_error_event(
    api: Api, bedrock: BedrockFake
) -> None:
    bedrock.stream_chunks = ["one ", "two ", "three"]
    bedrock.break_stream(after_chunks=1)

    response = api.post(ask(stream=True))

    events = sse_events(response.text)
    assert "[DONE]" not in events
    error = json.loads(events[-1])
    assert set(error) == {"error"}
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["error"]["code"] == "upstream_error"
    assert error["error"]["type"] == "server_error"
    # ... and the SDK raises it, with the message, while iterating.
    bedrock.break_stream(after_chunks=1)
    with pytest.raises(openai.APIError, match=re.escape(error["error"]["message"])):
        list(api.client().chat.completions.create(**ask(stream=True)))


def test_a_stateless_request_stores_nothing(api: Api, rest: Rest, bedrock: BedrockFake) -> None:
    api.client().chat.completions.create(**ask())

    listed = rest.call("GET", "/sessions")
    assert listed.json["sessions"] == []
    assert len(bedrock.requests_for(CONVERSE)) == 1
    assert bedrock.requests_for(CONVERSE_STREAM) == []


def test_each_answer_emits_the_per_model_metrics(
    api: Api, bedrock: BedrockFake, capsys: pytest.CaptureFixture[str]
) -> None:
    bedrock.reply = "three little words"

    api.client().chat.completions.create(**ask(model=MODELS[1]))

    documents = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    [turn] = [document for document in documents if "ChatTurns" in document]
    assert turn["model"] == MODELS[1]
    assert turn["OutputTokens"] == [3.0]


def test_a_stateless_conversation_is_cached_like_a_stored_one(
    api: Api, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a caching model the caller's system texts sit inside the cached system prefix, and
    the client's history ends with the second cache point, as a session's would."""
    caching_model = "anthropic.claude-3-7-sonnet-20250219-v1:0"
    monkeypatch.setenv(Env.BEDROCK_MODELS, caching_model)
    get_settings.cache_clear()

    api.client().chat.completions.create(
        model=caching_model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again?"},
        ],
    )

    [request] = bedrock.requests_for(CONVERSE)
    assert request.body["system"] == [
        {"text": SYSTEM_PROMPT},
        {"text": "Be brief."},
        {"cachePoint": {"type": "default"}},
    ]
    assert request.body["messages"][-2]["content"][-1] == {"cachePoint": {"type": "default"}}
