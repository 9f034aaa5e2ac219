import json
import os
from typing import Any

import boto3
import pytest

from fakes.connections import MAX_PAYLOAD_BYTES, WsManagementFake, WsRequest
from functions.contract import Env

CONNECTION_ID = "BFaT_fALIAMCKug="  # shaped like a real one: '=' gets percent-encoded


@pytest.fixture
def client(moto_env: dict[str, str], ws_management: WsManagementFake) -> Any:
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=os.environ[Env.WEBSOCKET_CALLBACK_URL]
    )


def _post(client: Any, payload: dict[str, Any], connection_id: str = CONNECTION_ID) -> None:
    client.post_to_connection(ConnectionId=connection_id, Data=json.dumps(payload).encode())


def test_posted_frames_are_recorded_per_connection(
    client: Any, ws_management: WsManagementFake
) -> None:
    _post(client, {"type": "chunk", "text": "Hel"})
    _post(client, {"type": "chunk", "text": "lo"})
    _post(client, {"type": "done"}, connection_id="other")

    assert ws_management.frames(CONNECTION_ID) == [
        {"type": "chunk", "text": "Hel"},
        {"type": "chunk", "text": "lo"},
    ]
    assert ws_management.frames("other") == [{"type": "done"}]
    assert ws_management.requests[0] == WsRequest("POST", "v1", CONNECTION_ID, 200)


def test_gone_after_n_frames_raises_gone_exception(
    client: Any, ws_management: WsManagementFake
) -> None:
    ws_management.gone(CONNECTION_ID, after=2)
    _post(client, {"n": 1})
    _post(client, {"n": 2})

    with pytest.raises(client.exceptions.GoneException) as error:
        _post(client, {"n": 3})

    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    assert ws_management.frames(CONNECTION_ID) == [{"n": 1}, {"n": 2}]


def test_delete_closes_the_connection(client: Any, ws_management: WsManagementFake) -> None:
    client.delete_connection(ConnectionId=CONNECTION_ID)

    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=CONNECTION_ID)
    with pytest.raises(client.exceptions.GoneException):
        _post(client, {"late": True})
    assert ws_management.deleted == [CONNECTION_ID]


def test_get_connection_answers_in_the_wire_format(client: Any) -> None:
    connection = client.get_connection(ConnectionId=CONNECTION_ID)

    assert connection["ConnectedAt"] <= connection["LastActiveAt"]
    assert connection["Identity"]["SourceIp"] == "127.0.0.1"


def test_oversized_frame_is_refused(client: Any, ws_management: WsManagementFake) -> None:
    with pytest.raises(client.exceptions.PayloadTooLargeException):
        client.post_to_connection(ConnectionId=CONNECTION_ID, Data=b"x" * (MAX_PAYLOAD_BYTES + 1))

    assert ws_management.raw_frames(CONNECTION_ID) == []


def test_another_stage_is_not_found(
    moto_env: dict[str, str], ws_management: WsManagementFake
) -> None:
    client = boto3.client("apigatewaymanagementapi", endpoint_url=f"{ws_management.url}/prod")

    with pytest.raises(client.exceptions.ClientError) as error:
        _post(client, {"n": 1})

    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert ws_management.requests == []


class _Sockets:
    """Clients as the dev server's gateway holds them: only ``open`` is connected."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.open = {CONNECTION_ID}

    def post(self, connection_id: str, data: bytes) -> bool:
        self.sent.append((connection_id, data))
        return connection_id in self.open

    def close(self, connection_id: str) -> bool:
        if connection_id not in self.open:
            return False
        self.open.remove(connection_id)
        return True

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        if connection_id not in self.open:
            return None
        identity = {"sourceIp": "192.0.2.1", "userAgent": "cli"}
        return {"connectedAt": "2026-01-01T00:00:00+00:00", "identity": identity}


def test_connections_receive_the_frames_and_decide_what_is_gone(moto_env: dict[str, str]) -> None:
    sockets = _Sockets()
    with WsManagementFake(connections=sockets, record=False) as fake:
        client = boto3.client("apigatewaymanagementapi", endpoint_url=fake.callback_url)
        _post(client, {"n": 1})
        assert client.get_connection(ConnectionId=CONNECTION_ID)["Identity"]["SourceIp"] == (
            "192.0.2.1"
        )
        client.delete_connection(ConnectionId=CONNECTION_ID)
        with pytest.raises(client.exceptions.GoneException):
            _post(client, {"n": 2}, connection_id="never-connected")

    assert sockets.sent == [(CONNECTION_ID, b'{"n": 1}'), ("never-connected", b'{"n": 2}')]
    assert sockets.open == set()
    assert fake.requests == [] and fake.raw_frames(CONNECTION_ID) == []
