"""A reading of one synthesized stack (``cdktf.out/stacks/compute-<env>/cdk.tf.json``): what
the dev server serves.

Everything comes from that JSON, never from ``compute/`` or the contract: the functions (zip,
handler, runtime, timeout, memory, reserved concurrency, environment), the REST API's routes,
methods, authorizers, gateway responses and stage, the WebSocket API's routes, authorizer and
stage, the tables' key schemas and streams, and the event source mappings from those streams
to functions (filter, batch size, retries, failure destination). So what ``make dev`` serves
is what Terraform would deploy, and a change to the stack shows up locally without a second
description to keep in step.

Terraform references (``${aws_dynamodb_table.x.name}``) are resolved to the values they take
locally; a reference this reader does not know is an error rather than a silent empty string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_REFERENCE = re.compile(r"\$\{(?P<kind>\w+)\.(?P<id>[\w-]+)\.(?P<attr>\w+)\}")
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}")
_STAGE_INVOKE_URL = re.compile(r"aws_apigatewayv2_stage\.[\w-]+\.invoke_url")
DEFAULT_INTEGRATION_TIMEOUT_MS = 29_000  # API Gateway REST's default (and, by default, maximum)
# Lambda's unreserved account concurrency is 1,000; locally each execution is a process.
UNRESERVED_LOCAL_CONCURRENCY = 10


class StackError(ValueError):
    """The synthesized JSON lacks something the dev server needs, or names an unknown thing."""


@dataclass(frozen=True)
class Function:
    """One ``aws_lambda_function``."""

    resource_id: str
    name: str
    handler: str
    runtime: str
    architecture: str  # x86_64 or arm64
    package: Path  # the zip Terraform would upload
    source_code_hash: str
    timeout: int  # seconds
    memory_size: int  # MB
    reserved_concurrency: int | None  # None: unreserved
    environment: Mapping[str, str]  # raw, references unresolved

    @property
    def concurrency_limit(self) -> int:
        if self.reserved_concurrency is None or self.reserved_concurrency < 0:
            return UNRESERVED_LOCAL_CONCURRENCY
        return self.reserved_concurrency


@dataclass(frozen=True)
class TokenAuthorizer:
    """A REST ``TOKEN`` authorizer."""

    function: str  # resource id of its function
    header: str  # from identity_source method.request.header.<name>
    ttl_seconds: int


@dataclass(frozen=True)
class RestRoute:
    method: str
    path: str  # resource path with {placeholders}, e.g. /api/v1/sessions/{session_id}
    function: str | None  # AWS_PROXY target; None for other integration types
    authorizer: TokenAuthorizer | None  # None: authorization NONE
    timeout_ms: int

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[^/}]+\})", self.path)
        regex = "".join(
            f"(?P<{part[1:-1].rstrip('+')}>{'.+' if part.endswith('+}') else '[^/]+'})"
            if part.startswith("{")
            else re.escape(part)
            for part in parts
        )
        return re.compile(f"^{regex}$")


@dataclass(frozen=True)
class RestApi:
    name: str
    stage: str
    routes: tuple[RestRoute, ...]
    gateway_responses: Mapping[str, Mapping[str, str]]  # response type -> headers

    def response_headers(self, response_type: str, status: int) -> dict[str, str]:
        """Headers of a gateway response: its own type's, else DEFAULT_4XX/5XX's."""
        default = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        return dict(
            self.gateway_responses.get(response_type, self.gateway_responses.get(default, {}))
        )


@dataclass(frozen=True)
class WebSocketRoute:
    route_key: str
    function: str | None
    authorizer: str | None  # resource id of the REQUEST authorizer's function ($connect only)


@dataclass(frozen=True)
class WebSocketApi:
    name: str
    stage: str
    route_selection_expression: str
    routes: Mapping[str, WebSocketRoute]
    resource_id: str


@dataclass(frozen=True)
class Table:
    """One ``aws_dynamodb_table``, as CreateTable parameters."""

    name: str
    key_schema: tuple[tuple[str, str], ...]  # (attribute, HASH|RANGE)
    attributes: tuple[tuple[str, str], ...]  # (attribute, S|N|B)
    indexes: tuple[Mapping[str, Any], ...] = ()  # GlobalSecondaryIndexes entries
    ttl_attribute: str | None = None
    stream_view_type: str | None = None  # None: no stream

    def create_table_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t in self.key_schema],
            "AttributeDefinitions": [
                {"AttributeName": a, "AttributeType": t} for a, t in self.attributes
            ],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.indexes:
            params["GlobalSecondaryIndexes"] = [dict(index) for index in self.indexes]
        if self.stream_view_type:
            params["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": self.stream_view_type,
            }
        return params


@dataclass(frozen=True)
class MacKey:
    """One KMS HMAC ``aws_kms_key`` (the pagination key): what the local KMS must create."""

    key_spec: str  # e.g. HMAC_256
    key_usage: str  # GENERATE_VERIFY_MAC
    description: str


@dataclass(frozen=True)
class StreamMapping:
    """One ``aws_lambda_event_source_mapping`` from a table's stream to a function."""

    function: str  # resource id of the function
    table: str  # resource id of the table whose stream it reads
    batch_size: int
    starting_position: str  # TRIM_HORIZON or LATEST
    patterns: tuple[Mapping[str, Any], ...]  # filter_criteria patterns; empty: every record
    report_batch_item_failures: bool
    bisect_batch_on_function_error: bool
    maximum_retry_attempts: int  # -1: until the record expires
    maximum_record_age_seconds: int  # -1: the stream's own 24 hours
    failure_destination: str | None  # the on-failure destination's name (an SQS queue)


