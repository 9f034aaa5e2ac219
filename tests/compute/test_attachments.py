"""The attachments bucket as synthesized: private, encrypted with the stack's key, TLS only,
expiring its objects with the sessions, and named in the outputs."""

from __future__ import annotations

from compute.config import ComputeConfig
from functions.contract import (
    ATTACHMENTS_BUCKET_SUFFIX,
    FUNCTIONS,
    MAIN,
    OPENAI_API,
    WEBSOCKET,
    Env,
)
from tests.compute.synth import STACKS, Synth, only, policy_document, ref, synth_stack
from tests.compute.test_stack import PREFIX, function, statements_of_role

pytestmark = STACKS

BUCKET = f"{PREFIX}-{ATTACHMENTS_BUCKET_SUFFIX}"


def bucket_ref(synth: Synth, attribute: str) -> str:
    return ref(synth, "aws_s3_bucket", attribute, bucket=BUCKET)


def test_the_bucket_is_named_from_the_prefix_and_destroyable_in_dev_only(
    dev: Synth, prod: Synth
) -> None:
    assert only(dev, "aws_s3_bucket")["bucket"] == BUCKET
    assert only(dev, "aws_s3_bucket")["force_destroy"] is True
    assert only(prod, "aws_s3_bucket")["force_destroy"] is False


def test_objects_are_encrypted_with_the_stack_key_and_a_bucket_key(dev: Synth) -> None:
    encryption = only(dev, "aws_s3_bucket_server_side_encryption_configuration")
    assert encryption["bucket"] == bucket_ref(dev, "id")
    assert encryption["rule"] == [
        {
            "apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms",
                "kms_master_key_id": ref(dev, "aws_kms_key", "arn", enable_key_rotation=True),
            },
            "bucket_key_enabled": True,
        }
    ]


def test_all_public_access_is_blocked_and_acls_are_off(dev: Synth) -> None:
    block = only(dev, "aws_s3_bucket_public_access_block")
    assert block["bucket"] == bucket_ref(dev, "id")
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[setting] is True, setting
    ownership = only(dev, "aws_s3_bucket_ownership_controls")
    assert ownership["rule"] == {"object_ownership": "BucketOwnerEnforced"}


def test_the_bucket_policy_denies_every_request_without_tls(dev: Synth) -> None:
    policy = only(dev, "aws_s3_bucket_policy")
    assert policy["bucket"] == bucket_ref(dev, "id")
    [statement] = policy_document(dev, policy["policy"])["statement"]
    assert statement["effect"] == "Deny"
    assert statement["principals"] == [{"type": "*", "identifiers": ["*"]}]
    assert statement["actions"] == ["s3:*"]
    arn = bucket_ref(dev, "arn")
    assert statement["resources"] == [arn, f"{arn}/*"]
    assert statement["condition"] == [
        {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
    ]


def test_objects_expire_with_the_sessions_and_unfinished_uploads_after_a_day(
    dev: Synth,
) -> None:
    lifecycle = only(dev, "aws_s3_bucket_lifecycle_configuration")
    assert lifecycle["bucket"] == bucket_ref(dev, "id")
    [rule] = lifecycle["rule"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == [{}]  # the whole bucket
    assert rule["expiration"] == [{"days": 30}]
    assert rule["abort_incomplete_multipart_upload"] == [{"days_after_initiation": 1}]
    longer = synth_stack(ComputeConfig(session_ttl_days=90))
    assert only(longer, "aws_s3_bucket_lifecycle_configuration")["rule"][0]["expiration"] == [
        {"days": 90}
    ]


def test_the_outputs_name_the_bucket(dev: Synth) -> None:
    outputs = dev["output"]
    assert outputs["s3_attachments_bucket_name"]["value"] == bucket_ref(dev, "bucket")
    assert outputs["s3_attachments_bucket_arn"]["value"] == bucket_ref(dev, "arn")
    assert all(outputs[name]["description"] for name in outputs)
    config = outputs["compute_config"]["value"]
    assert config["s3_attachments_bucket_name"] == bucket_ref(dev, "bucket")


def test_the_longest_allowed_prefix_names_a_valid_bucket() -> None:
    """S3 allows 63 characters; the function-name bound keeps the prefix within 48."""
    longest = synth_stack(ComputeConfig(project_name="p" * 40, environment="e" * 7))
    assert len(only(longest, "aws_s3_bucket")["bucket"]) <= 63


def test_only_main_may_upload_and_only_under_the_sessions_prefix(dev: Synth) -> None:
    """The presigned POST is authorized as PutObject with main's role. Mutations caught: the
    whole bucket granted, another function granted uploads, s3:* instead of PutObject."""
    main = {s["sid"]: s for s in statements_of_role(dev, f"{PREFIX}-{MAIN.suffix}")}
    assert main["AttachmentUploads"] == {
        "sid": "AttachmentUploads",
        "actions": ["s3:PutObject"],
        "resources": [f"{bucket_ref(dev, 'arn')}/sessions/*"],
    }
    assert "kms:GenerateDataKey" in main["StackKey"]["actions"]  # SSE-KMS on upload
    for spec in FUNCTIONS:
        if spec is MAIN:
            continue
        actions = {
            action
            for statement in statements_of_role(dev, f"{PREFIX}-{spec.suffix}")
            for action in statement["actions"]
        }
        assert "s3:PutObject" not in actions, spec.key


def test_main_reads_the_bucket_name_from_the_stack(dev: Synth) -> None:
    variables = function(dev, MAIN.suffix)["environment"]["variables"]
    assert variables[Env.ATTACHMENTS_BUCKET] == bucket_ref(dev, "bucket")


def test_main_and_websocket_may_read_attachments_under_the_sessions_prefix_only(
    dev: Synth,
) -> None:
    """A question's attachments are read before its model call. Mutations caught: the whole
    bucket granted, a function that takes no attachments granted the read."""
    readers = {MAIN, WEBSOCKET, OPENAI_API}
    for spec in FUNCTIONS:
        statements = {s["sid"]: s for s in statements_of_role(dev, f"{PREFIX}-{spec.suffix}")}
        if spec in readers:
            assert statements["AttachmentReads"] == {
                "sid": "AttachmentReads",
                "actions": ["s3:GetObject"],
                "resources": [f"{bucket_ref(dev, 'arn')}/sessions/*"],
            }
            assert "kms:Decrypt" in statements["StackKey"]["actions"]  # SSE-KMS on read
            variables = function(dev, spec.suffix)["environment"]["variables"]
            assert variables[Env.ATTACHMENTS_BUCKET] == bucket_ref(dev, "bucket")
        else:
            actions = {a for statement in statements.values() for a in statement["actions"]}
            assert "s3:GetObject" not in actions, spec.key
