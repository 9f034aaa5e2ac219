"""The compute layer as a plain Terraform module (``make module``), for callers that run
Terraform (an HCL root, Terragrunt) rather than CDKTF.

It is the same stack, built by the same constructs, from variables instead of a config file:
every variable of the spec's two tables with the spec's names, types, required-ness and
defaults, and this project's extensions as optional variables with their config defaults.
Descriptions and validation rules come from ``compute.config``, the one model of the settings.
The module has no provider, no backend and no remote state: it uses its caller's.

Where the stack decides something in Python from a setting, the module decides in Terraform
(``compute.expressions``: ``count``, conditionals, ``for`` expressions, ``lookup``), so an
input may stay unknown until apply. The settings in ``STRUCTURAL`` are the exception: each
changes what the module *is* (which files it carries, which resources exist, or a lifecycle
rule Terraform does not let depend on a variable). They are fixed when the module is
generated, from the same ``COMPUTE_*`` variables as an environment's config
(``COMPUTE_LAMBDA_ARCHITECTURE=arm64 make module``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, MaxLen, MinLen
from cdktf import (
    App,
    Fn,
    Op,
    TerraformVariable,
    TerraformVariableValidationConfig,
    Token,
)
from constructs import Construct
from pydantic.fields import FieldInfo

from compute.config import (
    LAMBDA_NAME_MAX,
    LOG_RETENTION_DAYS,
    ComputeConfig,
    default_config,
    web_adapter_layer,
)
from compute.expressions import either
from compute.lambdas import Network
from compute.stack import ComputeStack, Inputs
from functions.contract import FUNCTIONS, OPENAI_API, VALIDATION_KEYS, WEBSOCKET

ROOT = Path(__file__).resolve().parent.parent
MODULE_STACK = "module"
# The spec's required variables (its first table): the module has no default for them.
SPEC_REQUIRED = (
    "project_name",
    "environment",
    "aws_region",
    "tags",
    "vpc_id",
    "private_subnet_ids",
    "lambda_security_group_id",
    "lambda_bedrock_role_arn",
    "knowledge_base_id",
    "bedrock_models",
)
# Settings fixed when the module is generated, and why each cannot be a variable.
STRUCTURAL = {
    "lambda_architecture": "the packages the module carries hold compiled wheels of one "
    "architecture",
    "code_deployment_mode": "external mode sets lifecycle.ignore_changes, which Terraform "
    "does not let depend on a variable",
    "manage_api_gateway_account": "API Gateway's CloudWatch role is one setting per account "
    "and region, which the account's baseline should own, not every copy of a module",
    "waf_enabled": "the web ACL, its association and its log group, which the key policy "
    "names, exist or not",
    "code_signing_profile_version_arns": "the code signing configuration exists or not",
    "code_signing_policy": "goes with code_signing_profile_version_arns",
    "backend": "the module uses its caller's state",
    "remote_state": "the caller passes the other layers' outputs as variables",
}
# What the module generates with where the environments' default differs, and why.
MODULE_DEFAULTS = {
    "manage_api_gateway_account": False,  # see STRUCTURAL
    "waf_enabled": True,  # a module has no `dev` name to switch it off by
}
RUNTIMES = typing.get_args(ComputeConfig.model_fields["lambda_runtime"].annotation)
# Cross-variable validation needs Terraform 1.9.
REQUIRED_TERRAFORM = ">= 1.9"
AWS_PROVIDER = {"source": "hashicorp/aws", "version": ">= 6.25.0, < 7.0.0"}


def module_variables() -> dict[str, FieldInfo]:
    """The config fields the module declares as variables, in the config's order."""
    return {
        name: field for name, field in ComputeConfig.model_fields.items() if name not in STRUCTURAL
    }


# Types and rules -----------------------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, bool, list[Any]]:
    """A field's type without ``| None`` and ``Annotated``: (type, nullable, constraints)."""
    nullable = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        (annotation,) = members
    constraints: list[Any] = []
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        for item in extra:
            constraints += item.metadata if isinstance(item, FieldInfo) else [item]
    return annotation, nullable, constraints


