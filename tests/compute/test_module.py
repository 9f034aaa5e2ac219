"""The Terraform module ``make module`` writes: the spec's interface (variables, outputs), no
provider or state of its own, and packages it carries and names under ``path.module``.
Terraform itself plans and applies it in ``tests/terraform``."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from compute.config import ComputeConfig
from functions.contract import FUNCTIONS, OPENAI_ROUTES
from tests.compute.synth import STACKS
from tests.support.spec import spec_outputs, spec_variables

pytestmark = STACKS

# The spec's optional defaults as its table writes them, and as Terraform holds them.
SPEC_DEFAULTS = {"`python3.11`": "python3.11", '""': "", "true": True}


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """``compute.module``, imported by the tests that run: it imports cdktf, and so would start
    jsii's Node process in every worker that collects this file."""
    import compute.module

    return compute.module


@pytest.fixture(scope="module")
def module_dir(generator: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generator.write_module(tmp_path_factory.mktemp("module") / "compute", environ={})


@pytest.fixture(scope="module")
def module(module_dir: Path) -> dict[str, Any]:
    return json.loads((module_dir / "main.tf.json").read_text())


def test_every_spec_variable_with_its_type_requiredness_and_default(
    module, generator: ModuleType
) -> None:
    declared = module["variable"]
    for name, spec in spec_variables().items():
        assert name in declared, f"the module does not declare the spec's {name}"
        variable = declared[name]
        if spec.required:
            assert "default" not in variable, f"{name} is required by the spec"
            assert variable["type"] == spec.type
        else:
            written = SPEC_DEFAULTS.get(spec.default, spec.default.strip("`"))
            if isinstance(variable["default"], int | float) and not isinstance(written, bool):
                written = float(written)
            assert variable["default"] == written, name
    assert {name for name in declared if "default" not in declared[name]} == set(
        generator.SPEC_REQUIRED
    )
    assert set(generator.SPEC_REQUIRED) == {n for n, s in spec_variables().items() if s.required}


def test_extensions_are_optional_variables_with_the_config_defaults(
    module, generator: ModuleType
) -> None:
    declared = module["variable"]
    fields = ComputeConfig.model_fields
    extensions = set(fields) - set(spec_variables()) - set(generator.STRUCTURAL)
    assert extensions <= set(declared)
    for name in extensions:
        assert declared[name]["default"] == fields[name].default, name
        assert declared[name]["description"], name
    assert not set(generator.STRUCTURAL) & set(declared)
    assert set(declared) == set(generator.module_variables())


def test_descriptions_come_from_the_config_model(module, generator: ModuleType) -> None:
    for name, field in generator.module_variables().items():
        assert module["variable"][name]["description"].startswith(field.description[:20])
        assert module["variable"][name]["type"] == generator.terraform_type(field)


def test_validation_rules_come_from_the_field_constraints(module) -> None:
    rules = {
        name: [check["condition"] for check in variable.get("validation", [])]
        for name, variable in module["variable"].items()
    }
    assert "${var.lambda_timeout >= 1}" in rules["lambda_timeout"]
    assert "${var.lambda_timeout <= 900}" in rules["lambda_timeout"]
    assert any("regex" in rule and "subnet-" in rule for rule in rules["private_subnet_ids"])
    assert any(
        'contains(["PAY_PER_REQUEST", "PROVISIONED"]' in r for r in rules["dynamodb_billing_mode"]
    )
    # a nullable variable is checked only when set
    assert all(r.startswith("${var.alarm_email == null ||") for r in rules["alarm_email"])
    for function in module["resource"]["aws_lambda_function"].values():
        (guardrail,) = function["lifecycle"]["precondition"]
        assert "var.bedrock_guardrail_id == null" in guardrail["condition"]
    for variable in module["variable"].values():
        for check in variable.get("validation", []):
            message = check["error_message"]
            assert message[0].isupper() and message.endswith("."), message


def test_every_spec_output_is_declared_with_a_description(module) -> None:
    for name in spec_outputs():
        assert name in module["output"], name
    for name, output in module["output"].items():
        assert output.get("description"), f"output {name} has no description"


def test_no_provider_backend_or_remote_state_of_its_own(module) -> None:
    assert "provider" not in module
    assert "backend" not in module["terraform"]
    assert "terraform_remote_state" not in module.get("data", {})
    assert set(module["terraform"]["required_providers"]) == {"aws"}


def test_no_value_of_the_generation_leaks_in(module) -> None:
    """Settings are variables: no literal of the embedded default config stands where a
    variable belongs, and no CDKTF token was left unresolved (a number token in a string
    reads as a huge float; an escaped interpolation as ``$${``)."""
    text = json.dumps(module)
    assert "ai-assistant-cli" not in text
    assert "us-east-1" not in text
    assert not re.search(r"TfToken|e\+\d{3}|\bundefined\b|\$\$\{", text)


def test_inputs_reach_the_resources_as_variables(module) -> None:
    functions = module["resource"]["aws_lambda_function"]
    for function in functions.values():
        assert function["vpc_config"] == {
            "security_group_ids": ["${var.lambda_security_group_id}"],
            "subnet_ids": "${var.private_subnet_ids}",
        }
        assert function["role"] == "${var.lambda_bedrock_role_arn}"
        assert function["runtime"] == "${var.lambda_runtime}"
        assert "var.tags" in function["tags"]
    (policy,) = module["resource"]["aws_iam_role_policy"].values()
    assert "var.lambda_bedrock_role_arn" in policy["role"]


def test_packages_are_carried_for_every_runtime_and_named_under_path_module(
    module, generator: ModuleType, module_dir: Path
) -> None:
    functions = module["resource"]["aws_lambda_function"]
    assert len(functions) == len(FUNCTIONS)
    for function in functions.values():
        assert function["filename"].startswith("${path.module}/${")
        paths = re.findall(r'"(python3\.\d+)" = "(assets/[^"]+\.zip)"', function["filename"])
        hashes = dict(re.findall(r'"(python3\.\d+)" = "([^"]+=)"', function["source_code_hash"]))
        assert {runtime for runtime, _ in paths} == set(generator.RUNTIMES) == set(hashes)
        for runtime, path in paths:
            data = (module_dir / path).read_bytes()
            assert hashes[runtime] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_the_openai_function_takes_its_layer_and_timeout_from_variables(module) -> None:
    """The adapter's layer: the variable, or AWS's public one in the caller's region; the
    function's timeout is its streamed integrations' too."""
    variables = module["variable"]
    assert variables["lambda_web_adapter_layer_arn"]["default"] is None
    assert variables["openai_lambda_timeout"]["default"] == 300
    checks = [v["condition"] for v in variables["lambda_web_adapter_layer_arn"]["validation"]]
    assert any("var.aws_region" in condition for condition in checks)
    (function,) = [
        f for f in module["resource"]["aws_lambda_function"].values() if f["handler"] == "run.sh"
    ]
    (layer,) = function["layers"]
    assert layer == (
        "${coalesce(var.lambda_web_adapter_layer_arn, "
        '"arn:aws:lambda:${var.aws_region}:753240598075:layer:LambdaAdapterLayerX86:26")}'
    )
    assert function["timeout"] == "${var.openai_lambda_timeout}"
    streamed = [
        i
        for i in module["resource"]["aws_api_gateway_integration"].values()
        if i.get("response_transfer_mode") == "STREAM"
    ]
    assert len(streamed) == len(OPENAI_ROUTES)
    for integration in streamed:
        assert "var.openai_lambda_timeout" in str(integration["timeout_milliseconds"])
