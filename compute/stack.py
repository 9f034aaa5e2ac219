"""The compute stack: wires the KMS key, storage, logs, IAM, functions, both APIs, the
optional web firewall, alarms and the dashboard together, and declares the spec's outputs."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import (
    Annotations,
    App,
    DataTerraformRemoteStateS3,
    LocalBackend,
    S3Backend,
    TerraformOutput,
    TerraformStack,
)
from constructs import Construct

from compute.alarms import Alarms, Monitored
from compute.attachments import AttachmentsBucket
from compute.cleanup import SessionCleanup
from compute.config import AI_SERVICES_INPUTS, NETWORKING_INPUTS, ComputeConfig, RemoteStateS3
from compute.dashboard import Dashboard
from compute.encryption import PaginationKey, StackKey
from compute.expressions import joined, optional_text, text
from compute.firewall import WebFirewall
from compute.lambdas import Functions, Network
from compute.logs import LogGroups, log_group_names
from compute.provider import (
    AwsProvider,
    AwsProviderDefaultTags,
    DataAwsCallerIdentity,
    DataAwsPartition,
)
from compute.rest_api import RestApi, api_gateway_account
from compute.security import FunctionRoles, Grants
from compute.storage import Storage
from compute.websocket_api import WebSocketApi
from functions.contract import AUTHORIZER, CLEANUP, MAIN, OPENAI_API, TABLES, WEBSOCKET, Env

NO_ISSUER_WARNING = (
    "{stack}: identity_center_issuer_url is empty, so the JWT authorizer denies every "
    "request. Set it in config/{env}.toml before real users arrive."
)
NO_AUDIENCE_WARNING = (
    "{stack}: jwt_audience is empty while identity_center_issuer_url is set, so the JWT "
    "authorizer of environment {env} accepts tokens {issuer} minted for any of its APIs and "
    "clients (no aud check). Set jwt_audience in config/{env}.toml to this API's identifier."
)
IDENTITY_CENTER_ISSUER_WARNING = (
    "{stack}: identity_center_issuer_url {issuer} is IAM Identity Center itself. AWS documents no "
    "OIDC discovery or JWKS there for other APIs, and its CreateTokenWithIAM tokens are meant for "
    "AWS services; if discovery fails the authorizer denies every request. Configure the trusted "
    "token issuer (Okta, Entra, Cognito...) instead (docs/identity-providers.md, Identity Center)."
)
UNSIGNED_CODE_WARNING = (
    "{stack}: code_signing_policy is Enforce, so Lambda rejects the unsigned packages "
    "Terraform deploys ({mode} mode): deploy packages signed by the configured profiles "
    "(docs/security.md, Code signing)."
)

UNSIGNED_LAYER_WARNING = (
    "{stack}: code_signing_policy is Enforce, and Lambda checks a function's layers too: AWS's "
    "public Lambda Web Adapter layer is not signed by the configured profiles, so the "
    "openai-api function cannot be deployed with it. Publish a signed copy and set "
    "lambda_web_adapter_layer_arn (docs/security.md, Code signing)."
)


# The spec's outputs (and the cleanup function's name), described in every stack and the module.
OUTPUT_DESCRIPTIONS = {
    "api_gateway_rest_api_url": "REST API URL: the stage's invoke URL (routes under /api/v1)",
    "api_gateway_websocket_url": "WebSocket API URL (wss://), the stage's invoke URL",
    "lambda_main_function_name": "Main function name (the FastAPI backend of the REST API)",
    "lambda_websocket_function_name": "WebSocket function name (streamed chat turns)",
    "lambda_jwt_authorizer_function_name": "Authorizer function name (JWT validation)",
    "lambda_session_cleanup_function_name": (
        "Session cleanup function name (deletes a removed session's messages)"
    ),
    "dynamodb_sessions_table_name": "Sessions table name",
    "s3_attachments_bucket_name": "Attachments bucket name (presigned uploads, per session)",
    "s3_attachments_bucket_arn": "Attachments bucket ARN",
    "compute_config": "Everything another layer needs to integrate with this one",
}


class IncompleteNetwork(Exception):
    """The functions are to run in a VPC, but their subnets or security group are missing.
    The config rejects this; synthesizing them outside the VPC instead would hide it."""


@dataclass(frozen=True)
class Inputs:
    """The outer layers' inputs: literals from config, or references to their remote state."""

    network: Network | None  # None: the functions run outside any VPC
    role_arn: str | None
    knowledge_base_id: str | None