def terraform_type(field: FieldInfo) -> str:
    kind, _, _ = _unwrap(field.annotation)
    origin = typing.get_origin(kind)
    if kind is bool:
        return "bool"
    if kind in (int, float):
        return "number"
    if kind is str or origin is typing.Literal:
        return "string"
    if origin is list:
        return "list(string)"
    if origin is dict:
        return "map(string)"
    raise TypeError(f"no Terraform type for {kind!r}")


def hcl_string(value: str) -> str:
    """A quoted HCL string literal (JSON's escapes are HCL's, and ``${``/``%{`` are doubled)."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _rules(constraints: list[Any], value: str) -> list[tuple[str, str]]:
    """(condition, what it requires) for each constraint on one value."""
    rules = []
    for item in constraints:
        if pattern := getattr(item, "pattern", None):
            rules.append((f"can(regex({hcl_string(pattern)}, {value}))", f"match {pattern}"))
        elif isinstance(item, Ge):
            rules.append((f"{value} >= {item.ge}", f"be at least {item.ge}"))
        elif isinstance(item, Gt):
            rules.append((f"{value} > {item.gt}", f"be above {item.gt}"))
        elif isinstance(item, Le):
            rules.append((f"{value} <= {item.le}", f"be at most {item.le}"))
        elif isinstance(item, MaxLen):
            rules.append((f"length({value}) <= {item.max_length}", f"have at most "
                          f"{item.max_length} characters"))  # fmt: skip
        elif isinstance(item, MinLen):
            plural = "" if item.min_length == 1 else "s"
            rules.append((f"length({value}) >= {item.min_length}", f"hold at least "
                          f"{item.min_length} value{plural}"))  # fmt: skip
    return rules


def validations(name: str, field: FieldInfo) -> list[tuple[str, str]]:
    """Terraform validation rules of one variable, from the config field's constraints:
    (condition, error message)."""
    kind, nullable, constraints = _unwrap(field.annotation)
    var = f"var.{name}"
    rules = _rules(list(field.metadata) + constraints, var)
    if typing.get_origin(kind) is typing.Literal:
        options = list(typing.get_args(kind))
        rules.append((f"contains({json.dumps(options)}, {var})", f"be one of {options}"))
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        _, _, item_constraints = _unwrap(item)
        rules += [
            (f"alltrue([for value in {var} : {condition}])", f"only hold values that {rule}")
            for condition, rule in _rules(item_constraints, "value")
        ]
    checks = []
    for condition, rule in rules:
        guarded = f"{var} == null || try({condition}, false)" if nullable else condition
        checks.append((guarded, f"The {name} variable must {rule}."))
    return checks + CROSS_CHECKS.get(name, [])


LONGEST_SUFFIX = max(len(spec.suffix) for spec in FUNCTIONS)
# The config model's cross-field rules that a variable can check (Terraform >= 1.9).
CROSS_CHECKS: dict[str, list[tuple[str, str]]] = {
    "log_retention_days": [
        (
            f"contains({json.dumps(list(LOG_RETENTION_DAYS))}, var.log_retention_days)",
            "The log_retention_days variable must be one of CloudWatch Logs' periods "
            f"{list(LOG_RETENTION_DAYS)}.",
        )
    ],
    "environment": [
        (
            f"length(var.project_name) + length(var.environment) + {2 + LONGEST_SUFFIX} "
            f"<= {LAMBDA_NAME_MAX}",
            "The project_name and environment variables are too long: function names "
            f"would exceed Lambda's {LAMBDA_NAME_MAX} characters.",
        )
    ],
    "identity_center_issuer_url": [
        (
            'var.identity_center_issuer_url == "" || '
            'can(regex("^https://[^\\\\s/]+(/\\\\S*)?$", var.identity_center_issuer_url))',
            "The identity_center_issuer_url variable must be empty or an https:// URL.",
        )
    ],
    "jwks_url": [
        (
            'var.jwks_url == "" || can(regex("^https://[^\\\\s/]+(/\\\\S*)?$", var.jwks_url))',
            "The jwks_url variable must be empty or an https:// URL.",
        )
    ],
    "lambda_web_adapter_layer_arn": [
        (
            "var.lambda_web_adapter_layer_arn == null || "
            'try(split(":", var.lambda_web_adapter_layer_arn)[3] == var.aws_region, false)',
            "The lambda_web_adapter_layer_arn variable must name a layer in aws_region: Lambda "
            "attaches layers of the function's region only.",
        )
    ],
    "cors_allowed_origins": [
        (
            'alltrue([for origin in var.cors_allowed_origins : origin == "*" || '
            'can(regex("^https?://[^\\\\s/]+$", origin))])',
            "The cors_allowed_origins variable must hold '*' or scheme://host[:port] entries.",
        )
    ],
}


# Rules across variables that validation blocks cannot hold (they would reference each other,
# a cycle), checked before the functions are created.
PRECONDITIONS = [
    (
        "(var.bedrock_guardrail_id == null) == (var.bedrock_guardrail_version == null)",
        "The bedrock_guardrail_id and bedrock_guardrail_version variables are set together "
        "or not at all.",
    )
]


# The module ------------------------------------------------------------------------------


class ModuleConfig(ComputeConfig):
    """The settings as the module's constructs see them: Terraform expressions of its
    variables, and the generated-in choices of ``STRUCTURAL``. Never validated in Python
    (``model_construct``): Terraform validates the variables."""

    @property
    def stack_name(self) -> str:
        return MODULE_STACK

    @property
    def uses_vpc(self) -> bool:
        return True  # the spec requires the VPC inputs

    @property
    def deletion_protection_enabled(self) -> Any:
        return Token.as_any(either(self.deletion_protection, Op.neq(self.environment, "dev")))

    @property
    def issuer_is_identity_center(self) -> bool:
        return False  # a synthesis warning of the environments; the variable is unknown here

    @property
    def jwt_validation(self) -> str:
        rules = {key: getattr(self, f"jwt_{key}") for key in VALIDATION_KEYS}
        return Fn.jsonencode(rules)

    def timeout_for(self, function_key: str) -> Any:
        if function_key == WEBSOCKET.key:
            return Token.as_number(either(self.websocket_lambda_timeout, self.lambda_timeout))
        if function_key == OPENAI_API.key:
            return self.openai_lambda_timeout
        return self.lambda_timeout

    @property
    def web_adapter_layer_arn(self) -> str:
        """The variable, or AWS's public layer for the caller's region (the architecture is
        fixed when the module is generated)."""
        default = web_adapter_layer(self.aws_region, self.lambda_architecture)
        return Token.as_string(either(self.lambda_web_adapter_layer_arn, default))

    def reserved_concurrency_for(self, function_key: str) -> Any:
        if function_key == WEBSOCKET.key:
            return Token.as_number(
                either(self.websocket_reserved_concurrency, self.lambda_reserved_concurrency)
            )
        return self.lambda_reserved_concurrency

    def package_runtimes(self) -> tuple[str, ...]:
        return RUNTIMES


class ComputeModule(ComputeStack):
    """The stack with variables for settings, the caller's provider and state, and tags set
    on each resource (a module cannot set its caller's provider ``default_tags``)."""

    def __init__(self, scope: Construct, generation: ComputeConfig) -> None:
        super().__init__(scope, generation, stack_id=MODULE_STACK)
        self.add_override("terraform.required_version", REQUIRED_TERRAFORM)
        self.add_override("terraform.required_providers", {"aws": AWS_PROVIDER})
        config = self.config
        tags = Fn.merge(
            [config.tags, {"Project": config.project_name, "Environment": config.environment}]
        )
        for node in self.node.find_all():
            if hasattr(node, "tags_input"):
                node.add_override("tags", tags)
        for function in self.functions.functions.values():
            function.add_override(
                "lifecycle.precondition",
                [
                    {"condition": f"${{{condition}}}", "error_message": message}
                    for condition, message in PRECONDITIONS
                ],
            )

    def _configure(self, config: ComputeConfig) -> ComputeConfig:
        values: dict[str, Any] = {
            name: getattr(config, name) for name in STRUCTURAL if name in ComputeConfig.model_fields
        }
        for name, field in module_variables().items():
            values[name] = self._variable(name, field)
        return ModuleConfig.model_construct(**values)

    def _variable(self, name: str, field: FieldInfo) -> Any:
        kind = terraform_type(field)
        required = name in SPEC_REQUIRED
        default = None if required else _default(field)
        _, nullable, _ = _unwrap(field.annotation)
        variable = TerraformVariable(
            self,
            name,
            type=kind,
            description=_plain(field.description or ""),
            default=default,
            nullable=nullable,
            validation=[
                TerraformVariableValidationConfig(
                    condition=f"${{{condition}}}", error_message=message
                )
                for condition, message in validations(name, field)
            ],
        )
        if kind == "bool":
            return variable.boolean_value
        if kind == "number":
            return variable.number_value
        if kind.startswith("list"):
            return variable.list_value
        if kind.startswith("map"):
            return variable.value
        return variable.string_value

    def _backend(self) -> None:
        """None: the caller's (``write_module`` removes the local one CDKTF adds)."""

    def _providers(self) -> None:
        """None: the caller's."""

    def _inputs(self) -> Inputs:
        config = self.config
        return Inputs(
            network=Network(
                subnet_ids=config.private_subnet_ids,
                security_group_ids=[config.lambda_security_group_id],
            ),
            role_arn=config.lambda_bedrock_role_arn,
            knowledge_base_id=config.knowledge_base_id,
        )


def _default(field: FieldInfo) -> Any:
    value = field.default
    if isinstance(value, list | dict | str | int | float | bool) or value is None:
        return value
    raise TypeError(f"no Terraform default for {value!r}")


def _plain(description: str) -> str:
    """A description without the docs' Markdown emphasis."""
    return re.sub(r"\*(\w[^*]*)\*", r"\1", description)


# Writing it -------------------------------------------------------------------------------


def generation_config(environ: Mapping[str, str] | None = None) -> ComputeConfig:
    """The structural choices the module is generated with: ``MODULE_DEFAULTS``, overridden
    by ``COMPUTE_*`` variables like any environment's config."""
    environ = dict(os.environ if environ is None else environ)
    for name, value in MODULE_DEFAULTS.items():
        environ.setdefault(f"COMPUTE_{name.upper()}", json.dumps(value))
    return default_config(environ)


def write_module(destination: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Synthesize the module and write it to ``destination``: ``main.tf.json`` and the
    packages it names under ``path.module``. Replaces what was there."""
    config = generation_config(environ)
    with tempfile.TemporaryDirectory(prefix="compute-module.") as folder:
        context = {"@cdktf/disable_stack_trace_in_metadata": True}
        # The module has no provider blocks by design: its caller configures them.
        app = App(outdir=folder, context=context, skip_validation=True)
        ComputeModule(app, config)
        app.synth()
        stack = Path(folder) / "stacks" / MODULE_STACK
        document = json.loads((stack / "cdk.tf.json").read_text())
        document["terraform"].pop("backend", None)
        for name, field in module_variables().items():
            if name not in SPEC_REQUIRED and field.default is None:
                # CDKTF leaves a null default out, which would make the variable required.
                document["variable"][name]["default"] = None
        if destination.exists():
            shutil.rmtree(destination)
        shutil.copytree(stack, destination, ignore=shutil.ignore_patterns("cdk.tf.json"))
    (destination / "main.tf.json").write_text(json.dumps(document, indent=2) + "\n")
    return destination


def main(argv: list[str] | None = None) -> int:
    import argparse

    from compute.config import ConfigError
    from compute.packaging import PackagingError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "cdktf.out" / "module")
    args = parser.parse_args(argv)
    try:
        out = write_module(args.out)
    except (ConfigError, PackagingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the Terraform module to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
