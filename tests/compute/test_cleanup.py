"""The session cleanup path as synthesized: the sessions table's stream, the event source
mapping to the cleanup function, its failure queue, its role, alarms and outputs."""

from __future__ import annotations

import json
import zipfile

import pytest

from compute.config import ComputeConfig
from compute.packaging import Target, build_function
from functions.contract import CLEANUP, FUNCTION_ENV, Env
from tests.compute.synth import STACKS, Synth, by, only, ref, resources, synth_stack
from tests.compute.test_stack import PREFIX, function, function_ref, statements_of_role
from tests.compute.test_variants import PROD

pytestmark = STACKS

QUEUE = f"{PREFIX}-cleanup-failures"


def key_arn(synth: Synth) -> str:
    return ref(synth, "aws_kms_key", "arn", enable_key_rotation=True)


def test_only_the_sessions_table_streams_and_only_its_keys(dev: Synth) -> None:
    """KEYS_ONLY: the function needs the session id, nothing of the session's content."""
    streams = {
        table["name"]: (table.get("stream_enabled"), table.get("stream_view_type"))
        for table in resources(dev, "aws_dynamodb_table").values()
    }
    assert streams == {
        f"{PREFIX}-sessions": (True, "KEYS_ONLY"),
        f"{PREFIX}-messages": (None, None),
        f"{PREFIX}-connections": (None, None),
        f"{PREFIX}-idempotency": (None, None),
        f"{PREFIX}-usage": (None, None),
    }


def test_the_mapping_feeds_only_removals_with_bounded_retries_and_a_failure_queue(
    dev: Synth,
) -> None:
    mapping = only(dev, "aws_lambda_event_source_mapping")
    assert mapping["event_source_arn"] == ref(
        dev, "aws_dynamodb_table", "stream_arn", name=f"{PREFIX}-sessions"
    )
    assert mapping["function_name"] == function_ref(dev, CLEANUP.suffix, "arn")
    [criteria] = mapping["filter_criteria"]["filter"]
    assert json.loads(criteria["pattern"]) == {"eventName": ["REMOVE"]}
    assert mapping["starting_position"] == "TRIM_HORIZON"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    assert mapping["maximum_retry_attempts"] == 5
    # Within the stream's 24-hour retention, so a failed batch can still be replayed.
    assert 60 <= mapping["maximum_record_age_in_seconds"] == 6 * 3600 < 24 * 3600
    assert mapping["batch_size"] == 10
    assert mapping["destination_config"] == {
        "on_failure": {"destination_arn": ref(dev, "aws_sqs_queue", "arn", name=QUEUE)}
    }
    assert "enabled" not in mapping or mapping["enabled"] is True


def test_the_failure_queue_is_encrypted_with_the_stack_key_and_keeps_messages_14_days(
    dev: Synth,
) -> None:
    queue = only(dev, "aws_sqs_queue")
    assert queue["name"] == QUEUE
    assert queue["kms_master_key_id"] == key_arn(dev)
    assert queue["message_retention_seconds"] == 14 * 24 * 3600
    assert "sqs_managed_sse_enabled" not in queue


def test_the_function_reads_only_the_messages_table_and_the_bucket_names(dev: Synth) -> None:
    variables = function(dev, CLEANUP.suffix)["environment"]["variables"]
    assert set(variables) == set(FUNCTION_ENV[CLEANUP.key])
    assert variables[Env.MESSAGES_TABLE] == ref(
        dev, "aws_dynamodb_table", "name", name=f"{PREFIX}-messages"
    )
    assert variables[Env.ATTACHMENTS_BUCKET] == ref(
        dev, "aws_s3_bucket", "bucket", bucket=f"{PREFIX}-attachments"
    )
    assert Env.SESSIONS_TABLE not in variables


def test_the_cleanup_role_is_exactly_its_statements(dev: Synth) -> None:
    """Mutations caught: any sessions table item action, Scan, the stream of another table,
    sqs:* or another queue, Bedrock, the connections table."""
    statements = {s["sid"]: s for s in statements_of_role(dev, f"{PREFIX}-{CLEANUP.suffix}")}
    sessions = ref(dev, "aws_dynamodb_table", "arn", name=f"{PREFIX}-sessions")
    logs = ref(dev, "aws_cloudwatch_log_group", "arn", name=f"/aws/lambda/{PREFIX}-session-cleanup")
    bucket = ref(dev, "aws_s3_bucket", "arn", bucket=f"{PREFIX}-attachments")
    assert statements == {
        "Logs": {
            "sid": "Logs",
            "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "resources": [f"{logs}:*"],
        },
        "StackKey": {
            "sid": "StackKey",
            "actions": ["kms:Decrypt", "kms:GenerateDataKey"],
            "resources": [key_arn(dev)],
        },
        "TableMessages": {
            "sid": "TableMessages",
            "actions": ["dynamodb:BatchWriteItem", "dynamodb:Query"],
            "resources": [ref(dev, "aws_dynamodb_table", "arn", name=f"{PREFIX}-messages")],
        },
        "SessionsStream": {
            "sid": "SessionsStream",
            "actions": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
            ],
            "resources": [ref(dev, "aws_dynamodb_table", "stream_arn", name=f"{PREFIX}-sessions")],
        },
        "SessionsStreams": {
            "sid": "SessionsStreams",
            "actions": ["dynamodb:ListStreams"],
            "resources": [f"{sessions}/stream/*"],
        },
        "CleanupFailures": {
            "sid": "CleanupFailures",
            "actions": ["sqs:SendMessage"],
            "resources": [ref(dev, "aws_sqs_queue", "arn", name=QUEUE)],
        },
        # A removed session's attachments: list its prefix only, delete under sessions/ only.
        "AttachmentListing": {
            "sid": "AttachmentListing",
            "actions": ["s3:ListBucket"],
            "resources": [bucket],
            "condition": [
                {"test": "StringLike", "variable": "s3:prefix", "values": ["sessions/*"]}
            ],
        },
        "AttachmentDeletes": {
            "sid": "AttachmentDeletes",
            "actions": ["s3:DeleteObject"],
            "resources": [f"{bucket}/sessions/*"],
        },
        "Tracing": {
            "sid": "Tracing",
            "actions": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            "resources": ["*"],
        },
    }


