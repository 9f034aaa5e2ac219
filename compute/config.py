"""The typed configuration of one environment: every variable of the spec, plus the switches
the issues add, validated before anything is synthesized.

Values come from ``config/<environment>.toml`` and may be overridden by environment
variables: ``COMPUTE_<FIELD>`` for every environment, ``COMPUTE_<ENV>__<FIELD>`` for one
(``COMPUTE_PROD__LAMBDA_TIMEOUT=60``), read by pydantic-settings sources. Lists and tables in
overrides are JSON, and replace the file's value whole.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from functions.contract import (
    DEFAULT_HISTORY_BUDGET_TOKENS,
    DEFAULT_STREAM_FLUSH_INTERVAL_MS,
    DEFAULT_USER_DAILY_TOKEN_LIMIT,
    DEFAULT_USER_MAX_CONCURRENT_ANSWERS,
    FUNCTIONS,
    OPENAI_API,
    VALIDATION_KEYS,
    WEBSOCKET,
)

NAME_PATTERN = r"^[a-z][a-z0-9-]*[a-z0-9]$"
# CloudWatch Logs accepts only these retention periods (0 = never expire).
LOG_RETENTION_DAYS = (
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
    2557, 2922, 3288, 3653,
)  # fmt: skip
LAMBDA_NAME_MAX = 64
ENV_PREFIX = "COMPUTE_"
# RFC 6749 section 3.3: a scope token is printable ASCII without space, '"' or '\\'.
SCOPE_PATTERN = r"^[\x21\x23-\x5B\x5D-\x7E]+$"
CLIENT_ID = r"^\S{1,256}$"
TENANT_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # Entra: a GUID
JwtProvider = Literal["generic", "cognito", "okta", "entra", "identity_center"]
ScopeList = list[Annotated[str, Field(pattern=SCOPE_PATTERN)]]
# arn:aws:signer:<region>:<account>:/signing-profiles/<profile name>/<version>
SIGNING_PROFILE_VERSION_ARN = (
    r"^arn:aws[a-z-]*:signer:[a-z]{2}(-[a-z]+)+-\d:\d{12}"
    r":/signing-profiles/\w{2,64}/[A-Za-z0-9]{10}$"
)

# arn:aws:lambda:<region>:<account>:layer:<name>:<version>
LAYER_VERSION_ARN = r"^arn:aws[a-z-]*:lambda:[a-z]{2}(-[a-z]+)+-\d:\d{12}:layer:[\w-]{1,140}:\d+$"
# The Lambda Web Adapter's public layers (AWS's account for them in the commercial regions),
# as its guide lists them: awslabs/aws-lambda-web-adapter, docs/guide/src/getting-started/
# zip-packages.md. Other partitions have other accounts: set lambda_web_adapter_layer_arn.
WEB_ADAPTER_ACCOUNT = "753240598075"
WEB_ADAPTER_VERSION = 26
WEB_ADAPTER_LAYERS = {"x86_64": "LambdaAdapterLayerX86", "arm64": "LambdaAdapterLayerArm64"}
# The openai-api function's timeout is its streaming integration's, which the pinned provider
# (6.25) validates to at most 300,000 ms even with response_transfer_mode STREAM; API Gateway
# takes 900,000 there (hashicorp/terraform-provider-aws#45472, fixed by #45482 after 6.25).
OPENAI_TIMEOUT_MAX = 300

# The issuer forms each profile's tokens carry in `iss` (docs/identity-providers.md).
ISSUER_FORMS = {
    "cognito": (
        r"^https://cognito-idp\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com(\.cn)?/"
        r"[a-z]{2}(-[a-z]+)+-\d_\w+$",
        "https://cognito-idp.<region>.amazonaws.com/<user pool id> (no trailing slash)",
    ),
    "okta": (
        r"^https://[^/\s]+/oauth2/[\w-]+$",
        "https://<okta domain>/oauth2/<authorization server id> (a custom authorization server, "
        "e.g. default; the org server's access tokens are for Okta's own APIs)",
    ),
    "entra": (
        # Any cloud's host (login.microsoftonline.us, ...), but one tenant: a multi-tenant
        # "common" or "organizations" URL is never a token's iss.
        r"^https://[^/\s]+/[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}(/v2\.0|/)$",
        "https://login.microsoftonline.com/<tenant id>/v2.0 (v2 tokens) or "
        "https://sts.windows.net/<tenant id>/ (v1 tokens, with the trailing slash)",
    ),
}
IDENTITY_CENTER_HOST = re.compile(r"^https://([\w-]+\.)*identitycenter\.amazonaws\.com(/|$)")


class ConfigError(Exception):
    """A configuration that must not be synthesized; the message names field, source and rule."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