class ComputeStack(TerraformStack):
    """One environment of the compute module."""

    def __init__(
        self, scope: Construct, config: ComputeConfig, stack_id: str | None = None
    ) -> None:
        super().__init__(scope, stack_id or config.stack_name)
        self.config = config = self._configure(config)
        self._backend()
        self._providers()
        inputs = self._inputs()
        partition = DataAwsPartition(self, "partition").partition
        account_id = DataAwsCallerIdentity(self, "caller").account_id
        self.key = StackKey(
            self,
            "encryption",
            config=config,
            partition=partition,
            account_id=account_id,
            log_group_names=list(log_group_names(config).values()),
        )
        # The HMAC key that the main function derives its pagination-token key from
        # (Env.PAGINATION_KEY_ARN): the secret stays in KMS, out of state and environment.
        self.pagination_key = PaginationKey(
            self, "pagination", config=config, partition=partition, account_id=account_id
        )
        self.storage = Storage(self, "storage", config=config, key_arn=self.key.arn)
        self.attachments = AttachmentsBucket(
            self, "attachments", config=config, key_arn=self.key.arn
        )
        self.logs = LogGroups(self, "logs", config=config, key=self.key)
        account = (
            api_gateway_account(self, config, partition=partition, account_id=account_id)
            if config.manage_api_gateway_account
            else None
        )
        self.websocket = WebSocketApi(
            self, "websocket", config=config, access_logs=self.logs.websocket_api, account=account
        )
        self.cleanup = SessionCleanup(self, "cleanup", config=config, key_arn=self.key.arn)
        self.roles = FunctionRoles(
            self,
            "roles",
            config=config,
            grants=Grants(
                partition=partition,
                account_id=account_id,
                tables=self.storage.tables,
                log_group_arns={key: group.arn for key, group in self.logs.functions.items()},
                knowledge_base_id=inputs.knowledge_base_id,
                websocket_connections_arn=self.websocket.connections_arn,
                vpc=inputs.network is not None,
                key_arn=self.key.arn,
                cleanup_failures_arn=self.cleanup.failures.arn,
                pagination_key_arn=self.pagination_key.arn,
                attachments_bucket_arn=self.attachments.arn,
            ),
            external_role_arn=inputs.role_arn,
        )
        self.functions = Functions(
            self,
            "functions",
            config=config,
            role_arns=self.roles.role_arns,
            log_groups=self.logs.functions,
            policies=self.roles.policies,
            environment=self._environment(inputs),
            network=inputs.network,
            key_arn=self.key.arn,
        )
        functions = self.functions.functions
        self.cleanup.connect(function=functions[CLEANUP.key], sessions=self.storage.sessions)
        self.websocket.connect(
            handler=functions[WEBSOCKET.key], authorizer=functions[AUTHORIZER.key]
        )
        self.rest = RestApi(
            self,
            "rest",
            config=config,
            main=functions[MAIN.key],
            openai=functions[OPENAI_API.key],
            authorizer=functions[AUTHORIZER.key],
            access_logs=self.logs.rest_api,
            account=account,
        )
        if self.logs.waf is not None:
            WebFirewall(
                self, "firewall", config=config, stage=self.rest.stage, log_group=self.logs.waf
            )
        watched = Monitored(
            functions=functions,
            rest_api_name=self.rest.api.name,
            rest_stage_name=self.rest.stage.stage_name,
            websocket_api_id=self.websocket.api.id,
            websocket_stage_name=self.websocket.stage.name,
            tables=self.storage.tables,
            cleanup_failures_queue_name=self.cleanup.failures.name,
        )
        self.alarms = Alarms(self, "alarms", config=config, watched=watched, stack_key=self.key)
        self.dashboard = Dashboard(self, "dashboard", config=config, watched=watched)
        self._outputs()
        if not config.identity_center_issuer_url:
            self._warn(NO_ISSUER_WARNING.format(stack=config.stack_name, env=config.environment))
        elif not config.jwt_audience:
            self._warn(
                NO_AUDIENCE_WARNING.format(
                    stack=config.stack_name,
                    env=config.environment,
                    issuer=config.identity_center_issuer_url,
                )
            )
        if config.issuer_is_identity_center:
            self._warn(
                IDENTITY_CENTER_ISSUER_WARNING.format(
                    stack=config.stack_name, issuer=config.identity_center_issuer_url
                )
            )
        if config.uses_code_signing and config.code_signing_policy == "Enforce":
            self._warn(
                UNSIGNED_CODE_WARNING.format(
                    stack=config.stack_name, mode=config.code_deployment_mode
                )
            )
            if config.lambda_web_adapter_layer_arn is None:
                self._warn(UNSIGNED_LAYER_WARNING.format(stack=config.stack_name))

    def _configure(self, config: ComputeConfig) -> ComputeConfig:
        """The settings the constructs read: an environment's literals (the module declares
        its variables here and hands back their expressions)."""
        return config

    def _providers(self) -> None:
        config = self.config
        AwsProvider(
            self,
            "aws",
            region=config.aws_region,
            default_tags=[AwsProviderDefaultTags(tags=self.tags)],
        )

    @property
    def tags(self) -> dict[str, str]:
        """Every resource's tags: the configured ones with ``Project`` and ``Environment``."""
        config = self.config
        return {**config.tags, "Project": config.project_name, "Environment": config.environment}

    def _warn(self, message: str) -> None:
        """Annotate the stack and print the warning on stdout: the CDKTF CLI shows everything
        the app writes to stderr as an ``[ERROR]``, and a warning is not one."""
        Annotations.of(self).add_warning(message)
        print(f"warning: {message}")

    def _backend(self) -> None:
        backend = self.config.backend
        if backend.type == "s3":
            s3 = S3Backend(
                self,
                bucket=backend.bucket,
                key=backend.key,
                region=backend.region or self.config.aws_region,
                encrypt=True,
            )
            # S3-native state locking (Terraform >= 1.10); the bindings predate the option.
            s3.add_override("use_lockfile", backend.use_lockfile)
        else:
            LocalBackend(self, path=backend.path or f"terraform.{self.config.stack_name}.tfstate")

    def _remote(self, id_: str, source: RemoteStateS3) -> DataTerraformRemoteStateS3:
        return DataTerraformRemoteStateS3(
            self,
            id_,
            bucket=source.bucket,
            key=source.key,
            region=source.region or self.config.aws_region,
        )

    def _remote_outputs(self) -> dict[str, tuple[DataTerraformRemoteStateS3, str]]:
        """Input name -> (its layer's remote state, that layer's output) for every input a
        layer supplies: all of its inputs by their own names, or only those ``outputs`` maps."""
        remote_state = self.config.remote_state
        layers = (
            ("networking", remote_state.networking, NETWORKING_INPUTS),
            ("ai-services", remote_state.ai_services, AI_SERVICES_INPUTS),
        )
        supplied: dict[str, tuple[DataTerraformRemoteStateS3, str]] = {}
        for id_, source, names in layers:
            if source is None:
                continue
            state = self._remote(f"remote-state-{id_}", source)
            for name in names:
                if not source.outputs or name in source.outputs:
                    supplied[name] = (state, source.outputs.get(name, name))
        return supplied

    def _inputs(self) -> Inputs:
        """Each input from the remote state that supplies it, else the config's literal."""
        config = self.config
        remote = self._remote_outputs()

        def string(name: str, literal: str | None) -> str | None:
            if name not in remote:
                return literal
            state, output = remote[name]
            return state.get_string(output)

        def strings(name: str, literal: list[str]) -> list[str]:
            if name not in remote:
                return list(literal)
            state, output = remote[name]
            return state.get_list(output)

        return Inputs(
            network=self._network(
                subnet_ids=strings("private_subnet_ids", config.private_subnet_ids),
                security_group_id=string(
                    "lambda_security_group_id", config.lambda_security_group_id
                ),
            ),
            role_arn=string("lambda_bedrock_role_arn", config.lambda_bedrock_role_arn),
            knowledge_base_id=string("knowledge_base_id", config.knowledge_base_id),
        )

    def _network(self, *, subnet_ids: list[str], security_group_id: str | None) -> Network | None:
        """Where the functions attach when the config puts them in a VPC; raise rather than
        synthesize them outside it (with VPC grants on their roles) when a part is missing."""
        if not self.config.uses_vpc:
            return None
        if not (subnet_ids and security_group_id):
            parts = {
                "private_subnet_ids": subnet_ids,
                "lambda_security_group_id": security_group_id,
            }
            missing = [name for name, value in parts.items() if not value]
            raise IncompleteNetwork(
                f"{self.config.stack_name}: the functions run in a VPC, but {missing} come from "
                "neither the config nor remote_state.networking"
            )
        return Network(subnet_ids=subnet_ids, security_group_ids=[security_group_id])

    def _environment(self, inputs: Inputs) -> dict[str, str]:
        """Every variable any function reads; each function gets its own subset."""
        config = self.config
        tables = {schema.env: self.storage.tables[schema.suffix].name for schema in TABLES}
        return {
            **tables,
            Env.BEDROCK_MODELS: joined(config.bedrock_models),
            Env.KNOWLEDGE_BASE_ID: inputs.knowledge_base_id or "",
            Env.SESSION_TTL_DAYS: text(config.session_ttl_days),
            Env.HISTORY_BUDGET_TOKENS: text(config.history_budget_tokens),
            Env.USER_DAILY_TOKEN_LIMIT: text(config.user_daily_token_limit),
            Env.USER_MONTHLY_TOKEN_LIMIT: text(config.user_monthly_token_limit),
            Env.USER_MAX_CONCURRENT_ANSWERS: text(config.user_max_concurrent_answers),
            Env.BEDROCK_GUARDRAIL_ID: optional_text(config.bedrock_guardrail_id),
            Env.BEDROCK_GUARDRAIL_VERSION: optional_text(config.bedrock_guardrail_version),
            Env.BEDROCK_PROMPT_CACHING: text(config.bedrock_prompt_caching),
            Env.TITLE_MODEL_ID: text(config.title_model_id),
            Env.STREAM_FLUSH_INTERVAL_MS: text(config.websocket_flush_interval_ms),
            Env.PAGINATION_KEY_ARN: self.pagination_key.arn,
            Env.ATTACHMENTS_BUCKET: self.attachments.name,
            Env.CORS_ALLOWED_ORIGINS: joined(config.cors_allowed_origins),
            Env.WEBSOCKET_CALLBACK_URL: self.websocket.callback_url,
            Env.JWT_ISSUER: config.identity_center_issuer_url,
            Env.JWT_AUDIENCE: config.jwt_audience,
            Env.JWKS_URL: config.jwks_url,
            Env.JWT_VALIDATION: config.jwt_validation,
            Env.POWERTOOLS_SERVICE_NAME: config.service_name,
            Env.POWERTOOLS_METRICS_NAMESPACE: config.metrics_namespace,
        }

    def _outputs(self) -> None:
        config = self.config
        functions = self.functions.functions
        names = {key: function.function_name for key, function in functions.items()}
        outputs = {
            "api_gateway_rest_api_url": self.rest.stage.invoke_url,
            "api_gateway_websocket_url": self.websocket.stage.invoke_url,
            "lambda_main_function_name": names[MAIN.key],
            "lambda_websocket_function_name": names[WEBSOCKET.key],
            "lambda_jwt_authorizer_function_name": names[AUTHORIZER.key],
            "lambda_session_cleanup_function_name": names[CLEANUP.key],
            "dynamodb_sessions_table_name": self.storage.sessions.name,
            "s3_attachments_bucket_name": self.attachments.name,
            "s3_attachments_bucket_arn": self.attachments.arn,
        }
        for name, value in outputs.items():
            TerraformOutput(self, name, value=value, description=OUTPUT_DESCRIPTIONS[name])
        TerraformOutput(
            self,
            "compute_config",
            description=OUTPUT_DESCRIPTIONS["compute_config"],
            value={
                "project_name": config.project_name,
                "environment": config.environment,
                "aws_region": config.aws_region,
                "api_gateway_stage_name": config.api_gateway_stage_name,
                "code_deployment_mode": config.code_deployment_mode,
                **outputs,
                "dynamodb_table_names": {s: t.name for s, t in self.storage.tables.items()},
                "alarm_topic_arn": self.alarms.topic.arn,
                "dashboard_name": self.dashboard.dashboard.dashboard_name,
                "session_cleanup_failures_queue_url": self.cleanup.failures.url,
                "lambda_functions": {
                    key: {
                        "name": function.function_name,
                        "arn": function.arn,
                        "memory_size": config.lambda_memory_size,
                        "timeout": config.timeout_for(key),
                        "architecture": config.lambda_architecture,
                        "runtime": config.lambda_runtime,
                    }
                    for key, function in functions.items()
                },
            },
        )


def build_app(configs: list[ComputeConfig], outdir: str | None = None) -> App:
    """One stack per environment in one app, so one ``cdktf synth`` covers them all."""
    # Stack traces in annotations name temporary folders and would make cdktf.out differ.
    context = {"@cdktf/disable_stack_trace_in_metadata": True}
    app = App(outdir=outdir, context=context) if outdir else App(context=context)
    for config in configs:
        ComputeStack(app, config)
    return app