@pytest.mark.parametrize("variant", ["main", "websocket", "jwt-authorizer"])
def test_no_other_function_reads_the_stream_or_writes_the_queue(dev: Synth, variant: str) -> None:
    sids = {s["sid"] for s in statements_of_role(dev, f"{PREFIX}-{variant}")}
    assert not sids & {"SessionsStream", "SessionsStreams", "CleanupFailures"}


def test_alarms_on_iterator_age_and_the_failure_queue(dev: Synth) -> None:
    alarms = {a["alarm_name"]: a for a in resources(dev, "aws_cloudwatch_metric_alarm").values()}
    topic = ref(dev, "aws_sns_topic", "arn", name=f"{PREFIX}-alarms")
    age = alarms[f"{PREFIX}-cleanup-iterator-age"]
    assert (age["namespace"], age["metric_name"], age["statistic"]) == (
        "AWS/Lambda",
        "IteratorAge",
        "Maximum",
    )
    assert age["dimensions"] == {"FunctionName": function_ref(dev, CLEANUP.suffix, "function_name")}
    assert (age["comparison_operator"], age["threshold"]) == ("GreaterThanThreshold", 300_000)
    failures = alarms[f"{PREFIX}-cleanup-failures"]
    assert (failures["namespace"], failures["metric_name"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert failures["dimensions"] == {"QueueName": ref(dev, "aws_sqs_queue", "name", name=QUEUE)}
    assert (failures["comparison_operator"], failures["threshold"]) == ("GreaterThanThreshold", 0)
    errors = alarms[f"{PREFIX}-cleanup-errors"]
    assert errors["dimensions"] == age["dimensions"]
    for alarm in (age, failures, errors):
        assert alarm["treat_missing_data"] == "notBreaching"
        assert alarm["alarm_actions"] == alarm["ok_actions"] == [topic]


def test_outputs_name_the_function_and_the_queue(dev: Synth) -> None:
    outputs = dev["output"]
    name = function_ref(dev, CLEANUP.suffix, "function_name")
    assert outputs["lambda_session_cleanup_function_name"]["value"] == name
    config = outputs["compute_config"]["value"]
    assert config["lambda_session_cleanup_function_name"] == name
    assert config["lambda_functions"]["cleanup"]["name"] == name
    assert config["session_cleanup_failures_queue_url"] == ref(
        dev, "aws_sqs_queue", "url", name=QUEUE
    )


def test_prod_cleanup_is_hardened_like_the_others(prod: Synth) -> None:
    """VPC, arm64, code signing, encrypted environment, reserved concurrency, 365-day logs."""
    fn = function(prod, CLEANUP.suffix, PROD)
    assert fn["vpc_config"]["security_group_ids"] == ["sg-0a1b2c3d4e5f60718"]
    assert fn["architectures"] == ["arm64"]
    assert fn["code_signing_config_arn"] == ref(prod, "aws_lambda_code_signing_config", "arn")
    assert fn["kms_key_arn"] == key_arn(prod)
    assert fn["reserved_concurrent_executions"] == 10
    assert fn["tracing_config"] == {"mode": "Active"}
    group = by(prod, "aws_cloudwatch_log_group", name=f"/aws/lambda/{PROD}-session-cleanup")
    assert (group["retention_in_days"], group["kms_key_id"]) == (365, key_arn(prod))
    queue = only(prod, "aws_sqs_queue")
    assert queue["kms_master_key_id"] == key_arn(prod)


def test_the_cleanup_package_is_small_and_carries_no_other_function() -> None:
    """Its dependency closure is Powertools and the X-Ray SDK, like the websocket function's
    (bench/run.py reports the size against the same 8 MB target)."""
    package = build_function(CLEANUP, Target("python3.11", "x86_64"))
    assert package.size <= 8_000_000
    with zipfile.ZipFile(package.path) as archive:
        names = archive.namelist()
    assert "functions/cleanup/handler.py" in names
    assert "functions/data/messages.py" in names
    assert not [n for n in names if n.startswith(("functions/main/", "functions/websocket/"))]
    assert not [n for n in names if n.startswith(("fastapi/", "pydantic/", "jwt/", "boto3/"))]


def test_the_longest_allowed_prefix_still_names_everything_within_aws_limits() -> None:
    """``session-cleanup`` is the longest function suffix, so config validation bounds the
    prefix by it: at 64 characters of function (and role) name, the failure queue's name is
    within SQS's 80, and one character more is rejected."""
    longest = ComputeConfig(project_name="p" * 40, environment="e" * 7)
    synth = synth_stack(longest)
    [fn] = [
        f
        for f in resources(synth, "aws_lambda_function").values()
        if f["function_name"].endswith(CLEANUP.suffix)
    ]
    assert len(fn["function_name"]) == 64
    assert len(only(synth, "aws_sqs_queue")["name"]) <= 80
    with pytest.raises(ValueError, match="Lambda allows 64"):
        ComputeConfig(project_name="p" * 40, environment="e" * 8)
