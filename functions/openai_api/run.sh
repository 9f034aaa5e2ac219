#!/bin/sh
# The function's "handler": the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap)
# runs this script and proxies each invocation to the port it listens on.
exec python -m uvicorn --port "${PORT:-8080}" --no-access-log functions.openai_api.app:app
