"""CloudWatch alarms and their SNS notifications, and what they (and the dashboard) watch.

The alarm topic is encrypted with the stack's KMS key. Every alarm treats missing data as not
breaching: an idle environment is healthy, not alarming. The thresholds are functions here so
the dashboard draws the very lines the alarms fire at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktf import Fn, Op, Token
from constructs import Construct

from compute.config import ComputeConfig
from compute.encryption import StackKey
from compute.expressions import ceiling, is_expression, percent, product, text
from compute.provider import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
    DynamodbTable,
    LambdaFunction,
    SnsTopic,
    SnsTopicSubscription,
)
from functions.contract import CLEANUP, Metric

PERIOD = 300
NULL = Token.null_value()
# A function's concurrency alarm fires at this share of its reserved concurrency.
CONCURRENCY_SHARE = 0.8
# The cleanup function keeps up with the sessions stream when its records wait less than this.
ITERATOR_AGE_LIMIT_MS = 5 * 60 * 1000


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
            "reached; docs/resources.md, Capacity)",
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
                f"its reserved {text(reserved)} (docs/resources.md, Capacity)",
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
        # counted against its user's limit (functions/data/quota.py).
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
        (docs/functions.md, *Deleting*), so one message in the failure queue is enough to page."""
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