@dataclass(frozen=True)
class Stack:
    path: Path
    functions: Mapping[str, Function]
    rest: RestApi
    websocket: WebSocketApi
    tables: Mapping[str, Table]  # resource id -> table
    region: str
    mac_keys: Mapping[str, MacKey] = field(default_factory=dict)  # resource id -> key
    stream_mappings: tuple[StreamMapping, ...] = ()
    buckets: Mapping[str, str] = field(default_factory=dict)  # resource id -> bucket name
    # resource id -> ARN of the key created for it locally (bind_key)
    _key_arns: dict[str, str] = field(default_factory=dict, compare=False)

    def function(self, resource_id: str) -> Function:
        try:
            return self.functions[resource_id]
        except KeyError:
            raise StackError(f"no aws_lambda_function {resource_id!r} in {self.path}") from None

    def environment(
        self, function: Function, overrides: Callable[[str, str], str | None]
    ) -> dict[str, str]:
        """``function``'s variables with every reference resolved.

        ``overrides(name, raw)`` may replace a value (endpoints, the issuer); otherwise table
        and bucket names resolve to the synthesized names and an HMAC key's ARN to the ARN of
        the key created for it locally (:meth:`bind_key`).
        """
        env: dict[str, str] = {}
        for name, raw in function.environment.items():
            replaced = overrides(name, raw)
            env[name] = replaced if replaced is not None else self._resolve(name, raw)
        return env

    def bind_key(self, resource_id: str, arn: str) -> None:
        """Resolve ``${aws_kms_key.<resource_id>.arn}`` to ``arn`` (a key made locally)."""
        if resource_id not in self.mac_keys:
            raise StackError(f"no HMAC aws_kms_key {resource_id!r} in {self.path}")
        self._key_arns[resource_id] = arn

    def _resolve(self, name: str, raw: str) -> str:
        def one(match: re.Match[str]) -> str:
            kind, resource_id, attr = match["kind"], match["id"], match["attr"]
            if kind == "aws_dynamodb_table" and attr == "name" and resource_id in self.tables:
                return self.tables[resource_id].name
            if kind == "aws_s3_bucket" and attr == "bucket" and resource_id in self.buckets:
                return self.buckets[resource_id]
            if kind == "aws_kms_key" and attr == "arn" and resource_id in self.mac_keys:
                if resource_id not in self._key_arns:
                    raise StackError(f"{name}: no local key bound to {match[0]} yet")
                return self._key_arns[resource_id]
            raise StackError(f"{name}: cannot resolve {match[0]} locally")

        value = _REFERENCE.sub(one, raw)
        if _ANY_REFERENCE.search(value):
            raise StackError(f"{name}: cannot resolve {raw!r} locally")
        return value


