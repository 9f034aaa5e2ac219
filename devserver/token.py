"""``python -m devserver.token USER``: print a token the dev server accepts (``make dev-token``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devserver import identity
from devserver.server import DEFAULT_STATE_DIR, ROOT, token_shape
from devserver.stack import StackError, load_stack, stack_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dev-token", description=__doc__)
    parser.add_argument("user", nargs="?", default="developer", help="the token's subject")
    parser.add_argument("--env", default=os.environ.get("COMPUTE_DEV_ENV") or "dev")
    parser.add_argument("--stacks-dir", type=Path, default=ROOT / "cdktf.out" / "stacks")
    parser.add_argument(
        "--oidc-port", type=int, default=int(os.environ.get("DEV_OIDC_PORT") or 3002)
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    issuer = identity.issuer_url(args.oidc_port)
    try:
        shape = token_shape(load_stack(stack_file(args.stacks_dir, args.env)), issuer)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    key = identity.signing_key(args.state_dir)
    print(identity.mint(key, issuer, args.user, shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