Origin = Literal["spec", "extension"]


def _field(origin: Origin, default: Any, description: str) -> Any:
    return Field(default, description=description, json_schema_extra={"origin": origin})


def spec(default: Any, description: str) -> Any:
    """A variable of ``../shared/spec/compute-module.md``: its name and default are the spec's
    (``...``: required). ``make docs`` lists it among the spec's variables."""
    return _field("spec", default, description)


def extension(default: Any, description: str) -> Any:
    """A setting added on top of the spec (``...``: required)."""
    return _field("extension", default, description)


def field_origin(field: FieldInfo) -> Origin:
    """Whether a field is the spec's or an extension, as ``spec`` or ``extension`` marked it."""
    extra = field.json_schema_extra
    if not isinstance(extra, dict) or extra.get("origin") not in ("spec", "extension"):
        raise ValueError("every config field is declared with spec() or extension()")
    return "spec" if extra["origin"] == "spec" else "extension"


class RemoteStateS3(_Strict):
    """Another Terraform layer's state in S3, whose outputs feed this stack's inputs."""

    bucket: Annotated[str, Field(min_length=3)] = extension(
        ..., "The S3 bucket that holds the layer's state."
    )
    key: Annotated[str, Field(min_length=1)] = extension(..., "The state's object key.")
    region: str | None = extension(None, "The bucket's region; unset: `aws_region`.")
    outputs: dict[str, str] = extension(
        {},
        "Input name -> that layer's output name. Empty: each of the layer's inputs from the "
        "output of the same name; else only the inputs listed, and a networking layer lists all "
        "three.",
    )


NETWORKING_INPUTS = ("vpc_id", "private_subnet_ids", "lambda_security_group_id")
AI_SERVICES_INPUTS = ("lambda_bedrock_role_arn", "knowledge_base_id")


class RemoteState(_Strict):
    """The outer layers whose state supplies inputs; an input comes either from here or from
    the config, never both."""

    networking: RemoteStateS3 | None = extension(
        None,
        "The networking layer: `vpc_id`, `private_subnet_ids` and `lambda_security_group_id`, "
        "all three.",
    )
    ai_services: RemoteStateS3 | None = extension(
        None,
        "The AI-services layer: `lambda_bedrock_role_arn` and `knowledge_base_id`, either or both.",
    )

    @model_validator(mode="after")
    def _known_outputs(self) -> RemoteState:
        for layer, allowed in (
            ("networking", NETWORKING_INPUTS),
            ("ai_services", AI_SERVICES_INPUTS),
        ):
            source = getattr(self, layer)
            unknown = sorted(set(source.outputs) - set(allowed)) if source else []
            if unknown:
                raise ValueError(
                    f"remote_state.{layer}.outputs maps unknown inputs {unknown}; "
                    f"allowed: {list(allowed)}"
                )
        self._whole_network()
        return self

    def _whole_network(self) -> None:
        """With ``outputs`` set, a layer supplies only the inputs listed, and the others may not
        be set literally either. A function needs its VPC, subnets and security group together,
        so a networking layer that lists some of them leaves the others nowhere."""
        mapped = set(self.networking.outputs) if self.networking else set()
        missing = [name for name in NETWORKING_INPUTS if name not in mapped]
        if mapped and missing:
            raise ValueError(
                f"remote_state.networking.outputs maps {sorted(mapped)} but not {missing}: a "
                "networking layer supplies all of its inputs; map them all, or leave outputs "
                "out to read each from the output of the same name"
            )


class Backend(_Strict):
    """Where Terraform keeps this stack's state: a local file, or S3 with native locking."""

    type: Literal["local", "s3"] = extension(
        "local", "`local`: a file on this machine; `s3`: an object in S3."
    )
    path: str | None = extension(
        None, "`local` only: the state file; unset: `terraform.<stack name>.tfstate`."
    )
    bucket: str | None = extension(None, "`s3` only, required there: the state's bucket.")
    key: str | None = extension(None, "`s3` only, required there: the state's object key.")
    region: str | None = extension(None, "`s3` only: the bucket's region; unset: `aws_region`.")
    use_lockfile: bool = extension(
        True, "`s3` only: S3-native state locking (Terraform >= 1.10), no DynamoDB table."
    )

    @model_validator(mode="after")
    def _s3_needs_location(self) -> Backend:
        if self.type == "s3" and not (self.bucket and self.key):
            raise ValueError("an s3 backend needs both bucket and key")
        if self.type == "local" and (self.bucket or self.key):
            raise ValueError("bucket and key apply only to type = 's3'")
        return self


