"""The REST API as API Gateway serves it, driven over HTTP by httpx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import httpx
import jwt
import pytest

from chatclient.client import AssistantClient
from devserver.rest_gateway import policy_allows
from devserver.server import DevServer
from fakes.oidc import SigningKey
from functions.contract import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, REST_ROUTES, Route
from tests.support.dev_server import (
    DEV_GROUP,
    Api,
    Logs,
    ask_openai,
    local_client,
    local_dynamodb,
    stored_message_count,
    wait_for,
)

pytestmark = DEV_GROUP

CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET,POST,PUT,PATCH,DELETE,OPTIONS",
    "access-control-allow-headers": ",".join(CORS_ALLOW_HEADERS),
    "access-control-expose-headers": ",".join(CORS_EXPOSE_HEADERS),
}


def assert_cors(response: httpx.Response) -> None:
    for name, value in CORS.items():
        assert response.headers.get(name) == value, (name, response.headers)


def test_health_needs_no_token(dev: DevServer) -> None:
    response = httpx.get(f"{dev.rest_url}/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_no_token_is_401_with_cors_headers(dev: DevServer) -> None:
    response = httpx.get(f"{dev.rest_url}/api/v1/sessions")
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert_cors(response)


def test_a_token_the_authorizer_rejects_is_401(dev: DevServer, logs: Logs) -> None:
    """The real authorizer raises Unauthorized, which API Gateway answers 401 (not 403); its
    reason is logged as Lambda's runtime logs it (a root handler, ``[INFO]`` and the request
    id), and the refusal is one line, not a stack trace."""
    assert dev.issuer is not None
    [authorizer] = [f.name for f in dev.stack.functions.values() if "authorizer" in f.name]
    forged = SigningKey.rsa("dev-server").sign(dev.issuer.claims(sub="mallory"))
    for token in (forged, "not-a-jwt"):
        before = len(logs.lines)
        response = httpx.get(
            f"{dev.rest_url}/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, token
        assert_cors(response)
        printed = wait_for(lambda start=before: _invocation(logs, authorizer, start))
        reasons = [line for line in printed if line.startswith("[INFO]\t")]
        assert len(reasons) == 1, printed
        _, timestamp, request_id, record = reasons[0].split("\t")
        assert timestamp.endswith("Z")
        assert json.loads(record)["reason"]
        assert request_id == json.loads(record)["request_id"]
        assert "Unauthorized: the request is refused (401)" in printed
        assert not [line for line in printed if "Traceback" in line or "stackTrace" in line]


def _invocation(logs: Logs, source: str, start: int) -> list[str] | None:
    """The lines of ``source``'s first invocation logged after line ``start``, once ended."""
    lines = [line for name, line in logs.lines[start:] if name == source]
    ends = [i for i, line in enumerate(lines) if line.startswith("REPORT RequestId:")]
    return lines[: ends[0]] if ends else None


@pytest.mark.parametrize("route", REST_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_a_browser_preflight_with_every_documented_header_passes(
    dev: DevServer, route: Route
) -> None:
    """Through API Gateway's OPTIONS methods to the main function, as deployed."""
    path = route.full_path.replace("{session_id}", "0b515f04-62f1-415e-a225-f6913c371fab")
    response = httpx.options(
        f"{dev.rest_url}{path}",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": route.method,
            "Access-Control-Request-Headers": ",".join(CORS_ALLOW_HEADERS).lower(),
        },
    )
    assert response.status_code == 200, response.text
    allowed = response.headers["access-control-allow-headers"].lower()
    assert all(name.lower() in allowed for name in CORS_ALLOW_HEADERS)


def test_unknown_routes_methods_and_stages_are_403(dev: DevServer, alice: Api) -> None:
    missing = alice.http.get("/api/v1/nothing-here")
    assert missing.status_code == 403
    assert missing.json() == {"message": "Missing Authentication Token"}
    assert_cors(missing)
    assert alice.http.put("/api/v1/sessions").status_code == 403  # no PUT method deployed
    other_stage = dev.rest_url.rsplit("/", 1)[0] + "/prod/api/v1/health"
    assert httpx.get(other_stage).status_code == 403


def test_session_crud(alice: Api) -> None:
    session = alice.create_session(title="first")
    session_id = session["session_id"]
    assert alice.http.get(f"/api/v1/sessions/{session_id}").json()["title"] == "first"
    patched = alice.http.patch(f"/api/v1/sessions/{session_id}", json={"title": "renamed"})
    assert patched.status_code == 200
    assert patched.json()["title"] == "renamed"
    listed = alice.http.get("/api/v1/sessions").json()["sessions"]
    assert session_id in [s["session_id"] for s in listed]
    assert alice.http.delete(f"/api/v1/sessions/{session_id}").status_code == 204
    assert alice.http.get(f"/api/v1/sessions/{session_id}").status_code == 404


