"""The operations dashboard: per function, API and table, and the functions' own metrics,
drawn against the thresholds the alarms fire at."""

from __future__ import annotations

import json
from typing import Any

from cdktf import Fn, TerraformIterator
from constructs import Construct

from compute.alarms import (
    CONCURRENCY_SHARE,
    ITERATOR_AGE_LIMIT_MS,
    PERIOD,
    Monitored,
    busy_threshold,
    duration_limit_ms,
    reserved_above_zero,
    when_reserved,
)
from compute.config import ComputeConfig
from compute.expressions import is_expression, labelled, product
from compute.provider import CloudwatchDashboard, LambdaFunction
from functions.contract import CLEANUP, MODEL_DIMENSION, SERVICE_DIMENSION, Metric

# The dashboard's grid is 24 units wide; a metric widget of this height shows a readable graph.
GRID_WIDTH = 24
GRAPH_HEIGHT = 6
# Titles of the functions' EMF metrics on the dashboard, in the order they are shown.
SERVICE_METRIC_TITLES = {
    Metric.MODEL_THROTTLED: "Bedrock calls throttled (after retries)",
    Metric.QUOTA_EXCEEDED: "Turns refused: token budget spent",
    Metric.BUSY: "Turns refused: too many answers generating",
    Metric.CLIENT_GONE: "WebSocket clients gone mid-answer",
    Metric.USAGE_NOT_RECORDED: "Turns whose tokens the ledger missed",
    Metric.ANSWER_SLOTS_REPAIRED: "Answers never stored (slots repaired)",
}
PER_MODEL_METRIC_TITLES = {
    Metric.CHAT_TURNS: "Chat turns stored",
    Metric.INPUT_TOKENS: "Input tokens (uncached)",
    Metric.OUTPUT_TOKENS: "Output tokens",
    Metric.CACHE_READ_INPUT_TOKENS: "Prompt cache: tokens read",
    Metric.CACHE_WRITE_INPUT_TOKENS: "Prompt cache: tokens written",
    Metric.GUARDRAIL_INTERVENTIONS: "Guardrail interventions",
    Metric.INCOMPLETE_ANSWERS: "Incomplete answers",
    Metric.FAILED_ANSWERS: "Failed answers",
}
# Users' ratings of answers (PUT .../feedback), per model, on a row of their own.
FEEDBACK_METRIC_TITLES = {
    Metric.POSITIVE_FEEDBACK: "Answers rated up",
    Metric.NEGATIVE_FEEDBACK: "Answers rated down",
}

Widget = dict[str, Any]
MetricLine = list[Any]  # [namespace, name, dimension, value, ..., {options}]


def metric_line(
    namespace: str, name: str, dimensions: dict[str, str], **options: object
) -> MetricLine:
    """One graphed metric in the dashboard body's array form, always spelled out in full
    (no ``"."`` shorthand), so each line can be checked on its own."""
    line: MetricLine = [namespace, name]
    for dimension, value in dimensions.items():
        line += [dimension, value]
    if options:
        line.append(options)
    return line


