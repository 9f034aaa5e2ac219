"""``python -m devserver.token USER``: print a token the dev server accepts (``make dev-token``).

``--expires`` (``EXPIRES=15m``) sets its lifetime and ``--scopes`` (``SCOPES="read chat"``) the
exact scopes it carries instead of every scope the stack's routes ask for, so an expiring or
under-privileged token can be tried locally.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from devserver import identity
from devserver.server import DEFAULT_STATE_DIR, ROOT, token_shape
from devserver.stack import StackError, load_stack, stack_file
from functions.authorizer.settings import is_scope_token

DURATION = re.compile(r"(?P<amount>[0-9]+)(?P<unit>[smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LIFETIME_SECONDS = 30 * 86400


def duration(text: str) -> int:
    """Seconds of a lifetime written ``30s``, ``15m``, ``12h`` or ``7d`` (at most 30 days)."""
    match = DURATION.fullmatch(text.strip())
    seconds = int(match["amount"]) * UNIT_SECONDS[match["unit"]] if match else 0
    if not 0 < seconds <= MAX_LIFETIME_SECONDS:
        raise argparse.ArgumentTypeError(
            f"EXPIRES must be a lifetime such as 30s, 15m, 12h or 7d, above zero and at most "
            f"30d, not {text!r}"
        )
    return seconds


def scopes(text: str) -> list[str]:
    """Scopes separated by spaces or commas, each an RFC 6749 scope token."""
    found = [scope for scope in re.split(r"[\s,]+", text) if scope]
    bad = [scope for scope in found if not is_scope_token(scope)]
    if not found or bad:
        raise argparse.ArgumentTypeError(
            f"SCOPES must list scopes separated by spaces or commas, each printable ASCII "
            f'without quotes or backslashes (e.g. SCOPES="read chat"), not {text!r}'
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dev-token", description=__doc__)
    parser.add_argument("user", nargs="?", default="developer", help="the token's subject")
    parser.add_argument("--env", default=os.environ.get("COMPUTE_DEV_ENV") or "dev")
    parser.add_argument("--stacks-dir", type=Path, default=ROOT / "cdktf.out" / "stacks")
    parser.add_argument(
        "--oidc-port", type=int, default=int(os.environ.get("DEV_OIDC_PORT") or 3002)
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--expires",
        type=duration,
        default=identity.TOKEN_LIFETIME_SECONDS,
        metavar="LIFETIME",
        help="how long the token is valid: 30s, 15m, 12h, 7d (EXPIRES; default 12h)",
    )
    parser.add_argument(
        "--scopes",
        type=scopes,
        metavar="SCOPES",
        help="exactly these scopes, separated by spaces or commas (SCOPES; default: every "
        "scope the stack's routes ask for)",
    )
    args = parser.parse_args(argv)
    issuer = identity.issuer_url(args.oidc_port)
    try:
        shape = token_shape(load_stack(stack_file(args.stacks_dir, args.env)), issuer)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.scopes is not None:
        shape = shape.with_scopes(args.scopes)
    key = identity.signing_key(args.state_dir)
    print(identity.mint(key, issuer, args.user, shape, lifetime_seconds=args.expires))
    return 0


if __name__ == "__main__":
    sys.exit(main())