def test_a_rest_chat_turn_is_stored(alice: Api) -> None:
    session_id = alice.create_session()["session_id"]
    response = alice.http.post(f"/api/v1/sessions/{session_id}/messages", json={"content": "hi"})
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["usage"]["output_tokens"] > 0
    stored = alice.messages(session_id)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == reply["message"]["content"]


def test_an_untitled_session_is_named_after_its_first_answer(alice: Api, logs: Logs) -> None:
    """The dev stack has titles on (the default title model), answered by the local model
    with the question's first words."""
    session_id = alice.create_session()["session_id"]
    question = {"content": "what is the capital of France today?"}
    response = alice.http.post(f"/api/v1/sessions/{session_id}/messages", json=question)
    assert response.status_code == 200, response.text
    # Failed once in about 17 runs, unexplained: the functions' lines about titles say why.
    said = [line for _, line in list(logs.lines) if "title" in line.lower()]
    assert response.json()["title"] == "what is the capital of France", said
    session = alice.http.get(f"/api/v1/sessions/{session_id}").json()
    assert session["title"] == "what is the capital of France"


def test_users_are_isolated(alice: Api, bob: Api) -> None:
    session_id = alice.create_session(title="alice's")["session_id"]
    assert bob.http.get(f"/api/v1/sessions/{session_id}").status_code == 404
    assert bob.http.delete(f"/api/v1/sessions/{session_id}").status_code == 404
    bob_ids = [s["session_id"] for s in bob.http.get("/api/v1/sessions").json()["sessions"]]
    assert session_id not in bob_ids
    assert alice.http.get(f"/api/v1/sessions/{session_id}").status_code == 200


