"""The hardening, read from the synthesized JSON: one customer-managed KMS
key for tables, logs, function environments and the alarm topic, with a key policy that
lets CloudWatch Logs and CloudWatch alarms use it; request validators; the web firewall;
code signing; scoped IAM where checkov found `*` resources."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from compute.config import ComputeConfig, load_config
from functions.contract import AUTHORIZER, FUNCTIONS, MAIN, WEBSOCKET
from tests.compute.synth import (
    ROOT,
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
from tests.compute.test_config import assert_rejected
from tests.compute.test_stack import PREFIX, function, statements_of_role
from tests.compute.test_variants import PROD

pytestmark = STACKS

PARTITION = "${data.aws_partition.partition.partition}"
ACCOUNT = "${data.aws_caller_identity.caller.account_id}"
SIGNING_PROFILE = (
    "arn:aws:signer:us-east-1:123456789012:/signing-profiles/aiassistantcli/a1B2c3D4e5"
)


def key_arn(synth: Synth) -> str:
    return ref(synth, "aws_kms_key", "arn", enable_key_rotation=True)


def stack_key(synth: Synth) -> dict:
    """The stack key: the one symmetric encryption key (the other, the pagination key, is an
    HMAC key and cannot be rotated)."""
    keys = [k for k in resources(synth, "aws_kms_key").values() if k.get("key_usage") is None]
    assert len(keys) == 1, keys
    return keys[0]


def key_policy(synth: Synth) -> dict[str, dict]:
    """The key policy's statements by Sid, from the JSON document on the key itself."""
    document = json.loads(stack_key(synth)["policy"])
    assert document["Version"] == "2012-10-17"
    return {s["Sid"]: s for s in document["Statement"]}


def log_group_names(synth: Synth) -> list[str]:
    return [group["name"] for group in resources(synth, "aws_cloudwatch_log_group").values()]