def stack_file(stacks_dir: Path, environment: str) -> Path:
    return stacks_dir / f"compute-{environment}" / "cdk.tf.json"


def load_stack(path: Path) -> Stack:
    """Read one synthesized stack; :class:`StackError` names what is missing."""
    if not path.is_file():
        raise StackError(f"{path} does not exist: synthesize first (make synth)")
    document = json.loads(path.read_text(encoding="utf-8"))
    resources: dict[str, dict[str, Any]] = document.get("resource", {})
    functions = {
        rid: _function(path.parent, rid, body)
        for rid, body in resources.get("aws_lambda_function", {}).items()
    }
    tables = {rid: _table(body) for rid, body in resources.get("aws_dynamodb_table", {}).items()}
    mac_keys = {
        rid: MacKey(
            body["customer_master_key_spec"], body["key_usage"], body.get("description", "")
        )
        for rid, body in resources.get("aws_kms_key", {}).items()
        if body.get("key_usage") == "GENERATE_VERIFY_MAC"
    }
    region = _region(document)
    return Stack(
        path=path,
        functions=functions,
        rest=_rest_api(resources),
        websocket=_websocket_api(resources),
        tables=tables,
        region=region,
        mac_keys=mac_keys,
        stream_mappings=_stream_mappings(resources, functions, tables),
        buckets={rid: body["bucket"] for rid, body in resources.get("aws_s3_bucket", {}).items()},
    )


def is_websocket_callback(raw: str) -> bool:
    """True for the value the stack gives ``WEBSOCKET_CALLBACK_URL``: the stage's invoke URL."""
    return bool(_STAGE_INVOKE_URL.search(raw))


def _region(document: Mapping[str, Any]) -> str:
    providers = document.get("provider", {}).get("aws", [])
    for provider in providers if isinstance(providers, list) else [providers]:
        if isinstance(provider, dict) and provider.get("region"):
            return str(provider["region"])
    return "us-east-1"


def _function(stack_dir: Path, resource_id: str, body: Mapping[str, Any]) -> Function:
    filename = body.get("filename")
    if not filename:
        raise StackError(f"aws_lambda_function {resource_id} has no local package (filename)")
    reserved = body.get("reserved_concurrent_executions")
    return Function(
        resource_id=resource_id,
        name=body["function_name"],
        handler=body["handler"],
        runtime=body.get("runtime", "python3.11"),
        architecture=(body.get("architectures") or ["x86_64"])[0],
        package=stack_dir / filename,
        source_code_hash=body.get("source_code_hash", ""),
        timeout=int(body.get("timeout", 3)),
        memory_size=int(body.get("memory_size", 128)),
        reserved_concurrency=None if reserved is None else int(reserved),
        environment=dict(body.get("environment", {}).get("variables", {})),
    )


