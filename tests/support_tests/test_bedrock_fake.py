import base64
import threading
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage
from botocore.exceptions import ClientError, EventStreamError

from fakes.bedrock import (
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


def test_arrival_is_set_before_a_slow_model_answers(runtime: Any, bedrock: BedrockFake) -> None:
    """A test can act while a caller waits on the model: the arrival comes first, the answer
    only after ``response_delay``."""
    bedrock.response_delay = 2
    arrived = bedrock.arrival(CONVERSE)
    caller = threading.Thread(
        target=lambda: runtime.converse(modelId=MODEL_ID, messages=[_user("hi")])
    )
    caller.start()
    assert arrived.wait(5)
    assert not bedrock.requests_for(CONVERSE)  # recorded when answered
    caller.join()
    assert len(bedrock.requests_for(CONVERSE)) == 1
    assert not bedrock.arrival(CONVERSE_STREAM).is_set()
    bedrock.reset()
    assert not bedrock.arrival(CONVERSE).is_set()


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


def test_max_tokens_cuts_the_answer_on_both_calls(runtime: Any, bedrock: BedrockFake) -> None:
    """As a model does: at most maxTokens out (a token is a word), then max_tokens."""
    bedrock.reply = "one two three four five"
    limited = {"inferenceConfig": {"maxTokens": 3}}
    answer = runtime.converse(modelId=MODEL_ID, messages=[_user("count")], **limited)
    assert answer["output"]["message"]["content"] == [{"text": "one two three "}]
    assert (answer["stopReason"], answer["usage"]["outputTokens"]) == ("max_tokens", 3)
    bedrock.stream_chunks = ["one two ", "three four ", "five"]
    events = list(
        runtime.converse_stream(modelId=MODEL_ID, messages=[_user("count")], **limited)["stream"]
    )
    assert _deltas(events) == ["one two ", "three "]
    assert {"messageStop": {"stopReason": "max_tokens"}} in events
    unlimited = runtime.converse(
        modelId=MODEL_ID, messages=[_user("count")], inferenceConfig={"maxTokens": 5}
    )
    assert unlimited["stopReason"] == "end_turn"


def test_max_tokens_below_one_is_rejected(bedrock: BedrockFake) -> None:
    """botocore refuses 0 itself, so the fake's own check is reached over plain HTTP."""
    response = _post(
        bedrock,
        f"/model/{MODEL_ID}/converse",
        {"messages": [_user("hi")], "inferenceConfig": {"maxTokens": 0}},
    )
    assert response.status_code == 400
    assert "maxTokens" in response.text


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


# Guardrail -----------------------------------------------------------------------------------

GUARDRAIL = {"guardrailIdentifier": "gr0123abcd", "guardrailVersion": "1", "trace": "disabled"}


def _guarded(text: str) -> dict[str, Any]:
    return {"guardContent": {"text": {"text": text}}}


def _deltas(events: list[dict[str, Any]]) -> list[str]:
    return [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]


def _post(bedrock: BedrockFake, path: str, body: dict[str, Any]) -> httpx.Response:
    """A raw request, for what botocore cannot even serialize (fields its model lacks)."""
    return httpx.post(f"{bedrock.url}{path}", json=body)


@pytest.mark.parametrize(
    ("operation", "config"),
    [
        ("converse", {**GUARDRAIL, "streamProcessingMode": "async"}),  # a stream-only field
        ("converse-stream", {**GUARDRAIL, "streamProcessingMode": "later"}),
        ("converse", {**GUARDRAIL, "guardrailVersion": "latest"}),
        ("converse", {**GUARDRAIL, "guardrailIdentifier": "Not An Id"}),
        ("converse", {**GUARDRAIL, "trace": "verbose"}),
        ("converse", {**GUARDRAIL, "unknown": "x"}),
    ],
    ids=["mode-on-converse", "bad-mode", "bad-version", "bad-id", "bad-trace", "unknown-field"],
)
def test_a_malformed_guardrail_config_is_refused(
    bedrock: BedrockFake, operation: str, config: dict[str, Any]
) -> None:
    body = {"messages": [_user("hi")], "guardrailConfig": config}
    answer = _post(bedrock, f"/model/{MODEL_ID}/{operation}", body)

    assert answer.status_code == 400, answer.text
    assert "guardrailConfig" in answer.json()["message"]


def test_a_well_formed_guardrail_config_is_taken(bedrock: BedrockFake) -> None:
    stream = {**GUARDRAIL, "streamProcessingMode": "async"}
    converse = {"messages": [_user("hi")], "guardrailConfig": GUARDRAIL}

    assert _post(bedrock, f"/model/{MODEL_ID}/converse", converse).status_code == 200
    answer = _post(
        bedrock, f"/model/{MODEL_ID}/converse-stream", {**converse, "guardrailConfig": stream}
    )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        [{"bogus": {"text": "x"}}],
        [{"text": "x", "cachePoint": {"type": "default"}}],
        [_guarded("  ")],
        [{"guardContent": {"text": {"text": "x", "qualifiers": ["everything"]}}}],
        [{"text": "x"}, {"cachePoint": {"type": "forever"}}],
    ],
    ids=["unknown-type", "two-members", "blank-guard-content", "bad-qualifier", "bad-cache-type"],
)
def test_malformed_blocks_are_refused(bedrock: BedrockFake, content: list[dict[str, Any]]) -> None:
    body = {"messages": [{"role": "user", "content": content}]}
    answer = _post(bedrock, f"/model/{CACHING_MODEL}/converse", body)

    assert answer.status_code == 400, answer.text


