from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage
from botocore.exceptions import ClientError, EventStreamError

from devserver.bedrock import (
    CONVERSE,
    CONVERSE_STREAM,
    RETRIEVE,
    BedrockFake,
    encode_event_message,
    passage,
)

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
KB_ID = "KB12345678"
# "max_attempts" counts retries; "total_max_attempts" counts the first attempt too.
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def _assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"text": text}]}


@pytest.fixture
def runtime(moto_env: dict[str, str], bedrock: BedrockFake) -> Any:
    """A real client, routed to the fake by AWS_ENDPOINT_URL_BEDROCK_RUNTIME over moto's URL."""
    return boto3.client("bedrock-runtime")


@pytest.fixture
def agent_runtime(moto_env: dict[str, str], bedrock: BedrockFake) -> Any:
    return boto3.client("bedrock-agent-runtime")


def _retrieve(client: Any, query: str = "capital of France", **config: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"knowledgeBaseId": KB_ID, "retrievalQuery": {"text": query}}
    if config:
        params["retrievalConfiguration"] = {"vectorSearchConfiguration": config}
    return client.retrieve(**params)


def _decode(frame: bytes) -> list[EventStreamMessage]:
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    return list(buffer)


def test_encoded_frames_pass_botocores_checksums() -> None:
    frame = encode_event_message({":event-type": "messageStop"}, b'{"stopReason": "end_turn"}')

    [message] = _decode(frame)

    assert message.headers == {":event-type": "messageStop"}
    assert message.payload == b'{"stopReason": "end_turn"}'


@pytest.mark.parametrize("index", [9, 20, -1], ids=["prelude-crc", "payload", "message-crc"])
def test_botocore_rejects_a_corrupted_frame(index: int) -> None:
    frame = bytearray(encode_event_message({":event-type": "messageStop"}, b"{}"))
    frame[index] ^= 0xFF

    with pytest.raises(ChecksumMismatch):
        _decode(bytes(frame))


def test_converse_answers_in_the_wire_format(runtime: Any, bedrock: BedrockFake) -> None:
    bedrock.reply = "Paris is the capital."

    response = runtime.converse(
        modelId=MODEL_ID,
        messages=[_user("What is the capital of France?")],
        system=[{"text": "Be brief."}],
    )

    assert response["output"]["message"] == _assistant("Paris is the capital.")
    assert response["stopReason"] == "end_turn"
    assert response["usage"] == {"inputTokens": 8, "outputTokens": 4, "totalTokens": 12}
    assert response["metrics"] == {"latencyMs": 1}
    [request] = bedrock.requests
    assert (request.operation, request.resource_id, request.status) == (CONVERSE, MODEL_ID, 200)
    assert request.body["messages"] == [_user("What is the capital of France?")]


def test_converse_reply_may_depend_on_the_request(runtime: Any, bedrock: BedrockFake) -> None:
    def reply(body: dict[str, Any]) -> str:
        return f"{len(body['messages'])} messages"

    bedrock.reply = reply
    history = [_user("hi"), _assistant("hello"), _user("again")]

    response = runtime.converse(modelId=MODEL_ID, messages=history)

    assert response["output"]["message"]["content"] == [{"text": "3 messages"}]


@pytest.mark.parametrize(
    "messages",
    [
        [_assistant("I start")],
        [_user("one"), _user("two")],
        [_user("   ")],
    ],
    ids=["assistant-first", "roles-not-alternating", "blank-text"],
)
def test_converse_rejects_what_bedrock_rejects(
    runtime: Any, bedrock: BedrockFake, messages: list[dict[str, Any]]
) -> None:
    with pytest.raises(runtime.exceptions.ValidationException):
        runtime.converse(modelId=MODEL_ID, messages=messages)

    assert [request.status for request in bedrock.requests] == [400]


def test_converse_stream_yields_every_event(runtime: Any, bedrock: BedrockFake) -> None:
    bedrock.stream_chunks = ["Par", "is", "."]

    response = runtime.converse_stream(modelId=MODEL_ID, messages=[_user("Capital?")])
    events = list(response["stream"])

    assert events == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Par"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": "is"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": "."}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            }
        },
    ]
    assert bedrock.requests_for(CONVERSE_STREAM)[0].resource_id == MODEL_ID


def test_converse_stream_defaults_to_the_reply_word_by_word(
    runtime: Any, bedrock: BedrockFake
) -> None:
    bedrock.reply = "Hello there, friend."

    events = list(runtime.converse_stream(modelId=MODEL_ID, messages=[_user("hi")])["stream"])

    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert deltas == ["Hello ", "there, ", "friend."]


def test_break_stream_raises_mid_stream(runtime: Any, bedrock: BedrockFake) -> None:
    bedrock.stream_chunks = ["a", "b", "c"]
    bedrock.break_stream(after_chunks=1)
    received = []

    stream = runtime.converse_stream(modelId=MODEL_ID, messages=[_user("hi")])["stream"]
    with pytest.raises(EventStreamError) as error:
        received.extend(stream)

    assert error.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert [e for e in received if "contentBlockDelta" in e] == [
        {"contentBlockDelta": {"delta": {"text": "a"}, "contentBlockIndex": 0}}
    ]


def test_retrieve_returns_results_up_to_number_of_results(
    agent_runtime: Any, bedrock: BedrockFake
) -> None:
    bedrock.retrieval_results = [
        passage("Paris is in France.", "s3://kb/geo.md", 0.9),
        passage("Lyon is in France.", "s3://kb/lyon.md", 0.4),
    ]

    one = _retrieve(agent_runtime, numberOfResults=1)
    default = _retrieve(agent_runtime)

    assert one["retrievalResults"] == [
        {
            "content": {"text": "Paris is in France.", "type": "TEXT"},
            "location": {"type": "S3", "s3Location": {"uri": "s3://kb/geo.md"}},
            "score": 0.9,
        }
    ]
    assert len(default["retrievalResults"]) == 2
    first = bedrock.requests_for(RETRIEVE)[0]
    assert first.resource_id == KB_ID
    assert first.body["retrievalQuery"] == {"text": "capital of France"}


def test_throttling_surfaces_as_client_error(
    moto_env: dict[str, str], bedrock: BedrockFake
) -> None:
    client = boto3.client("bedrock-runtime", config=ONE_ATTEMPT)
    bedrock.throttle(1)

    with pytest.raises(ClientError) as error:
        client.converse(modelId=MODEL_ID, messages=[_user("hi")])

    assert error.value.response["Error"]["Code"] == "ThrottlingException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert [request.status for request in bedrock.requests] == [429]
    assert client.converse(modelId=MODEL_ID, messages=[_user("hi")])["stopReason"] == "end_turn"


def test_botocore_retries_through_a_throttle(runtime: Any, bedrock: BedrockFake) -> None:
    bedrock.throttle(1, operation=CONVERSE)

    response = runtime.converse(modelId=MODEL_ID, messages=[_user("hi")])

    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [request.status for request in bedrock.requests] == [429, 200]


def test_fail_targets_one_operation_until_reset(
    runtime: Any, agent_runtime: Any, bedrock: BedrockFake
) -> None:
    bedrock.fail(404, "ResourceNotFoundException", "no such KB", operation=RETRIEVE, times=None)

    runtime.converse(modelId=MODEL_ID, messages=[_user("hi")])
    for _ in range(2):
        with pytest.raises(agent_runtime.exceptions.ResourceNotFoundException):
            _retrieve(agent_runtime)
    bedrock.reset()

    assert bedrock.requests == []
    assert _retrieve(agent_runtime)["retrievalResults"] == []
