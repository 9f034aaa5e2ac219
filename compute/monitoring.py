"""CloudWatch log groups, alarms and their SNS notifications, and the operations dashboard.

Log groups are created by Terraform, not by Lambda on first write, so their retention is
managed and ``terraform destroy`` removes them. Logs and the alarm topic are encrypted with
the stack's KMS key. Every alarm treats missing data as not breaching: an idle environment
is healthy, not alarming.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import Fn, Op, TerraformIterator, Token
from constructs import Construct

from compute.config import ComputeConfig
from compute.encryption import StackKey
from compute.expressions import ceiling, is_expression, labelled, percent, product, text
from compute.provider import (
    CloudwatchDashboard,
    CloudwatchLogGroup,
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
    DynamodbTable,
    LambdaFunction,
    SnsTopic,
    SnsTopicSubscription,
)
from functions.shared.contract import (
    CLEANUP,
    FUNCTIONS,
    MODEL_DIMENSION,
    SERVICE_DIMENSION,
    Metric,
)

PERIOD = 300
NULL = Token.null_value()
# A function's concurrency alarm fires at this share of its reserved concurrency.
CONCURRENCY_SHARE = 0.8
# The cleanup function keeps up with the sessions stream when its records wait less than this.
ITERATOR_AGE_LIMIT_MS = 5 * 60 * 1000
REST_API_LOGS = "rest-api"
WEBSOCKET_API_LOGS = "websocket-api"
WAF_LOGS = "waf"


def duration_limit_ms(config: ComputeConfig, function_key: str) -> Any:
    """The p99 duration a function's alarm fires above; the dashboard draws the same line."""
    return product(config.timeout_for(function_key), 1000, config.alarm_lambda_duration_share)


def busy_threshold(reserved: Any) -> Any:
    """The concurrent executions a function's concurrency alarm fires at (and the dashboard
    draws), for a reservation above 0."""
    return ceiling(reserved, CONCURRENCY_SHARE)


def reserved_above_zero(reserved: Any) -> Any:
    """``reserved > 0`` in Terraform (a reservation is a whole number; CDKTF's ``Op.gt``
    renders a literal 0 as ``undefined``)."""
    return Op.gte(reserved, 1)


def when_reserved(reserved: Any) -> tuple[bool, Any]:
    """Whether a function has a concurrency alarm, and the alarm's ``count``: None for a
    literal reservation (the alarm exists or not), an expression for the module's variable."""
    if is_expression(reserved):
        return True, Token.as_number(Fn.conditional(reserved_above_zero(reserved), 1, 0))
    return reserved > 0, None


def log_group_names(config: ComputeConfig) -> dict[str, str]:
    """Every log group of the stack by construct id. The key policy names them too, before
    the groups exist, so both read them from here."""
    names = {
        f"lambda-{spec.key}": f"/aws/lambda/{config.prefix}-{spec.suffix}" for spec in FUNCTIONS
    }
    names[REST_API_LOGS] = f"/aws/apigateway/{config.prefix}"
    names[WEBSOCKET_API_LOGS] = f"/aws/apigateway/{config.prefix}-websocket"
    if config.uses_waf:
        names[WAF_LOGS] = f"aws-waf-logs-{config.prefix}"  # WAF requires this prefix
    return names


class LogGroups(Construct):
    """One log group per function and per API (and for WAF when it is on), all with the
    configured retention and encrypted with the stack's key."""

    def __init__(self, scope: Construct, id_: str, *, config: ComputeConfig, key: StackKey) -> None:
        super().__init__(scope, id_)
        groups = {
            group_id: CloudwatchLogGroup(
                self,
                group_id,
                name=name,
                retention_in_days=config.log_retention_days,
                kms_key_id=key.arn,
            )
            for group_id, name in log_group_names(config).items()
        }
        self.functions = {spec.key: groups[f"lambda-{spec.key}"] for spec in FUNCTIONS}
        self.rest_api = groups[REST_API_LOGS]
        self.websocket_api = groups[WEBSOCKET_API_LOGS]
        self.waf: CloudwatchLogGroup | None = groups.get(WAF_LOGS)


@dataclass(frozen=True)
class Monitored:
    """What the alarms and the dashboard watch; names are Terraform references, resolved at
    apply time."""

    functions: dict[str, LambdaFunction]
    rest_api_name: str
    rest_stage_name: str
    websocket_api_id: str
    websocket_stage_name: str
    tables: dict[str, DynamodbTable]
    cleanup_failures_queue_name: str  # where the sessions stream mapping sends failed batches


