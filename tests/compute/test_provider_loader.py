"""The fast provider loader: a fresh process imports exactly the submodules the façade names,
and the loader runs a package's preamble only, or refuses a package of another shape.

The whole-app comparison with the stock import is in test_synthesis.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from compute.provider_loader import NODE_HOOK, PACKAGES, load_preamble_only, node_options
from tests.compute.provider_modules import (
    STOCK_AWS_SUBMODULES,
    eager_submodules,
    facade_submodules,
    provider_submodules,
    stock_submodules,
)
from tests.compute.synth import STACKS

pytestmark = STACKS

ROOT = Path(__file__).resolve().parents[2]


def imported_by_the_facade(stock: str) -> frozenset[str]:
    """The provider submodules a fresh ``import compute.provider`` leaves in sys.modules."""
    code = "import json, sys, compute.provider\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "COMPUTE_STOCK_PROVIDER": stock},
    )  # fmt: skip
    return provider_submodules(json.loads(result.stdout))


def test_the_facade_names_a_few_submodules_of_each_package() -> None:
    facade = facade_submodules()
    assert {
        "cdktf_cdktf_provider_aws.lambda_function",
        "cdktf_cdktf_provider_aws.provider",
    } <= facade
    assert 0 < len(facade) < 100 < STOCK_AWS_SUBMODULES
    for package in PACKAGES:
        assert facade & eager_submodules(package), f"the façade names nothing of {package}"


def test_the_stock_package_imports_every_resource_eagerly() -> None:
    assert len(eager_submodules("cdktf_cdktf_provider_aws")) == STOCK_AWS_SUBMODULES
    assert facade_submodules() < stock_submodules()


def test_fast_loader_skips_the_eager_imports() -> None:
    """Exactly the façade's submodules load: none of the other 2,200-odd the stock ``__init__``
    imports, and no fewer (zero would mean nothing was measured)."""
    assert imported_by_the_facade(stock="0") == facade_submodules()


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable ``fake_provider`` package laid out as the jsii bindings are: a preamble
    that star-imports ``_jsii``, then eager ``from . import`` lines (here of a module that
    fails to import, so running them shows)."""
    package = tmp_path / "fake_provider"
    package.mkdir()
    (package / "_jsii.py").write_text("ASSEMBLY = 'loaded'\n__all__ = ['ASSEMBLY']\n")
    (package / "eager.py").write_text("raise RuntimeError('an eager import ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m.partition(".")[0] == "fake_provider"]:
        del sys.modules[name]


def test_the_loader_runs_the_preamble_only(fake_package: Path) -> None:
    (fake_package / "__init__.py").write_text(
        "from ._jsii import *\nPREAMBLE = True\n\nfrom . import eager\n"
    )
    load_preamble_only("fake_provider")
    module = sys.modules["fake_provider"]
    assert (module.ASSEMBLY, module.PREAMBLE) == ("loaded", True)
    assert "fake_provider.eager" not in sys.modules


@pytest.mark.parametrize(
    "init",
    [
        "from ._jsii import *\nfrom .eager import *\n",  # no eager ``from . import`` block
        "PREAMBLE = True\n\nfrom . import eager\n",  # a preamble that loads no assembly
    ],
)
def test_a_package_of_another_shape_fails_loudly(fake_package: Path, init: str) -> None:
    (fake_package / "__init__.py").write_text(init)
    with pytest.raises(ImportError, match="changed shape; set COMPUTE_STOCK_PROVIDER=1"):
        load_preamble_only("fake_provider")
    assert "fake_provider" not in sys.modules


def test_a_failing_preamble_leaves_no_half_loaded_package(fake_package: Path) -> None:
    (fake_package / "__init__.py").write_text(
        "from ._jsii import *\nraise OSError('no jsii runtime')\n\nfrom . import eager\n"
    )
    with pytest.raises(OSError, match="no jsii runtime"):
        load_preamble_only("fake_provider")
    assert "fake_provider" not in sys.modules


# The Node side (compute/lazy_provider.cjs), on packages laid out as the AWS one is: a
# ``lib/index.js`` of ``exports.<name> = require("./<module>");`` lines after a header that
# declares every export, each module recording that it was loaded. The whole app's synth, with
# what jsii's process loaded, is in test_synthesis.py.
HEADER = (
    '"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\n'
    "exports.other = exports.lambdaFunction = void 0;\n"
)
EAGER_INDEX = (
    HEADER + 'exports.lambdaFunction = require("./lambda-function");\n'
    'exports.other = require("./other");\n//# sourceMappingURL=data:application/json;base64,e30=\n'
)
PROBE = """
const index = require(process.argv[1]);
const loadedAfterRequire = [...globalThis.loaded];
const keys = Object.keys(index);
const lambdaFunction = index.lambdaFunction;
console.log(JSON.stringify({
  loadedAfterRequire, keys, loaded: globalThis.loaded,
  same: lambdaFunction === require(process.argv[1] + '/lambda-function') &&
    index.lambdaFunction === lambdaFunction,
  name: lambdaFunction.LambdaFunction.name,
}));
"""


def write_package(root: Path, name: str, index: str) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": name, "main": "lib/index.js"}))
    (root / "lib" / "index.js").write_text(index)
    for module, cls in (("lambda-function", "LambdaFunction"), ("other", "Other")):
        (root / "lib" / module).mkdir()
        (root / "lib" / module / "index.js").write_text(
            f"(globalThis.loaded ??= []).push({module!r});\nexports.{cls} = class {cls} {{}};\n"
        )
    return root / "lib"


def node_loads(lib: Path, *, hook: bool) -> dict:
    options = node_options("", stock=not hook)
    result = subprocess.run(
        [shutil.which("node") or "node", "-e", "globalThis.loaded = [];" + PROBE, str(lib)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "NODE_OPTIONS": options},
    )  # fmt: skip
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_node_loads_a_provider_module_when_it_is_first_used(tmp_path: Path) -> None:
    lib = write_package(tmp_path / "provider-aws", "@cdktf/provider-aws", EAGER_INDEX)
    lazy, eager = node_loads(lib, hook=True), node_loads(lib, hook=False)
    assert eager["loadedAfterRequire"] == ["lambda-function", "other"]
    assert lazy["loadedAfterRequire"] == []
    assert lazy["loaded"] == ["lambda-function"]  # used, once; ``other`` never
    for run in (lazy, eager):  # the same exports, listed and resolved alike
        assert run["keys"] == ["lambdaFunction", "other"]
        assert (run["same"], run["name"]) == (True, "LambdaFunction")


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("@cdktf/provider-google", EAGER_INDEX),  # another package
        ("@cdktf/provider-aws", EAGER_INDEX + 'require("./other").extra = 1;\n'),  # another shape
    ],
)
def test_node_leaves_any_other_index_eager(tmp_path: Path, name: str, index: str) -> None:
    lib = write_package(tmp_path / "package", name, index)
    assert node_loads(lib, hook=True)["loadedAfterRequire"] == ["lambda-function", "other"]


def test_node_options_preload_the_hook_once_and_a_stock_run_drops_it() -> None:
    preload = f'--require "{NODE_HOOK}"'
    mine = '--max-old-space-size=512 --require "/a folder/x.js"'
    assert node_options("", stock=False) == preload
    assert node_options(mine, stock=False) == f"{mine} {preload}"
    assert node_options(node_options(mine, stock=False), stock=False) == f"{mine} {preload}"
    assert node_options(node_options(mine, stock=False), stock=True) == mine
    assert node_options("", stock=True) == ""
    assert NODE_HOOK.is_file()
