"""Powertools for AWS Lambda, configured once for the main and WebSocket functions.

Service name and metrics namespace come from ``POWERTOOLS_SERVICE_NAME`` and
``POWERTOOLS_METRICS_NAMESPACE``, which the stack sets. Only botocore is patched for X-Ray: it is
the only library these functions make network calls with. Outside Lambda (tests) the tracer
disables itself.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()