class ComputeConfig(_Strict):
    """One environment's configuration. Names and defaults follow the spec exactly."""

    # Required by the spec; the embedded defaults are the spec's usage example.
    project_name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=40)] = spec(
        "ai-assistant-cli",
        "Name of the project; with `environment`, the prefix of every resource name "
        "(`<project_name>-<environment>-<function>`).",
    )
    environment: Annotated[str, Field(pattern=NAME_PATTERN, max_length=20)] = spec(
        "dev",
        "Environment name: unless set, a config file's name (`config/prod.toml`: `prod`), or "
        "`dev` for the embedded default. The stack is `compute-<environment>`; `dev` turns "
        "deletion protection and WAF off by default.",
    )
    aws_region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = spec(
        "us-east-1",
        "AWS region of every resource, and of remote state and the S3 backend "
        "unless they name their own.",
    )
    tags: dict[str, str] = spec(
        {}, "Common tags: every resource's, with `Project` and `Environment` added."
    )
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")] | None = spec(
        None,
        "VPC ID the functions run in, with `private_subnet_ids` and "
        "`lambda_security_group_id`; unset: they run outside a VPC and reach AWS over its "
        "public endpoints.",
    )
    private_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = spec(
        [], "Private subnet IDs the functions attach to (with `vpc_id`)."
    )
    lambda_security_group_id: Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")] | None = spec(
        None, "Lambda security group ID of the functions' network interfaces (with `vpc_id`)."
    )
    lambda_bedrock_role_arn: (
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")] | None
    ) = spec(
        None,
        "Lambda IAM role ARN (the AI-services layer's) for every function, plus an inline "
        "policy on it for this stack's own resources; unset: one least-privilege role per "
        "function.",
    )
    knowledge_base_id: Annotated[str, Field(pattern=r"^[0-9A-Z]{10}$")] | None = spec(
        None,
        "Bedrock Knowledge Base ID; unset: knowledge-base features are off "
        "(`KNOWLEDGE_BASE_ID` empty, no `bedrock:Retrieve`).",
    )
    bedrock_models: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.[\w.:-]+$")]], Field(min_length=1)
    ] = spec(
        ["anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"],
        "List of Bedrock models the functions may invoke: model IDs, or cross-region inference "
        "profile IDs (`us.…`, `eu.…`).",
    )

    # Optional variables of the spec.
    lambda_runtime: Literal["python3.11", "python3.12", "python3.13"] = spec(
        "python3.11", "Lambda runtime of every function; the packages are built for it."
    )
    lambda_timeout: Annotated[int, Field(ge=1, le=900)] = spec(
        30, "Lambda timeout (seconds) of every function (see `websocket_lambda_timeout`)."
    )
    lambda_memory_size: Annotated[int, Field(ge=128, le=10240)] = spec(
        512, "Lambda memory (MB) of every function."
    )
    lambda_reserved_concurrency: Annotated[int, Field(ge=-1)] = spec(
        10, "Reserved concurrency of each function; -1: no reservation."
    )
    api_gateway_stage_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")] = spec(
        "v1", "API Gateway stage of both APIs."
    )
    api_gateway_throttle_rate_limit: Annotated[float, Field(gt=0)] = spec(
        1000, "Rate limit (requests per second) of both APIs' stages."
    )
    api_gateway_throttle_burst_limit: Annotated[int, Field(ge=0)] = spec(
        2000, "Burst limit of both APIs' stages."
    )
    dynamodb_billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"] = spec(
        "PAY_PER_REQUEST",
        "DynamoDB billing mode of every table; `PROVISIONED` uses `dynamodb_read_capacity` and "
        "`dynamodb_write_capacity`.",
    )
    dynamodb_point_in_time_recovery: bool = spec(True, "Enable PITR on every table.")
    log_retention_days: int = spec(
        30,
        "Log retention days of every log group: one of CloudWatch Logs' periods ("
        + ", ".join(str(days) for days in LOG_RETENTION_DAYS[1:])
        + "), or 0 to keep logs forever.",
    )
    identity_center_issuer_url: str = spec(
        "",
        "Identity Center issuer URL: the https issuer whose tokens the authorizer accepts (see "
        "*Identity providers*); empty: it denies every request, and synthesis warns.",
    )
    jwt_audience: str = spec(
        "",
        "JWT audience the authorizer requires in `aud`; empty: no audience check, and synthesis "
        "warns when an issuer is set.",
    )

    # Settings added on top of the spec.
    jwks_url: str = extension(
        "", "JWKS location of the issuer's keys; empty: found by OIDC discovery from the issuer."
    )
    jwt_provider: JwtProvider = extension(
        "generic",
        "Claim mapping and provider checks of the authorizer (see *Identity providers*).",
    )
    jwt_required_scopes: ScopeList = extension(
        [],
        "Scopes every token must carry (in `scope`, or `scp` as a string or a list; Entra: "
        "also `roles`).",
    )
    jwt_read_scopes: ScopeList = extension(
        [], "Extra scopes the read routes need (`contract.ROUTE_ACCESS`)."
    )
    jwt_chat_scopes: ScopeList = extension(
        [],
        "Extra scopes the chat routes and WebSocket `$connect` need (`contract.ROUTE_ACCESS`).",
    )
    jwt_allowed_client_ids: list[Annotated[str, Field(pattern=CLIENT_ID)]] = extension(
        [],
        "When set, the token's client (`client_id`, `cid`, `azp` or `appid`, per profile) must "
        "be one of these.",
    )
    jwt_allowed_tenant_ids: list[Annotated[str, Field(pattern=TENANT_ID)]] = extension(
        [],
        "`entra` only: when set, the token's `tid` must be one of these tenant GUIDs.",
    )
    jwt_require_access_token_typ: bool = extension(
        False,
        "Require the RFC 9068 header `typ` `at+jwt` (or `application/at+jwt`); off because "
        "Cognito, Okta and Entra do not send it.",
    )
    lambda_architecture: Literal["x86_64", "arm64"] = extension(
        "x86_64",
        "Architecture of every function; the packages are built from manylinux wheels of it.",
    )
    code_deployment_mode: Literal["bundled", "external"] = extension(
        "bundled",
        "`bundled`: Terraform deploys the packages it builds; `external`: a placeholder, then "
        "a pipeline's code, which Terraform leaves alone (see *Deploying code*).",
    )
    authorizer_cache_ttl_seconds: Annotated[int, Field(ge=0, le=3600)] = extension(
        300,
        "Seconds the REST API caches an authorizer result (see *Token lifetime and the "
        "authorizer cache*).",
    )
    cors_allowed_origins: Annotated[list[str], Field(min_length=1)] = extension(
        ["*"], "Origins allowed by CORS: `*`, or `scheme://host[:port]` each."
    )
    manage_api_gateway_account: bool = extension(
        True,
        "Create the account-wide CloudWatch role of API Gateway (one stack per account and "
        "region may own it).",
    )
    dynamodb_read_capacity: Annotated[int, Field(ge=1)] = extension(
        5, 'Read capacity units of each table, with `dynamodb_billing_mode = "PROVISIONED"`.'
    )
    dynamodb_write_capacity: Annotated[int, Field(ge=1)] = extension(
        5, 'Write capacity units of each table, with `dynamodb_billing_mode = "PROVISIONED"`.'
    )
    deletion_protection: bool | None = extension(
        None, "DynamoDB deletion protection; unset: on everywhere except in `dev`."
    )
    websocket_reserved_concurrency: Annotated[int, Field(ge=-1)] | None = extension(
        None,
        "The websocket function's own reserved concurrency; unset: "
        "`lambda_reserved_concurrency`. Each streamed answer holds one websocket instance for "
        "its whole duration (docs/resources.md, Capacity).",
    )
    websocket_lambda_timeout: Annotated[int, Field(ge=1, le=900)] | None = extension(
        None,
        "The websocket function's own timeout (seconds); unset: `lambda_timeout`. A streamed "
        "answer can outlast a REST call (which API Gateway cuts at 29 s), and a turn killed "
        "mid-stream stores no answer at all.",
    )
    openai_lambda_timeout: Annotated[int, Field(ge=1, le=OPENAI_TIMEOUT_MAX)] = extension(
        300,
        "The openai-api function's timeout (seconds), which is also its streaming routes' "
        "integration timeout: the longest answer a client receives. API Gateway streams for "
        f"up to 15 minutes, but the pinned AWS provider accepts at most {OPENAI_TIMEOUT_MAX} s "
        "(see *Streaming limits*).",
    )
    lambda_web_adapter_layer_arn: Annotated[str, Field(pattern=LAYER_VERSION_ARN)] | None = (
        extension(
            None,
            "The Lambda Web Adapter layer version of the openai-api function, in `aws_region`; "
            "unset: AWS's public layer for the region and `lambda_architecture` "
            f"(`arn:aws:lambda:<region>:{WEB_ADAPTER_ACCOUNT}:layer:LambdaAdapterLayerX86:"
            f"{WEB_ADAPTER_VERSION}`, `LambdaAdapterLayerArm64` on arm64; see *The Lambda Web "
            "Adapter*).",
        )
    )
    session_ttl_days: Annotated[int, Field(ge=1, le=3650)] = extension(
        30, "Days an idle session lives before DynamoDB's TTL removes it."
    )
    history_budget_tokens: Annotated[int, Field(ge=1_000, le=150_000)] = extension(
        DEFAULT_HISTORY_BUDGET_TOKENS,
        "Estimated tokens (UTF-8 bytes / 4) of history, system prompt and question sent to the "
        "model with every turn; the most recent turns that fit are sent (see *History budget*).",
    )
    websocket_flush_interval_ms: Annotated[int, Field(ge=0, le=2_000)] = extension(
        DEFAULT_STREAM_FLUSH_INTERVAL_MS,
        "Least time between two streamed text frames; text that arrives meanwhile is "
        "coalesced. 0 posts as fast as the management API answers.",
    )
    user_daily_token_limit: Annotated[int, Field(ge=0)] = extension(
        DEFAULT_USER_DAILY_TOKEN_LIMIT,
        "Model tokens one user may use per UTC day (input plus output, cached input at its "
        "rate); 0: no limit. A turn is refused with `quota_exceeded` once it is reached "
        "(docs/functions.md, Token budgets and concurrent answers).",
    )
    user_monthly_token_limit: Annotated[int, Field(ge=0)] = extension(
        0,
        "Model tokens one user may use per UTC calendar month, counted as the daily limit is; "
        "0: no limit.",
    )
    user_max_concurrent_answers: Annotated[int, Field(ge=0, le=100)] = extension(
        DEFAULT_USER_MAX_CONCURRENT_ANSWERS,
        "Answers one user may have generating at once, over all their connections and REST "
        "calls; the next is refused with `busy`. 0: no limit (docs/resources.md, Capacity).",
    )
    bedrock_guardrail_id: Annotated[str, Field(pattern=r"^[a-z0-9]{1,64}$")] | None = extension(
        None,
        "Id of a Bedrock guardrail applied to every model call (set with "
        "`bedrock_guardrail_version`); unset: none (docs/functions.md, Guardrails).",
    )
    bedrock_guardrail_version: (
        Annotated[str, Field(pattern=r"^([1-9][0-9]{0,7}|DRAFT)$")] | None
    ) = extension(None, "Version of `bedrock_guardrail_id`: a number, or `DRAFT`.")
    bedrock_prompt_caching: bool = extension(
        True,
        "Mark the system prompt and the stable history as cacheable, for the models that "
        "support Bedrock prompt caching (docs/functions.md, Prompt caching).",
    )
    title_model_id: Annotated[str, Field(pattern=r"^([a-z0-9.-]+\.[\w.:-]+)?$")] = extension(
        "anthropic.claude-3-haiku-20240307-v1:0",
        "Bedrock model (model ID or cross-region inference profile ID) that names a session "
        "after its first complete answer, when it has no title; empty: titles off. The "
        "default is the smallest, cheapest model of the default `bedrock_models`, so it needs "
        "no more model access than they do (docs/functions.md, Session titles).",
    )
    alarm_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = extension(
        None, "E-mail address subscribed to the alarm topic; unset: none."
    )
    alarm_lambda_errors_threshold: Annotated[int, Field(ge=1)] = extension(
        5, "Errors of one function in 5 minutes that raise its alarm."
    )
    alarm_lambda_duration_share: Annotated[float, Field(gt=0, le=1)] = extension(
        0.8, "Share of a function's timeout its p99 duration may reach before its alarm."
    )
    alarm_api_4xx_threshold: Annotated[int, Field(ge=1)] = extension(
        50, "4XX responses of the REST API in 5 minutes that raise its alarm."
    )
    alarm_api_5xx_threshold: Annotated[int, Field(ge=1)] = extension(
        5,
        "5XX responses of the REST API, or integration or execution errors of the WebSocket "
        "API, in 5 minutes that raise their alarms.",
    )
    waf_enabled: bool | None = extension(
        None,
        "WAFv2 web ACL on the REST stage (see *Security*); unset: on everywhere except in `dev`.",
    )
    waf_rate_limit: Annotated[int, Field(ge=10, le=2_000_000_000)] = extension(
        2000, "Requests one client IP may make in any 5-minute window before WAF blocks it."
    )
    code_signing_profile_version_arns: list[
        Annotated[str, Field(pattern=SIGNING_PROFILE_VERSION_ARN)]
    ] = extension(
        [],
        "AWS Signer profile versions "
        "(`arn:aws:signer:<region>:<account>:/signing-profiles/<name>/<version>`) whose "
        "signatures Lambda accepts; empty: no code signing.",
    )
    code_signing_policy: Literal["Enforce", "Warn"] = extension(
        "Enforce",
        "What Lambda does with a package those profiles did not sign: `Enforce` rejects it, "
        "`Warn` logs it (see *Code signing*).",
    )
    backend: Backend = extension(
        Backend(), "Where Terraform keeps this stack's state: the `[backend]` table below."
    )
    remote_state: RemoteState = extension(
        RemoteState(),
        "Other layers' S3 state whose outputs feed this stack's inputs: the `[remote_state.*]` "
        "tables below.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ComputeConfig:
        self._check_retention()
        self._check_vpc()
        self._check_names()
        self._check_remote_state()
        self._check_issuer()
        self._check_jwt()
        self._check_origins()
        self._check_signing()
        self._check_guardrail()
        self._check_web_adapter_layer()
        return self

    def _check_web_adapter_layer(self) -> None:
        """Lambda attaches layers of the function's own region only, and AWS's public adapter
        layers are built for one architecture each."""
        arn = self.lambda_web_adapter_layer_arn
        if arn is None:
            return
        _, _, _, region, account, _, name, _ = arn.split(":")
        if region != self.aws_region:
            raise ValueError(
                f"lambda_web_adapter_layer_arn is in {region}, the functions in {self.aws_region}: "
                "Lambda attaches layers of the function's region only"
            )
        wanted = WEB_ADAPTER_LAYERS[self.lambda_architecture]
        public = account == WEB_ADAPTER_ACCOUNT and name in WEB_ADAPTER_LAYERS.values()
        if public and name != wanted:
            raise ValueError(
                f"lambda_web_adapter_layer_arn names {name}, but lambda_architecture is "
                f"{self.lambda_architecture}: use {wanted}"
            )

    def _check_guardrail(self) -> None:
        if (self.bedrock_guardrail_id is None) != (self.bedrock_guardrail_version is None):
            raise ValueError(
                "bedrock_guardrail_id and bedrock_guardrail_version are set together or not at all"
            )

    def _check_retention(self) -> None:
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"log_retention_days must be one of CloudWatch's periods {LOG_RETENTION_DAYS}, "
                f"got {self.log_retention_days}"
            )

    def _check_vpc(self) -> None:
        if self.remote_state.networking:
            return
        if (self.private_subnet_ids or self.lambda_security_group_id) and not self.vpc_id:
            raise ValueError("private_subnet_ids and lambda_security_group_id need vpc_id")
        if self.vpc_id and not (self.private_subnet_ids and self.lambda_security_group_id):
            raise ValueError("vpc_id needs private_subnet_ids and lambda_security_group_id")

    def _check_names(self) -> None:
        longest = max(len(spec.suffix) for spec in FUNCTIONS)
        length = len(self.project_name) + len(self.environment) + 2 + longest
        if length > LAMBDA_NAME_MAX:
            raise ValueError(
                f"project_name and environment are too long: function names would have "
                f"{length} characters, Lambda allows {LAMBDA_NAME_MAX}"
            )

    def _check_remote_state(self) -> None:
        layers = (
            (self.remote_state.networking, NETWORKING_INPUTS),
            (self.remote_state.ai_services, AI_SERVICES_INPUTS),
        )
        for source, inputs in layers:
            clash = [name for name in inputs if source and getattr(self, name)]
            if clash:
                raise ValueError(f"{clash} are set both literally and from remote_state")

    def _check_issuer(self) -> None:
        for name in ("identity_center_issuer_url", "jwks_url"):
            url = getattr(self, name)
            if url and not re.match(r"^https://[^\s/]+(/\S*)?$", url):
                raise ValueError(f"{name} must be an https:// URL, got {url!r}")

    def _check_jwt(self) -> None:
        for name in (
            "jwt_required_scopes",
            "jwt_read_scopes",
            "jwt_chat_scopes",
            "jwt_allowed_client_ids",
            "jwt_allowed_tenant_ids",
        ):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice: {values}")
        if self.jwt_allowed_tenant_ids and self.jwt_provider != "entra":
            raise ValueError(
                f"jwt_allowed_tenant_ids applies only to jwt_provider = 'entra' (tokens with a "
                f"tid), not {self.jwt_provider!r}"
            )
        issuer = self.identity_center_issuer_url
        if self.jwt_provider == "identity_center" and issuer and not self.jwt_audience:
            raise ValueError(
                "jwt_provider 'identity_center' needs jwt_audience: Identity Center matches the "
                "trusted token issuer's tokens on aud, and so does this API"
            )
        if self.jwt_provider == "identity_center" and issuer and self.issuer_is_identity_center:
            raise ValueError(
                f"jwt_provider 'identity_center' takes the trusted token issuer's URL (Okta, "
                f"Entra, Cognito...), not Identity Center's own {issuer!r} "
                "(docs/identity-providers.md, Identity Center)"
            )
        rule = ISSUER_FORMS.get(self.jwt_provider)
        if issuer and rule and not re.match(rule[0], issuer):
            raise ValueError(
                f"identity_center_issuer_url for jwt_provider {self.jwt_provider!r} must look "
                f"like {rule[1]}, got {issuer!r}"
            )

    def _check_signing(self) -> None:
        if (
            self.uses_code_signing
            and self.code_signing_policy == "Enforce"
            and self.code_deployment_mode == "bundled"
        ):
            raise ValueError(
                "code_signing_policy 'Enforce' rejects the unsigned packages Terraform deploys in "
                "bundled mode: use 'Warn', or code_deployment_mode = 'external' with a signing "
                "pipeline (docs/security.md, Code signing)"
            )

    def _check_origins(self) -> None:
        for origin in self.cors_allowed_origins:
            if origin != "*" and not re.match(r"^https?://[^\s/]+$", origin):
                raise ValueError(
                    f"cors_allowed_origins entries must be '*' or scheme://host[:port], "
                    f"got {origin!r}"
                )

    # Derived settings the constructs read.
    @property
    def prefix(self) -> str:
        return f"{self.project_name}-{self.environment}"

    @property
    def stack_name(self) -> str:
        return f"compute-{self.environment}"

    @property
    def uses_vpc(self) -> bool:
        return bool(self.vpc_id or self.remote_state.networking)

    @property
    def deletion_protection_enabled(self) -> bool:
        if self.deletion_protection is None:
            return self.environment != "dev"
        return self.deletion_protection

    @property
    def uses_waf(self) -> bool:
        if self.waf_enabled is None:
            return self.environment != "dev"
        return self.waf_enabled

    @property
    def service_name(self) -> str:
        """Powertools' service name, the ``service`` dimension of the functions' metrics."""
        return self.project_name

    @property
    def metrics_namespace(self) -> str:
        """The CloudWatch namespace of the functions' EMF metrics."""
        return self.project_name

    def reserved_concurrency_for(self, function_key: str) -> int:
        """A function's reserved concurrency (-1: none): the shared one, or its own override."""
        if function_key == WEBSOCKET.key and self.websocket_reserved_concurrency is not None:
            return self.websocket_reserved_concurrency
        return self.lambda_reserved_concurrency

    def timeout_for(self, function_key: str) -> int:
        """Seconds a function may run: ``lambda_timeout``, or its own override."""
        if function_key == WEBSOCKET.key and self.websocket_lambda_timeout is not None:
            return self.websocket_lambda_timeout
        if function_key == OPENAI_API.key:
            return self.openai_lambda_timeout
        return self.lambda_timeout

    @property
    def web_adapter_layer_arn(self) -> str:
        """The adapter layer of the ``web_adapter`` functions: the configured one, or AWS's."""
        if self.lambda_web_adapter_layer_arn is not None:
            return self.lambda_web_adapter_layer_arn
        return web_adapter_layer(self.aws_region, self.lambda_architecture)

    @property
    def jwt_validation(self) -> str:
        """The authorizer's ``JWT_VALIDATION``: the jwt_* rules as one JSON object."""
        rules = {key: getattr(self, f"jwt_{key}") for key in VALIDATION_KEYS}
        return json.dumps(rules, sort_keys=True, separators=(",", ":"))

    @property
    def issuer_is_identity_center(self) -> bool:
        """The issuer is an IAM Identity Center instance URL rather than an external IdP's."""
        return bool(IDENTITY_CENTER_HOST.match(self.identity_center_issuer_url))

    @property
    def uses_code_signing(self) -> bool:
        return bool(self.code_signing_profile_version_arns)

    def package_runtimes(self) -> tuple[str, ...]:
        """The runtimes the function packages are built for: an environment's own."""
        return (self.lambda_runtime,)


