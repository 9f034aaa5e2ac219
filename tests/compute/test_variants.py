"""The stack with inputs: the prod example (VPC, knowledge base, issuer, S3 state, arm64),
an outer AI-services role, inputs from remote state, and external code deployment."""

from __future__ import annotations

import json
import re

import pytest

from compute.config import ComputeConfig, RemoteState, RemoteStateS3
from functions.contract import AUTHORIZER, CLEANUP, FUNCTIONS, MAIN, OPENAI_API, WEBSOCKET, Env
from tests.compute.synth import (
    STACKS,
    Synth,
    by,
    data,
    only,
    policy_document,
    ref,
    resources,
    synth_stack,
)
from tests.compute.test_stack import function, statements_of_role

pytestmark = STACKS

PROD = "ai-assistant-cli-prod"


# The prod example --------------------------------------------------------------------------


def test_prod_uses_s3_state_with_native_locking(prod: Synth) -> None:
    assert prod["terraform"]["backend"] == {
        "s3": {
            "bucket": "example-terraform-state",
            "key": "ai-assistant-cli/prod/compute.tfstate",
            "region": "us-east-1",
            "encrypt": True,
            "use_lockfile": True,
        }
    }
    (aws,) = prod["provider"]["aws"]
    assert aws["default_tags"] == [
        {
            "tags": {
                "Owner": "platform",
                "CostCenter": "ai-assistant",
                "Project": "ai-assistant-cli",
                "Environment": "prod",
            }
        }
    ]


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_prod_functions_run_in_the_vpc_on_arm64(prod: Synth, spec) -> None:
    fn = function(prod, spec.suffix, PROD)
    assert fn["vpc_config"] == {
        "subnet_ids": ["subnet-0a1b2c3d4e5f60718", "subnet-1a2b3c4d5e6f70819"],
        "security_group_ids": ["sg-0a1b2c3d4e5f60718"],
    }
    assert fn["architectures"] == ["arm64"]
    assert fn["memory_size"] == 1024
    assert fn["timeout"] == {WEBSOCKET.key: 120, OPENAI_API.key: 300}.get(spec.key, 30)
    assert fn["role"] == ref(prod, "aws_iam_role", "arn", name=f"{PROD}-{spec.suffix}")
    statements = {s["sid"] for s in statements_of_role(prod, f"{PROD}-{spec.suffix}")}
    assert "VpcNetworkInterfaces" in statements


def test_the_websocket_timeout_drives_its_alarm_and_the_outputs(prod: Synth) -> None:
    alarms = {a["alarm_name"]: a for a in resources(prod, "aws_cloudwatch_metric_alarm").values()}
    assert alarms[f"{PROD}-websocket-duration-p99"]["threshold"] == 96000  # 80 % of 120 s
    assert alarms[f"{PROD}-main-duration-p99"]["threshold"] == 24000
    functions = prod["output"]["compute_config"]["value"]["lambda_functions"]
    assert {key: f["timeout"] for key, f in functions.items()} == {
        "main": 30,
        "websocket": 120,
        "authorizer": 30,
        "cleanup": 30,
        "openai_api": 300,
    }
    assert alarms[f"{PROD}-openai_api-duration-p99"]["threshold"] == 240000  # 80 % of 300 s


def test_prod_knowledge_base_issuer_and_models(prod: Synth) -> None:
    main = function(prod, MAIN.suffix, PROD)["environment"]["variables"]
    assert main[Env.KNOWLEDGE_BASE_ID] == "KB12345678"
    auth = function(prod, AUTHORIZER.suffix, PROD)["environment"]["variables"]
    tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
    assert auth[Env.JWT_ISSUER] == f"https://login.microsoftonline.com/{tenant}/v2.0"
    assert auth[Env.JWT_AUDIENCE] == "6e74172b-be56-4843-9ff4-e66a39bb12e3"
    assert json.loads(auth[Env.JWT_VALIDATION]) == {
        "provider": "entra",
        "allowed_tenant_ids": [tenant],
        "allowed_client_ids": ["2c1f5b4a-7d3e-4f6a-9b8c-0d1e2f3a4b5c"],
        "read_scopes": ["Sessions.Read"],
        "chat_scopes": ["Chat.ReadWrite"],
        "required_scopes": [],
        "require_access_token_typ": False,
    }
    statements = {s["sid"]: s for s in statements_of_role(prod, f"{PROD}-{MAIN.suffix}")}
    account = "${data.aws_caller_identity.caller.account_id}"
    partition = "${data.aws_partition.partition.partition}"
    assert statements["KnowledgeBase"]["resources"] == [
        f"arn:{partition}:bedrock:us-east-1:{account}:knowledge-base/KB12345678"
    ]
    assert statements["Models"]["resources"] == [
        f"arn:{partition}:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0",
        f"arn:{partition}:bedrock:us-east-1:{account}:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        f"arn:{partition}:bedrock:*::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    ]


