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

The collector runs less often than CPython's default, and never over what collecting the suite
built (:func:`pytest_collection_finish`): a test process holds about 200,000 long-lived objects
after importing moto, botocore and the apps, and every full collection walked all of them.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

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

# A young collection after 50,000 net allocations rather than 700, so full ones come far less
# often: over 583 function tests, 2 automatic full collections instead of 17, and the
# collector's CPU went from 5.1 s to 2.4 s with the freeze below.
gc.set_threshold(50_000, 50, 10)

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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Modules, fixtures' definitions and test items live as long as the process: moved out
    of the collector's reach once, after the garbage collection made so far is freed, so the
    full collections of the run (pytest's five at its end included) walk only what the tests
    allocate. Garbage the tests make is collected as before."""
    gc.collect()
    gc.freeze()