class Alarms(Construct):
    """The spec's alarms, all notifying one SNS topic (with an optional e-mail subscriber)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: ComputeConfig,
        watched: Monitored,
        stack_key: StackKey,
    ) -> None:
        super().__init__(scope, id_)
        self._config = config
        self.topic = SnsTopic(
            self, "topic", name=f"{config.prefix}-alarms", kms_master_key_id=stack_key.arn
        )
        if config.alarm_email:
            SnsTopicSubscription(
                self,
                "email",
                topic_arn=self.topic.arn,
                protocol="email",
                endpoint=config.alarm_email,
                # The module's variable may be null: then there is no subscription.
                count=(
                    Token.as_number(Fn.conditional(Op.eq(config.alarm_email, NULL), 0, 1))
                    if is_expression(config.alarm_email)
                    else None
                ),
            )
        self.alarms: list[CloudwatchMetricAlarm] = []
        for key, function in watched.functions.items():
            self._function_alarms(key, function)
        self._api_alarms(watched)
        self._model_throttle_alarm()
        for suffix, table in watched.tables.items():
            self._throttle_alarm(suffix, table)
        self._cleanup_alarms(watched.functions[CLEANUP.key], watched.cleanup_failures_queue_name)

    def _alarm(self, id_: str, name: str, description: str, **metric: object) -> None:
        self.alarms.append(
            CloudwatchMetricAlarm(
                self,
                id_,
                alarm_name=f"{self._config.prefix}-{name}",
                alarm_description=description,
                evaluation_periods=1,
                treat_missing_data="notBreaching",
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                **metric,
            )
        )

    def _function_alarms(self, key: str, function: LambdaFunction) -> None:
        dimensions = {"FunctionName": function.function_name}
        config = self._config
        self._alarm(
            f"{key}-errors",
            f"{key}-errors",
            f"Lambda {key}: {text(config.alarm_lambda_errors_threshold)}+ errors in 5 minutes",
            namespace="AWS/Lambda", metric_name="Errors", dimensions=dimensions,
            statistic="Sum", period=PERIOD, comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=config.alarm_lambda_errors_threshold,
        )  # fmt: skip
        timeout = config.timeout_for(key)
        limit_ms = duration_limit_ms(config, key)
        self._alarm(
            f"{key}-duration",
            f"{key}-duration-p99",
            f"Lambda {key}: p99 duration above {text(limit_ms)} ms "
            f"({percent(config.alarm_lambda_duration_share)} of the {text(timeout)} s timeout)",
            namespace="AWS/Lambda", metric_name="Duration", dimensions=dimensions,
            extended_statistic="p99", period=PERIOD,
            comparison_operator="GreaterThanThreshold", threshold=limit_ms,
        )  # fmt: skip
        self._alarm(
            f"{key}-throttles",
            f"{key}-throttles",
            f"Lambda {key}: invocations throttled (reserved concurrency or the account's limit "
            "reached; README, Capacity)",
            namespace="AWS/Lambda", metric_name="Throttles", dimensions=dimensions,
            statistic="Sum", period=PERIOD, comparison_operator="GreaterThanThreshold",
            threshold=0,
        )  # fmt: skip
        reserved = config.reserved_concurrency_for(key)
        watched, count = when_reserved(reserved)
        if watched:
            busy = busy_threshold(reserved)
            self._alarm(
                f"{key}-concurrency",
                f"{key}-concurrency",
                f"Lambda {key}: {text(busy)}+ concurrent executions, {CONCURRENCY_SHARE:.0%} of "
                f"its reserved {text(reserved)} (README, Capacity)",
                namespace="AWS/Lambda", metric_name="ConcurrentExecutions",
                dimensions=dimensions, statistic="Maximum", period=PERIOD,
                comparison_operator="GreaterThanOrEqualToThreshold", threshold=busy, count=count,
            )  # fmt: skip

    def _model_throttle_alarm(self) -> None:
        """Bedrock keeps saying "slow down" after botocore's retries: its quota (tokens or
        requests per minute) is too small for the traffic, and users get ``throttled``."""
        config = self._config
        self._alarm(
            "bedrock-throttles",
            "bedrock-throttles",
            f"Bedrock: {text(config.alarm_lambda_errors_threshold)}+ model calls throttled in 5 "
            "minutes (the model's quota is too small for the traffic)",
            namespace=config.metrics_namespace, metric_name=Metric.MODEL_THROTTLED,
            dimensions={"service": config.service_name},
            statistic="Sum", period=PERIOD, comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=config.alarm_lambda_errors_threshold,
        )  # fmt: skip
        # The budgets are only as good as the ledger: a turn whose tokens it missed is not
        # counted against its user's limit (functions/shared/quota.py).
        self._alarm(
            "usage-not-recorded",
            "usage-not-recorded",
            "Token budgets: a turn's tokens could not be added to the usage ledger",
            namespace=config.metrics_namespace, metric_name=Metric.USAGE_NOT_RECORDED,
            dimensions={"service": config.service_name},
            statistic="Sum", period=PERIOD, comparison_operator="GreaterThanThreshold",
            threshold=0,
        )  # fmt: skip

    def _api_alarms(self, watched: Monitored) -> None:
        """Error responses of both APIs: the REST API's 4XX and 5XX, the WebSocket API's
        integration and execution errors (against the 5XX threshold)."""
        config = self._config
        rest = {"ApiName": watched.rest_api_name, "Stage": watched.rest_stage_name}
        websocket = {"ApiId": watched.websocket_api_id, "Stage": watched.websocket_stage_name}
        alarms = (
            # construct id and alarm name prefixes, dimensions, metric, threshold, description
            ("rest", "api", rest, "4XXError", config.alarm_api_4xx_threshold,
             "REST API: {threshold}+ {metric} responses in 5 minutes"),
            ("rest", "api", rest, "5XXError", config.alarm_api_5xx_threshold,
             "REST API: {threshold}+ {metric} responses in 5 minutes"),
            ("websocket", "websocket", websocket, "IntegrationError",
             config.alarm_api_5xx_threshold, "WebSocket API: {metric} in 5 minutes"),
            ("websocket", "websocket", websocket, "ExecutionError",
             config.alarm_api_5xx_threshold, "WebSocket API: {metric} in 5 minutes"),
        )  # fmt: skip
        for id_prefix, name_prefix, dimensions, metric, threshold, description in alarms:
            self._alarm(
                f"{id_prefix}-{metric.lower()}",
                f"{name_prefix}-{metric.lower()}",
                description.format(threshold=text(threshold), metric=metric),
                namespace="AWS/ApiGateway", metric_name=metric, dimensions=dimensions,
                statistic="Sum", period=PERIOD,
                comparison_operator="GreaterThanOrEqualToThreshold", threshold=threshold,
            )  # fmt: skip

    def _throttle_alarm(self, suffix: str, table: DynamodbTable) -> None:
        def events(id_: str, metric: str) -> CloudwatchMetricAlarmMetricQuery:
            return CloudwatchMetricAlarmMetricQuery(
                id=id_,
                metric=CloudwatchMetricAlarmMetricQueryMetric(
                    namespace="AWS/DynamoDB", metric_name=metric, period=PERIOD, stat="Sum",
                    dimensions={"TableName": table.name},
                ),
            )  # fmt: skip

        self._alarm(
            f"{suffix}-throttles",
            f"dynamodb-{suffix}-throttles",
            f"DynamoDB {suffix}: read or write requests throttled",
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            metric_query=[
                events("reads", "ReadThrottleEvents"),
                events("writes", "WriteThrottleEvents"),
                CloudwatchMetricAlarmMetricQuery(
                    id="throttles", expression="reads + writes", label="Throttled requests",
                    return_data=True,
                ),
            ],
        )  # fmt: skip

    def _cleanup_alarms(self, function: LambdaFunction, queue_name: str) -> None:
        """The stream consumer falls behind (its records age), or gave up on a batch: the
        messages of those sessions are still there, and only an operator can remove them now
        (README, *Deleting*), so one message in the failure queue is enough to page."""
        self._alarm(
            f"{CLEANUP.key}-iterator-age",
            f"{CLEANUP.key}-iterator-age",
            f"Lambda {CLEANUP.key}: sessions stream records wait over "
            f"{ITERATOR_AGE_LIMIT_MS // 60000} minutes",
            namespace="AWS/Lambda", metric_name="IteratorAge",
            dimensions={"FunctionName": function.function_name},
            statistic="Maximum", period=PERIOD,
            comparison_operator="GreaterThanThreshold", threshold=ITERATOR_AGE_LIMIT_MS,
        )  # fmt: skip
        self._alarm(
            f"{CLEANUP.key}-failures",
            f"{CLEANUP.key}-failures",
            "Session cleanup gave up on a batch of removed sessions: their messages remain "
            "(the batch is described in the failure queue)",
            namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": queue_name},
            statistic="Maximum", period=PERIOD,
            comparison_operator="GreaterThanThreshold", threshold=0,
        )  # fmt: skip


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
            "the account's limit was reached (README, *Capacity*)."
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
