"""A moto server in its own process with IAM enforcement on, and the users that carry the
functions' synthesized statements.

moto reads ``INITIAL_NO_AUTH_ACTION_COUNT`` (no ``MOTO_`` prefix) when it is imported and then
answers that many requests without checking credentials; every later request must be signed
by a known access key whose policies allow the action. It is a process-wide setting, which is
why this server runs in a child process: the in-process moto server the other tests share
keeps enforcement off.

The setup spends exactly that budget: the tables (with their streams, as synthesized), the
queues, then a user, an inline policy and an access key per function. :func:`setup` counts the
requests it sent and fails if the count differs from the budget, so no call of the functions
can fall inside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient

from fakes.moto import FAKE_CREDENTIAL
from fakes.process import stop_process
from functions.contract import TABLES
from tests.security.synthesized import MacKey, Statement
from tests.support.moto_server import create_table

ROOT = Path(__file__).resolve().parents[2]
TRANSACTION_ITEM_ACTIONS = ("PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem")

# The HMAC keys are put in the KMS backend directly, under the stack's made-up ARNs (KMS
# assigns key ids, and its API cannot choose one); that spends none of the setup budget.
_SERVER = """
import json, os, sys
from moto.kms.models import kms_backends
from fakes.moto import MotoServer
for seed in json.loads(os.environ["SEEDED_MAC_KEYS"]):
    _, _, _, region, account, resource = seed["arn"].split(":", 5)
    backend = kms_backends[account][region]
    key = backend.create_key(None, seed["key_usage"], seed["key_spec"], "", None)
    del backend.keys[key.id]
    key.id, key.arn = resource.removeprefix("key/"), seed["arn"]
    backend.keys[key.id] = key
print(MotoServer().start().url, flush=True)
sys.stdin.read()  # until the parent closes stdin or goes away
os._exit(0)
"""
# create_table + update_time_to_live per table (tests.support.moto_server.create_table).
CALLS_PER_TABLE = 2
CALLS_PER_USER = 3  # create_user, put_user_policy, create_access_key
CALLS_PER_QUEUE = 1  # create_queue
CALLS_PER_BUCKET = 1  # create_bucket


@dataclass(frozen=True)
class Setup:
    """What the setup created: each user's access key, the tables' stream ARNs (table env
    var -> ARN) and the queues' URLs (name -> URL)."""

    credentials: dict[str, Credentials]
    streams: dict[str, str]
    queues: dict[str, str]


@dataclass(frozen=True)
class Credentials:
    """A moto IAM user's access key."""

    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


def setup_budget(users: int, queues: int = 0, buckets: int = 0) -> int:
    """The number of setup requests: moto answers exactly these without checking."""
    return (
        CALLS_PER_TABLE * len(TABLES)
        + CALLS_PER_QUEUE * queues
        + CALLS_PER_BUCKET * buckets
        + CALLS_PER_USER * users
    )


@contextmanager
def enforcing_moto(unauthenticated_calls: int, mac_keys: Sequence[MacKey] = ()) -> Iterator[str]:
    """Run the server, holding ``mac_keys``; yields its URL. Enforcement starts after
    ``unauthenticated_calls``."""
    env = {
        **os.environ,
        "INITIAL_NO_AUTH_ACTION_COUNT": str(unauthenticated_calls),
        "SEEDED_MAC_KEYS": json.dumps([dataclasses.asdict(key) for key in mac_keys]),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
        cwd=ROOT,  # where ``fakes`` imports from
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url, f"the moto server did not start (exit code {process.poll()})"
        yield url
    finally:
        # SIGTERM ends the server at once; the grace only bounds a hang.
        stop_process(process, grace_seconds=10)


def admin_client(service: str, url: str, region: str) -> BaseClient:
    """A client for the unauthenticated setup calls (any key works until the budget is spent)."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIAL,
        aws_secret_access_key=FAKE_CREDENTIAL,
    )


def _moto_aliases(statements: Sequence[Statement]) -> list[dict[str, Any]]:
    """moto authorizes a transaction as the API name ``dynamodb:TransactWriteItems``, which IAM
    has no action for: IAM authorizes each item under its own action. A user granted an item
    action may therefore call the API here; which item actions the code uses, and that each is
    granted, the recorded calls check (``recording.py`` records a transaction item by item)."""
    granted = {action for statement in statements for action in statement.actions}
    if granted & {f"dynamodb:{action}" for action in TRANSACTION_ITEM_ACTIONS}:
        return [{"Effect": "Allow", "Action": "dynamodb:TransactWriteItems", "Resource": "*"}]
    return []


def moto_action(action: str) -> str:
    """The action moto names when it refuses ``action`` (a transaction item's is the API's)."""
    return "dynamodb:TransactWriteItems" if action == "dynamodb:ConditionCheckItem" else action


def setup(
    url: str,
    region: str,
    table_names: Mapping[str, str],
    users: Mapping[str, Sequence[Statement]],
    *,
    stream_view_types: Mapping[str, str] | None = None,
    queues: Sequence[str] = (),
    buckets: Sequence[str] = (),
) -> Setup:
    """Create every contract table under the name the stack gives it (``table_names``: table
    env var -> name), with a stream where ``stream_view_types`` (table env var -> view type)
    has one, the ``queues``, the ``buckets``, and one user per entry of ``users`` carrying
    those statements widened to resource ``*``."""
    dynamodb = admin_client("dynamodb", url, region)
    iam = admin_client("iam", url, region)
    sqs = admin_client("sqs", url, region)
    s3 = admin_client("s3", url, region)
    sent: list[str] = []
    for client in (dynamodb, iam, sqs, s3):
        client.meta.events.register("before-send", lambda **_: sent.append("request"))
    views = stream_view_types or {}
    streams: dict[str, str] = {}
    for schema in TABLES:
        arn = create_table(dynamodb, schema, table_names[schema.env], views.get(schema.env))
        if arn:
            streams[schema.env] = arn
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in queues}
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    credentials: dict[str, Credentials] = {}
    for user, statements in users.items():
        credentials[user] = _user(iam, user, statements)
    budget = setup_budget(len(users), len(queues), len(buckets))
    assert len(sent) == budget, f"setup sent {len(sent)} requests, the budget is {budget}"
    return Setup(credentials, streams, urls)


def _user(iam: BaseClient, name: str, statements: Sequence[Statement]) -> Credentials:
    document: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [statement.widened for statement in statements] + _moto_aliases(statements),
    }
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="synthesized", PolicyDocument=json.dumps(document)
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])
