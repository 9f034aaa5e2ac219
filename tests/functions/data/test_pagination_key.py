"""The next_token signing key, derived from a KMS HMAC key with GenerateMac: the same in every
container, derived once per container and only when a listing signs or verifies a token, and
still refusing a tampered token."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.core import aws
from functions.core.settings import get_settings
from functions.data.pagination import (
    KEY_DERIVATION_MESSAGE,
    MAC_ALGORITHM,
    KmsDerivedKey,
    TokenSigner,
    derived_key,
)
from functions.domain.errors import BadRequest
from tests.functions.helpers import USER_A, Rest
from tests.support.moto_server import create_pagination_key

LAST_KEY = {"session_id": {"S": "s-1"}, "user_id": {"S": USER_A}}


def fresh_container_key(key_arn: str) -> KmsDerivedKey:
    """What a new container derives: its own client, its own cache."""
    return KmsDerivedKey(key_arn, kms=lambda: boto3.client("kms"))


def test_two_containers_derive_the_same_key_from_the_same_kms_key(
    moto_env: dict[str, str],
) -> None:
    arn = create_pagination_key(boto3.client("kms"))
    first, second = fresh_container_key(arn)(), fresh_container_key(arn)()
    assert first == second
    assert len(first) == 32  # HMAC-SHA256
    expected = boto3.client("kms").generate_mac(
        KeyId=arn, Message=KEY_DERIVATION_MESSAGE, MacAlgorithm=MAC_ALGORITHM
    )["Mac"]
    assert first == expected
    other = create_pagination_key(boto3.client("kms"))
    assert fresh_container_key(other)() != first


def test_a_token_from_one_container_verifies_in_another_and_tampering_is_refused(
    moto_env: dict[str, str],
) -> None:
    arn = create_pagination_key(boto3.client("kms"))
    token = TokenSigner(fresh_container_key(arn)).encode("sessions", USER_A, "", LAST_KEY)
    other_container = TokenSigner(fresh_container_key(arn))
    assert other_container.decode(token, "sessions", USER_A, "") == LAST_KEY
    payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    for tampered in (f"{payload}.{flipped}", f"{payload[:-1]}x.{signature}"):
        with pytest.raises(BadRequest, match="invalid"):
            other_container.decode(tampered, "sessions", USER_A, "")
    another_key = TokenSigner(fresh_container_key(create_pagination_key(boto3.client("kms"))))
    with pytest.raises(BadRequest, match="invalid"):
        another_key.decode(token, "sessions", USER_A, "")


def test_a_key_kms_refuses_to_mac_with_fails_and_is_not_cached(moto_env: dict[str, str]) -> None:
    """An encryption key is not an HMAC key: GenerateMac fails, the listing with it fails, and
    the next attempt asks KMS again rather than keeping a non-key."""
    kms = boto3.client("kms")
    arn = kms.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    key = fresh_container_key(arn)
    for _ in range(2):
        with pytest.raises(kms.exceptions.InvalidKeyUsageException):
            key()


def count_generate_mac() -> list[str]:
    """Every GenerateMac the container's KMS client sends (the client functions use)."""
    sent: list[str] = []

    def record(model: Any, **_: Any) -> None:
        if model.name == "GenerateMac":
            sent.append(model.name)

    aws.client("kms").meta.events.register("before-call.kms", record)
    return sent


def test_the_key_is_derived_once_per_container_on_the_first_token(rest: Rest) -> None:
    sent = count_generate_mac()
    assert rest.call("GET", "/health", user=None).status == 200
    rest.create_session(USER_A)
    assert rest.call("GET", "/sessions").json["next_token"] is None  # one page: no token
    assert sent == []  # neither the cold start nor an unpaged listing pays for the key
    rest.create_session(USER_A)
    rest.create_session(USER_A)
    page = rest.call("GET", "/sessions", query={"limit": "1"}).json
    assert page["next_token"] and sent == ["GenerateMac"]
    seen = [s["session_id"] for s in page["sessions"]]
    token = page["next_token"]
    while token:
        page = rest.call("GET", "/sessions", query={"limit": "1", "next_token": token}).json
        seen += [s["session_id"] for s in page["sessions"]]
        token = page["next_token"]
    assert len(set(seen)) == 3
    assert sent == ["GenerateMac"]  # kept for the container's life

    # A new container (fresh settings, clients and key) accepts the first one's tokens.
    first_page = rest.call("GET", "/sessions", query={"limit": "1"}).json
    get_settings.cache_clear()
    aws.reset_clients()
    derived_key.cache_clear()
    sent_by_new_container = count_generate_mac()
    response = rest.call(
        "GET", "/sessions", query={"limit": "1", "next_token": first_page["next_token"]}
    )
    assert response.status == 200, response.text
    assert response.json["sessions"][0]["session_id"] == seen[1]
    assert sent_by_new_container == ["GenerateMac"]