# The key and its policy -------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_one_rotated_key_with_an_alias(variant: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(variant)
    key = stack_key(synth)
    assert key["enable_key_rotation"] is True
    assert key["deletion_window_in_days"] == 30
    assert not resources(synth, "aws_kms_key_policy")  # the policy is set at creation
    alias = only(synth, "aws_kms_alias")
    assert alias["name"] == f"alias/ai-assistant-cli-{variant}"
    assert alias["target_key_id"] == ref(synth, "aws_kms_key", "key_id", enable_key_rotation=True)


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_key_policy_lets_cloudwatch_logs_use_it_for_our_groups_only(
    variant: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(variant)
    logs = key_policy(synth)["CloudWatchLogs"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(logs["Action"])
    assert list(logs["Condition"]) == ["ArnEquals"]
    (variable, values), *others = logs["Condition"]["ArnEquals"].items()
    assert variable == "kms:EncryptionContext:aws:logs:arn" and not others
    expected = sorted(
        f"arn:{PARTITION}:logs:us-east-1:{ACCOUNT}:log-group:{name}"
        for name in log_group_names(synth)
    )
    assert sorted(values) == expected
    assert len(expected) == len(FUNCTIONS) + 2 + (variant == "prod")  # + WAF's group in prod


def test_key_policy_lets_cloudwatch_alarms_publish_to_the_topic(dev: Synth) -> None:
    alarms = key_policy(dev)["CloudWatchAlarms"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(alarms["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_key_policy_statements_all_mean_this_key(dev: Synth) -> None:
    """In a key policy, "*" is this key (AWS's documented form); nothing else is allowed."""
    statements = key_policy(dev)
    assert set(statements) == {"AccountAdministration", "CloudWatchLogs", "CloudWatchAlarms"}
    for statement in statements.values():
        assert (statement["Effect"], statement["Resource"]) == ("Allow", "*")
    admin = statements["AccountAdministration"]
    assert admin["Principal"] == {"AWS": f"arn:{PARTITION}:iam::{ACCOUNT}:root"}


# Everything that stores data uses the key ---------------------------------------------------


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_every_encrypted_resource_uses_the_key(
    variant: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(variant)
    arn = key_arn(synth)
    for group in resources(synth, "aws_cloudwatch_log_group").values():
        assert group["kms_key_id"] == arn, group["name"]
    for table in resources(synth, "aws_dynamodb_table").values():
        assert table["server_side_encryption"] == {"enabled": True, "kms_key_arn": arn}
    for fn in resources(synth, "aws_lambda_function").values():
        assert fn["kms_key_arn"] == arn, fn["function_name"]
    assert only(synth, "aws_sns_topic")["kms_master_key_id"] == arn


def test_function_roles_may_use_the_key_for_what_they_touch(dev: Synth) -> None:
    expected = {
        MAIN: ["kms:Decrypt", "kms:GenerateDataKey"],  # environment + tables
        WEBSOCKET: ["kms:Decrypt", "kms:GenerateDataKey"],
        AUTHORIZER: ["kms:Decrypt"],  # environment only: it reads no table
    }
    for spec, actions in expected.items():
        statements = {s["sid"]: s for s in statements_of_role(dev, f"{PREFIX}-{spec.suffix}")}
        assert statements["StackKey"]["actions"] == actions
        assert statements["StackKey"]["resources"] == [key_arn(dev)]


# IAM scoped where it used "*" ----------------------------------------------------------------


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_vpc_network_interface_permissions_are_scoped(prod: Synth, spec) -> None:
    statements = {s["sid"]: s for s in statements_of_role(prod, f"{PROD}-{spec.suffix}")}
    ec2 = f"arn:{PARTITION}:ec2:us-east-1:{ACCOUNT}"
    assert statements["VpcNetworkInterfaces"]["resources"] == [
        f"{ec2}:network-interface/*",
        f"{ec2}:subnet/*",
        f"{ec2}:security-group/*",
    ]
    assert "ec2:CreateNetworkInterface" in statements["VpcNetworkInterfaces"]["actions"]
    describe = statements["VpcDescribe"]
    assert describe["resources"] == ["*"]
    assert all(action.startswith("ec2:Describe") for action in describe["actions"])


def test_api_gateway_logging_role_is_scoped_to_this_account_and_region(dev: Synth) -> None:
    role = ref(dev, "aws_iam_role", "id", name=f"{PREFIX}-apigw-logs")
    document = policy_document(dev, by(dev, "aws_iam_role_policy", role=role)["policy"])
    (statement,) = document["statement"]
    assert statement["resources"] == [f"arn:{PARTITION}:logs:us-east-1:{ACCOUNT}:log-group:*"]


# REST API ------------------------------------------------------------------------------------


def test_every_rest_method_has_the_parameter_validator(dev: Synth) -> None:
    validator = only(dev, "aws_api_gateway_request_validator")
    assert validator["validate_request_parameters"] is True
    assert validator["validate_request_body"] is False  # the application validates bodies
    validator_id = ref(dev, "aws_api_gateway_request_validator", "id", name=validator["name"])
    methods = resources(dev, "aws_api_gateway_method").values()
    required: Counter[tuple[str, ...]] = Counter()
    for method in methods:
        assert method["request_validator_id"] == validator_id
        parameters = method.get("request_parameters") or {}
        assert all(value is True for value in parameters.values()), parameters
        required[tuple(sorted(parameters))] += 1
    session = "method.request.path.session_id"
    message = "method.request.path.message_id"
    # GET/PATCH/DELETE/OPTIONS on {session_id}, GET/POST/OPTIONS on {session_id}/messages,
    # GET/OPTIONS on {session_id}/export, POST/OPTIONS on {session_id}/attachments
    assert required[(session,)] == 11
    # PUT/OPTIONS on {session_id}/messages/{message_id}/feedback
    assert required[(message, session)] == 2
    assert set(required) == {(), (session,), (message, session)}


def test_rest_api_is_created_before_it_is_destroyed(dev: Synth) -> None:
    assert only(dev, "aws_api_gateway_rest_api")["lifecycle"] == {"create_before_destroy": True}


# Web firewall ----------------------------------------------------------------------------------


def test_prod_rest_stage_is_behind_the_web_acl(prod: Synth) -> None:
    acl = only(prod, "aws_wafv2_web_acl")
    assert acl["scope"] == "REGIONAL"
    assert acl["default_action"] == {"allow": {}}
    rules = {rule["name"]: rule for rule in acl["rule"]}
    assert rules["rate-limit-per-ip"]["statement"] == {
        "rate_based_statement": {"limit": 2000, "aggregate_key_type": "IP"}
    }
    assert rules["rate-limit-per-ip"]["action"] == {"block": {}}
    bad_inputs = rules["AWSManagedRulesKnownBadInputsRuleSet"]
    assert bad_inputs["override_action"] == {"none": {}}  # the group blocks, not just counts
    assert bad_inputs["statement"]["managed_rule_group_statement"]["vendor_name"] == "AWS"
    anonymous = rules["AWSManagedRulesAnonymousIpList"]["statement"]
    overrides = anonymous["managed_rule_group_statement"]["rule_action_override"]
    assert overrides == [{"name": "HostingProviderIPList", "action_to_use": {"count": {}}}]
    association = only(prod, "aws_wafv2_web_acl_association")
    assert association["resource_arn"] == ref(prod, "aws_api_gateway_stage", "arn", stage_name="v1")
    assert association["web_acl_arn"] == ref(prod, "aws_wafv2_web_acl", "arn", scope="REGIONAL")


def test_prod_firewall_logs_redact_the_token(prod: Synth) -> None:
    logging = only(prod, "aws_wafv2_web_acl_logging_configuration")
    group = f"aws-waf-logs-{PROD}"
    assert logging["log_destination_configs"] == [
        ref(prod, "aws_cloudwatch_log_group", "arn", name=group)
    ]
    assert logging["redacted_fields"] == [{"single_header": {"name": "authorization"}}]
    assert by(prod, "aws_cloudwatch_log_group", name=group)["retention_in_days"] == 365


def test_dev_has_no_firewall_unless_asked(dev: Synth) -> None:
    assert not resources(dev, "aws_wafv2_web_acl")
    assert not [g for g in log_group_names(dev) if g.startswith("aws-waf-logs-")]
    with_waf = synth_stack(ComputeConfig(waf_enabled=True, waf_rate_limit=500))
    rule = only(with_waf, "aws_wafv2_web_acl")["rule"][0]
    assert rule["statement"]["rate_based_statement"]["limit"] == 500
    assert only(with_waf, "aws_wafv2_web_acl_association")


def test_firewall_defaults_follow_the_environment() -> None:
    assert not ComputeConfig().uses_waf
    assert ComputeConfig(environment="staging").uses_waf
    assert not ComputeConfig(environment="staging", waf_enabled=False).uses_waf
    assert ComputeConfig(waf_enabled=True).uses_waf
    assert load_config(ROOT / "config" / "prod.toml", {}).uses_waf


# Code signing ----------------------------------------------------------------------------------


def test_prod_functions_validate_code_signatures(prod: Synth) -> None:
    signing = only(prod, "aws_lambda_code_signing_config")
    assert signing["allowed_publishers"] == {"signing_profile_version_arns": [SIGNING_PROFILE]}
    assert signing["policies"] == {"untrusted_artifact_on_deployment": "Warn"}
    arn = ref(prod, "aws_lambda_code_signing_config", "arn", policies=signing["policies"])
    for spec in FUNCTIONS:
        assert function(prod, spec.suffix, PROD)["code_signing_config_arn"] == arn


def test_dev_has_no_code_signing_and_warn_is_a_choice(dev: Synth) -> None:
    assert not resources(dev, "aws_lambda_code_signing_config")
    for spec in FUNCTIONS:
        assert "code_signing_config_arn" not in function(dev, spec.suffix)
    warned = synth_stack(
        ComputeConfig(
            code_signing_profile_version_arns=[SIGNING_PROFILE], code_signing_policy="Warn"
        )
    )
    signing = only(warned, "aws_lambda_code_signing_config")
    assert signing["policies"] == {"untrusted_artifact_on_deployment": "Warn"}


def test_data_sources_of_the_key_policy_are_lookups_only(dev: Synth) -> None:
    assert set(data(dev, "aws_partition")) == {"partition"}
    assert set(data(dev, "aws_caller_identity")) == {"caller"}


# Configuration of the hardening -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "rule"),
    [
        ("waf_rate_limit = 5", "waf_rate_limit", "greater than or equal to 10"),
        ('waf_enabled = "sometimes"', "waf_enabled", "valid boolean"),
        ('code_signing_policy = "Audit"', "code_signing_policy", "'Enforce' or 'Warn'"),
        (
            'code_signing_profile_version_arns = ["arn:aws:signer:us-east-1:1:/signing-profiles/"]',
            "code_signing_profile_version_arns.0",
            "should match pattern",
        ),
        (
            f'code_signing_profile_version_arns = ["{SIGNING_PROFILE}"]',
            "(file)",
            "'Enforce' rejects the unsigned packages Terraform deploys in bundled mode",
        ),
    ],
)
def test_hardening_settings_are_validated(tmp_path, text: str, field: str, rule: str) -> None:
    assert_rejected(tmp_path, text, field, rule)


def test_hardening_settings_can_be_overridden_from_the_environment(tmp_path) -> None:
    path = tmp_path / "prod.toml"
    path.write_text("")
    environ = {
        "COMPUTE_PROD__WAF_ENABLED": "false",
        "COMPUTE_CODE_SIGNING_PROFILE_VERSION_ARNS": f'["{SIGNING_PROFILE}"]',
        "COMPUTE_CODE_DEPLOYMENT_MODE": "external",
    }
    config = load_config(path, environ)
    assert not config.uses_waf
    assert config.uses_code_signing
    assert config.code_signing_policy == "Enforce"


def test_enforced_signing_warns_that_terraform_packages_are_unsigned(
    capsys: pytest.CaptureFixture,
) -> None:
    synth_stack(
        ComputeConfig(
            code_signing_profile_version_arns=[SIGNING_PROFILE], code_deployment_mode="external"
        )
    )
    assert "Lambda rejects the unsigned packages Terraform deploys" in capsys.readouterr().out
    synth_stack(
        ComputeConfig(
            code_signing_profile_version_arns=[SIGNING_PROFILE], code_signing_policy="Warn"
        )
    )
    assert "unsigned packages" not in capsys.readouterr().out


def test_enforced_signing_warns_while_the_adapter_layer_is_the_public_one(
    capsys: pytest.CaptureFixture,
) -> None:
    """Lambda checks layers' signatures too: AWS's public adapter layer is not signed by the
    configured profiles, so an enforcing environment needs a signed copy of its own."""
    enforcing = {
        "code_signing_profile_version_arns": [SIGNING_PROFILE],
        "code_deployment_mode": "external",
    }
    synth_stack(ComputeConfig(**enforcing))
    assert "public Lambda Web Adapter layer is not signed" in capsys.readouterr().out
    own = "arn:aws:lambda:us-east-1:123456789012:layer:signed-web-adapter:1"
    synth_stack(ComputeConfig(**enforcing, lambda_web_adapter_layer_arn=own))
    assert "Web Adapter layer" not in capsys.readouterr().out