def test_listings_page_with_a_token_key_derived_from_the_local_kms(
    dev: DevServer, bob: Api
) -> None:
    """The stack's pagination key is an HMAC key: the dev server creates it in its KMS and
    hands main its ARN, so next_token works, and a tampered one is refused."""
    assert dev.stack.mac_keys, "the stack has no HMAC key"
    kms = boto3.client(
        "kms",
        endpoint_url=dev.kms_endpoint,
        region_name=dev.stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    (main,) = [f for f in dev.stack.functions.values() if f.name.endswith("-main")]
    arn = dev.stack.environment(main, lambda name, raw: None)["PAGINATION_KEY_ARN"]
    metadata = kms.describe_key(KeyId=arn)["KeyMetadata"]
    assert (metadata["KeySpec"], metadata["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")
    created = {bob.create_session(title=f"page {n}")["session_id"] for n in range(3)}
    seen: list[str] = []
    params: dict[str, str] = {"limit": "1"}
    tokens = []
    while True:
        page = bob.http.get("/api/v1/sessions", params=params)
        assert page.status_code == 200, page.text
        seen += [s["session_id"] for s in page.json()["sessions"]]
        if not page.json()["next_token"]:
            break
        tokens.append(page.json()["next_token"])
        params = {"limit": "1", "next_token": tokens[-1]}
    assert created <= set(seen) and len(seen) == len(set(seen))
    payload, signature = tokens[0].split(".")
    tampered = f"{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    refused = bob.http.get("/api/v1/sessions", params={"limit": "1", "next_token": tampered})
    assert refused.status_code == 400, refused.text


def test_the_authorizer_decision_is_cached_per_token(dev: DevServer) -> None:
    assert dev.rest is not None
    carol = Api(dev, "carol")
    before = dev.rest.authorizer_invocations
    for _ in range(3):
        assert carol.http.get("/api/v1/sessions").status_code == 200
    assert carol.http.get("/api/v1/knowledge-bases").status_code == 200  # another method ARN
    assert dev.rest.authorizer_invocations == before + 1
    assert Api(dev, "dave").http.get("/api/v1/sessions").status_code == 200
    assert dev.rest.authorizer_invocations == before + 2


def test_preflight_is_routed_to_the_function_without_a_token(dev: DevServer) -> None:
    response = httpx.options(
        f"{dev.rest_url}/api/v1/sessions",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://app.example")


def test_a_body_over_10_mb_is_413(dev: DevServer, alice: Api) -> None:
    response = alice.http.post(
        "/api/v1/sessions", content=b"x" * (10 * 1024 * 1024 + 1), headers={"Content-Type": "a/b"}
    )
    assert response.status_code == 413
    assert_cors(response)


def test_functions_log_under_their_names(dev: DevServer, logs: Logs) -> None:
    erin = Api(dev, "erin")
    session_id = erin.create_session()["session_id"]
    assert erin.http.delete(f"/api/v1/sessions/{session_id}").status_code == 204
    ask_openai(dev, "erin")
    names = {f.name for f in dev.stack.functions.values() if not f.name.endswith("-websocket")}
    wait_for(lambda: names <= logs.sources())  # the cleanup, from the stream, a moment later
    assert "rest-api" in logs.sources()


def test_deleting_a_session_removes_its_messages_through_the_stream(
    dev: DevServer, alice: Api, logs: Logs
) -> None:
    """The stream-fed cleanup runs locally as deployed: DELETE removes the session item, the
    sessions table's stream passes the REMOVE to the cleanup function, which deletes the
    messages."""
    session_id = alice.create_session()["session_id"]
    response = alice.http.post(f"/api/v1/sessions/{session_id}/messages", json={"content": "hi"})
    assert response.status_code == 200, response.text
    assert stored_message_count(dev, session_id) == 2
    assert alice.http.delete(f"/api/v1/sessions/{session_id}").status_code == 204
    wait_for(lambda: stored_message_count(dev, session_id) == 0)
    # The cleanup logs after its deletes return: the line may come a moment after the count.
    assert wait_for(lambda: _cleanup_logged(logs, session_id)) == "delete"


def test_delete_me_removes_every_message_through_the_stream(dev: DevServer) -> None:
    frank = Api(dev, "frank")
    sessions = [frank.create_session()["session_id"] for _ in range(2)]
    for session_id in sessions:
        response = frank.http.post(f"/api/v1/sessions/{session_id}/messages", json={"content": "x"})
        assert response.status_code == 200, response.text
    assert frank.http.delete("/api/v1/me").status_code == 204
    wait_for(lambda: all(stored_message_count(dev, s) == 0 for s in sessions))


def test_an_expired_session_is_removed_by_ttl_and_its_messages_by_the_stream(
    dev: DevServer, alice: Api, logs: Logs
) -> None:
    """DynamoDB's TTL, emulated by the dev server's sweeper: the expired session goes, and
    the cleanup sees the removal as a TTL expiry."""
    session_id = alice.create_session()["session_id"]
    response = alice.http.post(f"/api/v1/sessions/{session_id}/messages", json={"content": "hi"})
    assert response.status_code == 200, response.text
    [table] = [t.name for t in dev.stack.tables.values() if t.name.endswith("-sessions")]
    local_dynamodb(dev).update_item(
        TableName=table,
        Key={"session_id": {"S": session_id}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )
    assert dev.ttl is not None
    dev.ttl.sweep()
    wait_for(lambda: stored_message_count(dev, session_id) == 0)
    assert wait_for(lambda: _cleanup_logged(logs, session_id)) == "ttl"


def _cleanup_logged(logs: Logs, session_id: str) -> str | None:
    """The cause the cleanup function logged for the session's removal, if it did."""
    for source, line in list(logs.lines):
        if source.endswith("-session-cleanup") and session_id in line and line.startswith("{"):
            record = json.loads(line)
            if record.get("message") == "deleted the messages and attachments of a removed session":
                return record["cause"]
    return None


def test_authorizer_policies_are_evaluated_as_iam_does() -> None:
    """A cached policy is evaluated against each method ARN: Allow must match, Deny wins."""
    arn = "arn:aws:execute-api:us-east-1:123456789012:api/v1/GET/api/v1/sessions"

    def statement(effect: str, resource: str) -> dict[str, str]:
        return {"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource}

    allow_all = statement("Allow", "arn:aws:execute-api:us-east-1:123456789012:api/v1/*/*")
    assert policy_allows({"Statement": [allow_all]}, arn)
    assert not policy_allows({"Statement": [allow_all, statement("Deny", arn)]}, arn)
    other = statement("Allow", "arn:aws:execute-api:us-east-1:123456789012:api/v1/POST/*")
    assert not policy_allows({"Statement": [other]}, arn)
    assert not policy_allows({"Statement": []}, arn)


def test_tables_are_created_from_the_synthesized_schemas(dev: DevServer) -> None:
    assert dev.moto is not None
    client = boto3.client(
        "dynamodb",
        endpoint_url=dev.moto.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    synthesized = json.loads(dev.stack.path.read_text())["resource"]["aws_dynamodb_table"]
    for body in synthesized.values():
        table = client.describe_table(TableName=body["name"])["Table"]
        keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
        assert keys.get(body["hash_key"]) == "HASH"
        assert keys.get(body.get("range_key")) == ("RANGE" if body.get("range_key") else None)
        indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {i["name"] for i in body.get("global_secondary_index", [])}
        for index in body.get("global_secondary_index", []):
            index_keys = {
                k["AttributeName"]: k["KeyType"] for k in indexes[index["name"]]["KeySchema"]
            }
            expected = {index["hash_key"]: "HASH"}
            if index.get("range_key"):  # UserConnections has a hash key only
                expected[index["range_key"]] = "RANGE"
            assert index_keys == expected
        ttl = client.describe_time_to_live(TableName=body["name"])["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == body["ttl"]["attribute_name"]


def test_the_dev_token_command_prints_a_token_the_server_accepts(
    dev: DevServer, stacks_dir: Path
) -> None:
    assert dev.issuer is not None
    port = dev.issuer.url.rsplit(":", 1)[1]
    command = [sys.executable, "-m", "devserver.token", "zoe", "--stacks-dir", str(stacks_dir)]
    command += ["--oidc-port", port, "--state-dir", str(dev.settings.state_dir)]
    token = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    response = httpx.get(
        f"{dev.rest_url}/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "zoe"


def test_an_attachment_uploads_through_the_presigned_post(dev: DevServer, alice: Api) -> None:
    """The bucket exists in the dev server's S3 (created from the stack), the main function
    signs the form for it, and the form posts there as the chat client posts it."""
    session_id = alice.create_session()["session_id"]
    data = b"# notes\n"
    response = alice.http.post(
        f"/api/v1/sessions/{session_id}/attachments",
        json={"name": "notes.md", "content_type": "text/markdown", "size": len(data)},
    )
    assert response.status_code == 200, response.text
    upload = response.json()["upload"]
    posted = httpx.post(upload["url"], data=upload["fields"], files={"file": ("f", data)})
    assert posted.status_code == 204, posted.text
    [bucket] = dev.stack.buckets.values()
    s3 = local_client(dev, "s3")
    stored = s3.get_object(Bucket=bucket, Key=upload["fields"]["key"])
    assert stored["Body"].read() == data
    assert stored["Metadata"] == {"name": "notes.md"}


def test_regenerate_over_rest_and_edit_through_the_chat_client(dev: DevServer, alice: Api) -> None:
    """Both transports and the chat client's calls, as API Gateway serves them: the old
    versions are listed, the current one is what the client resumes from."""
    session_id = alice.create_session()["session_id"]
    path = f"/api/v1/sessions/{session_id}/messages"
    assert alice.http.post(path, json={"content": "hi"}).status_code == 200
    question = alice.messages(session_id)[0]["message_id"]
    regenerated = alice.http.post(path, json={"replaces": question})
    assert regenerated.status_code == 200, regenerated.text
    assert regenerated.json()["message"]["version"] == 2
    assert alice.http.post(path, json={"replaces": question}).status_code == 409

    client = AssistantClient(dev.rest_url, dev.ws_url, alice.token)
    try:
        last = client.last_question(session_id)
        assert last is not None
        turn = client.stream(session_id, "hi, edited", replaces=last["message_id"])
        assert "".join(turn)
        assert turn.end["status"] == "complete"
    finally:
        client.close()
    stored = alice.messages(session_id)
    assert [(m["content"], m["version"], bool(m["superseded_by"])) for m in stored[::2]] == [
        ("hi", 1, True),
        ("hi", 2, True),
        ("hi, edited", 3, False),
    ]
    assert stored_message_count(dev, session_id) == 6


def test_an_answer_streamed_to_the_chat_client_is_rated_through_the_gateway(
    dev: DevServer, alice: Api
) -> None:
    """The ``message_id`` of a streamed answer's ``start`` frame is the stored answer's: the
    chat client's ``/feedback`` rates it over REST, and the listing shows the rating."""
    session_id = alice.create_session()["session_id"]
    client = AssistantClient(dev.rest_url, dev.ws_url, dev.token("alice"))
    try:
        turn = client.stream(session_id, "hi")
        assert "".join(turn)
        assert turn.message_id is not None
        stored = client.feedback(session_id, turn.message_id, "down", "too short")
    finally:
        client.close()
    assert (stored["rating"], stored["comment"]) == ("down", "too short")
    assert [m["feedback"] for m in alice.messages(session_id)] == [None, stored]


def test_an_export_is_followed_page_by_page_through_the_link_header(alice: Api) -> None:
    """The ``Link`` reference is relative to the page's URL, the stage's path included."""
    session_id = alice.create_session(title="Exported")["session_id"]
    for content in ("one", "two"):
        sent = alice.http.post(f"/api/v1/sessions/{session_id}/messages", json={"content": content})
        assert sent.status_code == 200, sent.text
    url = alice.http.build_request(
        "GET", f"/api/v1/sessions/{session_id}/export", params={"format": "md", "limit": "3"}
    ).url
    pages = []
    while True:
        page = alice.http.get(url)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "text/markdown; charset=utf-8"
        assert page.headers["content-disposition"] == f'attachment; filename="{session_id}.md"'
        pages.append(page.text)
        following = page.links.get("next", {}).get("url")
        if following is None:
            break
        url = page.url.join(following)
    assert len(pages) == 2
    assert pages[0].startswith("# Exported\n")
    assert sum(page.count("## User · ") for page in pages) == 2
