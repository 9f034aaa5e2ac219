"""Every environment variable the code reads is set by the stack, on the function that reads
it, and the stack sets nothing else.

Two independent readings of the code:

* static: the AST of every module a function's handler imports (transitively). A read is
  ``os.environ[...]``, ``os.environ.get(...)``, ``os.getenv(...)``, ``... in os.environ`` or
  ``.get(...)`` on a mapping named ``env``/``environ``/``environment``; its key is a string
  literal, a ``contract.Env`` attribute, or a parameter of the enclosing function, resolved
  through the calls of that function, in its own module or in one that imports it by name
  (``required(env, Env.SESSIONS_TABLE)``), or the variable of a loop over such constants
  (``for name in SETTINGS_VARIABLES``). A key that is none of these fails the test: the
  contract cannot be checked for it.
* dynamic: the reads ``functions/`` code made while the enforced run drove every code path
  with the function's synthesized environment (tests/security/code_paths.py).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from functions.contract import ADAPTER_ENV, FUNCTIONS, Env, FunctionSpec
from tests.compute.synth import ROOT, STACKS
from tests.security.code_paths import Run
from tests.security.synthesized import Stack, contract_env_names

pytestmark = STACKS

# Set by the Lambda runtime itself (reserved: a function cannot set them). Code may read them
# without the stack setting them.
LAMBDA_PROVIDED = frozenset(
    {
        "AWS_REGION",  # the function's region
        "AWS_DEFAULT_REGION",  # same, for SDKs
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_EXECUTION_ENV",
        "LAMBDA_TASK_ROOT",  # /var/task
        "_X_AMZN_TRACE_ID",  # the X-Ray trace header of the current invocation
    }
)
# Set by the stack but read by Powertools (Logger, Metrics), not by our code: justified only
# on functions that import Powertools.
POWERTOOLS_READS = frozenset({Env.POWERTOOLS_SERVICE_NAME, Env.POWERTOOLS_METRICS_NAMESPACE})
_MAPPING_NAMES = {"env", "environ", "environment"}
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass
class ModuleReads:
    """What one module reads from the environment."""

    names: set[str] = field(default_factory=set)
    unresolved: list[int] = field(default_factory=list)  # line numbers
    # Functions that read the variable named by one of their parameters: name -> positions.
    readers: dict[str, set[int]] = field(default_factory=dict)


def _is_environ(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id in _MAPPING_NAMES


def _read_key(node: ast.AST) -> ast.expr | None:
    """The key expression when ``node`` reads the environment."""
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("get", "pop")
            and _is_environ(func.value)
        ):
            return node.args[0]
        if (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
            isinstance(func, ast.Name) and func.id == "getenv"
        ):
            return node.args[0]
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return node.slice
    if isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
        return node.left
    return None


def _constant(node: ast.expr) -> str | None:
    """A string literal or a ``contract.Env`` attribute; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Env"
    ):
        value = getattr(Env, node.attr, None)
        assert isinstance(value, str), f"Env.{node.attr} is not in the contract"
        return value
    return None


def _parameter(node: ast.expr, function: ast.AST | None) -> int | None:
    if not isinstance(node, ast.Name) or not isinstance(function, _FUNCTION_NODES):
        return None
    names = [argument.arg for argument in function.args.args]
    return names.index(node.id) if node.id in names else None


def _walk(
    node: ast.AST, function: ast.AST | None, found: list[tuple[ast.AST, ast.AST | None]]
) -> None:
    """Every node with its innermost enclosing function."""
    for child in ast.iter_child_nodes(node):
        found.append((child, function))
        _walk(child, child if isinstance(child, _FUNCTION_NODES) else function, found)


