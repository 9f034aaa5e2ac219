"""The emulator (``python -m fakes.emulator``) that test_lambda_signing.py and
test_public_layers.py drive with boto3: one process for both modules, which share an
``xdist_group`` so one worker runs them (a module-scoped fixture had started one per module
and worker, up to six processes of about 1.4 CPU-seconds each)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.client import BaseClient

from fakes.emulator import READY
from fakes.moto import REGION
from fakes.process import stop_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def emulator() -> Iterator[str]:
    """The emulator as Terraform tests run it: its own process, any free port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fakes.emulator", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith(READY), f"no ready line (exit code {process.poll()}): {line!r}"
        yield line.removeprefix(READY).strip()
    finally:
        stop_process(process, grace_seconds=20)


def client(url: str, service: str) -> BaseClient:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def lam(emulator: str) -> BaseClient:
    """Every test starts from nothing: moto's reset forgets the configs too (they live on
    its Lambda backend)."""
    httpx.post(f"{emulator}/moto-api/reset", timeout=10).raise_for_status()
    return client(emulator, "lambda")


@pytest.fixture
def role(emulator: str, lam: BaseClient) -> str:
    trust = {"Version": "2012-10-17", "Statement": []}
    iam = client(emulator, "iam")
    return iam.create_role(RoleName="signed", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