def web_adapter_layer(region: str, architecture: str) -> str:
    """AWS's public Lambda Web Adapter layer for a region and architecture (any may be a
    Terraform expression)."""
    name = WEB_ADAPTER_LAYERS[architecture]
    return f"arn:aws:lambda:{region}:{WEB_ADAPTER_ACCOUNT}:layer:{name}:{WEB_ADAPTER_VERSION}"


# Loading -------------------------------------------------------------------------------


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> ComputeConfig:
    """Read one environment's file, apply overrides, validate; raise ConfigError on any fault."""
    data = _read_toml(path)
    data.setdefault("environment", path.stem)
    return _validate(data, str(path), environ)


def default_config(environ: Mapping[str, str] | None = None) -> ComputeConfig:
    """The embedded default: the spec's usage example, synthesizable with no input at all."""
    return _validate({}, "the embedded default", environ)


def _validate(
    data: dict[str, Any], source: str, environ: Mapping[str, str] | None
) -> ComputeConfig:
    environ = os.environ if environ is None else environ
    environment = str(data.get("environment", ComputeConfig.model_fields["environment"].default))
    overrides = _overrides(environment, environ)
    values = {name: override.value for name, override in overrides.items()}
    try:
        return ComputeConfig.model_validate({**data, **values})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, overrides)) from None


