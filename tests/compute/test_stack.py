"""The default (no input) stack: every resource and property the spec asks for."""

from __future__ import annotations

import json

import pytest

from compute.config import ComputeConfig
from functions.contract import (
    ADAPTER_ENV,
    API_BASE_PATH,
    AUTHORIZER,
    CORS_ALLOW_HEADERS,
    CORS_EXPOSE_HEADERS,
    FUNCTION_ENV,
    FUNCTIONS,
    MAIN,
    OPENAI_API,
    OPENAI_ROUTES,
    REST_ROUTES,
    TABLES,
    WEBSOCKET,
    WEBSOCKET_ROUTES,
    Env,
    Metric,
)
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

pytestmark = STACKS

PREFIX = "ai-assistant-cli-dev"


def function(synth: Synth, spec_suffix: str, prefix: str = PREFIX) -> dict:
    return by(synth, "aws_lambda_function", function_name=f"{prefix}-{spec_suffix}")


def function_ref(synth: Synth, suffix: str, attribute: str, prefix: str = PREFIX) -> str:
    return ref(synth, "aws_lambda_function", attribute, function_name=f"{prefix}-{suffix}")


def pagination_key_arn(synth: Synth) -> str:
    return ref(synth, "aws_kms_key", "arn", customer_master_key_spec="HMAC_256")


def statements_of_role(synth: Synth, role_name: str) -> list[dict]:
    role_id = ref(synth, "aws_iam_role", "id", name=role_name)
    policy = by(synth, "aws_iam_role_policy", role=role_id)
    return policy_document(synth, policy["policy"])["statement"]


# Provider, backend, tags -----------------------------------------------------------------


def test_local_backend_and_tagged_provider(dev: Synth) -> None:
    assert dev["terraform"]["backend"] == {"local": {"path": "terraform.compute-dev.tfstate"}}
    assert dev["terraform"]["required_providers"]["aws"]["version"] == "6.25.0"
    assert set(dev["terraform"]["required_providers"]) == {"aws"}  # nothing outside a mirror
    assert set(dev["provider"]) == {"aws"}
    (aws,) = dev["provider"]["aws"]
    assert aws["region"] == "us-east-1"
    assert aws["default_tags"] == [{"tags": {"Project": "ai-assistant-cli", "Environment": "dev"}}]


# Lambda functions ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_function_settings(dev: Synth, spec) -> None:
    fn = function(dev, spec.suffix)
    assert fn["handler"] == spec.handler
    assert fn["runtime"] == "python3.11"
    assert fn["timeout"] == (300 if spec is OPENAI_API else 30)
    assert fn["memory_size"] == 512
    assert fn["reserved_concurrent_executions"] == 10
    assert fn["architectures"] == ["x86_64"]
    assert fn["tracing_config"] == {"mode": "Active"}
    assert "vpc_config" not in fn
    assert "lifecycle" not in fn
    assert fn["filename"].startswith("assets/") and fn["filename"].endswith(".zip")
    adapter = set(ADAPTER_ENV) if spec.web_adapter else set()
    assert set(fn["environment"]["variables"]) == set(FUNCTION_ENV[spec.key]) | adapter
    assert ("layers" in fn) is spec.web_adapter


