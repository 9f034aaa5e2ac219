"""The knowledge-base path locally: a stack synthesized with a knowledge base, served with
``--kb-dir``, lists it, retrieves from the folder's files and cites them, over REST and the
WebSocket alike, with the functions' own boto3 clients reaching the local stand-in."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from devserver.server import EXAMPLE_KNOWLEDGE_BASE_ID, DevServer, Settings
from devserver.stack import StackError, stack_file
from functions.contract import Env
from tests.support.dev_server import DEV_GROUP, Logs, frames_until_end, start_server, websocket

pytestmark = DEV_GROUP

KB_LOGS = Logs()
GUIDE = (
    "# Kettles\n\n"
    "A kettle boils water quickly because its element sits right in the water.\n\n"
    "Descale the kettle every month where the water is hard, with vinegar or citric acid.\n"
)


def with_knowledge_base(stacks_dir: Path, copy: Path) -> Path:
    """A copy of the dev stack as synthesized with ``knowledge_base_id`` set: every function
    that reads KNOWLEDGE_BASE_ID gets the id, as compute/stack.py writes it."""
    shutil.copytree(stacks_dir / "compute-dev", copy / "compute-dev")
    path = stack_file(copy, "dev")
    stack = json.loads(path.read_text())
    functions = stack["resource"]["aws_lambda_function"].values()
    variables = [f["environment"]["variables"] for f in functions if "environment" in f]
    readers = [v for v in variables if Env.KNOWLEDGE_BASE_ID in v]
    assert readers, "no function reads KNOWLEDGE_BASE_ID"
    for found in readers:
        found[Env.KNOWLEDGE_BASE_ID] = EXAMPLE_KNOWLEDGE_BASE_ID
    path.write_text(json.dumps(stack))
    return path


@pytest.fixture(scope="module")
def with_kb(
    stacks_dir: Path, tmp_path_factory: pytest.TempPathFactory, package_cache: Path
) -> Iterator[DevServer]:
    """A second dev server, on a stack with a knowledge base. It has its own DynamoDB: on the
    first server's, its TTL sweeper and stream pollers would run on the same tables and race
    that server's (a TTL expiry it swept was reported to the other's cleanup as a delete)."""
    folder = tmp_path_factory.mktemp("kb")
    (folder / "appliances").mkdir()
    (folder / "appliances" / "kettles.md").write_text(GUIDE, encoding="utf-8")
    (folder / "toasters.txt").write_text("Toasters brown bread with glowing wires.\n", "utf-8")
    path = with_knowledge_base(stacks_dir, tmp_path_factory.mktemp("kb-stack"))
    state = tmp_path_factory.mktemp("kb-state")
    server = start_server(path, state, package_cache, KB_LOGS, kb_dir=folder)
    yield server
    server.stop()


def _client(server: DevServer, user: str = "alice") -> httpx.Client:
    auth = {"Authorization": f"Bearer {server.token(user)}"}
    return httpx.Client(base_url=f"{server.rest_url}/api/v1", headers=auth, timeout=30)


def test_the_knowledge_base_is_listed(with_kb: DevServer) -> None:
    with _client(with_kb) as client:
        response = client.get("/knowledge-bases")
    assert response.status_code == 200, response.text
    [listed] = response.json()["knowledge_bases"]
    assert listed["knowledge_base_id"] == EXAMPLE_KNOWLEDGE_BASE_ID
    assert listed["default"] is True
    assert listed["status"] == "ACTIVE"


def test_a_rest_turn_is_grounded_on_the_folder_and_cites_it(with_kb: DevServer) -> None:
    with _client(with_kb) as client:
        session = client.post("/sessions", json={}).json()
        assert session["knowledge_base_id"] == EXAMPLE_KNOWLEDGE_BASE_ID
        answer = client.post(
            f"/sessions/{session['session_id']}/messages",
            json={"content": "How often should I descale my kettle?"},
        )
    assert answer.status_code == 200, answer.text
    first, *_ = answer.json()["citations"]
    assert first["index"] == 1
    assert first["source"] == "appliances/kettles.md"
    assert first["text"].startswith("Descale the kettle every month")
    assert 0 < first["score"] <= 1
    content = answer.json()["message"]["content"]
    assert '"Descale the kettle every month' in content and "[1]" in content


def test_a_websocket_turn_ends_with_the_citations(with_kb: DevServer) -> None:
    with _client(with_kb, "bob") as client:
        session_id = client.post("/sessions", json={}).json()["session_id"]
    with websocket(with_kb, "bob") as ws:
        ws.send(
            json.dumps(
                {"action": "sendMessage", "session_id": session_id, "content": "toasters bread?"}
            )
        )
        end = frames_until_end(ws)[-1]
    assert end["type"] == "end", end
    assert [c["source"] for c in end["citations"]][:1] == ["toasters.txt"]


def test_the_banner_says_where_the_knowledge_base_and_the_data_are(
    dev: DevServer, with_kb: DevServer
) -> None:
    assert "Knowledge base LOCALKB001, local: 2 files in" in with_kb.banner()
    assert "COMPUTE_DEV__KNOWLEDGE_BASE_ID=LOCALKB001" in dev.banner()
    assert "Data           in memory (moto), lost when the dev server stops" in dev.banner()


def test_the_data_line_says_an_outside_dynamodb_keeps_the_data(
    stacks_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(stack_path=stack_file(stacks_dir, "dev"), state_dir=tmp_path)
    outside = DevServer(replace(settings, dynamodb_endpoint="http://127.0.0.1:8000"))
    assert outside.data_line() == "in the DynamoDB at http://127.0.0.1:8000, kept across restarts"


def test_kb_dir_without_a_knowledge_base_in_the_stack_says_what_to_do(
    stacks_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(stack_path=stack_file(stacks_dir, "dev"), state_dir=tmp_path)
    with pytest.raises(StackError, match="COMPUTE_DEV__KNOWLEDGE_BASE_ID=LOCALKB001"):
        DevServer(replace(settings, kb_dir=tmp_path))
