"""Suite-wide setup. The provider bindings load once per test process (through the fast
loader in compute.provider_loader), never per test."""

from __future__ import annotations

import os

os.environ.setdefault("CHECKPOINT_DISABLE", "1")

pytest_plugins = ["tests.support.fixtures"]
