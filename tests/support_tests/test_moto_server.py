import json
import socket
from typing import Any
from urllib.parse import urlsplit

import boto3
import cheroot.makefile
import pytest
import urllib3.util.connection

import fakes.moto
from fakes.moto import MotoServer
from functions.contract import TABLES, Key, TableSchema
from tests.support.fixtures import TABLE_PREFIX


def _key_schema(hash_key: Key, range_key: Key | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key.name, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return schema


def _describe(name: str) -> dict[str, Any]:
    return boto3.client("dynamodb").describe_table(TableName=name)["Table"]


def test_moto_env_points_boto3_at_moto_with_the_contract_table_names(
    moto_env: dict[str, str], moto_server: MotoServer
) -> None:
    assert moto_env["AWS_ENDPOINT_URL"] == moto_server.url
    assert moto_env["AWS_DEFAULT_REGION"] == "us-east-1"
    for schema in TABLES:
        assert moto_env[schema.env] == f"{TABLE_PREFIX}-{schema.suffix}"
    assert sorted(boto3.client("dynamodb").list_tables()["TableNames"]) == sorted(
        f"{TABLE_PREFIX}-{schema.suffix}" for schema in TABLES
    )


@pytest.mark.parametrize("schema", TABLES, ids=lambda schema: schema.suffix)
def test_tables_have_exactly_the_contract_key_schema(
    moto_env: dict[str, str], schema: TableSchema
) -> None:
    table = _describe(moto_env[schema.env])

    assert table["KeySchema"] == _key_schema(schema.hash_key, schema.range_key)
    assert sorted(
        (d["AttributeName"], d["AttributeType"]) for d in table["AttributeDefinitions"]
    ) == sorted((key.name, key.type) for key in schema.attributes)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {
        index["IndexName"]: (index["KeySchema"], index["Projection"])
        for index in table.get("GlobalSecondaryIndexes", [])
    }
    assert indexes == {
        index.name: (_key_schema(index.hash_key, index.range_key), {"ProjectionType": "ALL"})
        for index in schema.indexes
    }
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=table["TableName"])
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": schema.ttl_attribute,
    }


def test_reset_forgets_everything(moto_env: dict[str, str], moto_server: MotoServer) -> None:
    dynamodb = boto3.client("dynamodb")
    assert dynamodb.list_tables()["TableNames"]

    moto_server.reset()

    assert dynamodb.list_tables()["TableNames"] == []


def test_a_client_keeps_one_connection_for_its_calls(
    moto_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on AWS, a client's calls share a kept-alive connection. moto's own werkzeug server
    closed it after every answer, so each call opened a new one. Counted where urllib3 opens
    its sockets rather than from its log, which another test's logging set-up can silence."""
    opened: list[tuple[str, int]] = []
    create = urllib3.util.connection.create_connection

    def counting(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return create(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    dynamodb = boto3.client("dynamodb")
    for _ in range(5):
        dynamodb.list_tables()
    assert len(opened) == 1, opened


def test_an_answer_leaves_in_one_write(
    moto_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its headers and body together, as a small answer from AWS arrives. Sent in two writes
    (cheroot's own way), the Terraform provider's Go client sometimes closed the connection
    after the headers and retried the call, which failed a create (fakes/moto.py,
    ``_OneWriteRequest``). Counted where cheroot writes to a socket of this test's server:
    another server of the process (a dev server's stream poller) may answer meanwhile."""
    writes: list[bytes] = []
    write = cheroot.makefile.StreamWriter.write
    port = urlsplit(moto_env["AWS_ENDPOINT_URL"]).port

    def recording(self: cheroot.makefile.StreamWriter, data: bytes) -> int:
        if self.raw._sock.getsockname()[1] == port:
            writes.append(bytes(data))
        return write(self, data)

    monkeypatch.setattr(cheroot.makefile.StreamWriter, "write", recording)
    tables = boto3.client("dynamodb").list_tables()["TableNames"]
    assert len(writes) == 1, [chunk[:40] for chunk in writes]
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: " in head
    assert json.loads(body)["TableNames"] == tables != []


def test_moto_pages_bedrock_agent_knowledge_bases(moto_env: dict[str, str]) -> None:
    """moto implements list_knowledge_bases with nextToken, so the fakes need not."""
    agent = boto3.client("bedrock-agent")
    for name in ("kb-a", "kb-b", "kb-c"):
        agent.create_knowledge_base(
            name=name,
            roleArn="arn:aws:iam::123456789012:role/kb",
            knowledgeBaseConfiguration={"type": "VECTOR"},
            storageConfiguration={"type": "OPENSEARCH_SERVERLESS"},
        )

    first = agent.list_knowledge_bases(maxResults=2)
    second = agent.list_knowledge_bases(maxResults=2, nextToken=first["nextToken"])

    assert [kb["name"] for kb in first["knowledgeBaseSummaries"]] == ["kb-a", "kb-b"]
    assert [kb["name"] for kb in second["knowledgeBaseSummaries"]] == ["kb-c"]
    assert "nextToken" not in second


def test_a_kms_key_makes_its_key_pair_only_when_it_needs_one(
    moto_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto generates an RSA pair for every KMS key; the fake defers it to the first use, so
    a symmetric or HMAC key costs none and an asymmetric one still signs and verifies."""
    made: list[str] = []
    generate = fakes.moto._generate_private_key
    monkeypatch.setattr(
        fakes.moto, "_generate_private_key", lambda spec: made.append(spec) or generate(spec)
    )
    kms = boto3.client("kms")
    hmac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    mac = kms.generate_mac(KeyId=hmac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    assert kms.verify_mac(
        KeyId=hmac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256", Mac=mac["Mac"]
    )["MacValid"]
    kms.encrypt(KeyId=kms.create_key()["KeyMetadata"]["KeyId"], Plaintext=b"secret")
    assert made == []

    rsa_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signed = kms.sign(KeyId=rsa_key, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert kms.verify(
        KeyId=rsa_key,
        Message=b"m",
        Signature=signed["Signature"],
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    )["SignatureValid"]
    assert kms.get_public_key(KeyId=rsa_key)["PublicKey"]
    assert made == ["RSA_2048"]
