"""A reading of one synthesized stack: each function, the statements of its role, its
environment, and every Terraform reference turned into the concrete value AWS would see.

The security and contract tests read only this JSON, never ``compute/``, so they follow the
stack as it changes and fail when it drifts from the code. References are made concrete with
a fixed account, the ``aws`` partition and made-up ids for what only AWS assigns (API ids, KMS
key ids), so a policy can be evaluated against the ARN a request really names. A reference
this module does not know (someone else's resource, a data source) is an error: the policies
may only name this stack's own resources.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compute.config import ComputeConfig
from functions.contract import FUNCTIONS, TABLES, Env, FunctionSpec
from tests.compute.synth import Synth, environment_config, shared_synth

ACCOUNT = "123456789012"
PARTITION = "aws"
# DynamoDB names a stream by the time it was enabled (table/<name>/stream/<label>); the
# concrete ARNs use this made-up label, and recorded calls are read with it (iam.py).
STREAM_LABEL = "2026-01-01T00:00:00.000"

_REFERENCE = re.compile(r"\$\{(?P<data>data\.)?(?P<kind>\w+)\.(?P<id>[\w-]+)\.(?P<attr>\w+)\}")
_CALLBACK_URL = re.compile(
    r'^\$\{replace\(aws_apigatewayv2_stage\.(?P<id>[\w-]+)\.invoke_url, "wss://", "https://"\)\}$'
)


class UnknownReference(AssertionError):
    """A value names something that is not one of this stack's own resources."""


@dataclass(frozen=True)
class Statement:
    """One statement of a synthesized ``data.aws_iam_policy_document``."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    raw: Mapping[str, Any]

    @property
    def widened(self) -> dict[str, Any]:
        """The IAM JSON of this statement with every resource widened to ``*`` (see moto)."""
        return {"Sid": self.sid, "Effect": "Allow", "Action": list(self.actions), "Resource": "*"}


@dataclass(frozen=True)
class MacKey:
    """A KMS HMAC key of the stack, as the enforcing moto server must hold it: under the
    made-up ARN the stack's references resolve to, so the code calls exactly that ARN."""

    arn: str
    key_spec: str
    key_usage: str


@dataclass(frozen=True)
class WebSocketStage:
    """The one stage of the WebSocket API, whose ``@connections`` the function posts to."""

    resource_id: str
    name: str
    api_resource_id: str


