"""File parts (``{"type": "file", "file": {"file_id": <attachment_id>}}``) in the question of a
bound session: the same checks and Converse blocks as on REST; without a session, 400."""

from __future__ import annotations

from typing import Any

from fakes.bedrock import CONVERSE, BedrockFake
from functions.contract import OPENAI_SESSION_HEADER
from tests.functions.helpers import MODELS, Rest
from tests.functions.main.test_attachment_messages import SOURCE, uploaded
from tests.functions.openai_api.conftest import Api


def with_files(*ids: str, text: str = "Summarize") -> dict[str, Any]:
    parts = [{"type": "text", "text": text}]
    parts += [{"type": "file", "file": {"file_id": file_id}} for file_id in ids]
    return {"model": MODELS[0], "messages": [{"role": "user", "content": parts}]}


def test_a_file_part_sends_the_sessions_upload(api: Api, rest: Rest, bedrock: BedrockFake) -> None:
    session_id = rest.create_session()["session_id"]
    document = uploaded(rest, session_id, SOURCE, name="main.py")
    response = api.post(with_files(document), headers={OPENAI_SESSION_HEADER: session_id})
    assert response.status_code == 200, response.text
    [request] = bedrock.requests_for(CONVERSE)
    blocks = request.body["messages"][-1]["content"]
    assert blocks[0] == {"text": "Summarize"}
    assert blocks[1]["document"]["name"] == "main py"
    [question] = rest.call("GET", f"/sessions/{session_id}/messages").json["messages"][:1]
    assert question["attachments"][0]["attachment_id"] == document


def test_a_missing_upload_is_refused_before_the_model_call(
    api: Api, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session()["session_id"]
    missing = "0b515f04-62f1-415e-a225-f6913c371fab"
    response = api.post(with_files(missing), headers={OPENAI_SESSION_HEADER: session_id})
    assert response.status_code == 422, response.text
    assert "expired or was never uploaded" in response.json()["error"]["message"]
    assert bedrock.requests_for(CONVERSE) == []


def test_file_parts_need_a_session(api: Api, bedrock: BedrockFake) -> None:
    response = api.post(with_files("0b515f04-62f1-415e-a225-f6913c371fab"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == OPENAI_SESSION_HEADER
    assert bedrock.requests_for(CONVERSE) == []


def test_malformed_file_parts_and_files_outside_the_question_are_400(api: Api) -> None:
    bad_part = with_files()
    bad_part["messages"][0]["content"].append({"type": "file", "file": {"file_data": "x"}})
    response = api.post(bad_part)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[0].content[1]"
    earlier = with_files("0b515f04-62f1-415e-a225-f6913c371fab")
    earlier["messages"] += [
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and?"},
    ]
    response = api.post(earlier)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[0].content"
