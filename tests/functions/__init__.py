"""Tests of the Lambda functions.

Powertools reads its configuration when ``functions.core.observability`` is imported, which
happens when the test modules are collected, so it is set here, before any of them is imported.
"""

import os

from functions.contract import Env

os.environ.setdefault(Env.POWERTOOLS_SERVICE_NAME, "ai-assistant-test")
os.environ.setdefault(Env.POWERTOOLS_METRICS_NAMESPACE, "AiAssistantTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
# Read when the main app is built (tests/functions/main/test_cors.py).
os.environ.setdefault(Env.CORS_ALLOWED_ORIGINS, "https://app.example.com,https://admin.example.com")
