"""The harness itself: it finds its tools or says exactly what is missing, rewrites only the
pin, the backend and the provider block, and fails by name on what it must not paper over
(an unmirrored provider, an attribute the mirrored provider does not know)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.terraform import harness
from tests.terraform.conftest import STACKS_SELECTED
from tests.terraform.harness import HarnessError, Tools

pytestmark = pytest.mark.xdist_group("terraform")


def test_a_missing_terraform_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(harness.TERRAFORM_ENV, str(tmp_path / "nowhere" / "terraform"))
    found = harness.find_tools()
    assert isinstance(found, str)
    assert "terraform not found" in found and "nowhere" in found


def test_a_missing_mirror_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "terraform"
    fake.write_text("")
    monkeypatch.setenv(harness.TERRAFORM_ENV, str(fake))
    monkeypatch.setenv(harness.MIRROR_ENV, str(tmp_path / "empty"))
    found = harness.find_tools()
    assert isinstance(found, str)
    assert "no hashicorp/aws provider in the mirror" in found and "empty" in found


def test_missing_tools_skip_or_fail_when_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(harness.TERRAFORM_ENV, str(tmp_path / "terraform"))
    monkeypatch.delenv(harness.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="terraform not found"):
        harness.require_tools()
    monkeypatch.setenv(harness.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="COMPUTE_REQUIRE_TERRAFORM=1 but terraform"):
        harness.require_tools()


def test_the_mirror_version_is_read_from_its_folders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "terraform"
    fake.write_text("")
    binary = tmp_path / "mirror" / harness.AWS_SOURCE / "9.8.7" / "linux_amd64"
    binary.mkdir(parents=True)
    (binary / "terraform-provider-aws_v9.8.7_x5").write_text("")
    monkeypatch.setenv(harness.TERRAFORM_ENV, str(fake))
    monkeypatch.setenv(harness.MIRROR_ENV, str(tmp_path / "mirror"))
    found = harness.find_tools()
    assert isinstance(found, Tools) and found.aws_version == "9.8.7"


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "modules" / "inner").mkdir(parents=True)
    (root / "main.tf.json").write_text(
        json.dumps(
            {
                "terraform": {
                    "backend": {"s3": {"bucket": "b", "key": "k", "region": "us-east-1"}},
                    "required_providers": {"aws": {"source": "aws", "version": "6.25.0"}},
                },
                "provider": {"aws": [{"region": "eu-west-1"}]},
                "resource": {"aws_sqs_queue": {"q": {"name": "q"}}},
                "module": {"inner": {"source": "./modules/inner"}},
            }
        )
    )
    (root / "modules" / "inner" / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", '
        'version = ">= 6.0" }\n  }\n}\nresource "aws_dynamodb_table" "t" {\n}\n'
    )
    return root


def test_prepare_rewrites_the_pins_backend_and_provider_only(tmp_path: Path) -> None:
    root = _root(tmp_path)
    tools = Tools(terraform=Path("terraform"), mirror=tmp_path, aws_version="5.100.0")
    prepared = harness.prepare(root, tmp_path / "work", tools, "http://127.0.0.1:1")
    work = prepared.root
    assert (work / "main.tf.json").read_text() == json.dumps(
        json.loads((root / "main.tf.json").read_text()), indent=2
    )
    assert (work / "modules/inner/main.tf").read_text() == (
        root / "modules/inner/main.tf"
    ).read_text()
    override = json.loads((work / harness.OVERRIDE).read_text())
    pin = {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}}
    assert override["terraform"] == {
        "required_providers": pin,
        "backend": {"local": {"path": str(work / "terraform.tfstate")}},
    }
    aws = override["provider"]["aws"]
    assert "region" not in aws  # the root's own stays
    assert aws["skip_requesting_account_id"] is False
    (endpoints,) = aws["endpoints"]
    assert set(endpoints) == {"sqs", "dynamodb", "sts", "iam", "ec2"}
    assert set(endpoints.values()) == {"http://127.0.0.1:1"}
    inner = json.loads((work / "modules/inner" / harness.OVERRIDE).read_text())
    assert inner == {"terraform": {"required_providers": pin}}


def test_a_type_with_no_known_endpoint_is_named(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('resource "aws_glacier_vault" "v" {\n}\n')
    tools = Tools(terraform=Path("terraform"), mirror=tmp_path, aws_version="5.100.0")
    with pytest.raises(HarnessError, match="aws_glacier_vault: no emulator endpoint"):
        harness.prepare(root, tmp_path / "work", tools, "http://127.0.0.1:1")


Workspace = AbstractContextManager[tuple[harness.Terraform, harness.Emulator, harness.Prepared]]


@pytest.fixture
def workspace_for(
    terraform_tools: Tools, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[dict[str, Any]], Workspace]:
    """A prepared work folder and an emulator for a one-file root. When the session also runs
    the stacks, their runs start first: these tests then overlap the minutes-long cycles
    instead of delaying them (this file is collected before test_stacks.py)."""
    if request.config.stash.get(STACKS_SELECTED, False):
        request.getfixturevalue("terraform_runs")

    def open_(document: dict[str, Any]) -> Workspace:
        root = tmp_path / "root"
        root.mkdir()
        (root / "main.tf.json").write_text(json.dumps(document))
        return harness.workspace(root, tmp_path / "w" / "work", terraform_tools)

    return open_


def test_an_unmirrored_provider_fails_init_by_name(
    workspace_for: Callable[[dict[str, Any]], Workspace],
) -> None:
    document = {
        "terraform": {"required_providers": {"random": {"source": "hashicorp/random"}}},
        "resource": {"random_id": {"r": {"byte_length": 4}}},
    }
    with workspace_for(document) as (tf, _, _), pytest.raises(HarnessError) as failed:
        harness.init(tf)
    assert "registry.terraform.io/hashicorp/random" in str(failed.value)


def test_an_attribute_the_mirrored_provider_lacks_fails_validate_by_name(
    workspace_for: Callable[[dict[str, Any]], Workspace],
) -> None:
    document = {
        "provider": {"aws": [{"region": "us-east-1"}]},
        "resource": {"aws_sqs_queue": {"q": {"name": "q", "only_in_some_future": True}}},
    }
    with workspace_for(document) as (tf, _, _):
        harness.init(tf)
        with pytest.raises(HarnessError) as failed:
            harness.validate(tf)
    message = str(failed.value)
    # In JSON, Terraform says "Extraneous JSON object property" (in HCL "Unsupported argument").
    assert "only_in_some_future" in message and "aws_sqs_queue.q" in message


def test_a_second_plan_with_changes_names_resource_and_attribute(
    workspace_for: Callable[[dict[str, Any]], Workspace],
) -> None:
    """What a perpetual diff looks like to the tests: here a drift made by hand after apply
    (a log group's retention changed behind Terraform's back), which the second plan must
    report with its address, attribute, and both values."""
    document = {
        "provider": {"aws": [{"region": "us-east-1"}]},
        "resource": {
            "aws_cloudwatch_log_group": {"g": {"name": "drifting", "retention_in_days": 7}}
        },
    }
    with workspace_for(document) as (tf, emulator, _):
        harness.init(tf)
        tf("apply", "-auto-approve", "-input=false", "-no-color")
        _, unchanged = harness.plan(tf)
        assert unchanged == []
        emulator.client("logs").put_retention_policy(logGroupName="drifting", retentionInDays=14)
        run, changes = harness.plan(tf)
    assert run.code == 2
    assert changes == ["aws_cloudwatch_log_group.g update: retention_in_days: 14 -> 7"]


def test_a_failed_cycle_shows_what_the_emulator_refused_and_every_retry(tmp_path: Path) -> None:
    """The emulator's request log, as a failed apply shows it: a refused create with its
    error and its SDK invocation and attempt, every attempt of a retried invocation, and
    neither the calls that succeeded nor the not-found answers the provider's reads and
    waiters get routinely. Mutations caught: the log not written, the not-found filter
    dropped (a 404 or a 400 ResourceNotFoundException shows), retries not flagged (attempt 2
    missing), an invocation's other attempts not joined (attempt 1 missing)."""
    with harness.Emulator(log=tmp_path / "emulator.log") as emulator:
        dynamodb, s3 = emulator.client("dynamodb"), emulator.client("s3")
        table = {
            "TableName": "sessions",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }
        dynamodb.create_table(**table)
        with pytest.raises(dynamodb.exceptions.ResourceInUseException):
            dynamodb.create_table(**table)
        s3.create_bucket(Bucket="attachments")
        with pytest.raises(s3.exceptions.ClientError, match="404"):
            s3.head_object(Bucket="attachments", Key="missing")
        with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):  # a 400
            dynamodb.describe_table(TableName="missing")
        # What an SDK sends when it retries one call: the same invocation, a later attempt.
        for attempt in (1, 2):
            headers = {
                "amz-sdk-invocation-id": "retried-1",
                "amz-sdk-request": f"attempt={attempt}; max=25",
            }
            httpx.get(f"{emulator.url}/moto-api/data.json", headers=headers).raise_for_status()
        lines = harness.refused_requests(emulator.request_log)

    [refused, first, retry] = lines
    assert "dynamodb POST / (DynamoDB_20120810.CreateTable) -> 400" in refused
    assert "ResourceInUseException" in refused
    assert "attempt=1; max=" in refused
    assert "GET /moto-api/data.json -> 200" in first
    assert "attempt=1; max=25 of invocation retried-1" in first
    assert "attempt=2; max=25 of invocation retried-1" in retry
    assert "refused (not-found answers aside) or saw retried:\n" in harness.refused_section(lines)
