"""The five Lambda functions (authorizer, main, websocket, cleanup, openai-api), deployed from
reproducible packages (see ``packaging``).

The openai-api function runs its ASGI app behind the Lambda Web Adapter: the adapter's layer,
its exec wrapper and its variables (``contract.ADAPTER_ENV``) make Lambda start ``run.sh``
and stream what the app writes.

In ``external`` code-deployment mode the functions start from a placeholder package and
Terraform ignores later code changes, so a pipeline's ``update-function-code`` survives
the next ``apply``.

Environment variables are encrypted with the stack's key. When signing profiles are
configured, every function gets a code signing configuration that allows only packages
signed by them (``code_signing_policy``: ``Enforce`` rejects anything else, ``Warn`` logs it).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import AssetType, Fn, TerraformAsset, TerraformResourceLifecycle, Token
from constructs import Construct

from compute.config import ComputeConfig
from compute.expressions import is_expression
from compute.packaging import Package, Target, build_function, build_placeholder
from compute.provider import (
    CloudwatchLogGroup,
    IamRolePolicy,
    LambdaCodeSigningConfig,
    LambdaCodeSigningConfigAllowedPublishers,
    LambdaCodeSigningConfigPolicies,
    LambdaFunction,
    LambdaFunctionEnvironment,
    LambdaFunctionTracingConfig,
    LambdaFunctionVpcConfig,
    LambdaPermission,
)
from functions.contract import ADAPTER_ENV, FUNCTION_ENV, FUNCTIONS, FunctionSpec

CODE_ATTRIBUTES = ["filename", "source_code_hash"]


@dataclass(frozen=True)
class Network:
    """Where VPC functions attach; values may be literals or remote-state references."""

    subnet_ids: list[str]
    security_group_ids: list[str]


class MissingEnvironmentValue(Exception):
    """The stack forgot a value for a variable the code reads (contract.FUNCTION_ENV)."""


class Functions(Construct):
    """Every function of ``contract.FUNCTIONS``, each with its role, log group and environment."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: ComputeConfig,
        role_arns: dict[str, str],
        log_groups: dict[str, CloudwatchLogGroup],
        policies: dict[str, IamRolePolicy],
        environment: dict[str, str],
        network: Network | None,
        key_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        self._config = config
        self._key_arn = key_arn
        self.code_signing = self._code_signing() if config.uses_code_signing else None
        self.packages: dict[str, dict[str, Package]] = {}  # function key -> runtime -> package
        self.functions: dict[str, LambdaFunction] = {}
        for spec in FUNCTIONS:
            self.packages[spec.key] = {
                runtime: self._package(spec, Target(runtime, config.lambda_architecture))
                for runtime in config.package_runtimes()
            }
            self.functions[spec.key] = self._function(
                spec,
                self._code(spec),
                role_arn=role_arns[spec.key],
                variables=_variables_for(spec, environment),
                depends_on=[log_groups[spec.key], policies[spec.key]],
                network=network,
            )

    def _package(self, spec: FunctionSpec, target: Target) -> Package:
        if self._config.code_deployment_mode == "external":
            return build_placeholder(target)
        return build_function(spec, target)

    def _code(self, spec: FunctionSpec) -> tuple[str, str]:
        """The function's package and its hash as ``filename`` and ``source_code_hash``.

        An environment has one package per function. The module has one per runtime it
        supports, picked by its ``lambda_runtime`` variable, and names them relative to
        ``path.module`` so it works from any directory and as a release artifact.
        """
        packages = self.packages[spec.key]
        paths: dict[str, str] = {}
        for runtime, package in packages.items():
            asset_id = f"{spec.key}-code" if len(packages) == 1 else f"{spec.key}-code-{runtime}"
            asset = TerraformAsset(
                self,
                asset_id,
                path=str(package.path),
                type=AssetType.FILE,
                asset_hash=package.sha256,
            )
            paths[runtime] = asset.path
        runtime = self._config.lambda_runtime
        if not is_expression(runtime):
            return paths[runtime], packages[runtime].source_code_hash
        hashes = {name: package.source_code_hash for name, package in packages.items()}
        filename = Token.as_string(Fn.lookup(paths, runtime))
        return f"${{path.module}}/{filename}", Token.as_string(Fn.lookup(hashes, runtime))

    def _function(
        self,
        spec: FunctionSpec,
        code: tuple[str, str],
        *,
        role_arn: str,
        variables: dict[str, str],
        depends_on: list,
        network: Network | None,
    ) -> LambdaFunction:
        config = self._config
        filename, source_code_hash = code
        external = config.code_deployment_mode == "external"
        return LambdaFunction(
            self,
            spec.key,
            function_name=f"{config.prefix}-{spec.suffix}",
            description=f"{config.project_name} {config.environment}: {spec.suffix}",
            role=role_arn,
            handler=spec.handler,
            runtime=config.lambda_runtime,
            layers=[config.web_adapter_layer_arn] if spec.web_adapter else None,
            architectures=[config.lambda_architecture],
            filename=filename,
            source_code_hash=source_code_hash,
            timeout=config.timeout_for(spec.key),
            memory_size=config.lambda_memory_size,
            reserved_concurrent_executions=config.reserved_concurrency_for(spec.key),
            tracing_config=LambdaFunctionTracingConfig(mode="Active"),
            environment=LambdaFunctionEnvironment(variables=variables),
            kms_key_arn=self._key_arn,
            code_signing_config_arn=self.code_signing.arn if self.code_signing else None,
            vpc_config=(
                LambdaFunctionVpcConfig(
                    subnet_ids=network.subnet_ids, security_group_ids=network.security_group_ids
                )
                if network
                else None
            ),
            lifecycle=(
                TerraformResourceLifecycle(ignore_changes=CODE_ATTRIBUTES) if external else None
            ),
            depends_on=depends_on,
        )

    def _code_signing(self) -> LambdaCodeSigningConfig:
        config = self._config
        return LambdaCodeSigningConfig(
            self,
            "code-signing",
            description=f"{config.prefix}: packages signed by the configured profiles",
            allowed_publishers=LambdaCodeSigningConfigAllowedPublishers(
                signing_profile_version_arns=list(config.code_signing_profile_version_arns)
            ),
            policies=LambdaCodeSigningConfigPolicies(
                untrusted_artifact_on_deployment=config.code_signing_policy
            ),
        )


def allow_api_gateway(
    scope: Construct, id_: str, *, statement_id: str, function: LambdaFunction, source_arn: str
) -> LambdaPermission:
    """Let API Gateway invoke ``function``, but only from ``source_arn`` (one API's routes or
    one of its authorizers), so no other API in the account can."""
    return LambdaPermission(
        scope,
        id_,
        statement_id=statement_id,
        action="lambda:InvokeFunction",
        function_name=function.function_name,
        principal="apigateway.amazonaws.com",
        source_arn=source_arn,
    )


def _variables_for(spec: FunctionSpec, environment: dict[str, str]) -> dict[str, str]:
    """Exactly the variables the function's code reads, so none is forgotten or leaked, and
    the adapter's own for a function behind it."""
    names = FUNCTION_ENV[spec.key]
    missing = [name for name in names if name not in environment]
    if missing:
        raise MissingEnvironmentValue(f"{spec.key}: no value for {missing}")
    variables = {name: environment[name] for name in names}
    if spec.web_adapter:
        variables.update(ADAPTER_ENV)
    return variables