class Dashboard(Construct):
    """One dashboard per environment, ``${prefix}-operations``: the alarms say that something
    is wrong, this shows where and since when. Every name in it is a Terraform reference to the
    resource (or the config value the functions are given), so it cannot point at a metric
    no one publishes after a rename."""

    def __init__(
        self, scope: Construct, id_: str, *, config: ComputeConfig, watched: Monitored
    ) -> None:
        super().__init__(scope, id_)
        self._config = config
        self._widgets: list[Widget] = []
        self._y = 0
        self._header(
            f"# {config.prefix} operations\n"
            f"Counts are sums per {PERIOD // 60} minutes. The alarms on these metrics notify "
            f"the SNS topic `{config.prefix}-alarms`."
        )
        self._functions(watched)
        self._apis(watched)
        self._tables(watched)
        self._model_metrics()
        self.dashboard = CloudwatchDashboard(
            self,
            "dashboard",
            dashboard_name=f"{config.prefix}-operations",
            # The module's body holds expressions (numbers, the model list) for Terraform to
            # encode; an environment's is plain JSON.
            dashboard_body=(
                Fn.jsonencode({"widgets": self._widgets})
                if is_expression(config.prefix)
                else json.dumps({"widgets": self._widgets})
            ),
        )

    # Layout ----------------------------------------------------------------------------------

    def _header(self, markdown: str, height: int = 2) -> None:
        self._widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": self._y,
                "width": GRID_WIDTH,
                "height": height,
                "properties": {"markdown": markdown},
            }
        )
        self._y += height

    def _row(self, *widgets: Widget) -> None:
        """Widgets side by side, sharing the grid's width."""
        width = GRID_WIDTH // len(widgets)
        for column, widget in enumerate(widgets):
            position = {"x": column * width, "y": self._y, "width": width, "height": GRAPH_HEIGHT}
            self._widgets.append({"type": widget["type"], **position, **widget})
        self._y += GRAPH_HEIGHT

    def _graph(
        self,
        title: str,
        lines: list[MetricLine],
        *,
        stat: str = "Sum",
        limits: dict[str, Any] | None = None,
        when: Any = None,
    ) -> Widget:
        """A time series; ``limits`` become horizontal lines (label: value), drawn only while
        ``when`` holds if it is an expression."""
        properties: dict[str, Any] = {
            "title": title,
            "view": "timeSeries",
            "stacked": False,
            "region": self._config.aws_region,
            "period": PERIOD,
            "stat": stat,
            "metrics": lines,
            "yAxis": {"left": {"min": 0}},
        }
        if limits:
            lines = [{"label": label, "value": value} for label, value in limits.items()]
            if when is not None:
                lines = Fn.conditional(when, lines, [])
            properties["annotations"] = {"horizontal": lines}
        return {"type": "metric", "properties": properties}

    # Rows ------------------------------------------------------------------------------------

    def _functions(self, watched: Monitored) -> None:
        self._header(
            "## Lambda functions\n"
            "Throttles mean the reserved concurrency (the line on the concurrency graph) or "
            "the account's limit was reached (docs/resources.md, *Capacity*)."
        )
        for key, function in watched.functions.items():
            self._function_row(key, function)
        cleanup = {"FunctionName": watched.functions[CLEANUP.key].function_name}
        self._row(
            self._graph(
                f"{CLEANUP.key}: age of the oldest sessions stream record (ms)",
                [metric_line("AWS/Lambda", "IteratorAge", cleanup)],
                stat="Maximum",
                limits={"alarm": ITERATOR_AGE_LIMIT_MS},
            ),
            self._graph(
                f"{CLEANUP.key}: batches given up on (failure queue)",
                [
                    metric_line(
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        {"QueueName": watched.cleanup_failures_queue_name},
                    )
                ],
                stat="Maximum",
            ),
        )

    def _function_row(self, key: str, function: LambdaFunction) -> None:
        """Load, failures and latency of one function, with the limits its alarms use drawn
        in: its timeout and p99 alarm, its reserved concurrency and concurrency alarm."""
        config = self._config
        dimensions = {"FunctionName": function.function_name}
        timeout_ms = product(config.timeout_for(key), 1000)
        reserved = config.reserved_concurrency_for(key)
        watched, count = when_reserved(reserved)
        concurrency_limits = (
            {
                labelled("reserved ", reserved): reserved,
                f"alarm at {CONCURRENCY_SHARE:.0%}": busy_threshold(reserved),
            }
            if watched
            else None
        )
        self._row(
            self._graph(
                f"{key}: invocations, errors, throttles",
                [
                    metric_line("AWS/Lambda", name, dimensions)
                    for name in ("Invocations", "Errors", "Throttles")
                ],
            ),
            self._graph(
                f"{key}: duration (ms)",
                [
                    metric_line("AWS/Lambda", "Duration", dimensions, stat=p, label=p)
                    for p in ("p50", "p99")
                ],
                stat="p99",
                limits={
                    "timeout": timeout_ms,
                    "p99 alarm": duration_limit_ms(config, key),
                },
            ),
            self._graph(
                f"{key}: concurrent executions",
                [metric_line("AWS/Lambda", "ConcurrentExecutions", dimensions)],
                stat="Maximum",
                limits=concurrency_limits,
                when=None if count is None else reserved_above_zero(reserved),
            ),
        )

    def _apis(self, watched: Monitored) -> None:
        rest = {"ApiName": watched.rest_api_name, "Stage": watched.rest_stage_name}
        websocket = {"ApiId": watched.websocket_api_id, "Stage": watched.websocket_stage_name}

        def api_lines(dimensions: dict[str, str], *names: str) -> list[MetricLine]:
            return [metric_line("AWS/ApiGateway", name, dimensions) for name in names]

        self._header("## APIs")
        self._row(
            self._graph(
                "REST: requests and errors", api_lines(rest, "Count", "4XXError", "5XXError")
            ),
            self._graph(
                "REST: latency (ms)",
                [
                    metric_line("AWS/ApiGateway", "Latency", rest, stat=p, label=p)
                    for p in ("p50", "p99")
                ],
                stat="p99",
            ),
            self._graph(
                "WebSocket: connections and messages",
                api_lines(websocket, "ConnectCount", "MessageCount"),
            ),
            self._graph(
                "WebSocket: errors",
                api_lines(websocket, "IntegrationError", "ClientError", "ExecutionError"),
            ),
        )

    def _tables(self, watched: Monitored) -> None:
        self._header("## DynamoDB (throttled requests: on-demand capacity bursts or hot keys)")

        def per_table(name: str) -> list[MetricLine]:
            return [
                metric_line("AWS/DynamoDB", name, {"TableName": table.name}, label=suffix)
                for suffix, table in watched.tables.items()
            ]

        self._row(
            self._graph("Read throttle events", per_table("ReadThrottleEvents")),
            self._graph("Write throttle events", per_table("WriteThrottleEvents")),
        )

    def _model_metrics(self) -> None:
        """The functions' EMF metrics: published for the configured service, and per model for
        each model the functions may call (the one a turn used is in its ``model`` dimension)."""
        config = self._config
        service = {SERVICE_DIMENSION: config.service_name}
        namespace = config.metrics_namespace
        self._header(
            "## Bedrock and users\n"
            "The functions' own metrics (namespace "
            f"`{namespace}`); per-model graphs have one line per configured model."
        )
        self._row(
            *(
                self._graph(title, [metric_line(namespace, name, service)])
                for name, title in SERVICE_METRIC_TITLES.items()
            )
        )
        per_model = [
            self._graph(title, self._per_model(namespace, name, service))
            for name, title in PER_MODEL_METRIC_TITLES.items()
        ]
        half = len(per_model) // 2
        self._row(*per_model[:half])
        self._row(*per_model[half:])
        self._row(
            *(
                self._graph(title, self._per_model(namespace, name, service))
                for name, title in FEEDBACK_METRIC_TITLES.items()
            )
        )

    def _per_model(self, namespace: str, name: str, service: dict[str, str]) -> Any:
        """One line per configured model; the module's model list is a variable, so there the
        lines are a Terraform ``for`` expression over it."""
        models = self._config.bedrock_models
        if not is_expression(models):
            return [
                metric_line(namespace, name, {**service, MODEL_DIMENSION: model}, label=model)
                for model in models
            ]
        # CDKTF names the iterator's element `val`; tokens stand bare in the expression text.
        line = [namespace, name, *(part for pair in service.items() for part in pair)]
        items = [part if is_expression(part) else json.dumps(part) for part in line]
        expression = f'[{", ".join(items)}, "{MODEL_DIMENSION}", val, {{"label" = val}}]'
        return TerraformIterator.from_list(models).for_expression_for_list(expression)
