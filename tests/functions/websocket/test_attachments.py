"""``sendMessage`` with ``attachments``: the same checks and Converse blocks as on REST."""

from __future__ import annotations

import boto3

from fakes.bedrock import CONVERSE_STREAM, BedrockFake
from functions.contract import Env, attachment_key
from tests.functions.helpers import Rest, WebSocket
from tests.functions.main.test_attachment_messages import SOURCE, png, uploaded

OK = {"statusCode": 200}


def test_send_message_streams_an_answer_to_a_question_with_attachments(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake
) -> None:
    session_id = rest.create_session()["session_id"]
    image = uploaded(rest, session_id, png(20, 10), name="a.png", content_type="image/png")
    document = uploaded(rest, session_id, SOURCE, name="main.py")
    connection_id = ws.open()
    message = {"action": "sendMessage", "session_id": session_id, "content": "q"}
    assert ws.send(connection_id, {**message, "attachments": [image, document]}) == OK
    assert ws.frames(connection_id)[-1]["type"] == "end"
    [request] = bedrock.requests_for(CONVERSE_STREAM)
    kinds = [next(iter(block)) for block in request.body["messages"][-1]["content"]]
    assert kinds == ["text", "image", "document"]

    missing = "0b515f04-62f1-415e-a225-f6913c371fab"
    assert ws.send(connection_id, {**message, "attachments": [missing]}) == OK
    error = ws.frames(connection_id)[-1]
    assert (error["type"], error["code"]) == ("error", "attachment_rejected")
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == 1  # no model call for it

    assert ws.send(connection_id, {**message, "attachments": [missing, missing]}) == OK
    assert ws.frames(connection_id)[-1]["code"] == "bad_request"


def test_the_start_frame_names_the_earlier_attachments_not_sent_again(
    ws: WebSocket, rest: Rest, bedrock: BedrockFake, app_env: dict[str, str]
) -> None:
    session_id = rest.create_session()["session_id"]
    document = uploaded(rest, session_id, SOURCE, name="main.py")
    connection_id = ws.open()
    message = {"action": "sendMessage", "session_id": session_id, "content": "q"}
    assert ws.send(connection_id, {**message, "attachments": [document]}) == OK
    assert "unavailable_attachments" not in ws.frames(connection_id)[0]
    boto3.client("s3").delete_object(
        Bucket=app_env[Env.ATTACHMENTS_BUCKET], Key=attachment_key(session_id, document)
    )
    keyed = {**message, "content": "and now?", "idempotency_key": "turn-2"}
    assert ws.send(connection_id, keyed) == OK
    start = [f for f in ws.frames(connection_id) if f["type"] == "start"][-1]
    unavailable = [{"attachment_id": document, "name": "main.py", "reason": "expired"}]
    assert start["unavailable_attachments"] == unavailable
    history = bedrock.requests_for(CONVERSE_STREAM)[-1].body["messages"][0]["content"]
    assert [next(iter(block)) for block in history] == ["text", "text"]

    # The same request again (a client that lost the frames) is replayed, not answered
    # again, and its start frame says the same.
    assert ws.send(connection_id, keyed) == OK
    replayed = [f for f in ws.frames(connection_id) if f["type"] == "start"][-1]
    assert replayed == start
    assert len(bedrock.requests_for(CONVERSE_STREAM)) == 2