def load_environments(
    config_dir: Path, environ: Mapping[str, str] | None = None
) -> list[ComputeConfig]:
    """Every ``*.toml`` in ``config_dir`` (or those ``COMPUTE_ENVIRONMENTS`` names), all
    validated before the caller synthesizes any."""
    environ = os.environ if environ is None else environ
    files = sorted(config_dir.glob("*.toml"))
    wanted = [
        name.strip() for name in environ.get("COMPUTE_ENVIRONMENTS", "").split(",") if name.strip()
    ]
    if wanted:
        known = {file.stem: file for file in files}
        missing = [name for name in wanted if name not in known]
        if missing:
            raise ConfigError(
                f"COMPUTE_ENVIRONMENTS names {missing}, but {config_dir} has only {sorted(known)}"
            )
        files = [known[name] for name in wanted]
    if not files:
        return [default_config(environ)]
    configs = [load_config(file, environ) for file in files]
    _check_unique(configs, files)
    return configs


def _check_unique(configs: list[ComputeConfig], files: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for config, file in zip(configs, files, strict=True):
        if config.stack_name in seen:
            other = seen[config.stack_name]
            raise ConfigError(
                f"{file}: environment {config.environment!r} is also defined by {other}"
            )
        seen[config.stack_name] = file


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


class _Variables(ComputeConfig, BaseSettings):
    """ComputeConfig's fields as pydantic-settings sees them. The sources read only its fields
    and settings, so its validator is never built (``defer_build``) and it is never created."""

    model_config = SettingsConfigDict(case_sensitive=True, defer_build=True)


class _Overrides(PydanticBaseSettingsSource):
    """The ``<prefix><FIELD>`` variables of a given mapping (``os.environ``, or the tests'),
    with lists and tables decoded from JSON by pydantic-settings.

    A source of its own rather than ``EnvSettingsSource``, which reads only ``os.environ``.
    Names are matched exactly, upper case (``COMPUTE_LAMBDA_TIMEOUT``): a case-insensitive
    match would also take ``compute_lambda_timeout``, and match the keys of a JSON table
    case-insensitively, where validation rejects unknown keys.
    """

    def __init__(self, environ: Mapping[str, str], prefix: str) -> None:
        super().__init__(_Variables)
        self._environ = environ
        self.prefix = prefix

    def variable(self, field_name: str) -> str:
        return f"{self.prefix}{field_name.upper()}"

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._environ.get(self.variable(field_name)), field_name, False

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value  # not JSON: validation rejects it as the field's type, naming the variable

    def __call__(self) -> dict[str, Any]:
        """Each field whose variable is set, its value decoded from JSON where the field is a
        list, a table or a model (pydantic-settings' ``field_is_complex``)."""
        found: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, value_is_complex = self.get_field_value(field, field_name)
            value = self.prepare_field_value(field_name, field, value, value_is_complex)
            if value is not None:
                found[key] = value
        return found


class _EnvironmentOverrides(_Overrides):
    """One environment's own ``COMPUTE_<ENV>__<FIELD>`` variables (``COMPUTE_PROD_EU__`` for
    ``prod-eu``)."""

    def __init__(self, environ: Mapping[str, str], environment: str) -> None:
        scope = environment.upper().replace("-", "_")
        super().__init__(environ, f"{ENV_PREFIX}{scope}__")


class Override(NamedTuple):
    """One field's value from the environment, and the variable that set it (for errors)."""

    variable: str
    value: Any


def _overrides(environment: str, environ: Mapping[str, str]) -> dict[str, Override]:
    """Overrides by field, each with the variable it came from: the per-environment form wins
    over the global one. The sources are layered here rather than by ``BaseSettings()``,
    which deep-merges tables: an override replaces a table whole, as the file's value."""
    found: dict[str, Override] = {}
    for source in (_Overrides(environ, ENV_PREFIX), _EnvironmentOverrides(environ, environment)):
        for name, value in source().items():
            found[name] = Override(source.variable(name), value)
    return found


def _describe(exc: ValidationError, source: str, overrides: dict[str, Override]) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(file)"
        top = str(error["loc"][0]) if error["loc"] else ""
        origin = f"{overrides[top].variable} (overriding {source})" if top in overrides else source
        rule = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            rule = "unknown key"
        elif isinstance(error.get("input"), str | int | float | bool):
            rule += f" (got {error['input']!r})"
        lines.append(f"{origin}: {field}: {rule}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
