"""Which provider submodules a process should import, fast or stock, computed from the code.

The fast-loader tests compare what a run imported with these sets rather than with counts
written down by hand, so they fail when the loader stops applying and cannot drift when
``compute/provider.py`` names another resource.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable
from pathlib import Path

from compute.provider_loader import PACKAGES

# The stock AWS package's eager imports: docs/performance.md's figure, and the package is frozen.
STOCK_AWS_SUBMODULES = 2212


def provider_submodules(modules: Iterable[str]) -> frozenset[str]:
    """The provider packages' public submodules among ``modules`` (not ``_jsii``, ``_private``
    or anything nested)."""
    found = set()
    for module in modules:
        package, _, name = module.partition(".")
        if package in PACKAGES and name and "." not in name and not name.startswith("_"):
            found.add(module)
    return frozenset(found)


def facade_submodules() -> frozenset[str]:
    """The submodules ``compute.provider`` imports from: all the fast loader lets in."""
    from compute import provider  # here: importing it starts jsii's Node process

    return frozenset(getattr(provider, name).__module__ for name in provider.__all__)


def eager_submodules(package: str) -> frozenset[str]:
    """The submodules ``package``'s stock ``__init__`` imports after its preamble."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, f"{package} is not installed"
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return frozenset(
        f"{package}.{alias.name}"
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None
        for alias in node.names
    )


def stock_submodules() -> frozenset[str]:
    """Every submodule the stock import of the provider packages loads."""
    return frozenset().union(*(eager_submodules(package) for package in PACKAGES))


# What jsii's Node process loads of the AWS package (tests/compute/import_probe/node_probe.cjs).
NODE_INDEX = "index"


def node_modules(files: Iterable[str]) -> frozenset[str]:
    """The AWS package's modules among ``files`` (the probe's paths): ``index`` for its
    ``lib/index.js``, a folder's name (``lambda-function``) for each resource module."""
    found = set()
    for file in files:
        _, _, relative = Path(file).as_posix().rpartition("/lib/")
        found.add(NODE_INDEX if relative == "index.js" else relative.partition("/")[0])
    return frozenset(found)


def node_modules_for(stack: dict) -> frozenset[str]:
    """The modules a stack's JSON needs in Node: the provider's and, for every resource and
    data source type, its own (``aws_lambda_function`` is ``lambda-function``)."""
    resources = {kind.removeprefix("aws_") for kind in stack.get("resource", {})}
    data = {f"data_{kind}" for kind in stack.get("data", {})}
    return frozenset(name.replace("_", "-") for name in resources | data) | {"provider"}
