"""Powertools for AWS Lambda, configured once for the main and WebSocket functions.

Service name and metrics namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE``, which the stack sets. Only botocore is patched for X-Ray: it is
the only library these functions make network calls with. Outside Lambda (tests) the tracer
disables itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from functions.contract import MODEL_DIMENSION, Metric

if TYPE_CHECKING:
    from functions.domain.models import Message, Rating

logger = Logger()
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()

GUARDRAIL_INTERVENED = "guardrail_intervened"  # Bedrock's stop reason for a guardrail's block


def count(name: str) -> None:
    """One occurrence of a service-wide event (dimension ``service`` only)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def record_turn(model_id: str, answer: Message) -> None:
    """The per-model metrics of one stored answer (:data:`Metric.PER_MODEL`), as one EMF
    document with dimensions ``service`` and ``model``.

    An isolated metrics object, flushed at once: the shared one has a single dimension set,
    which the service-wide metrics (and the alarms on them) keep to ``service``.
    """
    turn = EphemeralMetrics()
    turn.add_dimension(name=MODEL_DIMENSION, value=model_id)
    turn.add_metric(name=Metric.CHAT_TURNS, unit=MetricUnit.Count, value=1)
    if answer.status == "incomplete":
        turn.add_metric(name=Metric.INCOMPLETE_ANSWERS, unit=MetricUnit.Count, value=1)
    if answer.status == "failed":
        turn.add_metric(name=Metric.FAILED_ANSWERS, unit=MetricUnit.Count, value=1)
    if answer.stop_reason == GUARDRAIL_INTERVENED:
        turn.add_metric(name=Metric.GUARDRAIL_INTERVENTIONS, unit=MetricUnit.Count, value=1)
    usage = answer.usage
    if usage is not None:
        for name, value in (
            (Metric.INPUT_TOKENS, usage.input_tokens),
            (Metric.OUTPUT_TOKENS, usage.output_tokens),
            (Metric.CACHE_READ_INPUT_TOKENS, usage.cache_read_input_tokens),
            (Metric.CACHE_WRITE_INPUT_TOKENS, usage.cache_write_input_tokens),
        ):
            turn.add_metric(name=name, unit=MetricUnit.Count, value=value)
    turn.flush_metrics()


def record_feedback(model_id: str, rating: Rating) -> None:
    """One rating of an answer of ``model_id``, per model like :func:`record_turn`."""
    feedback = EphemeralMetrics()
    feedback.add_dimension(name=MODEL_DIMENSION, value=model_id)
    name = Metric.POSITIVE_FEEDBACK if rating == "up" else Metric.NEGATIVE_FEEDBACK
    feedback.add_metric(name=name, unit=MetricUnit.Count, value=1)
    feedback.flush_metrics()
