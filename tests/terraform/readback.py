"""Read-backs after apply, as Terratest does them: what Terraform created, asked of the
emulator with boto3, compared with ``functions.contract`` (the single source of the
routes and tables), not with the synthesized JSON, so a wiring mistake the JSON repeats
faithfully still shows up."""

from __future__ import annotations

import json
from typing import Any

from functions.contract import (
    ADAPTER_ENV,
    ATTACHMENTS_BUCKET_SUFFIX,
    AUTHORIZER,
    CLEANUP,
    FUNCTION_ENV,
    FUNCTIONS,
    MAIN,
    OPENAI_API,
    OPENAI_ROUTES,
    REST_ROUTES,
    SESSIONS,
    TABLES,
    Env,
)
from tests.terraform.harness import Cycle, Emulator


def check_stack(
    emulator: Emulator, cycle: Cycle, environment: dict[str, str] | None = None
) -> None:
    """Every read-back; the first failing assertion says what differs. ``environment``:
    values some of the functions' variables must have (each where a function reads it)."""
    config = cycle.outputs["compute_config"]
    functions = {key: spec["arn"] for key, spec in config["lambda_functions"].items()}
    tables = config["dynamodb_table_names"]
    check_environment(emulator, functions, tables, environment or {})
    check_rest_routes(emulator, functions)
    check_tables(emulator, tables)
    check_cleanup_mapping(emulator, tables[SESSIONS.suffix], functions[CLEANUP.key])
    check_attachments_bucket(emulator, config)
    check_alarm_dimensions(emulator, config)


def check_environment(
    emulator: Emulator,
    functions: dict[str, str],
    tables: dict[str, str],
    expected: dict[str, str],
) -> None:
    """Each function holds exactly the variables its code reads (``contract.FUNCTION_ENV``),
    and a function behind the Lambda Web Adapter the adapter's as well, with its layer; the
    table variables name the stack's tables, and ``expected`` values are as given."""
    lambdas = emulator.client("lambda")
    table_env = {schema.env: tables[schema.suffix] for schema in TABLES}
    adapted = {spec.key for spec in FUNCTIONS if spec.web_adapter}
    for key, arn in functions.items():
        configuration = lambdas.get_function_configuration(FunctionName=arn)
        variables = configuration["Environment"]["Variables"]
        adapter = ADAPTER_ENV if key in adapted else {}
        assert set(variables) == set(FUNCTION_ENV[key]) | set(adapter), (key, sorted(variables))
        assert {name: variables[name] for name in adapter} == adapter, key
        layers = [layer["Arn"] for layer in configuration.get("Layers", [])]
        assert len(layers) == (key in adapted), (key, layers)
        for name, value in {**table_env, **expected}.items():
            if name in variables:
                assert variables[name] == value, (key, name, variables[name], value)


def check_rest_routes(emulator: Emulator, functions: dict[str, str]) -> None:
    """Each route of the contract: its method exists, proxies to the main function, and is
    behind the TOKEN authorizer on the jwt-authorizer function exactly when it should be."""
    client = emulator.client("apigateway")
    (api,) = client.get_rest_apis()["items"]
    resources = {
        r["path"]: r
        for r in client.get_resources(restApiId=api["id"], embed=["methods"], limit=500)["items"]
    }
    authorizers = {a["id"]: a for a in client.get_authorizers(restApiId=api["id"])["items"]}
    for route in REST_ROUTES:
        assert route.full_path in resources, f"no resource {route.full_path}"
        resource = resources[route.full_path]
        method = client.get_method(
            restApiId=api["id"], resourceId=resource["id"], httpMethod=route.method
        )
        integration = method["methodIntegration"]
        where = f"{route.method} {route.full_path}"
        assert integration["type"] == "AWS_PROXY", where
        assert f"/functions/{functions[MAIN.key]}/invocations" in integration["uri"], (
            f"{where} invokes {integration['uri']}, not the main function"
        )
        if route.authorized:
            assert method["authorizationType"] == "CUSTOM", where
            authorizer = authorizers[method["authorizerId"]]
            assert authorizer["type"] == "TOKEN", where
            assert (
                f"/functions/{functions[AUTHORIZER.key]}/invocations"
                in (authorizer["authorizerUri"])
            ), f"{where} is authorized by {authorizer['authorizerUri']}"
        else:
            assert method["authorizationType"] == "NONE", where
    check_openai_routes(client, api["id"], resources, functions)


def check_openai_routes(
    client: Any, api_id: str, resources: dict[str, Any], functions: dict[str, str]
) -> None:
    """The OpenAI-compatible routes: behind the same authorizer, each invoking the openai-api
    function through InvokeWithResponseStream's path (the transfer mode itself is a 6.x-only
    attribute the 5.x run drops: see ``harness.SIX_ONLY_ATTRIBUTES``)."""
    streaming = f"/2021-11-15/functions/{functions[OPENAI_API.key]}/response-streaming-invocations"
    for route in OPENAI_ROUTES:
        where = f"{route.method} {route.full_path}"
        assert route.full_path in resources, f"no resource {route.full_path}"
        method = client.get_method(
            restApiId=api_id, resourceId=resources[route.full_path]["id"], httpMethod=route.method
        )
        assert method["authorizationType"] == ("CUSTOM" if route.authorized else "NONE"), where
        integration = method["methodIntegration"]
        assert integration["type"] == "AWS_PROXY", where
        assert integration["uri"].endswith(streaming), f"{where} invokes {integration['uri']}"


