"""Suite-wide setup. The provider bindings load once per test process (through the fast
loader in compute.provider), never per test."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CHECKPOINT_DISABLE", "1")

pytest_plugins = ["tests.support.fixtures"]
