"""The operations dashboard: one per environment, and every graph on it a metric someone
publishes, under the names and dimensions AWS documents or the functions emit
(tests/functions/core/test_metrics.py checks the emitting side), for resources of the stack.

A CloudWatch dashboard accepts any metric name and dimension without complaint and then
shows an empty graph, which reads as "all quiet": so the allow-lists below are explicit."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from compute.config import ComputeConfig, load_environments
from functions.contract import (
    FUNCTIONS,
    MAIN,
    MODEL_DIMENSION,
    SERVICE_DIMENSION,
    TABLES,
    WEBSOCKET,
    Env,
    Metric,
)
from tests.compute.synth import ROOT, STACKS, Synth, only, ref, resources, shared_synth, synth_stack

pytestmark = STACKS

PREFIX = "ai-assistant-cli-dev"
GRID_WIDTH = 24
REST = frozenset({"ApiName", "Stage"})
WEBSOCKET_API = frozenset({"ApiId", "Stage"})
# (namespace, metric, dimension names) as AWS documents them: Lambda "Types of metrics for
# Lambda functions" (FunctionName); API Gateway "Amazon API Gateway dimensions and metrics"
# (REST: ApiName, Stage) and "Monitor WebSocket API execution with CloudWatch metrics"
# (ApiId, Stage); DynamoDB "Metrics and dimensions" (TableName; ThrottledRequests also by
# Operation); SQS "Available CloudWatch metrics for Amazon SQS" (QueueName).
AWS_METRICS = frozenset(
    {
        *(
            ("AWS/Lambda", name, frozenset({"FunctionName"}))
            for name in (
                "Invocations",
                "Errors",
                "Throttles",
                "Duration",
                "ConcurrentExecutions",
                "IteratorAge",
            )
        ),
        *(
            ("AWS/ApiGateway", name, REST)
            for name in ("Count", "4XXError", "5XXError", "Latency", "IntegrationLatency")
        ),
        *(
            ("AWS/ApiGateway", name, WEBSOCKET_API)
            for name in (
                "ConnectCount",
                "MessageCount",
                "IntegrationError",
                "ClientError",
                "ExecutionError",
                "IntegrationLatency",
            )
        ),
        ("AWS/DynamoDB", "ReadThrottleEvents", frozenset({"TableName"})),
        ("AWS/DynamoDB", "WriteThrottleEvents", frozenset({"TableName"})),
        ("AWS/DynamoDB", "ThrottledRequests", frozenset({"TableName", "Operation"})),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", frozenset({"QueueName"})),
    }
)
# Which resource attribute each AWS dimension's value must reference, by the line's
# (namespace, dimension names): a name typed by hand would drift from the resource's.
DIMENSION_REFERENCES = {
    ("AWS/Lambda", frozenset({"FunctionName"})): {
        "FunctionName": ("aws_lambda_function", "function_name")
    },
    ("AWS/ApiGateway", REST): {
        "ApiName": ("aws_api_gateway_rest_api", "name"),
        "Stage": ("aws_api_gateway_stage", "stage_name"),
    },
    ("AWS/ApiGateway", WEBSOCKET_API): {
        "ApiId": ("aws_apigatewayv2_api", "id"),
        "Stage": ("aws_apigatewayv2_stage", "name"),
    },
    ("AWS/DynamoDB", frozenset({"TableName"})): {"TableName": ("aws_dynamodb_table", "name")},
    ("AWS/SQS", frozenset({"QueueName"})): {"QueueName": ("aws_sqs_queue", "name")},
}
EMF_METRICS = frozenset(
    value for name, value in vars(Metric).items() if name.isupper() and isinstance(value, str)
)
REFERENCE = re.compile(r"\$\{(?P<type>aws_[a-z0-9_]+)\.(?P<id>[A-Za-z0-9_-]+)\.(?P<attr>[a-z_]+)\}")


@dataclass(frozen=True)
class Line:
    """One graphed metric, with the statistic it is drawn with (its own or its widget's)."""

    namespace: str
    name: str
    dimensions: dict[str, str]
    stat: str
    widget: dict[str, Any]

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(self.dimensions)


def body(synth: Synth) -> dict[str, Any]:
    return json.loads(only(synth, "aws_cloudwatch_dashboard")["dashboard_body"])


def lines(synth: Synth) -> list[Line]:
    """Every metric line of the dashboard; an expression or a ``"."`` shorthand fails here,
    so that every line stays checkable on its own."""
    found = []
    for widget in body(synth)["widgets"]:
        if widget["type"] != "metric":
            continue
        properties = widget["properties"]
        for line in properties["metrics"]:
            options = line[-1] if isinstance(line[-1], dict) else {}
            namespace, name, *pairs = line[:-1] if options else line
            assert "." not in (namespace, name) and "." not in pairs, line
            assert len(pairs) % 2 == 0, line
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            stat = options.get("stat", properties["stat"])
            found.append(Line(namespace, name, dimensions, stat, widget))
    return found


def references_resource(synth: Synth, value: str, kind: str, attribute: str) -> bool:
    match = REFERENCE.fullmatch(value)
    return bool(
        match
        and (match["type"], match["attr"]) == (kind, attribute)
        and match["id"] in resources(synth, kind)
    )


@pytest.fixture(scope="module")
def environments() -> dict[str, tuple[ComputeConfig, Synth]]:
    """Every shipped environment, as ``make synth`` builds it."""
    return {
        config.environment: (config, shared_synth(config))
        for config in load_environments(ROOT / "config", {})
    }


@pytest.fixture(scope="module")
def variants(
    environments: dict[str, tuple[ComputeConfig, Synth]],
    dev_config: ComputeConfig,
    dev: Synth,
) -> list[tuple[ComputeConfig, Synth]]:
    """The shipped environments and the embedded default."""
    return [*environments.values(), (dev_config, dev)]


def test_one_dashboard_per_environment(
    environments: dict[str, tuple[ComputeConfig, Synth]],
) -> None:
    assert set(environments) == {path.stem for path in (ROOT / "config").glob("*.toml")}
    names = set()
    for config, synth in environments.values():
        dashboard = only(synth, "aws_cloudwatch_dashboard")
        assert dashboard["dashboard_name"] == f"{config.prefix}-operations"
        names.add(dashboard["dashboard_name"])
        graphs = [w for w in body(synth)["widgets"] if w["type"] == "metric"]
        assert graphs
        for widget in graphs:
            assert widget["properties"]["region"] == config.aws_region
            assert widget["properties"]["period"] == 300
    assert len(names) == len(environments)


def test_the_dashboard_name_is_in_compute_config(dev: Synth) -> None:
    assert dev["output"]["compute_config"]["value"]["dashboard_name"] == ref(
        dev, "aws_cloudwatch_dashboard", "dashboard_name", dashboard_name=f"{PREFIX}-operations"
    )


def test_aws_metrics_are_documented_ones_of_the_stacks_resources(
    variants: list[tuple[ComputeConfig, Synth]],
) -> None:
    for _, synth in variants:
        for line in lines(synth):
            if not line.namespace.startswith("AWS/"):
                continue
            assert (line.namespace, line.name, line.dimension_names) in AWS_METRICS, line
            expected = DIMENSION_REFERENCES[(line.namespace, line.dimension_names)]
            for dimension, value in line.dimensions.items():
                kind, attribute = expected[dimension]
                assert references_resource(synth, value, kind, attribute), (dimension, value)


def test_custom_metrics_are_exactly_what_the_functions_emit(
    variants: list[tuple[ComputeConfig, Synth]],
) -> None:
    """Namespace and ``service`` as the functions' Powertools is given them; the contract's
    names, each with its own dimension set; per-model graphs with one line per configured
    model and no other; and every metric of the contract on the dashboard."""
    for config, synth in variants:
        main = only_function(synth, config, MAIN.suffix)["environment"]["variables"]
        assert config.metrics_namespace == main[Env.POWERTOOLS_METRICS_NAMESPACE]
        custom = [line for line in lines(synth) if not line.namespace.startswith("AWS/")]
        models: dict[str, list[str]] = {}
        for line in custom:
            assert line.namespace == config.metrics_namespace, line
            assert line.name in EMF_METRICS, line
            assert line.stat == "Sum", line
            assert line.dimensions[SERVICE_DIMENSION] == main[Env.POWERTOOLS_SERVICE_NAME]
            if line.name in Metric.PER_MODEL:
                assert line.dimension_names == {SERVICE_DIMENSION, MODEL_DIMENSION}, line
                models.setdefault(line.name, []).append(line.dimensions[MODEL_DIMENSION])
            else:
                assert line.dimension_names == {SERVICE_DIMENSION}, line
        assert {line.name for line in custom} == EMF_METRICS
        assert models == {name: list(config.bedrock_models) for name in Metric.PER_MODEL}


def test_every_reference_in_the_body_is_to_a_resource_of_the_stack(
    variants: list[tuple[ComputeConfig, Synth]],
) -> None:
    for _, synth in variants:
        raw = only(synth, "aws_cloudwatch_dashboard")["dashboard_body"]
        interpolations = re.findall(r"\$\{[^}]*\}", raw)
        assert interpolations, "no references: the names were typed by hand"
        assert raw.count("$") == len(interpolations)
        for interpolation in interpolations:
            match = REFERENCE.fullmatch(interpolation)
            assert match, interpolation
            assert match["id"] in resources(synth, match["type"]), interpolation


def only_function(synth: Synth, config: ComputeConfig, suffix: str) -> dict[str, Any]:
    (found,) = [
        f
        for f in resources(synth, "aws_lambda_function").values()
        if f["function_name"] == f"{config.prefix}-{suffix}"
    ]
    return found


def function_lines(synth: Synth, config: ComputeConfig, suffix: str) -> dict[tuple, Line]:
    """A function's lines by (metric, statistic)."""
    name = ref(
        synth, "aws_lambda_function", "function_name", function_name=f"{config.prefix}-{suffix}"
    )
    return {
        (line.name, line.stat): line
        for line in lines(synth)
        if line.namespace == "AWS/Lambda" and line.dimensions == {"FunctionName": name}
    }


def test_every_function_has_its_load_failures_and_latency(
    variants: list[tuple[ComputeConfig, Synth]],
) -> None:
    for config, synth in variants:
        for spec in FUNCTIONS:
            shown = set(function_lines(synth, config, spec.suffix))
            assert {
                ("Invocations", "Sum"),
                ("Errors", "Sum"),
                ("Throttles", "Sum"),
                ("Duration", "p50"),
                ("Duration", "p99"),
                ("ConcurrentExecutions", "Maximum"),
            } <= shown, spec.key


@pytest.mark.parametrize(
    ("shared", "websocket"),
    [(10, 50), (-1, 7), (3, None)],
    ids=["both-reserved", "websocket-only", "shared"],
)
def test_concurrency_graphs_draw_each_functions_reservation(
    shared: int, websocket: int | None
) -> None:
    """Mutations caught: the websocket override ignored, a line drawn at a reservation that
    does not exist (-1: the function draws on the account's unreserved pool)."""
    config = ComputeConfig(
        lambda_reserved_concurrency=shared, websocket_reserved_concurrency=websocket
    )
    synth = synth_stack(config)
    for spec in FUNCTIONS:
        reserved = only_function(synth, config, spec.suffix).get(
            "reserved_concurrent_executions", -1
        )
        assert reserved == (websocket if spec is WEBSOCKET and websocket is not None else shared)
        concurrency = function_lines(synth, config, spec.suffix)[
            ("ConcurrentExecutions", "Maximum")
        ]
        limits = {
            a["label"]: a["value"]
            for a in concurrency.widget["properties"].get("annotations", {}).get("horizontal", [])
        }
        if reserved > 0:
            assert limits[f"reserved {reserved}"] == reserved
            alarm = by_name(synth, f"{config.prefix}-{spec.key}-concurrency")
            assert limits["alarm at 80%"] == alarm["threshold"]
        else:
            assert limits == {}


def by_name(synth: Synth, alarm_name: str) -> dict[str, Any]:
    (found,) = [
        a
        for a in resources(synth, "aws_cloudwatch_metric_alarm").values()
        if a["alarm_name"] == alarm_name
    ]
    return found


def test_apis_tables_and_cleanup_are_shown(dev: Synth) -> None:
    shown = {
        (line.namespace, line.name, line.stat, tuple(line.dimensions.values()))
        for line in lines(dev)
    }
    rest = (
        ref(dev, "aws_api_gateway_rest_api", "name", name=f"{PREFIX}-api"),
        ref(dev, "aws_api_gateway_stage", "stage_name", stage_name="v1"),
    )
    websocket = (
        ref(dev, "aws_apigatewayv2_api", "id", name=f"{PREFIX}-websocket"),
        ref(dev, "aws_apigatewayv2_stage", "name", name="v1"),
    )
    expected = {
        ("AWS/ApiGateway", "4XXError", "Sum", rest),
        ("AWS/ApiGateway", "5XXError", "Sum", rest),
        ("AWS/ApiGateway", "Latency", "p50", rest),
        ("AWS/ApiGateway", "Latency", "p99", rest),
        *(
            ("AWS/ApiGateway", name, "Sum", websocket)
            for name in (
                "ConnectCount",
                "MessageCount",
                "IntegrationError",
                "ClientError",
                "ExecutionError",
            )
        ),
        *(
            (
                "AWS/DynamoDB",
                name,
                "Sum",
                (ref(dev, "aws_dynamodb_table", "name", name=f"{PREFIX}-{t.suffix}"),),
            )
            for t in TABLES
            for name in ("ReadThrottleEvents", "WriteThrottleEvents")
        ),
        (
            "AWS/Lambda",
            "IteratorAge",
            "Maximum",
            (
                ref(
                    dev,
                    "aws_lambda_function",
                    "function_name",
                    function_name=f"{PREFIX}-session-cleanup",
                ),
            ),
        ),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            (ref(dev, "aws_sqs_queue", "name", name=f"{PREFIX}-cleanup-failures"),),
        ),
    }
    assert expected <= shown, expected - shown


def test_widgets_tile_the_grid_without_overlapping(
    variants: list[tuple[ComputeConfig, Synth]],
) -> None:
    for _, synth in variants:
        taken: set[tuple[int, int]] = set()
        for widget in body(synth)["widgets"]:
            x, y, width, height = (widget[k] for k in ("x", "y", "width", "height"))
            assert x >= 0 and x + width <= GRID_WIDTH, widget
            cells = {(x + i, y + j) for i in range(width) for j in range(height)}
            assert not cells & taken, widget
            taken |= cells