def _sequences(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level ``NAME = (Env.A, "B", ...)``: names a loop may read through."""
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Tuple | ast.List)
        ):
            values = [_constant(element) for element in node.value.elts]
            if values and all(values):
                found[node.targets[0].id] = [value for value in values if value]
    return found


def _loop_values(
    key: ast.expr, scope: ast.AST, sequences: dict[str, list[str]]
) -> list[str] | None:
    """The names ``key`` takes when it is the variable of a loop over constants."""
    if not isinstance(key, ast.Name):
        return None
    for node in ast.walk(scope):
        if isinstance(node, ast.comprehension | ast.For) and isinstance(node.target, ast.Name):
            if node.target.id != key.id:
                continue
            if isinstance(node.iter, ast.Name) and node.iter.id in sequences:
                return sequences[node.iter.id]
            if isinstance(node.iter, ast.Tuple | ast.List):
                values = [_constant(element) for element in node.iter.elts]
                return [value for value in values if value] if all(values) else None
    return None


@functools.cache
def module_reads(path: Path) -> ModuleReads:
    _ANALYSING.append(path)
    try:
        return _module_reads(path)
    finally:
        _ANALYSING.pop()


def _module_reads(path: Path) -> ModuleReads:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    sequences = _sequences(tree)
    nodes: list[tuple[ast.AST, ast.AST | None]] = []
    _walk(tree, None, nodes)
    reads = ModuleReads()
    readers = reads.readers
    readers.update(_imported_readers(tree))

    def resolve(key: ast.expr, function: ast.AST | None, line: int, unresolved: list[int]) -> bool:
        """Record one key; True when it made ``function`` a new reader."""
        name, position = _constant(key), _parameter(key, function)
        looped = _loop_values(key, function or tree, sequences)
        if name is not None:
            reads.names.add(name)
        elif looped is not None:
            reads.names.update(looped)
        elif position is not None and isinstance(function, _FUNCTION_NODES):
            known = readers.setdefault(function.name, set())
            if position not in known:
                known.add(position)
                return True
        else:
            unresolved.append(line)
        return False

    direct: list[int] = []
    for node, function in nodes:
        key = _read_key(node)
        if key is not None:
            resolve(key, function, node.lineno, direct)
    calls = [(n, f) for n, f in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    while True:  # readers of readers: required_if_read(name) -> required(name) -> env.get
        through_calls: list[int] = []
        changed = False
        for call, function in calls:
            assert isinstance(call.func, ast.Name)
            for position in sorted(readers.get(call.func.id, ())):
                if position < len(call.args):
                    changed |= resolve(call.args[position], function, call.lineno, through_calls)
        if not changed:
            break
    reads.unresolved = direct + through_calls
    return reads


_ANALYSING: list[Path] = []  # the modules whose analysis is under way, outermost first


def _imported_readers(tree: ast.Module) -> dict[str, set[int]]:
    """The readers that ``from functions.<module> import name`` brings in, by local name."""
    found: dict[str, set[int]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
            continue
        target = _module_path(node.module) if node.module.split(".")[0] == "functions" else None
        if target is None:
            continue
        assert target not in _ANALYSING, f"import cycle {_ANALYSING}: its readers are unknown"
        exported = module_reads(target).readers
        for alias in node.names:
            if alias.name in exported:
                found[alias.asname or alias.name] = set(exported[alias.name])
    return found


def _module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[Path]:
    """The modules of ``functions/`` that ``path`` imports, wherever the import statement is."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for module in modules:
            target = _module_path(module) if module.split(".")[0] == "functions" else None
            if target:
                found.add(target)
    return found


@functools.cache
def closure(spec: FunctionSpec) -> frozenset[Path]:
    """Every module of ``functions/`` the function's handler imports, directly or not."""
    start = _module_path(spec.module)
    assert start, spec.module
    seen, todo = {start}, [start]
    while todo:
        for module in _imports(todo.pop()) - seen:
            seen.add(module)
            todo.append(module)
    return frozenset(seen)


def static_reads(spec: FunctionSpec) -> set[str]:
    return {name for path in closure(spec) for name in module_reads(path).names}


def imports_powertools(spec: FunctionSpec) -> bool:
    return any(
        "aws_lambda_powertools" in path.read_text(encoding="utf-8") for path in closure(spec)
    )


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_every_read_is_resolvable_and_in_the_contract(spec: FunctionSpec) -> None:
    """Mutations caught: ``os.environ["DEBUG"]`` (a name outside the contract), a read whose
    key is computed (``os.environ[prefix + "TABLE"]``), which no one could check."""
    for path in closure(spec):
        reads = module_reads(path)
        assert not reads.unresolved, (
            f"{path.relative_to(ROOT)}: cannot tell what lines {reads.unresolved} read"
        )
        strays = reads.names - contract_env_names() - LAMBDA_PROVIDED
        assert not strays, f"{path.relative_to(ROOT)} reads {sorted(strays)}, not in contract.Env"
    assert static_reads(spec), f"found no environment read in {spec.key}: the analysis is broken"


def test_every_variable_the_code_reads_is_set_on_a_function_that_imports_it(stack: Stack) -> None:
    """Each module's reads are set by the stack on the functions whose handlers import that
    module. Mutations caught: the stack dropping WEBSOCKET_CALLBACK_URL, JWT_ISSUER, or
    CORS_ALLOWED_ORIGINS (read at import, so the dynamic run cannot see it); code reading a
    new ``Env`` constant the stack does not set."""
    for path in {path for spec in FUNCTIONS for path in closure(spec)}:
        users = [spec for spec in FUNCTIONS if path in closure(spec)]
        available = set().union(*(stack.environment_names(spec) for spec in users))
        missing = module_reads(path).names - available - LAMBDA_PROVIDED
        where = path.relative_to(ROOT)
        assert not missing, f"{where} reads {sorted(missing)}, set on no function importing it"


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_the_stack_sets_nothing_the_code_does_not_read(stack: Stack, spec: FunctionSpec) -> None:
    """Mutations caught: JWT_ISSUER set on main, a leftover variable, Powertools' variables on
    a function without Powertools."""
    justified = static_reads(spec) | (POWERTOOLS_READS if imports_powertools(spec) else set())
    justified |= set(ADAPTER_ENV) if spec.web_adapter else set()  # read by the adapter
    extra = stack.environment_names(spec) - justified
    assert not extra, f"{spec.key} is given {sorted(extra)}, which its code never reads"


def test_every_variable_read_while_running_is_set_on_that_function(run: Run) -> None:
    """Per function, precisely: the reads the code made while serving every route.
    Mutations caught: the stack no longer setting SESSION_TTL_DAYS or KNOWLEDGE_BASE_ID on one
    function (the code would silently fall back to a default), or PAGINATION_TOKEN_KEY on
    main."""
    for key, record in run.functions.items():
        spec = next(spec for spec in FUNCTIONS if spec.key == key)
        assert record.environment_reads, f"no read recorded for {key}: the recorder is broken"
        missing = record.environment_reads - run.stack.environment_names(spec) - LAMBDA_PROVIDED
        assert not missing, f"{key} read {sorted(missing)}, which the stack does not set on it"