class Stack:
    """One synthesized environment and the config it came from."""

    def __init__(self, config: ComputeConfig, synth: Synth) -> None:
        self.config = config
        self.synth = synth

    # ---- raw JSON ------------------------------------------------------------------------

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.synth.get("resource", {}).get(kind, {})

    def data(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.synth.get("data", {}).get(kind, {})

    def function_id(self, spec: FunctionSpec) -> str:
        """The logical id of the ``aws_lambda_function`` named ``${project}-${env}-<suffix>``."""
        name = f"{self.config.prefix}-{spec.suffix}"
        functions = self.resources("aws_lambda_function")
        found = [id_ for id_, f in functions.items() if f["function_name"] == name]
        assert len(found) == 1, f"expected one function named {name}, found {found}"
        return found[0]

    def function(self, spec: FunctionSpec) -> dict[str, Any]:
        return self.resources("aws_lambda_function")[self.function_id(spec)]

    def role_id(self, spec: FunctionSpec) -> str:
        """The logical id of the ``aws_iam_role`` the function runs with (created here)."""
        role = self.function(spec)["role"]
        match = re.fullmatch(r"\$\{aws_iam_role\.([\w-]+)\.arn\}", role)
        assert match, f"{spec.key} runs with {role!r}, not a role this stack creates"
        return match[1]

    def role_policies(self, spec: FunctionSpec) -> list[dict[str, Any]]:
        role = f"${{aws_iam_role.{self.role_id(spec)}.id}}"
        return [p for p in self.resources("aws_iam_role_policy").values() if p["role"] == role]

    def statements(self, spec: FunctionSpec) -> list[Statement]:
        """Every statement of every inline policy on the function's role."""
        statements: list[Statement] = []
        for policy in self.role_policies(spec):
            match = re.fullmatch(
                r"\$\{data\.aws_iam_policy_document\.([\w-]+)\.json\}", policy["policy"]
            )
            assert match, f"policy of {spec.key} is not a policy document of this stack"
            for index, raw in enumerate(
                self.data("aws_iam_policy_document")[match[1]]["statement"]
            ):
                statements.append(
                    Statement(
                        sid=raw.get("sid") or f"Statement{index}",
                        actions=tuple(raw.get("actions", ())),
                        resources=tuple(raw.get("resources", ())),
                        raw=raw,
                    )
                )
        return statements

    def tables(self) -> dict[str, dict[str, Any]]:
        """Every ``aws_dynamodb_table``, keyed by its table name."""
        return {table["name"]: table for table in self.resources("aws_dynamodb_table").values()}

    def websocket_stage(self) -> WebSocketStage:
        apis = [
            id_
            for id_, api in self.resources("aws_apigatewayv2_api").items()
            if api.get("protocol_type") == "WEBSOCKET"
        ]
        assert len(apis) == 1, f"expected one WebSocket API, found {apis}"
        api_ref = f"${{aws_apigatewayv2_api.{apis[0]}.id}}"
        stages = [
            (id_, stage["name"])
            for id_, stage in self.resources("aws_apigatewayv2_stage").items()
            if stage["api_id"] == api_ref
        ]
        assert len(stages) == 1, f"expected one stage of the WebSocket API, found {stages}"
        return WebSocketStage(stages[0][0], stages[0][1], apis[0])

    # ---- concrete values -----------------------------------------------------------------

    @property
    def region(self) -> str:
        return self.config.aws_region

    def api_id(self, resource_id: str) -> str:
        """A made-up API id, distinct per API resource (AWS assigns the real one)."""
        return hashlib.sha256(resource_id.encode()).hexdigest()[:10]

    def concrete(self, value: str) -> str:
        """``value`` with every reference to this stack's resources replaced by its value."""
        return _REFERENCE.sub(self._resolve, value)

    def _resolve(self, match: re.Match[str]) -> str:
        kind, id_, attr = match["kind"], match["id"], match["attr"]
        key = (bool(match["data"]), kind, attr)
        region, account = self.region, ACCOUNT
        if key == (True, "aws_partition", "partition"):
            return PARTITION
        if key == (True, "aws_caller_identity", "account_id"):
            return account
        resource = self.resources(kind).get(id_) if not match["data"] else None
        if resource is None:
            raise UnknownReference(f"{match[0]} is not a resource of this stack")
        values = {
            ("aws_dynamodb_table", "arn"): lambda: (
                f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{resource['name']}"
            ),
            ("aws_dynamodb_table", "name"): lambda: resource["name"],
            ("aws_dynamodb_table", "stream_arn"): lambda: (
                f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{resource['name']}"
                f"/stream/{STREAM_LABEL}"
            ),
            ("aws_sqs_queue", "arn"): lambda: (
                f"arn:{PARTITION}:sqs:{region}:{account}:{resource['name']}"
            ),
            ("aws_cloudwatch_log_group", "arn"): lambda: (
                f"arn:{PARTITION}:logs:{region}:{account}:log-group:{resource['name']}"
            ),
            ("aws_apigatewayv2_api", "execution_arn"): lambda: (
                f"arn:{PARTITION}:execute-api:{region}:{account}:{self.api_id(id_)}"
            ),
            ("aws_apigatewayv2_api", "id"): lambda: self.api_id(id_),
            ("aws_apigatewayv2_stage", "name"): lambda: resource["name"],
            ("aws_s3_bucket", "arn"): lambda: f"arn:{PARTITION}:s3:::{resource['bucket']}",
            ("aws_s3_bucket", "bucket"): lambda: resource["bucket"],
            ("aws_kms_key", "arn"): lambda: (
                f"arn:{PARTITION}:kms:{region}:{account}:key/{self.api_id(id_)}"
            ),
        }
        value = values.get((kind, attr))
        if value is None:
            raise UnknownReference(f"{match[0]}: no concrete value known for {kind}.{attr}")
        return value()

    def environment(self, spec: FunctionSpec, websocket_callback_url: str) -> dict[str, str]:
        """The function's ``environment.variables`` as Lambda would see them.

        The callback URL is the stage's https URL; here it is the caller's stand-in, and only
        if the expression names this stack's WebSocket stage.
        """
        variables = self.function(spec).get("environment", {}).get("variables", {})
        resolved: dict[str, str] = {}
        for name, value in variables.items():
            callback = _CALLBACK_URL.fullmatch(value)
            if callback:
                stage = self.websocket_stage()
                assert callback["id"] == stage.resource_id, f"{name} names another stage"
                resolved[name] = websocket_callback_url
            else:
                resolved[name] = self.concrete(value)
        return resolved

    def mac_keys(self) -> list[MacKey]:
        """Every HMAC key of the stack (the pagination key), with its concrete ARN."""
        return [
            MacKey(
                arn=self.concrete(f"${{aws_kms_key.{id_}.arn}}"),
                key_spec=key["customer_master_key_spec"],
                key_usage=key["key_usage"],
            )
            for id_, key in self.resources("aws_kms_key").items()
            if key.get("key_usage") == "GENERATE_VERIFY_MAC"
        ]

    def table_names(self) -> dict[str, str]:
        """Table env var -> table name, as the stack sets them on its functions."""
        names: dict[str, str] = {}
        for spec in FUNCTIONS:
            environment = self.environment(spec, websocket_callback_url="")
            names.update({s.env: environment[s.env] for s in TABLES if s.env in environment})
        return names

    def stream_view_types(self) -> dict[str, str]:
        """Table env var -> stream view type, for every table whose stream is on."""
        names = self.table_names()
        tables = self.tables()
        return {
            env: tables[name]["stream_view_type"]
            for env, name in names.items()
            if tables[name].get("stream_enabled")
        }

    def bucket_names(self) -> list[str]:
        return sorted(bucket["bucket"] for bucket in self.resources("aws_s3_bucket").values())

    def queue_names(self) -> list[str]:
        return sorted(queue["name"] for queue in self.resources("aws_sqs_queue").values())

    def environment_names(self, spec: FunctionSpec) -> set[str]:
        return set(self.function(spec).get("environment", {}).get("variables", {}))


def contract_env_names() -> set[str]:
    """Every variable name of the contract (``contract.Env``)."""
    return {value for name, value in vars(Env).items() if not name.startswith("_")}


@functools.cache
def synthesized(environment: str) -> Stack:
    """``dev`` (the embedded default) or another environment of ``config/``, and its stack as
    synthesized once per process (:func:`~tests.compute.synth.shared_synth`)."""
    config = environment_config(environment)
    return Stack(config, shared_synth(config))
