"""Suite-wide setup. The provider bindings load once per test process (through the fast
loader in compute.provider_loader), never per test.

Powertools reads its configuration when ``functions.core.observability`` is first imported,
which can happen while any test package is collected (``tests/security`` imports the functions
directly), so its variables are set here, before every test module.

botocore's data files are parsed once per test process (:mod:`tests.support.botocore_models`),
not once per test, though every test starts its functions with fresh clients, and so are its
handlers' signatures and event aliases (:mod:`tests.support.botocore_hooks`); and httpx's
clients share one default TLS context (:mod:`tests.support.tls`) instead of loading the CA
bundle each.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from functions.contract import Env
from tests.support import botocore_hooks, botocore_models, tls

# The project's tools first on PATH, as every make target puts them (the locked Node's node,
# npm and npx are linked into the venv's bin folder), also when pytest is started directly.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault(Env.POWERTOOLS_SERVICE_NAME, "ai-assistant-test")
os.environ.setdefault(Env.POWERTOOLS_METRICS_NAMESPACE, "AiAssistantTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
# Read when the main app is built (tests/functions/main/test_cors.py).
os.environ.setdefault(Env.CORS_ALLOWED_ORIGINS, "https://app.example.com,https://admin.example.com")

botocore_models.share()
botocore_hooks.share()
tls.share()

# Plugins rather than conftest fixtures of one package, so that every package shares one
# instance of each session fixture: a fixture a conftest imports from another is a second one
# (tests/chatclient had started its own synth and dev server beside tests/dev's).
pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.dev_server",
    "tests.security.fixtures",
]
