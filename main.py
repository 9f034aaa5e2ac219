"""``cdktf synth`` entry point: validate every environment's config, then synthesize one
stack per environment. Nothing is written unless every configuration is valid."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from compute.config import ConfigError, load_environments

ROOT = Path(__file__).resolve().parent


def main() -> int:
    try:
        configs = load_environments(Path(os.environ.get("COMPUTE_CONFIG_DIR", ROOT / "config")))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from compute.packaging import PackagingError
    from compute.stack import build_app

    try:
        app = build_app(configs)
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