def _table(body: Mapping[str, Any]) -> Table:
    key_schema = [(body["hash_key"], "HASH")]
    if body.get("range_key"):
        key_schema.append((body["range_key"], "RANGE"))
    indexes = []
    for index in body.get("global_secondary_index", []):
        keys = [{"AttributeName": index["hash_key"], "KeyType": "HASH"}]
        if index.get("range_key"):
            keys.append({"AttributeName": index["range_key"], "KeyType": "RANGE"})
        projection: dict[str, Any] = {"ProjectionType": index.get("projection_type", "ALL")}
        if index.get("non_key_attributes"):
            projection["NonKeyAttributes"] = list(index["non_key_attributes"])
        indexes.append({"IndexName": index["name"], "KeySchema": keys, "Projection": projection})
    ttl = body.get("ttl", {})
    return Table(
        name=body["name"],
        key_schema=tuple(key_schema),
        attributes=tuple((a["name"], a["type"]) for a in body.get("attribute", [])),
        indexes=tuple(indexes),
        ttl_attribute=ttl.get("attribute_name") if ttl.get("enabled") else None,
        stream_view_type=body.get("stream_view_type") if body.get("stream_enabled") else None,
    )


def _stream_mappings(
    resources: Mapping[str, dict[str, Any]],
    functions: Mapping[str, Function],
    tables: Mapping[str, Table],
) -> tuple[StreamMapping, ...]:
    """The mappings whose source is a table's stream (the only kind the stack has)."""
    queues = resources.get("aws_sqs_queue", {})
    mappings = []
    for rid, body in resources.get("aws_lambda_event_source_mapping", {}).items():
        table = _referenced_id(body.get("event_source_arn"), "aws_dynamodb_table")
        function = _referenced_id(body.get("function_name"), "aws_lambda_function")
        if table not in tables or function not in functions:
            raise StackError(f"event source mapping {rid}: not from a table's stream to a function")
        destination = (
            body.get("destination_config", {}).get("on_failure", {}).get("destination_arn")
        )
        queue = _referenced_id(destination, "aws_sqs_queue")
        filters = body.get("filter_criteria", {}).get("filter", [])
        mappings.append(
            StreamMapping(
                function=function,
                table=table,
                batch_size=int(body.get("batch_size", 100)),
                starting_position=body.get("starting_position", "LATEST"),
                patterns=tuple(json.loads(item["pattern"]) for item in filters),
                report_batch_item_failures="ReportBatchItemFailures"
                in body.get("function_response_types", []),
                bisect_batch_on_function_error=bool(
                    body.get("bisect_batch_on_function_error", False)
                ),
                maximum_retry_attempts=int(body.get("maximum_retry_attempts", -1)),
                maximum_record_age_seconds=int(body.get("maximum_record_age_in_seconds", -1)),
                failure_destination=queues[queue]["name"] if queue in queues else destination,
            )
        )
    return tuple(mappings)


def _referenced_id(value: Any, kind: str) -> str | None:
    """The resource id in ``${<kind>.<id>.<attr>}``, or None."""
    if not isinstance(value, str):
        return None
    match = _REFERENCE.search(value)
    return match["id"] if match and match["kind"] == kind else None