def check_tables(emulator: Emulator, names: dict[str, str]) -> None:
    """Each contract table: its keys and their types, its indexes, its TTL attribute, and the
    sessions stream (the cleanup's source) on exactly the sessions table."""
    client = emulator.client("dynamodb")
    assert set(names) == {schema.suffix for schema in TABLES}
    for schema in TABLES:
        table = client.describe_table(TableName=names[schema.suffix])["Table"]
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        expected = {"HASH": schema.hash_key.name}
        if schema.range_key:
            expected["RANGE"] = schema.range_key.name
        assert keys == expected, f"{schema.suffix}: keys {keys}"
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        assert types == {k.name: k.type for k in schema.attributes}, f"{schema.suffix}: {types}"
        indexes = {
            index["IndexName"]: {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
            for index in table.get("GlobalSecondaryIndexes", [])
        }
        assert indexes == {
            index.name: {
                "HASH": index.hash_key.name,
                **({"RANGE": index.range_key.name} if index.range_key else {}),
            }
            for index in schema.indexes
        }, f"{schema.suffix}: indexes {indexes}"
        ttl = client.describe_time_to_live(TableName=names[schema.suffix])
        ttl = ttl["TimeToLiveDescription"]
        assert ttl.get("TimeToLiveStatus") == "ENABLED", f"{schema.suffix}: TTL {ttl}"
        assert ttl.get("AttributeName") == schema.ttl_attribute, f"{schema.suffix}: TTL {ttl}"
        stream = table.get("StreamSpecification", {})
        assert bool(stream.get("StreamEnabled")) == (schema is SESSIONS), (
            f"{schema.suffix}: stream {stream}"
        )


def check_cleanup_mapping(emulator: Emulator, sessions: str, cleanup_arn: str) -> None:
    """The cleanup function reads the sessions table's stream, removals only."""
    stream_arn = emulator.client("dynamodb").describe_table(TableName=sessions)["Table"][
        "LatestStreamArn"
    ]
    mappings = emulator.client("lambda").list_event_source_mappings(FunctionName=cleanup_arn)
    (mapping,) = mappings["EventSourceMappings"]
    assert mapping["EventSourceArn"] == stream_arn
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [{"eventName": ["REMOVE"]}], patterns


def check_attachments_bucket(emulator: Emulator, config: dict[str, Any]) -> None:
    """The attachments bucket: SSE-KMS with a bucket key, every public access blocked, ACLs
    off, and one lifecycle rule over the whole bucket that expires objects and aborts
    unfinished uploads."""
    s3 = emulator.client("s3")
    bucket = config["s3_attachments_bucket_name"]
    assert bucket.endswith(f"-{ATTACHMENTS_BUCKET_SUFFIX}"), bucket
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", rule
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"], rule
    assert rule.get("BucketKeyEnabled") is True, rule
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
        True,
    ), block
    [ownership] = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership == {"ObjectOwnership": "BucketOwnerEnforced"}, ownership
    [lifecycle] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["Status"] == "Enabled", lifecycle
    assert lifecycle["Expiration"]["Days"] >= 1, lifecycle
    assert lifecycle["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}, lifecycle
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Deny", statement
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, statement


def _stack_resources(emulator: Emulator, config: dict[str, Any]) -> dict[str, set[str]]:
    """Dimension name -> the values that name a resource of this stack, read back."""
    lam = emulator.client("lambda")
    names = {spec["name"] for spec in config["lambda_functions"].values()}
    variables = [
        lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        for name in names
    ]
    services = {
        v[Env.POWERTOOLS_SERVICE_NAME] for v in variables if Env.POWERTOOLS_SERVICE_NAME in v
    }
    rest = emulator.client("apigateway")
    rest_apis = rest.get_rest_apis()["items"]
    stages = {
        s["stageName"] for api in rest_apis for s in rest.get_stages(restApiId=api["id"])["item"]
    }
    websocket = emulator.client("apigatewayv2")
    ws_apis = websocket.get_apis()["Items"]
    stages |= {
        s["StageName"] for api in ws_apis for s in websocket.get_stages(ApiId=api["ApiId"])["Items"]
    }
    queues = {
        url.rsplit("/", 1)[1] for url in emulator.client("sqs").list_queues().get("QueueUrls", [])
    }
    return {
        "FunctionName": names,
        "service": services,
        "ApiName": {api["name"] for api in rest_apis},
        "ApiId": {api["ApiId"] for api in ws_apis},
        "Stage": stages,
        "TableName": set(emulator.client("dynamodb").list_tables()["TableNames"]),
        "QueueName": queues,
    }


def check_alarm_dimensions(emulator: Emulator, config: dict[str, Any]) -> None:
    """Each alarm's every metric dimension names something this stack created: an alarm
    on a misspelt function or table never fires, and nothing else would notice."""
    known = _stack_resources(emulator, config)
    alarms = emulator.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert alarms, "no alarms"
    for alarm in alarms:
        metrics = [alarm] + [
            q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q
        ]
        dimensions = [d for metric in metrics for d in metric.get("Dimensions", [])]
        assert dimensions, f"{alarm['AlarmName']}: no dimensions"
        for dimension in dimensions:
            name, value = dimension["Name"], dimension["Value"]
            assert name in known, f"{alarm['AlarmName']}: unexpected dimension {name}"
            assert value in known[name], (
                f"{alarm['AlarmName']}: {name}={value} is none of {sorted(known[name])}"
            )