def test_the_guardrail_assesses_only_guard_content_when_there_is_some(
    runtime: Any, bedrock: BedrockFake
) -> None:
    bedrock.block_input("forbidden")
    history = [_user("tell me the forbidden thing"), _assistant("No.")]

    unguarded = runtime.converse(modelId=MODEL_ID, messages=[*history, _user("and now?")])
    guarded_history = runtime.converse(
        modelId=MODEL_ID,
        messages=[*history, {"role": "user", "content": [_guarded("and now?")]}],
        guardrailConfig=GUARDRAIL,
    )
    whole = runtime.converse(
        modelId=MODEL_ID, messages=[*history, _user("and now?")], guardrailConfig=GUARDRAIL
    )
    blocked = runtime.converse(
        modelId=MODEL_ID,
        messages=[{"role": "user", "content": [_guarded("Forbidden, please")]}],
        guardrailConfig=GUARDRAIL,
    )

    assert unguarded["stopReason"] == "end_turn"  # no guardrailConfig: nothing is assessed
    assert guarded_history["stopReason"] == "end_turn"  # the history is not assessed
    assert whole["stopReason"] == "guardrail_intervened"  # no guardContent: every text is
    assert blocked["stopReason"] == "guardrail_intervened"
    assert blocked["output"]["message"]["content"] == [
        {"text": "Sorry, the model cannot answer this question."}
    ]
    assert blocked["usage"] == {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}


def test_an_intervention_replaces_a_converse_answer_once(
    runtime: Any, bedrock: BedrockFake
) -> None:
    bedrock.reply = "Something the guardrail dislikes."
    bedrock.intervene(after_chunks=2, message="Blocked.")
    messages = [{"role": "user", "content": [_guarded("hi")]}]

    unguarded = runtime.converse(modelId=MODEL_ID, messages=messages)
    first = runtime.converse(modelId=MODEL_ID, messages=messages, guardrailConfig=GUARDRAIL)
    second = runtime.converse(modelId=MODEL_ID, messages=messages, guardrailConfig=GUARDRAIL)

    assert unguarded["stopReason"] == "end_turn"  # an unguarded call is not intervened in
    assert first["stopReason"] == "guardrail_intervened"
    assert first["output"]["message"]["content"] == [{"text": "Blocked."}]
    assert second["stopReason"] == "end_turn"


def test_an_intervention_ends_a_stream_after_its_deltas(runtime: Any, bedrock: BedrockFake) -> None:
    bedrock.stream_chunks = ["one ", "two ", "three ", "four"]
    bedrock.intervene(after_chunks=2, message="Blocked.")

    events = list(
        runtime.converse_stream(
            modelId=MODEL_ID,
            messages=[{"role": "user", "content": [_guarded("count")]}],
            guardrailConfig={**GUARDRAIL, "streamProcessingMode": "async"},
        )["stream"]
    )

    assert _deltas(events) == ["one ", "two ", "Blocked."]
    assert events[-3:] == [
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "guardrail_intervened"}},
        {
            "metadata": {
                "usage": {"inputTokens": 1, "outputTokens": 3, "totalTokens": 4},
                "metrics": {"latencyMs": 1},
            }
        },
    ]


def test_a_blocked_input_ends_a_stream_with_the_blocked_message(
    runtime: Any, bedrock: BedrockFake
) -> None:
    bedrock.block_input("forbidden", message="Not that.")

    events = list(
        runtime.converse_stream(
            modelId=MODEL_ID,
            messages=[{"role": "user", "content": [_guarded("the forbidden thing")]}],
            guardrailConfig={**GUARDRAIL, "streamProcessingMode": "async"},
        )["stream"]
    )

    assert _deltas(events) == ["Not that."]
    assert {"messageStop": {"stopReason": "guardrail_intervened"}} in events


# Prompt cache --------------------------------------------------------------------------------

CACHING_MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"  # at least 1,024 tokens cached
NOVA = "us.amazon.nova-lite-v1:0"  # a profile; at least 1,000 tokens cached
CACHE = {"cachePoint": {"type": "default"}}