def test_prod_applies_its_guardrail_and_may_apply_only_that(prod: Synth) -> None:
    account = "${data.aws_caller_identity.caller.account_id}"
    partition = "${data.aws_partition.partition.partition}"
    for spec in (MAIN, WEBSOCKET):
        variables = function(prod, spec.suffix, PROD)["environment"]["variables"]
        assert variables[Env.BEDROCK_GUARDRAIL_ID] == "a1b2c3d4e5f6"
        assert variables[Env.BEDROCK_GUARDRAIL_VERSION] == "1"
        statements = {s["sid"]: s for s in statements_of_role(prod, f"{PROD}-{spec.suffix}")}
        assert statements["Guardrail"] == {
            "sid": "Guardrail",
            "actions": ["bedrock:ApplyGuardrail"],
            "resources": [f"arn:{partition}:bedrock:us-east-1:{account}:guardrail/a1b2c3d4e5f6"],
        }
    for spec in (AUTHORIZER, CLEANUP):
        sids = {s["sid"] for s in statements_of_role(prod, f"{PROD}-{spec.suffix}")}
        assert "Guardrail" not in sids


def test_prod_protection_retention_and_notifications(prod: Synth) -> None:
    for table in resources(prod, "aws_dynamodb_table").values():
        assert table["deletion_protection_enabled"] is True
    for group in resources(prod, "aws_cloudwatch_log_group").values():
        assert group["retention_in_days"] == 365
    subscription = only(prod, "aws_sns_topic_subscription")
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "oncall@example.com")
    assert not resources(prod, "aws_api_gateway_account")  # another stack owns it
    response = by(prod, "aws_api_gateway_gateway_response", response_type="UNAUTHORIZED")
    origin = response["response_parameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
    assert origin == "'https://assistant.example.com'"


# An outer role from the AI-services layer ------------------------------------------------------


@pytest.fixture(scope="module")
def outer_role() -> Synth:
    """With a guardrail, which the outer role is to allow, as it allows the models."""
    return synth_stack(
        ComputeConfig(
            lambda_bedrock_role_arn="arn:aws:iam::123456789012:role/service/ai-services-lambda",
            bedrock_guardrail_id="a1b2c3d4e5f6",
            bedrock_guardrail_version="DRAFT",
        )
    )


def test_outer_role_is_used_and_extended_with_our_resources(outer_role: Synth) -> None:
    assert not resources(outer_role, "aws_iam_role") or all(
        role["name"].endswith("apigw-logs")
        for role in resources(outer_role, "aws_iam_role").values()
    )
    for spec in FUNCTIONS:
        fn = function(outer_role, spec.suffix)
        assert fn["role"] == "arn:aws:iam::123456789012:role/service/ai-services-lambda"
    policies = [
        p for p in resources(outer_role, "aws_iam_role_policy").values() if p["name"] != "push-logs"
    ]
    assert len(policies) == 1
    (policy,) = policies
    arn = "arn:aws:iam::123456789012:role/service/ai-services-lambda"
    assert policy["role"] == f'${{element(reverse(split("/", "{arn}")), 0)}}'
    statements = {s["sid"]: s for s in policy_document(outer_role, policy["policy"])["statement"]}
    assert set(statements) == {
        "Logs",
        "StackKey",
        "TableSessions",
        "IndexUserIndex",
        "TableMessages",
        "TableConnections",
        "IndexUserConnections",
        "TableIdempotency",
        "TableUsage",
        "WebSocketCallbacks",
        "SessionsStream",
        "SessionsStreams",
        "CleanupFailures",
        "PaginationKey",  # only this stack knows its pagination key
        # the attachments bucket: uploads (main), reads (chat functions), the cleanup's
        "AttachmentUploads",
        "AttachmentReads",
        "AttachmentListing",
        "AttachmentDeletes",
    }
    assert len(statements["Logs"]["resources"]) == len(FUNCTIONS)
    assert statements["PaginationKey"] == {
        "sid": "PaginationKey",
        "actions": ["kms:GenerateMac"],
        "resources": [ref(outer_role, "aws_kms_key", "arn", customer_master_key_spec="HMAC_256")],
    }


# Inputs from other layers' remote state -------------------------------------------------------


@pytest.fixture(scope="module")
def remote() -> Synth:
    return synth_stack(
        ComputeConfig.model_validate(
            {
                "remote_state": {
                    "networking": {"bucket": "tf-state", "key": "networking.tfstate"},
                    "ai_services": {
                        "bucket": "tf-state",
                        "key": "ai.tfstate",
                        "region": "eu-west-1",
                        "outputs": {
                            "lambda_bedrock_role_arn": "lambda_role_arn",
                            "knowledge_base_id": "kb_id",
                        },
                    },
                }
            }
        )
    )


def test_inputs_come_from_remote_state(remote: Synth) -> None:
    states = data(remote, "terraform_remote_state")
    assert {s["config"]["key"]: s["backend"] for s in states.values()} == {
        "networking.tfstate": "s3",
        "ai.tfstate": "s3",
    }
    ai = next(k for k, s in states.items() if s["config"]["key"] == "ai.tfstate")
    assert states[ai]["config"]["region"] == "eu-west-1"
    net = next(k for k in states if k != ai)
    fn = function(remote, MAIN.suffix)
    assert fn["vpc_config"] == {
        "subnet_ids": f"${{data.terraform_remote_state.{net}.outputs.private_subnet_ids}}",
        "security_group_ids": [
            f"${{data.terraform_remote_state.{net}.outputs.lambda_security_group_id}}"
        ],
    }
    assert fn["role"] == f"${{data.terraform_remote_state.{ai}.outputs.lambda_role_arn}}"
    assert fn["environment"]["variables"][Env.KNOWLEDGE_BASE_ID] == (
        f"${{data.terraform_remote_state.{ai}.outputs.kb_id}}"
    )


def test_a_mapped_networking_layer_supplies_every_input_by_its_output() -> None:
    outputs = {
        "vpc_id": "vpc",
        "private_subnet_ids": "subnets",
        "lambda_security_group_id": "lambda_sg",
    }
    synth = synth_stack(
        ComputeConfig.model_validate(
            {"remote_state": {"networking": {"bucket": "tf-state", "key": "n", "outputs": outputs}}}
        )
    )
    (net,) = data(synth, "terraform_remote_state")
    fn = function(synth, MAIN.suffix)
    assert fn["vpc_config"] == {
        "subnet_ids": f"${{data.terraform_remote_state.{net}.outputs.subnets}}",
        "security_group_ids": [f"${{data.terraform_remote_state.{net}.outputs.lambda_sg}}"],
    }
    sids = {s["sid"] for s in statements_of_role(synth, f"ai-assistant-cli-dev-{MAIN.suffix}")}
    assert "VpcNetworkInterfaces" in sids


# What validation rejects, built around it: the stack raises instead of dropping the VPC.
PARTIAL_NETWORKING = RemoteState.model_construct(
    networking=RemoteStateS3.model_construct(
        bucket="tf-state", key="n", region=None, outputs={"vpc_id": "vpc"}
    ),
    ai_services=None,
)


@pytest.mark.parametrize(
    ("update", "missing"),
    [
        (
            {"remote_state": PARTIAL_NETWORKING},
            "['private_subnet_ids', 'lambda_security_group_id']",
        ),
        (
            {"vpc_id": "vpc-0123456789abcdef0", "private_subnet_ids": ["subnet-0123456789abcdef0"]},
            "['lambda_security_group_id']",
        ),
    ],
    ids=["partial-remote-state", "literal-vpc-without-security-group"],
)
def test_the_stack_never_drops_a_vpc_silently(update: dict, missing: str) -> None:
    from compute.stack import IncompleteNetwork  # here: importing cdktf starts jsii's Node

    config = ComputeConfig().model_copy(update=update)
    assert config.uses_vpc
    with pytest.raises(IncompleteNetwork, match=rf"compute-dev: .* but {re.escape(missing)}"):
        synth_stack(config)


# External code deployment ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def external() -> Synth:
    return synth_stack(ComputeConfig(code_deployment_mode="external"))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_external_mode_keeps_pipeline_code(external: Synth, dev: Synth, spec) -> None:
    fn = function(external, spec.suffix)
    assert fn["lifecycle"] == {"ignore_changes": ["filename", "source_code_hash"]}
    assert fn["handler"] == spec.handler
    assert fn["source_code_hash"] != function(dev, spec.suffix)["source_code_hash"]
    assert "placeholder" in fn["filename"]


def test_websocket_and_main_differ_only_in_their_own_variables(dev: Synth) -> None:
    main = function(dev, MAIN.suffix)["environment"]["variables"]
    ws = function(dev, WEBSOCKET.suffix)["environment"]["variables"]
    shared = set(main) & set(ws)
    assert all(main[name] == ws[name] for name in shared)
