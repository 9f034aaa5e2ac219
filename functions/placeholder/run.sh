#!/bin/sh
# The placeholder's start script for a function behind the Lambda Web Adapter (external mode,
# before a pipeline deploys the real package): a server that answers every request 503.
exec python -m functions.placeholder.web