def _one(resources: Mapping[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    items = list(resources.get(kind, {}).items())
    if len(items) != 1:
        raise StackError(f"expected exactly one {kind}, found {len(items)}")
    return items[0]


def _rest_api(resources: Mapping[str, dict[str, Any]]) -> RestApi:
    _, api = _one(resources, "aws_api_gateway_rest_api")
    _, stage = _one(resources, "aws_api_gateway_stage")
    paths = _resource_paths(resources.get("aws_api_gateway_resource", {}))
    authorizers = {
        rid: TokenAuthorizer(
            function=_referenced_id(body["authorizer_uri"], "aws_lambda_function") or "",
            header=body.get("identity_source", "method.request.header.Authorization").rsplit(
                ".", 1
            )[-1],
            ttl_seconds=int(body.get("authorizer_result_ttl_in_seconds", 300)),
        )
        for rid, body in resources.get("aws_api_gateway_authorizer", {}).items()
        if body.get("type", "TOKEN") == "TOKEN"
    }
    integrations = {}
    for body in resources.get("aws_api_gateway_integration", {}).values():
        method_id = _referenced_id(body["http_method"], "aws_api_gateway_method")
        function = None
        if body.get("type") == "AWS_PROXY":
            function = _referenced_id(body.get("uri"), "aws_lambda_function")
        timeout = int(body.get("timeout_milliseconds", DEFAULT_INTEGRATION_TIMEOUT_MS))
        integrations[method_id] = (function, timeout)
    routes = []
    for method_id, method in resources.get("aws_api_gateway_method", {}).items():
        resource = _referenced_id(method["resource_id"], "aws_api_gateway_resource")
        path = paths.get(resource, "/") if resource else "/"
        authorizer = None
        if method.get("authorization") == "CUSTOM":
            authorizer_id = _referenced_id(
                method.get("authorizer_id"), "aws_api_gateway_authorizer"
            )
            if authorizer_id not in authorizers:
                raise StackError(f"method {method_id} uses an unknown authorizer")
            authorizer = authorizers[authorizer_id]
        function, timeout = integrations.get(method_id, (None, DEFAULT_INTEGRATION_TIMEOUT_MS))
        routes.append(RestRoute(method["http_method"], path, function, authorizer, timeout))
    responses = {
        body["response_type"]: {
            name.removeprefix("gatewayresponse.header."): value.strip("'")
            for name, value in body.get("response_parameters", {}).items()
            if name.startswith("gatewayresponse.header.")
        }
        for body in resources.get("aws_api_gateway_gateway_response", {}).values()
    }
    return RestApi(api["name"], stage["stage_name"], tuple(routes), responses)


def _resource_paths(resources: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Resource id -> full path, following ``parent_id`` up to the API's root resource."""
    paths: dict[str, str] = {}

    def path_of(resource_id: str, seen: tuple[str, ...] = ()) -> str:
        if resource_id in paths:
            return paths[resource_id]
        if resource_id in seen or resource_id not in resources:
            raise StackError(f"aws_api_gateway_resource {resource_id} has no path to the root")
        body = resources[resource_id]
        parent = _referenced_id(body["parent_id"], "aws_api_gateway_resource")
        prefix = "" if parent is None else path_of(parent, (*seen, resource_id))
        paths[resource_id] = f"{prefix}/{body['path_part']}"
        return paths[resource_id]

    for resource_id in resources:
        path_of(resource_id)
    return paths


def _websocket_api(resources: Mapping[str, dict[str, Any]]) -> WebSocketApi:
    _, api = _one(resources, "aws_apigatewayv2_api")
    stage_id, stage = _one(resources, "aws_apigatewayv2_stage")
    integrations = {
        rid: _referenced_id(body.get("integration_uri"), "aws_lambda_function")
        for rid, body in resources.get("aws_apigatewayv2_integration", {}).items()
        if body.get("integration_type") == "AWS_PROXY"
    }
    authorizers = {
        rid: _referenced_id(body.get("authorizer_uri"), "aws_lambda_function")
        for rid, body in resources.get("aws_apigatewayv2_authorizer", {}).items()
        if body.get("authorizer_type") == "REQUEST"
    }
    routes = {}
    for body in resources.get("aws_apigatewayv2_route", {}).values():
        integration = _referenced_id(
            str(body.get("target", "")).replace("integrations/", "", 1),
            "aws_apigatewayv2_integration",
        )
        authorizer = None
        if body.get("authorization_type") == "CUSTOM":
            authorizer = authorizers.get(
                _referenced_id(body.get("authorizer_id"), "aws_apigatewayv2_authorizer") or ""
            )
            if authorizer is None:
                raise StackError(f"route {body['route_key']} uses an unknown authorizer")
        routes[body["route_key"]] = WebSocketRoute(
            body["route_key"], integrations.get(integration or ""), authorizer
        )
    return WebSocketApi(
        name=api["name"],
        stage=stage["name"],
        route_selection_expression=api.get("route_selection_expression", "$request.body.action"),
        routes=routes,
        resource_id=stage_id,
    )