def test_openai_function_runs_behind_the_web_adapter(dev: Synth) -> None:
    """The adapter's public layer for the region and architecture, its wrapper, streaming."""
    fn = function(dev, OPENAI_API.suffix)
    assert fn["handler"] == "run.sh"
    assert fn["layers"] == ["arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerX86:26"]
    variables = fn["environment"]["variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert variables["PORT"] == "8080"
    assert variables["AWS_LWA_READINESS_CHECK_PATH"] == "/v1/models"
    main = function(dev, MAIN.suffix)["environment"]["variables"]
    for name in FUNCTION_ENV[OPENAI_API.key]:
        assert variables[name] == main[name], name  # the chat settings, as main has them


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_each_function_has_its_own_log_group_and_role(dev: Synth, spec) -> None:
    name = f"{PREFIX}-{spec.suffix}"
    group = by(dev, "aws_cloudwatch_log_group", name=f"/aws/lambda/{name}")
    assert group["retention_in_days"] == 30
    fn = function(dev, spec.suffix)
    group_ref = ref(dev, "aws_cloudwatch_log_group", "id", name=f"/aws/lambda/{name}")
    assert group_ref.removesuffix(".id}").removeprefix("${") in fn["depends_on"]
    assert fn["role"] == ref(dev, "aws_iam_role", "arn", name=name)
    trust = policy_document(dev, by(dev, "aws_iam_role", name=name)["assume_role_policy"])
    assert trust["statement"] == [
        {
            "actions": ["sts:AssumeRole"],
            "principals": [{"identifiers": ["lambda.amazonaws.com"], "type": "Service"}],
        }
    ]


def test_environment_values_come_from_the_stack(dev: Synth) -> None:
    main = function(dev, MAIN.suffix)["environment"]["variables"]
    for schema in TABLES:
        if schema.env in main:
            assert main[schema.env] == ref(
                dev, "aws_dynamodb_table", "name", name=f"{PREFIX}-{schema.suffix}"
            )
    assert main[Env.BEDROCK_MODELS] == (
        "anthropic.claude-3-5-sonnet-20240620-v1:0,anthropic.claude-3-haiku-20240307-v1:0"
    )
    assert main[Env.KNOWLEDGE_BASE_ID] == ""
    assert main[Env.TITLE_MODEL_ID] == "anthropic.claude-3-haiku-20240307-v1:0"
    assert main[Env.SESSION_TTL_DAYS] == "30"
    assert main[Env.CORS_ALLOWED_ORIGINS] == "*"
    assert main[Env.PAGINATION_KEY_ARN] == pagination_key_arn(dev)
    ws = function(dev, WEBSOCKET.suffix)["environment"]["variables"]
    stage = ref(dev, "aws_apigatewayv2_stage", "invoke_url", name="v1")
    assert ws[Env.WEBSOCKET_CALLBACK_URL] == f'${{replace({stage[2:-1]}, "wss://", "https://")}}'
    auth = function(dev, AUTHORIZER.suffix)["environment"]["variables"]
    assert auth == {
        Env.JWT_ISSUER: "",
        Env.JWT_AUDIENCE: "",
        Env.JWKS_URL: "",
        Env.JWT_VALIDATION: (
            '{"allowed_client_ids":[],"allowed_tenant_ids":[],"chat_scopes":[],'
            '"provider":"generic","read_scopes":[],"require_access_token_typ":false,'
            '"required_scopes":[]}'
        ),
    }


def test_no_issuer_prints_a_warning(
    dev_config: ComputeConfig, capsys: pytest.CaptureFixture
) -> None:
    synth_stack(dev_config)
    printed = capsys.readouterr()
    assert "the JWT authorizer denies every request" in printed.out
    assert "warning" not in printed.err  # the CDKTF CLI would show it as an [ERROR]


# IAM ---------------------------------------------------------------------------------------


def test_roles_are_least_privilege(dev: Synth) -> None:
    for spec in FUNCTIONS:
        for statement in statements_of_role(dev, f"{PREFIX}-{spec.suffix}"):
            assert all("*" not in action for action in statement["actions"]), statement
    main = {s["sid"]: s for s in statements_of_role(dev, f"{PREFIX}-{MAIN.suffix}")}
    sessions = ref(dev, "aws_dynamodb_table", "arn", name=f"{PREFIX}-sessions")
    assert main["TableSessions"]["resources"] == [sessions]
    assert "dynamodb:Query" not in main["TableSessions"]["actions"]
    assert main["IndexUserIndex"] == {
        "sid": "IndexUserIndex",
        "actions": ["dynamodb:Query"],
        "resources": [f"{sessions}/index/UserIndex"],
    }
    assert "ListKnowledgeBases" not in main  # knowledge bases are off
    assert main["TableMessages"]["resources"] == [
        ref(dev, "aws_dynamodb_table", "arn", name=f"{PREFIX}-messages")
    ]
    connections = ref(dev, "aws_dynamodb_table", "arn", name=f"{PREFIX}-connections")
    assert main["TableConnections"] == {  # DELETE /me: the caller's records, found by index
        "sid": "TableConnections",
        "actions": ["dynamodb:DeleteItem"],
        "resources": [connections],
    }
    assert main["IndexUserConnections"] == {
        "sid": "IndexUserConnections",
        "actions": ["dynamodb:Query"],
        "resources": [f"{connections}/index/UserConnections"],
    }
    assert main["Models"]["actions"] == ["bedrock:InvokeModel"]
    partition = "${data.aws_partition.partition.partition}"
    assert main["Models"]["resources"] == [
        f"arn:{partition}:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0",
        f"arn:{partition}:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    ]
    assert "KnowledgeBase" not in main  # no knowledge_base_id: the feature is off
    assert "Guardrail" not in main  # no bedrock_guardrail_id: none is applied
    assert "VpcNetworkInterfaces" not in main
    log_arn = ref(dev, "aws_cloudwatch_log_group", "arn", name=f"/aws/lambda/{PREFIX}-main")
    assert main["Logs"]["resources"] == [f"{log_arn}:*"]

    ws = {s["sid"]: s for s in statements_of_role(dev, f"{PREFIX}-{WEBSOCKET.suffix}")}
    api = ref(dev, "aws_apigatewayv2_api", "execution_arn", protocol_type="WEBSOCKET")
    stage = ref(dev, "aws_apigatewayv2_stage", "name", name="v1")
    assert ws["WebSocketCallbacks"] == {
        "sid": "WebSocketCallbacks",
        "actions": ["execute-api:ManageConnections"],
        "resources": [f"{api}/{stage}/POST/@connections/*"],
    }
    assert ws["Models"]["actions"] == ["bedrock:InvokeModelWithResponseStream"]
    # Session titles: converse on the title model only, for the streaming function too.
    title_model = [
        f"arn:{partition}:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
    ]
    for statements in (main, ws):
        assert statements["TitleModel"] == {
            "sid": "TitleModel",
            "actions": ["bedrock:InvokeModel"],
            "resources": title_model,
        }
    assert "Guardrail" not in ws
    assert "TableConnections" in ws

    authorizer = {s["sid"] for s in statements_of_role(dev, f"{PREFIX}-{AUTHORIZER.suffix}")}
    assert authorizer == {"Logs", "Tracing", "StackKey"}


# The pagination key ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_pagination_key_is_a_kms_hmac_key_not_a_secret_in_state(
    variant: str, request: pytest.FixtureRequest
) -> None:
    """The next_token key is derived from a KMS HMAC key (GenerateMac), so no random_password
    result sits in Terraform state or in the main function's environment."""
    synth: Synth = request.getfixturevalue(variant)
    assert not [kind for kind in synth.get("resource", {}) if kind.startswith("random_")]
    key = by(synth, "aws_kms_key", customer_master_key_spec="HMAC_256")
    assert key["key_usage"] == "GENERATE_VERIFY_MAC"
    assert key["enable_key_rotation"] is False  # KMS rotates symmetric encryption keys only
    assert key["deletion_window_in_days"] == 30
    policy = json.loads(key["policy"])
    (statement,) = policy["Statement"]
    assert statement["Sid"] == "AccountAdministration"
    assert statement["Principal"] == {
        "AWS": "arn:${data.aws_partition.partition.partition}:iam::"
        "${data.aws_caller_identity.caller.account_id}:root"
    }


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_only_main_reads_the_pagination_key_and_may_only_generate_a_mac_with_it(
    variant: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(variant)
    prefix = f"ai-assistant-cli-{variant}"
    arn = pagination_key_arn(synth)
    for spec in FUNCTIONS:
        variables = function(synth, spec.suffix, prefix).get("environment", {}).get("variables", {})
        statements = statements_of_role(synth, f"{prefix}-{spec.suffix}")
        naming = [s for s in statements if arn in s["resources"]]
        if spec is MAIN:
            assert variables[Env.PAGINATION_KEY_ARN] == arn
            assert naming == [
                {"sid": "PaginationKey", "actions": ["kms:GenerateMac"], "resources": [arn]}
            ]
        else:
            assert Env.PAGINATION_KEY_ARN not in variables
            assert arn not in json.dumps(variables)
            assert naming == []
            assert not any("kms:GenerateMac" in s["actions"] for s in statements)


# REST API ------------------------------------------------------------------------------------


def rest_paths(synth: Synth) -> dict[str, str]:
    """Full path of every API Gateway resource, keyed by its Terraform reference id."""
    items = resources(synth, "aws_api_gateway_resource")
    paths: dict[str, str] = {}

    def path_of(key: str) -> str:
        if key not in paths:
            parent = items[key]["parent_id"]
            prefix = "" if "root_resource_id" in parent else path_of(parent.split(".")[1])
            paths[key] = f"{prefix}/{items[key]['path_part']}"
        return paths[key]

    for key in items:
        path_of(key)
    return {f"${{aws_api_gateway_resource.{k}.id}}": v for k, v in paths.items()}


def test_rest_routes_methods_and_authorization(dev: Synth) -> None:
    paths = rest_paths(dev)
    authorizer = ref(dev, "aws_api_gateway_authorizer", "id", type="TOKEN")
    found = {
        (m["http_method"], paths[m["resource_id"]]): m
        for m in resources(dev, "aws_api_gateway_method").values()
    }
    routes = (*REST_ROUTES, *OPENAI_ROUTES)
    expected = {(r.method, r.full_path) for r in routes}
    expected |= {("OPTIONS", r.full_path) for r in routes}
    assert set(found) == expected
    for route in routes:
        method = found[(route.method, route.full_path)]
        if route.authorized:
            assert (method["authorization"], method["authorizer_id"]) == ("CUSTOM", authorizer)
        else:
            assert method["authorization"] == "NONE" and "authorizer_id" not in method
    assert found[("GET", f"{API_BASE_PATH}/health")]["authorization"] == "NONE"
    for verb, path in expected:
        if verb == "OPTIONS":
            assert found[(verb, path)]["authorization"] == "NONE"


def integrations_by_route(synth: Synth) -> dict[tuple[str, str], dict]:
    """Every integration by its method's verb and path (it names its method by reference)."""
    paths = rest_paths(synth)
    methods = resources(synth, "aws_api_gateway_method")
    found = {}
    for integration in resources(synth, "aws_api_gateway_integration").values():
        method = integration["http_method"].removeprefix("${aws_api_gateway_method.")
        verb = methods[method.removesuffix(".http_method}")]["http_method"]
        found[(verb, paths[integration["resource_id"]])] = integration
    return found


def test_rest_integrations_are_lambda_proxies_to_main(dev: Synth) -> None:
    """Every route of REST_ROUTES, and every preflight (the OpenAI-compatible paths' too)."""
    integrations = integrations_by_route(dev)
    routes = (*REST_ROUTES, *OPENAI_ROUTES)
    assert len(integrations) == len(routes) + len({r.full_path for r in routes})
    streamed = {(r.method, r.full_path) for r in OPENAI_ROUTES}
    for route, integration in integrations.items():
        assert integration["type"] == "AWS_PROXY"
        assert integration["integration_http_method"] == "POST"
        if route not in streamed:
            assert integration["uri"] == function_ref(dev, MAIN.suffix, "invoke_arn"), route
            assert "response_transfer_mode" not in integration
            assert "timeout_milliseconds" not in integration  # the default (and maximum) 29 s


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_openai_routes_stream_from_the_openai_function(
    variant: str, request: pytest.FixtureRequest
) -> None:
    """InvokeWithResponseStream's path, built from the function's own ARN, in STREAM mode, for
    as long as the function may run."""
    synth: Synth = request.getfixturevalue(variant)
    prefix = f"ai-assistant-cli-{variant}"
    integrations = integrations_by_route(synth)
    arn = function_ref(synth, OPENAI_API.suffix, "arn", prefix)[2:-1]
    uri = (
        '${format("arn:%s:apigateway:%s:lambda:path/2021-11-15/functions/%s/'
        'response-streaming-invocations", '
        f'element(split(":", {arn}), 1), element(split(":", {arn}), 3), {arn})}}'
    )
    timeout = function(synth, OPENAI_API.suffix, prefix)["timeout"]
    for route in OPENAI_ROUTES:
        integration = integrations[(route.method, route.full_path)]
        assert integration["uri"] == uri
        assert integration["response_transfer_mode"] == "STREAM"
        assert integration["timeout_milliseconds"] == timeout * 1000 == 300_000


def test_openai_function_may_be_invoked_by_its_routes_only(dev: Synth) -> None:
    api = ref(dev, "aws_api_gateway_rest_api", "execution_arn", name=f"{PREFIX}-api")
    name = function_ref(dev, OPENAI_API.suffix, "function_name")
    permissions = [
        p for p in resources(dev, "aws_lambda_permission").values() if p["function_name"] == name
    ]
    assert sorted(p["source_arn"] for p in permissions) == sorted(
        f"{api}/*/{route.method}{route.full_path}" for route in OPENAI_ROUTES
    )
    for permission in permissions:
        assert permission["action"] == "lambda:InvokeFunction"
        assert permission["principal"] == "apigateway.amazonaws.com"


def test_redeployment_follows_the_streamed_integrations(dev: Synth) -> None:
    """A new route, URI, transfer mode or timeout redeploys the stage: none is live before."""
    trigger = only(dev, "aws_api_gateway_deployment")["triggers"]["redeployment"]
    streamed = {
        key: integration
        for key, integration in resources(dev, "aws_api_gateway_integration").items()
        if "response_transfer_mode" in integration
    }
    assert len(streamed) == len(OPENAI_ROUTES)
    for key in streamed:
        for attribute in ("id", "uri"):
            assert f"aws_api_gateway_integration.{key}.{attribute}" in trigger, attribute
    # Their transfer mode and timeout as set: no reference to the 6.x-only attribute.
    assert '"STREAM"' in trigger and '"300000"' in trigger
    assert "response_transfer_mode" not in trigger


def test_token_authorizer(dev: Synth) -> None:
    authorizer = only(dev, "aws_api_gateway_authorizer")
    assert authorizer["type"] == "TOKEN"
    assert authorizer["identity_source"] == "method.request.header.Authorization"
    assert authorizer["authorizer_result_ttl_in_seconds"] == 300
    assert authorizer["authorizer_uri"] == function_ref(dev, AUTHORIZER.suffix, "invoke_arn")


def test_gateway_errors_carry_cors_headers(dev: Synth) -> None:
    responses = {
        r["response_type"]: r for r in resources(dev, "aws_api_gateway_gateway_response").values()
    }
    assert {"UNAUTHORIZED", "ACCESS_DENIED"} <= set(responses)
    for response in responses.values():
        headers = {
            name.removeprefix("gatewayresponse.header."): value
            for name, value in response["response_parameters"].items()
        }
        assert headers["Access-Control-Allow-Origin"] == "'*'"
        # The main function's lists (contract.CORS_*), so API Gateway's own 401s and 5xx let
        # a browser send Idempotency-Key and read Retry-After as the function's answers do.
        assert headers["Access-Control-Allow-Headers"] == f"'{','.join(CORS_ALLOW_HEADERS)}'"
        assert headers["Access-Control-Expose-Headers"] == f"'{','.join(CORS_EXPOSE_HEADERS)}'"


def test_deployment_and_stage(dev: Synth) -> None:
    deployment = only(dev, "aws_api_gateway_deployment")
    assert deployment["lifecycle"] == {"create_before_destroy": True}
    assert deployment["triggers"]["redeployment"].startswith("${sha1(jsonencode([")
    assert len(deployment["depends_on"]) == 2 * len(resources(dev, "aws_api_gateway_method")) + 4
    stage = only(dev, "aws_api_gateway_stage")
    assert stage["stage_name"] == "v1"
    assert stage["xray_tracing_enabled"] is True
    logs = ref(dev, "aws_cloudwatch_log_group", "arn", name=f"/aws/apigateway/{PREFIX}")
    assert stage["access_log_settings"]["destination_arn"] == logs
    assert json.loads(stage["access_log_settings"]["format"])["requestId"] == "$context.requestId"
    settings = only(dev, "aws_api_gateway_method_settings")
    assert settings["method_path"] == "*/*"
    assert settings["settings"] == {
        "data_trace_enabled": False,
        "logging_level": "INFO",
        "metrics_enabled": True,
        "throttling_burst_limit": 2000,
        "throttling_rate_limit": 1000,
    }
    account = only(dev, "aws_api_gateway_account")
    assert account["cloudwatch_role_arn"] == ref(
        dev, "aws_iam_role", "arn", name=f"{PREFIX}-apigw-logs"
    )
    assert (
        by(dev, "aws_cloudwatch_log_group", name=f"/aws/apigateway/{PREFIX}")["retention_in_days"]
        == 30
    )


def test_lambda_permissions_are_scoped_to_their_api(dev: Synth) -> None:
    permissions = list(resources(dev, "aws_lambda_permission").values())
    rest = ref(dev, "aws_api_gateway_rest_api", "execution_arn", name=f"{PREFIX}-api")
    ws = ref(dev, "aws_apigatewayv2_api", "execution_arn", protocol_type="WEBSOCKET")
    rest_auth = ref(dev, "aws_api_gateway_authorizer", "id", type="TOKEN")
    ws_auth = ref(dev, "aws_apigatewayv2_authorizer", "id", authorizer_type="REQUEST")
    expected = {
        (function_ref(dev, MAIN.suffix, "function_name"), f"{rest}/*"),
        (function_ref(dev, AUTHORIZER.suffix, "function_name"), f"{rest}/authorizers/{rest_auth}"),
        (function_ref(dev, WEBSOCKET.suffix, "function_name"), f"{ws}/*"),
        (function_ref(dev, AUTHORIZER.suffix, "function_name"), f"{ws}/authorizers/{ws_auth}"),
    }
    openai = function_ref(dev, OPENAI_API.suffix, "function_name")
    expected |= {(openai, f"{rest}/*/{r.method}{r.full_path}") for r in OPENAI_ROUTES}
    assert {(p["function_name"], p["source_arn"]) for p in permissions} == expected
    assert all(p["principal"] == "apigateway.amazonaws.com" for p in permissions)


# WebSocket API ---------------------------------------------------------------------------------


def test_websocket_api(dev: Synth) -> None:
    api = only(dev, "aws_apigatewayv2_api")
    assert api["protocol_type"] == "WEBSOCKET"
    routes = {r["route_key"]: r for r in resources(dev, "aws_apigatewayv2_route").values()}
    assert set(routes) == set(WEBSOCKET_ROUTES)
    integration = only(dev, "aws_apigatewayv2_integration")
    assert integration["integration_type"] == "AWS_PROXY"
    assert integration["integration_uri"] == function_ref(dev, WEBSOCKET.suffix, "invoke_arn")
    target = "integrations/" + ref(
        dev, "aws_apigatewayv2_integration", "id", integration_type="AWS_PROXY"
    )
    authorizer = only(dev, "aws_apigatewayv2_authorizer")
    assert authorizer["authorizer_type"] == "REQUEST"
    assert authorizer["authorizer_uri"] == function_ref(dev, AUTHORIZER.suffix, "invoke_arn")
    # Not cached, deliberately: a WebSocket API's authorizer has no result cache (the TTL is an
    # HTTP API setting), and identity sources would make API Gateway refuse every $connect
    # that lacks any one of them, where the token may come as the header or the query string.
    assert "identity_sources" not in authorizer
    assert "authorizer_result_ttl_in_seconds" not in authorizer
    for key, route in routes.items():
        assert route["target"] == target
        if key == "$connect":
            assert route["authorization_type"] == "CUSTOM"
            assert route["authorizer_id"] == ref(
                dev, "aws_apigatewayv2_authorizer", "id", authorizer_type="REQUEST"
            )
        else:
            assert route["authorization_type"] == "NONE"
    stage = only(dev, "aws_apigatewayv2_stage")
    assert stage["auto_deploy"] is True
    logs = ref(dev, "aws_cloudwatch_log_group", "arn", name=f"/aws/apigateway/{PREFIX}-websocket")
    assert stage["access_log_settings"]["destination_arn"] == logs
    assert stage["default_route_settings"]["throttling_rate_limit"] == 1000
    assert stage["default_route_settings"]["throttling_burst_limit"] == 2000


# DynamoDB --------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", TABLES, ids=lambda s: s.suffix)
def test_tables_follow_the_contract(dev: Synth, schema) -> None:
    table = by(dev, "aws_dynamodb_table", name=f"{PREFIX}-{schema.suffix}")
    assert table["hash_key"] == schema.hash_key.name
    assert table.get("range_key") == (schema.range_key.name if schema.range_key else None)
    assert table["attribute"] == [{"name": k.name, "type": k.type} for k in schema.attributes]
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert table["ttl"] == {"attribute_name": "expires_at", "enabled": True}
    assert table["point_in_time_recovery"] == {"enabled": True}
    assert table["server_side_encryption"] == {
        "enabled": True,
        "kms_key_arn": ref(dev, "aws_kms_key", "arn", enable_key_rotation=True),
    }
    assert table["deletion_protection_enabled"] is False


def test_sessions_table_is_the_spec_one(dev: Synth) -> None:
    table = by(dev, "aws_dynamodb_table", name=f"{PREFIX}-sessions")
    assert table["hash_key"] == "session_id"
    assert table["global_secondary_index"] == [
        {
            "name": "UserIndex",
            "hash_key": "user_id",
            "range_key": "last_activity",
            "projection_type": "ALL",
        }
    ]


# CloudWatch ------------------------------------------------------------------------------------


def test_alarms(dev: Synth) -> None:
    alarms = {
        a["alarm_name"].removeprefix(f"{PREFIX}-"): a
        for a in resources(dev, "aws_cloudwatch_metric_alarm").values()
    }
    expected = {f"{s.key}-errors" for s in FUNCTIONS} | {f"{s.key}-duration-p99" for s in FUNCTIONS}
    expected |= {
        "api-4xxerror",
        "api-5xxerror",
        "websocket-integrationerror",
        "websocket-executionerror",
    }
    expected |= {f"dynamodb-{t.suffix}-throttles" for t in TABLES}
    expected |= {"cleanup-iterator-age", "cleanup-failures"}  # see tests/compute/test_cleanup.py
    expected |= {f"{s.key}-throttles" for s in FUNCTIONS} | {
        f"{s.key}-concurrency" for s in FUNCTIONS
    }
    expected |= {"bedrock-throttles", "usage-not-recorded"}
    assert set(alarms) == expected
    topic = ref(dev, "aws_sns_topic", "arn", name=f"{PREFIX}-alarms")
    for alarm in alarms.values():
        assert alarm["treat_missing_data"] == "notBreaching"
        assert alarm["alarm_actions"] == [topic]
    assert alarms["main-errors"]["dimensions"] == {
        "FunctionName": function_ref(dev, MAIN.suffix, "function_name")
    }
    duration = alarms["websocket-duration-p99"]
    assert (duration["extended_statistic"], duration["threshold"]) == ("p99", 24000)
    assert alarms["api-4xxerror"]["metric_name"] == "4XXError"
    assert alarms["api-4xxerror"]["dimensions"] == {
        "ApiName": ref(dev, "aws_api_gateway_rest_api", "name", name=f"{PREFIX}-api"),
        "Stage": ref(dev, "aws_api_gateway_stage", "stage_name", stage_name="v1"),
    }
    throttles = alarms["dynamodb-sessions-throttles"]["metric_query"]
    assert [q.get("expression") for q in throttles] == [None, None, "reads + writes"]
    assert not resources(dev, "aws_sns_topic_subscription")


def _alarms(synth: Synth) -> dict[str, dict]:
    return {
        a["alarm_name"].removeprefix(f"{PREFIX}-"): a
        for a in resources(synth, "aws_cloudwatch_metric_alarm").values()
    }


def test_capacity_alarms_watch_each_functions_throttles_and_reserved_concurrency() -> None:
    """Mutations caught: the websocket override ignored (on the function or in its alarm), the
    threshold off 80%, an alarm on a function without a reservation (it would never fire)."""
    synth = synth_stack(
        ComputeConfig(lambda_reserved_concurrency=10, websocket_reserved_concurrency=50)
    )
    alarms = _alarms(synth)
    for spec in FUNCTIONS:
        dimensions = {"FunctionName": function_ref(synth, spec.suffix, "function_name")}
        throttles = alarms[f"{spec.key}-throttles"]
        assert (throttles["namespace"], throttles["metric_name"]) == ("AWS/Lambda", "Throttles")
        assert (throttles["statistic"], throttles["threshold"]) == ("Sum", 0)
        assert throttles["comparison_operator"] == "GreaterThanThreshold"
        assert throttles["dimensions"] == dimensions
        busy = alarms[f"{spec.key}-concurrency"]
        assert (busy["metric_name"], busy["statistic"]) == ("ConcurrentExecutions", "Maximum")
        assert busy["dimensions"] == dimensions
        assert busy["comparison_operator"] == "GreaterThanOrEqualToThreshold"
        reserved = 50 if spec is WEBSOCKET else 10
        assert function(synth, spec.suffix)["reserved_concurrent_executions"] == reserved
        assert busy["threshold"] == 0.8 * reserved
    unreserved = _alarms(
        synth_stack(ComputeConfig(lambda_reserved_concurrency=-1, websocket_reserved_concurrency=7))
    )
    assert {name for name in unreserved if name.endswith("-concurrency")} == {
        "websocket-concurrency"
    }
    assert unreserved["websocket-concurrency"]["threshold"] == 6  # ceil(5.6)


@pytest.mark.parametrize(
    ("name", "metric", "threshold"),
    [
        ("bedrock-throttles", Metric.MODEL_THROTTLED, 5),
        ("usage-not-recorded", Metric.USAGE_NOT_RECORDED, 0),
    ],
)
def test_the_emf_alarms_read_the_metrics_the_functions_emit(
    dev: Synth, name: str, metric: str, threshold: int
) -> None:
    """The namespace and ``service`` dimension the functions' Powertools is given, and the
    names tests/functions/core/test_metrics.py and data/test_quota.py see them emit."""
    alarm = _alarms(dev)[name]
    for spec in (MAIN, WEBSOCKET):
        variables = function(dev, spec.suffix)["environment"]["variables"]
        assert alarm["namespace"] == variables[Env.POWERTOOLS_METRICS_NAMESPACE]
        assert alarm["dimensions"] == {"service": variables[Env.POWERTOOLS_SERVICE_NAME]}
    assert alarm["metric_name"] == metric
    assert (alarm["statistic"], alarm["threshold"]) == ("Sum", threshold)


# Outputs ---------------------------------------------------------------------------------------


def test_outputs_have_the_spec_names(dev: Synth) -> None:
    outputs = dev["output"]
    assert set(outputs) == {
        "api_gateway_rest_api_url",
        "api_gateway_websocket_url",
        "lambda_main_function_name",
        "lambda_websocket_function_name",
        "lambda_jwt_authorizer_function_name",
        "lambda_session_cleanup_function_name",
        "dynamodb_sessions_table_name",
        "s3_attachments_bucket_name",
        "s3_attachments_bucket_arn",
        "compute_config",
    }
    assert outputs["api_gateway_rest_api_url"]["value"] == ref(
        dev, "aws_api_gateway_stage", "invoke_url", stage_name="v1"
    )
    assert outputs["lambda_main_function_name"]["value"] == function_ref(
        dev, MAIN.suffix, "function_name"
    )
    config = outputs["compute_config"]["value"]
    assert config["lambda_functions"]["main"]["memory_size"] == 512
    assert config["lambda_functions"]["authorizer"]["timeout"] == 30
    assert (
        config["dynamodb_sessions_table_name"] == outputs["dynamodb_sessions_table_name"]["value"]
    )


def test_data_sources_are_only_lookups(dev: Synth) -> None:
    assert set(dev["data"]) == {"aws_caller_identity", "aws_iam_policy_document", "aws_partition"}
    # Two trust policies, one policy per function role, one for API Gateway logging, the
    # attachments bucket's policy.
    assert len(data(dev, "aws_iam_policy_document")) == 2 + len(FUNCTIONS) + 1 + 1


# Session titles --------------------------------------------------------------------------------


def test_titles_off_set_no_title_model_and_grant_none(dev_config: ComputeConfig) -> None:
    """An empty ``title_model_id`` turns titles off: the variable is empty and no role may
    invoke a model for them."""
    synth = synth_stack(dev_config.model_copy(update={"title_model_id": ""}))
    for spec in (MAIN, WEBSOCKET, OPENAI_API):
        assert function(synth, spec.suffix)["environment"]["variables"][Env.TITLE_MODEL_ID] == ""
        sids = {s["sid"] for s in statements_of_role(synth, f"{PREFIX}-{spec.suffix}")}
        assert "TitleModel" not in sids
        assert "Models" in sids


def test_a_profile_title_model_is_granted_in_every_region_it_routes_to(
    dev_config: ComputeConfig,
) -> None:
    profile = "us.amazon.nova-micro-v1:0"
    synth = synth_stack(dev_config.model_copy(update={"title_model_id": profile}))
    partition = "${data.aws_partition.partition.partition}"
    account = "${data.aws_caller_identity.caller.account_id}"
    statements = statements_of_role(synth, f"{PREFIX}-{OPENAI_API.suffix}")
    (title,) = [s for s in statements if s["sid"] == "TitleModel"]
    assert title["resources"] == [
        f"arn:{partition}:bedrock:us-east-1:{account}:inference-profile/{profile}",
        f"arn:{partition}:bedrock:*::foundation-model/amazon.nova-micro-v1:0",
    ]
