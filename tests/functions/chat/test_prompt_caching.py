"""Prompt caching through both transports: the fake's prompt cache reports what a turn read
and wrote, and that usage is returned (REST ``usage``, the WebSocket ``end`` frame) and
stored with the answer."""

from __future__ import annotations

from typing import Any

import pytest

from fakes.bedrock import CONVERSE, BedrockFake
from functions.contract import Env
from functions.core.settings import get_settings
from functions.data.turns import Store
from functions.main.settings import Settings
from tests.functions.helpers import Rest, WebSocket, seed_history

CACHING_MODELS = ("anthropic.claude-3-7-sonnet-20250219-v1:0", "us.amazon.nova-pro-v1:0")
TURN_WORDS = 400  # four seeded turns: a prefix past every family's minimum (1,024 at most)


@pytest.fixture
def caching(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.BEDROCK_MODELS, ",".join(CACHING_MODELS))
    get_settings.cache_clear()


def _turn(seq: int) -> str:
    return " ".join([f"turn{seq}"] * TURN_WORDS)


def _session(rest: Rest, model: str) -> str:
    session_id = rest.create_session(model_id=model, knowledge_base_id=None)["session_id"]
    seed_history(session_id, 4, _turn)
    return session_id


def _post(rest: Rest, session_id: str, content: str) -> dict[str, Any]:
    response = rest.call("POST", f"/sessions/{session_id}/messages", body={"content": content})
    assert response.status == 200, response.text
    return response.json


def _stored_usage(session_id: str, seq: int) -> dict[str, int]:
    message = Store.from_settings(get_settings(Settings)).messages.get(session_id, seq)
    assert message is not None and message.usage is not None
    return message.usage.to_dict()


@pytest.mark.usefixtures("caching")
@pytest.mark.parametrize("model", CACHING_MODELS)
def test_the_next_turn_reads_the_history_the_last_one_wrote(
    rest: Rest, bedrock: BedrockFake, model: str
) -> None:
    bedrock.reply = "A short answer."
    session_id = _session(rest, model)

    first = _post(rest, session_id, "What now?")["usage"]
    second = _post(rest, session_id, "And then?")["usage"]

    history = 4 * TURN_WORDS
    assert first["cache_read_input_tokens"] == 0
    # The system prompt alone is below every minimum: the write is the prefix to the history's end.
    assert first["cache_write_input_tokens"] > history
    assert first["input_tokens"] == 2  # the question
    assert second["cache_read_input_tokens"] == first["cache_write_input_tokens"]
    assert second["cache_write_input_tokens"] == 2 + 3  # last turn's question and answer
    assert second["input_tokens"] == 2
    assert second["total_tokens"] == sum(
        second[name]
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_write_input_tokens",
        )
    )
    assert _stored_usage(session_id, 8) == second
    [first_request, _] = bedrock.requests_for(CONVERSE)
    assert first_request.resource_id == model
    assert first_request.body["messages"][-2]["content"][-1] == {"cachePoint": {"type": "default"}}


@pytest.mark.usefixtures("caching")
def test_the_end_frame_reports_the_cache_tokens(
    rest: Rest, ws: WebSocket, bedrock: BedrockFake
) -> None:
    session_id, connection_id = _session(rest, CACHING_MODELS[0]), ws.open()
    payload = {"action": "sendMessage", "session_id": session_id, "content": "Go on."}
    for _ in range(2):
        assert ws.send(connection_id, payload) == {"statusCode": 200}

    ends = [frame for frame in ws.frames(connection_id) if frame["type"] == "end"]
    assert ends[0]["usage"]["cache_write_input_tokens"] > 4 * TURN_WORDS
    assert (
        ends[1]["usage"]["cache_read_input_tokens"] == ends[0]["usage"]["cache_write_input_tokens"]
    )
    assert _stored_usage(session_id, 8) == ends[1]["usage"]


@pytest.mark.usefixtures("caching")
def test_with_caching_off_nothing_is_marked_or_cached(
    rest: Rest, bedrock: BedrockFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Env.BEDROCK_PROMPT_CACHING, "false")
    get_settings.cache_clear()
    session_id = _session(rest, CACHING_MODELS[0])

    usages = [_post(rest, session_id, "Again?")["usage"] for _ in range(2)]

    for usage in usages:
        assert (usage["cache_read_input_tokens"], usage["cache_write_input_tokens"]) == (0, 0)
        assert usage["input_tokens"] > 4 * TURN_WORDS
    for request in bedrock.requests_for(CONVERSE):
        assert "cachePoint" not in str(request.body)


def test_the_default_models_are_sent_no_cache_point(rest: Rest, bedrock: BedrockFake) -> None:
    """Claude 3 Haiku and Claude 3.5 Sonnet v1 have no prompt caching: the fake would refuse a
    cache point, as Bedrock does."""
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    seed_history(session_id, 4, _turn)

    usage = _post(rest, session_id, "Hello?")["usage"]

    assert usage["cache_read_input_tokens"] == usage["cache_write_input_tokens"] == 0
    [request] = bedrock.requests_for(CONVERSE)
    assert "cachePoint" not in str(request.body)
