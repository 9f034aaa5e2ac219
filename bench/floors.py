"""Floor programs for ``make bench``: each does the cheapest thing that does the same job as
the figure it is compared with. Run as ``python bench/floors.py NAME``."""

from __future__ import annotations

import sys
import tempfile


def stock_synth() -> None:
    """Stock provider import plus the synth of an empty stack."""
    import cdktf_cdktf_provider_aws  # noqa: F401  (the 8 s eager import is the point)
    from cdktf import App, TerraformStack

    with tempfile.TemporaryDirectory() as outdir:
        app = App(outdir=outdir)
        TerraformStack(app, "empty")
        app.synth()


FLOORS = {"stock-synth": stock_synth}

if __name__ == "__main__":
    FLOORS[sys.argv[1]]()
