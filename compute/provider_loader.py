"""The fast loader for the prebuilt provider bindings, which ``compute.provider`` runs first.

The stock ``cdktf_cdktf_provider_aws/__init__.py`` eagerly imports all 2,212 resource
submodules (about 8 s per process here). Its preamble, which loads the jsii assembly, is
all a submodule needs, so the loader runs only that preamble and leaves Python to import
the submodules that ``compute.provider`` names. The upstream package is frozen (CDKTF was
archived in Dec 2025), so the preamble marker below cannot move under us; if it ever does,
the loader fails loudly rather than synthesizing something different.

jsii's Node process pays the same price on its side: the AWS package's ``lib/index.js``
requires all 2,212 resource modules. :func:`configure_node` preloads ``lazy_provider.cjs``
into it (``NODE_OPTIONS``), which makes those requires happen on first use; see that file.

Set ``COMPUTE_STOCK_PROVIDER=1`` to import the stock packages instead, on both sides (the
equivalence test and the benchmark floor use it).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

AWS_PACKAGE = "cdktf_cdktf_provider_aws"
PACKAGES = (AWS_PACKAGE,)
STOCK_SWITCH = "COMPUTE_STOCK_PROVIDER"
EAGER_IMPORTS = "\nfrom . import "
NODE_HOOK = Path(__file__).with_name("lazy_provider.cjs")


def load_preamble_only(package: str) -> None:
    """Import ``package`` without the eager submodule imports at the end of its __init__."""
    if package in sys.modules:
        return
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None or spec.loader is None:
        raise ImportError(f"{package} is not installed; run `make setup`")
    source = Path(spec.origin).read_text(encoding="utf-8")
    preamble, marker, _ = source.partition(EAGER_IMPORTS)
    if not marker or "from ._jsii import *" not in preamble:
        raise ImportError(f"{package}/__init__.py changed shape; set {STOCK_SWITCH}=1")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        exec(compile(preamble, spec.origin, "exec"), module.__dict__)  # noqa: S102
    except BaseException:
        del sys.modules[package]
        raise


def load_providers() -> None:
    """Load every provider package's preamble only, unless the stock import is asked for.

    Must run before the first ``from <package>.<submodule> import …``: once the stock
    ``__init__`` has run, its 2,212 imports are paid for and this does nothing.
    """
    if os.environ.get(STOCK_SWITCH) == "1":
        return
    for package in PACKAGES:
        load_preamble_only(package)


def node_options(current: str, *, stock: bool) -> str:
    """``current`` (a ``NODE_OPTIONS`` value) with the Node-side loader preloaded, once, or
    without it for a stock run: a process started from a fast one inherits its variable."""
    escaped = str(NODE_HOOK).replace("\\", "\\\\").replace('"', '\\"')
    preload = f'--require "{escaped}"'
    others = [part.strip() for part in current.split(preload) if part.strip()]
    return " ".join(others if stock else [*others, preload])


def configure_node() -> None:
    """Set ``NODE_OPTIONS`` for the jsii process this process may start (jsii copies the
    environment when it starts Node, on the first ``import cdktf``), so call it before that."""
    stock = os.environ.get(STOCK_SWITCH) == "1"
    options = node_options(os.environ.get("NODE_OPTIONS", ""), stock=stock)
    if options:
        os.environ["NODE_OPTIONS"] = options
    else:
        os.environ.pop("NODE_OPTIONS", None)
