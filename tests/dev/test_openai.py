"""The OpenAI-compatible endpoints of ``make dev`` with clients nobody here wrote: the official
``openai`` SDK and the ``llm`` CLI, through the dev REST gateway (the stack's authorizer, the
adapter's headers) to the app ``run.sh`` serves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devserver.model import answer
from devserver.server import DevServer
from fakes.bedrock import Pacing
from functions.contract import OPENAI_REPLACED_MESSAGES_HEADER, OPENAI_SESSION_HEADER
from tests.support.dev_server import DEV_GROUP, Api, wait_for

pytestmark = DEV_GROUP

ROOT = Path(__file__).resolve().parents[2]


def models(dev: DevServer) -> list[str]:
    return list(dev.stack.function(_main_function(dev)).environment["BEDROCK_MODELS"].split(","))


def _main_function(dev: DevServer) -> str:
    return next(route.function for route in dev.stack.rest.routes if route.function)


def sdk(dev: DevServer, user: str = "alice", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=dev.openai_base_url,
        api_key=dev.token(user),
        max_retries=0,
        default_headers=headers or None,
    )


def question(dev: DevServer, text: str = "Hello?", **fields: Any) -> dict[str, Any]:
    return {"model": models(dev)[0], "messages": [{"role": "user", "content": text}], **fields}


def test_the_sdk_lists_the_models_and_gets_an_answer(dev: DevServer) -> None:
    client = sdk(dev)

    listed = [model.id for model in client.models.list()]
    completion = client.chat.completions.create(**question(dev, "What is two and two?"))

    assert listed == models(dev)
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_the_sdk_streams_and_gets_usage_at_the_end(dev: DevServer) -> None:
    stream = sdk(dev).chat.completions.create(
        **question(dev, "Tell me about streams."),
        stream=True,
        stream_options={"include_usage": True},
    )

    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer(
        {"messages": [{"role": "user", "content": [{"text": "Tell me about streams."}]}]}
    )
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text.split())


def test_the_first_chunk_arrives_before_the_model_has_finished(dev: DevServer, model: Any) -> None:
    """Through the gateway and the app, nothing is buffered: the client holds the first
    words while the model (paced) is still writing the rest."""
    model.reply = " ".join(f"word{number}" for number in range(40))
    model.pacing = Pacing(first_delta_s=0.0, deltas_per_second=20)
    streams_before = len(model.streams)

    stream = sdk(dev).chat.completions.create(**question(dev), stream=True)
    first_text = next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
    record = model.streams[streams_before]
    finished_at_first_chunk = record.finished
    rest = list(stream)

    assert first_text.choices[0].delta.content.startswith("word0")
    assert finished_at_first_chunk is None
    assert record.finished is not None
    assert rest[-1].choices[0].finish_reason == "stop"


def test_sdk_errors_carry_the_message_and_the_class_of_their_status(dev: DevServer) -> None:
    with pytest.raises(openai.BadRequestError, match="n must be 1") as raised:
        sdk(dev).chat.completions.create(**question(dev), n=2)
    assert raised.value.code == "bad_request"
    with pytest.raises(openai.BadRequestError, match="image"):
        sdk(dev).chat.completions.create(
            model=models(dev)[0],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        )
    with pytest.raises(openai.AuthenticationError):  # the gateway's authorizer refuses
        openai.OpenAI(
            base_url=dev.openai_base_url, api_key="not-a-jwt", max_retries=0
        ).models.list()


def test_a_client_cannot_forge_the_adapters_identity_header(dev: DevServer) -> None:
    """The gateway replaces whatever request context a client sends with the authorizer's: the
    turn is counted to the token's user, not to the one the forged header names."""
    forged = json.dumps(
        {"authorizer": {"principalId": "openai-victim", "user_id": "openai-victim"}}
    )
    response = httpx.post(
        f"{dev.openai_base_url}/chat/completions",
        json=question(dev),
        headers={
            "Authorization": f"Bearer {dev.token('openai-forger')}",
            "x-amzn-request-context": forged,
        },
        timeout=30,
    )

    assert response.status_code == 200, response.text
    assert _turns_today(Api(dev, "openai-forger")) == 1
    assert _turns_today(Api(dev, "openai-victim")) == 0


def _turns_today(api: Api) -> int:
    periods = api.http.get("/api/v1/usage").json()["periods"]
    return next(p["turns"] for p in periods if p["period"] == "day")


def test_a_bound_turn_is_listed_with_the_sessions_messages(dev: DevServer, alice: Api) -> None:
    session_id = alice.create_session(knowledge_base_id=None)["session_id"]
    client = sdk(dev, **{OPENAI_SESSION_HEADER: session_id})

    raw = client.chat.completions.with_raw_response.create(**question(dev, "Remember me."))
    completion = raw.parse()

    assert raw.headers[OPENAI_REPLACED_MESSAGES_HEADER] == "0"
    listed = alice.messages(session_id)
    assert [(m["role"], m["content"]) for m in listed] == [
        ("user", "Remember me."),
        ("assistant", completion.choices[0].message.content),
    ]


# The llm CLI ------------------------------------------------------------------------------------


def llm(dev: DevServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``llm`` with its own user directory, whose ``extra-openai-models.yaml`` points at the
    dev server; the key is the dev token (``--key``; without ``api_key_name`` llm sends none)."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: dev-assistant\n"
        f"  model_name: {models(dev)[0]}\n"
        f"  api_base: {dev.openai_base_url}\n"
        f"  api_key_name: ai-assistant\n",
        encoding="utf-8",
    )
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    return subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "llm"),
            "-m",
            "dev-assistant",
            "--key",
            dev.token("alice"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("streaming", [True, False])
def test_llm_gets_the_answer(dev: DevServer, tmp_path: Path, streaming: bool) -> None:
    prompt = "Which river flows through Paris?"

    result = llm(dev, tmp_path, *([] if streaming else ["--no-stream"]), prompt)

    assert result.returncode == 0, result.stderr
    expected = answer({"messages": [{"role": "user", "content": [{"text": prompt}]}]})
    assert result.stdout.strip() == expected.strip()


def test_llm_with_a_system_prompt_and_a_refusal(dev: DevServer, tmp_path: Path) -> None:
    assert llm(dev, tmp_path, "-s", "Be brief.", "Hi").returncode == 0

    refused = llm(dev, tmp_path, "-o", "logprobs", "2", "Hi")

    assert refused.returncode != 0
    assert "logprobs" in refused.stderr


def test_a_stream_the_client_abandons_is_still_stored(
    dev: DevServer, alice: Api, model: Any
) -> None:
    """The client goes away after the first chunk; the answer is stored whole all the same."""
    model.reply = " ".join(f"w{number}" for number in range(30))
    model.pacing = Pacing(first_delta_s=0.0, deltas_per_second=50)
    session_id = alice.create_session(knowledge_base_id=None)["session_id"]
    client = sdk(dev, **{OPENAI_SESSION_HEADER: session_id})

    with client.chat.completions.create(**question(dev), stream=True) as stream:
        next(iter(stream))

    def stored() -> bool:
        listed = alice.messages(session_id)
        return len(listed) == 2 and listed[1]["status"] == "complete"

    wait_for(stored)
    assert alice.messages(session_id)[1]["content"] == model.reply
