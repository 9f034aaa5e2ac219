"""The module ``make module`` writes, through real Terraform: the specification's usage
block applies to the emulator, converges, reads back as the contract says and destroys;
settings the module decides in Terraform take the values a caller gives; and bad values are
refused by the module's own rules, each with its message."""

from __future__ import annotations

import re
from typing import Any

import pytest

from functions.contract import FUNCTIONS, OPENAI_API, TABLES, WEBSOCKET
from tests.support.spec import spec_text
from tests.terraform.conftest import USAGE, ModulePlan, Runs
from tests.terraform.harness import error_diagnostics

pytestmark = pytest.mark.xdist_group("terraform")


def module_block(text: str) -> str:
    match = re.search(r'^module "compute" \{\n.*?^\}', text, flags=re.MULTILINE | re.DOTALL)
    assert match, 'no module "compute" block'
    return match.group(0)


def test_the_usage_root_holds_the_spec_block_verbatim() -> None:
    assert module_block((USAGE / "main.tf").read_text()) == module_block(spec_text())


def test_the_spec_usage_block_applies_converges_and_destroys(terraform_runs: Runs) -> None:
    """The role ARN comes from a resource of the stand-in AI-services layer, so the module
    plans with that input unknown, as it is beside a real networking or AI layer."""
    result = terraform_runs.cycle("usage")
    assert result.apply_failed == {}, "\n".join(f"{a}: {e}" for a, e in result.apply_failed.items())
    assert result.second_plan == [], "\n".join(result.second_plan)
    assert result.destroy_failed == {}, result.destroy_failed  # dev: no deletion protection
    assert [a for a in result.left_in_state if ".data." not in a] == []
    config = result.outputs["compute_config"]
    assert config["environment"] == "dev"
    assert set(config["lambda_functions"]) == {spec.key for spec in FUNCTIONS}
    assert result.outputs["api_gateway_rest_api_url"].endswith("/v1")


def test_the_spec_usage_block_reads_back_as_the_contract_says(terraform_runs: Runs) -> None:
    """The read-backs of every stack, and the functions' variables as the usage root's
    values make them (tests/terraform/conftest.py, USAGE_ENVIRONMENT)."""
    result = terraform_runs.cycle("usage")
    if result.readback_error is not None:
        raise result.readback_error


def planned(plan: ModulePlan) -> dict[str, dict[str, Any]]:
    """What the plan creates in the compute module, by address within it. ``after`` holds
    every value known at plan time; those that depend on other resources are left out."""
    assert plan.code == 0, "\n".join(d["summary"] for d in error_diagnostics(plan.output))
    assert plan.shown is not None
    prefix = "module.compute."
    return {
        change["address"].removeprefix(prefix): {
            "type": change["type"],
            "values": change["change"]["after"],
        }
        for change in plan.shown["resource_changes"]
        if change["address"].startswith(prefix) and change["change"]["actions"] == ["create"]
    }


def of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {a: r["values"] for a, r in resources.items() if r["type"] == kind}


def test_settings_decided_in_terraform_take_the_callers_values(terraform_runs: Runs) -> None:
    """roots/module_values.tf: runtime 3.12, provisioned capacity, the websocket's own
    timeout and reservation with the shared reservation at 0, an alarm e-mail, two CORS
    origins and two models. (The functions' variables and the dashboard's body are unknown
    until apply, as they name other resources; the usage root's read-back checks the
    variables.)"""
    resources = planned(terraform_runs.module_plan("module-values"))
    functions = of_type(resources, "aws_lambda_function")
    assert len(functions) == len(FUNCTIONS)
    for function in functions.values():
        assert function["runtime"] == "python3.12"
        assert "-code-python312_" in function["filename"]
        websocket = function["function_name"].endswith(f"-{WEBSOCKET.suffix}")
        openai = function["function_name"].endswith(f"-{OPENAI_API.suffix}")
        # openai_lambda_timeout is not set there: its default, not lambda_timeout
        assert function["timeout"] == (120 if websocket else 300 if openai else 30)
        assert function["reserved_concurrent_executions"] == (20 if websocket else 0)
        assert function["tags"] == {
            "Team": "assistants",
            "Project": "acme",
            "Environment": "staging",
        }
    tables = of_type(resources, "aws_dynamodb_table")
    assert len(tables) == len(TABLES)
    for table in tables.values():
        assert (table["billing_mode"], table["read_capacity"], table["write_capacity"]) == (
            "PROVISIONED",
            7,
            3,
        )
        assert table["deletion_protection_enabled"] is True  # unset, and not `dev`
        for index in table["global_secondary_index"]:
            assert (index["read_capacity"], index["write_capacity"]) == (7, 3)
    alarms = {
        v["alarm_name"]: v for v in of_type(resources, "aws_cloudwatch_metric_alarm").values()
    }
    concurrency = {
        name: a["threshold"] for name, a in alarms.items() if name.endswith("-concurrency")
    }
    assert concurrency == {"acme-staging-websocket-concurrency": 16}  # 80 % of 20; 0: none
    assert alarms["acme-staging-websocket-duration-p99"]["threshold"] == 96000
    assert alarms["acme-staging-main-duration-p99"]["threshold"] == 24000
    (subscription,) = of_type(resources, "aws_sns_topic_subscription").values()
    assert subscription["endpoint"] == "oncall@example.com"
    for response in of_type(resources, "aws_api_gateway_gateway_response").values():
        origin = response["response_parameters"][
            "gatewayresponse.header.Access-Control-Allow-Origin"
        ]
        assert origin == "method.request.header.Origin"  # two origins: echo the caller's


# Each bad value of roots/module_invalid.tf, and the words of the rule that refuses it.
REFUSED = {
    "project_name": "must match ^[a-z][a-z0-9-]*[a-z0-9]$",
    "private_subnet_ids": "must only hold values that match ^subnet-",
    "bedrock_models": "must hold at least 1 value",
    "lambda_timeout": "must be at most 900",
    "dynamodb_billing_mode": "must be one of ['PAY_PER_REQUEST', 'PROVISIONED']",
    "log_retention_days": "must be one of CloudWatch Logs' periods",
    "alarm_email": "must match",
    "cors_allowed_origins": "must hold '*' or scheme://host[:port] entries",
    "identity_center_issuer_url": "must be empty or an https:// URL",
}


def test_invalid_values_are_refused_each_by_its_variables_rule(terraform_runs: Runs) -> None:
    plan = terraform_runs.module_plan("module-invalid")
    assert plan.code == 1
    details = [d.get("detail", "") for d in error_diagnostics(plan.output)]
    for name, words in REFUSED.items():
        assert any(f"The {name} variable {words}" in detail for detail in details), (name, details)
    assert len(details) == len(REFUSED), details


def test_a_guardrail_id_without_its_version_is_refused_before_anything_is_created(
    terraform_runs: Runs,
) -> None:
    plan = terraform_runs.module_plan("module-guardrail-alone")
    assert plan.code == 1
    details = {d.get("detail", "") for d in error_diagnostics(plan.output)}
    assert details == {
        "The bedrock_guardrail_id and bedrock_guardrail_version variables are set together "
        "or not at all."
    }