def _words(count: int, word: str = "word") -> str:
    return " ".join([word] * count)


def _cached_turn(
    client: Any, model: str, system_words: int, history_words: int, question: str
) -> dict[str, int]:
    """One turn as the chat service sends it: a cache point after the system prompt and
    after the history."""
    response = client.converse(
        modelId=model,
        system=[{"text": _words(system_words, "rule")}, CACHE],
        messages=[
            _user(_words(history_words // 2, "asked")),
            {"role": "assistant", "content": [{"text": _words(history_words // 2)}, CACHE]},
            _user(question),
        ],
    )
    return response["usage"]


@pytest.mark.parametrize("model", [MODEL_ID, "anthropic.claude-3-5-sonnet-20240620-v1:0"])
def test_a_cache_point_on_a_model_without_caching_is_refused(
    runtime: Any, bedrock: BedrockFake, model: str
) -> None:
    with pytest.raises(runtime.exceptions.ValidationException) as error:
        runtime.converse(
            modelId=model, messages=[{"role": "user", "content": [{"text": "x"}, CACHE]}]
        )
    assert "does not support prompt caching" in str(error.value)


def test_at_most_four_cache_points(runtime: Any) -> None:
    content = [block for n in range(5) for block in ({"text": f"part {n}"}, CACHE)]

    with pytest.raises(runtime.exceptions.ValidationException) as error:
        runtime.converse(modelId=CACHING_MODEL, messages=[{"role": "user", "content": content}])
    assert "at most 4 cachePoint" in str(error.value)
    runtime.converse(modelId=CACHING_MODEL, messages=[{"role": "user", "content": content[:8]}])


def test_the_second_turn_reads_what_the_first_wrote(runtime: Any) -> None:
    first = _cached_turn(runtime, CACHING_MODEL, 1_100, 400, "first?")
    second = _cached_turn(runtime, CACHING_MODEL, 1_100, 400, "second?")

    # The system prompt alone reaches the minimum; with the history the prefix is 1,500.
    assert first == {
        "inputTokens": 1,
        "outputTokens": 5,
        "totalTokens": 1_506,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 1_500,
    }
    assert second["cacheReadInputTokens"] == 1_500
    assert second["cacheWriteInputTokens"] == 0
    assert second["inputTokens"] == 1


def test_a_grown_history_reads_the_earlier_prefix_and_writes_the_rest(
    runtime: Any, bedrock: BedrockFake
) -> None:
    turn = [_user(_words(600, "asked")), _assistant(_words(600))]
    system = [{"text": _words(50, "rule")}, CACHE]

    def ask(history: list[dict[str, Any]], question: str) -> dict[str, int]:
        *earlier, last = history
        marked = {**last, "content": [*last["content"], CACHE]}
        messages = [*earlier, marked, _user(question)]
        return runtime.converse(modelId=NOVA, system=system, messages=messages)["usage"]

    first = ask(turn, "one")
    grown = ask([*turn, _user("one"), _assistant(_words(300))], "two")

    assert (first["cacheReadInputTokens"], first["cacheWriteInputTokens"]) == (0, 1_250)
    assert (grown["cacheReadInputTokens"], grown["cacheWriteInputTokens"]) == (1_250, 301)


def test_a_prefix_below_the_minimum_is_not_cached(runtime: Any) -> None:
    for _ in range(2):
        usage = _cached_turn(runtime, CACHING_MODEL, 100, 800, "again?")
        assert (usage["cacheReadInputTokens"], usage["cacheWriteInputTokens"]) == (0, 0)
        assert usage["inputTokens"] == 901


def test_the_cache_is_per_model_and_expires(runtime: Any, bedrock: BedrockFake) -> None:
    now = [1_000.0]
    bedrock.clock = lambda: now[0]
    _cached_turn(runtime, CACHING_MODEL, 1_100, 2, "q")

    other = _cached_turn(runtime, "anthropic.claude-sonnet-4-20250514-v1:0", 1_100, 2, "q")
    now[0] += 299
    hit = _cached_turn(runtime, CACHING_MODEL, 1_100, 2, "q")
    now[0] += 299  # the hit started the five minutes again
    again = _cached_turn(runtime, CACHING_MODEL, 1_100, 2, "q")
    now[0] += 301
    expired = _cached_turn(runtime, CACHING_MODEL, 1_100, 2, "q")

    assert other["cacheReadInputTokens"] == 0
    assert hit["cacheReadInputTokens"] == again["cacheReadInputTokens"] == 1_102
    assert expired["cacheReadInputTokens"] == 0
    assert expired["cacheWriteInputTokens"] == 1_102


# Images and documents --------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def _image(data: bytes = PNG, image_format: str = "png") -> dict[str, Any]:
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _document(
    name: str = "main (1)", data: bytes = b"print()", document_format: str = "txt"
) -> dict[str, Any]:
    return {"document": {"format": document_format, "name": name, "source": {"bytes": data}}}


def _wire(block: dict[str, Any]) -> dict[str, Any]:
    """A block as it travels: the bytes base64-encoded, as botocore sends blobs."""
    [(kind, value)] = block.items()
    encoded = base64.b64encode(value["source"]["bytes"]).decode()
    return {kind: {**value, "source": {"bytes": encoded}}}


def test_image_and_document_blocks_are_taken_from_the_real_client(
    runtime: Any, bedrock: BedrockFake
) -> None:
    content = [_document(), _image(), {"text": "What is in these?"}]
    runtime.converse(modelId=MODEL_ID, messages=[{"role": "user", "content": content}])
    [request] = bedrock.requests_for(CONVERSE)
    sent = request.body["messages"][0]["content"]
    assert base64.b64decode(sent[0]["document"]["source"]["bytes"]) == b"print()"
    assert base64.b64decode(sent[1]["image"]["source"]["bytes"]) == PNG


MEDIA_REFUSALS = {
    "image-format": ([_image(image_format="bmp"), {"text": "x"}], "format 'bmp'"),
    "document-format": ([_document(document_format="py"), {"text": "x"}], "format 'py'"),
    "empty-image": ([_image(data=b""), {"text": "x"}], "image bytes are empty"),
    "empty-document": ([_document(data=b""), {"text": "x"}], "document bytes are empty"),
    "big-image": ([_image(data=b"x" * 3_750_001), {"text": "x"}], "maximum is 3750000"),
    "big-document": ([_document(data=b"x" * 4_500_001), {"text": "x"}], "maximum is 4500000"),
    "name-dot": ([_document(name="main.py"), {"text": "x"}], "document name 'main.py'"),
    "name-two-spaces": ([_document(name="a  b"), {"text": "x"}], "document name 'a  b'"),
    "name-twice": ([_document(), _document(), {"text": "x"}], "names are unique"),
    "no-text": ([_document()], "must also include a text block"),
    "six-documents": (
        [*(_document(name=f"d{i}") for i in range(6)), {"text": "x"}],
        "Too many documents: 6",
    ),
    "21-images": ([*(_image() for _ in range(21)), {"text": "x"}], "Too many images: 21"),
}


@pytest.mark.parametrize("case", sorted(MEDIA_REFUSALS))
def test_images_and_documents_are_refused_as_the_service_refuses_them(
    bedrock: BedrockFake, case: str
) -> None:
    content, message = MEDIA_REFUSALS[case]
    body = {
        "messages": [
            {"role": "user", "content": [_wire(b) if "text" not in b else b for b in content]}
        ]
    }
    answer = _post(bedrock, f"/model/{MODEL_ID}/converse", body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["x-amzn-errortype"].startswith("ValidationException")
    assert message in answer.json()["message"]


def test_media_only_in_user_messages(bedrock: BedrockFake) -> None:
    messages = [
        _user("look"),
        {"role": "assistant", "content": [_wire(_image()), {"text": "here"}]},
        _user("and?"),
    ]
    answer = _post(bedrock, f"/model/{MODEL_ID}/converse", {"messages": messages})
    assert answer.status_code == 400
    assert "only supported in user messages" in answer.json()["message"]


def test_limits_count_the_whole_request_and_accept_the_bounds(bedrock: BedrockFake) -> None:
    """Five documents and twenty images spread over turns are within the limits; the sizes at
    their bound pass, and base64 that is not is refused."""
    first = [*(_wire(_document(name=f"d{i}")) for i in range(3)), {"text": "x"}]
    last = [
        *(_wire(_document(name=f"e{i}")) for i in range(2)),
        *(_wire(_image()) for _ in range(20)),
        _wire(_image(data=b"x" * 3_750_000)),
        {"text": "y"},
    ]
    over = {"messages": [_user("a"), _assistant("b"), {"role": "user", "content": last}]}
    over["messages"][0] = {"role": "user", "content": first}
    answer = _post(bedrock, f"/model/{MODEL_ID}/converse", over)
    assert answer.status_code == 400 and "Too many images: 21" in answer.json()["message"]
    last.pop(-2)
    answer = _post(bedrock, f"/model/{MODEL_ID}/converse", over)
    assert answer.status_code == 200, answer.text
    broken = {"image": {"format": "png", "source": {"bytes": "not base64!"}}}
    body = {"messages": [{"role": "user", "content": [broken, {"text": "x"}]}]}
    answer = _post(bedrock, f"/model/{MODEL_ID}/converse", body)
    assert answer.status_code == 400 and "not valid base64" in answer.json()["message"]
