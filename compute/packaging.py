"""Byte-reproducible Lambda packages, built from ``functions/`` and pinned manylinux wheels.

Why not ``TerraformAsset`` archives: they embed file mtimes and hash with MD5, so identical
code produces a new zip and a spurious redeploy on every machine (terraform-cdk#883). Here
entries are sorted, timestamps and permissions fixed, and the hash is the base64 SHA-256
that ``source_code_hash`` expects. Dependencies are installed once per (requirements,
platform, Python) into ``build/deps`` and zips are cached by a digest of all their inputs,
so a repeated synth only re-reads files, and a repeated build in one process (the second
environment of a synth) only the files that changed.

``python -m compute.packaging [--out dist]`` writes every environment's packages to
``dist/<environment>/<function>.zip`` for pipelines that deploy code separately.
"""

from __future__ import annotations

import argparse
import ast
import base64
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from functions.contract import FUNCTIONS, FunctionSpec

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644 << 16
# Start scripts (a web_adapter function's handler, run.sh) must be executable: Lambda execs them.
SCRIPT_MODE = 0o100755 << 16
SCRIPT_SUFFIXES = (".sh",)
BUILD_FORMAT = "5"  # bump to invalidate cached zips when the layout rules below change
LAMBDA_TASK_ROOT = "/var/task"  # where Lambda unpacks the zip; compiled code names files there
_RACY_NS = 2_000_000_000  # files younger than this are hashed afresh (see _file_digest)

# glibc of the Lambda images: python3.11 runs on Amazon Linux 2 (2.26), later on AL2023 (2.34).
_GLIBC_TAGS = {
    "python3.11": ("manylinux2014",),
    "python3.12": ("manylinux2014", "manylinux_2_28", "manylinux_2_34"),
    "python3.13": ("manylinux2014", "manylinux_2_28", "manylinux_2_34"),
}
_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
# Never shipped: bytecode caches Lambda cannot write anyway, installer noise, type stubs,
# console scripts whose shebangs name the build machine's interpreter.
_SKIP_DIRS = {"__pycache__", "tests", "bin"}
_SKIP_SUFFIXES = (".pyc", ".pyi")
_SKIP_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
# Dependencies shipped as the import closure of what the function's code imports from them,
# not whole. Powertools is a toolkit of some 340 modules (6 MB unpacked); a function uses a
# few of them (logging, metrics, tracing, one or two utilities), which with all they import
# come to 140 to 200 modules.
TRIMMED_DEPENDENCIES = ("aws_lambda_powertools",)
# A module that names its submodules in strings (``importlib.import_module(f"{__name__}.x")``)
# hides them from the static closure: its whole package ships.
_DYNAMIC_IMPORT = b"import_module("


@dataclass(frozen=True)
class Package:
    """A built zip and the hash Terraform compares to decide whether code changed."""

    name: str
    path: Path
    sha256: str  # hex, also the asset folder name
    source_code_hash: str  # base64 SHA-256, what aws_lambda_function expects
    size: int


@dataclass(frozen=True)
class Target:
    """The Lambda platform a package is built for."""

    runtime: str
    architecture: str

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")

    @property
    def platforms(self) -> list[str]:
        machine = _MACHINE[self.architecture]
        return [f"{tag}_{machine}" for tag in _GLIBC_TAGS[self.runtime]]

    @property
    def label(self) -> str:
        return f"{self.runtime}-{self.architecture}"


class PackagingError(Exception):
    """A package could not be built; the message says which function and why."""


def build_function(spec: FunctionSpec, target: Target) -> Package:
    """The deployable zip of one function: the project modules its code imports (from its
    handler's module, or its ASGI app's), its start script if it has one, and its
    dependencies."""
    deps = _install_dependencies(ROOT / spec.requirements, target)
    closure = import_closure(spec.module)
    if spec.module not in closure:
        raise PackagingError(f"{spec.key}: no module {spec.module} ({module_file(spec.module)})")
    sources = [ROOT / module_file(name) for name in sorted(closure)]
    shipped = _dependency_filter(deps, closure)
    entries = _entries(ROOT, sources) + [
        entry for entry in _installed_entries(deps) if shipped(entry[0])
    ]
    if spec.web_adapter:
        entries.append((spec.handler, ROOT / "functions" / spec.key / spec.handler))
    return _build_zip(spec.suffix, target, entries)


def import_closure(
    module: str | list[str], package: str = "functions", root: Path = ROOT
) -> set[str]:
    """``module`` (or each of a list) and every module of ``package`` it imports, directly or
    not, with the packages (``__init__``) that hold them: what Python loads importing it,
    found statically in the tree at ``root``.

    Every import statement counts, also the lazy ones inside functions and those under
    ``TYPE_CHECKING`` (annotations a library may resolve at runtime), so the closure only errs
    on the side of shipping a module too many. So a function's zip carries no code of a layer
    it does not use: the authorizer's has no chat, data or boto3-backed module.
    """
    found: set[str] = set()
    pending = [module] if isinstance(module, str) else list(module)
    while pending:
        name = pending.pop()
        if name in found or not (root / module_file(name, root)).is_file():
            continue
        found.add(name)
        parts = name.split(".")
        pending += [".".join(parts[:depth]) for depth in range(1, len(parts))]
        source = root / module_file(name, root)
        pending += [
            imported
            for imported in _parsed_imports(source, name, source.stat().st_mtime_ns)
            if imported == package or imported.startswith(package + ".")
        ]
    return found


def _dependency_filter(deps: Path, modules: set[str]) -> Callable[[str], bool]:
    """Whether a file of the installed dependencies (by its path in the zip) ships: all of
    them, but the Python modules of a :data:`TRIMMED_DEPENDENCIES` package outside the import
    closure of what ``modules`` (the function's project modules) import from it. Its data
    files ship whole, and so does every package one of its closure's modules imports from by
    name."""
    kept: set[str] = set()
    whole: list[str] = []
    for package in TRIMMED_DEPENDENCIES:
        seeds = frozenset(
            imported
            for module in modules
            for imported in _module_imports(module)
            if imported == package or imported.startswith(package + ".")
        )
        package_kept, package_whole = _trimmed(deps, package, seeds)
        kept |= package_kept
        whole += package_whole
    trimmed = tuple(package + "/" for package in TRIMMED_DEPENDENCIES)
    whole_packages = tuple(whole)

    def shipped(path: str) -> bool:
        if not path.startswith(trimmed) or not path.endswith(".py"):
            return True
        return path in kept or path.startswith(whole_packages)

    return shipped


@functools.cache
def _trimmed(
    deps: Path, package: str, seeds: frozenset[str]
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The files of ``package`` in ``deps`` that the import closure of ``seeds`` keeps, and the
    folders that ship whole (a module of the closure imports by name). Worked out once per
    process: an installed folder never changes (:func:`_installed_entries`)."""
    closure = import_closure(sorted(seeds), package, deps) if seeds else set()
    kept = frozenset(module_file(name, deps).as_posix() for name in closure)
    whole = tuple(
        module_file(name, deps).parent.as_posix() + "/"
        for name in sorted(closure)
        if _DYNAMIC_IMPORT in (deps / module_file(name, deps)).read_bytes()
    )
    return kept, whole


def _module_imports(module: str) -> tuple[str, ...]:
    source = ROOT / module_file(module)
    return _parsed_imports(source, module, source.stat().st_mtime_ns)


@functools.cache
def _parsed_imports(source: Path, module: str, mtime_ns: int) -> tuple[str, ...]:
    """:func:`_imports` of a file, read once per file version: a synth packages four functions
    per environment over the same layers, and parsing them each time cost 0.4 s of a 4.5 s
    synth."""
    return _imports(source.read_bytes(), module, is_package=source.name == "__init__.py")


@functools.cache
def module_file(module: str, root: Path = ROOT) -> Path:
    """The source file of a module, relative to ``root`` (the repository, or an installed
    dependencies folder): a package's ``__init__.py`` or a module's ``.py``."""
    path = Path(*module.split("."))
    return path / "__init__.py" if (root / path).is_dir() else path.with_suffix(".py")


@functools.cache
def _imports(code: bytes, module: str, *, is_package: bool) -> tuple[str, ...]:
    """The modules an import statement of ``code`` may load: ``from a import b`` names both
    ``a`` and ``a.b``, since ``b`` may be a submodule (a name that is not one has no file).
    Parsed once per content: each function's dependencies folder has its own copy of the same
    Powertools modules."""
    found: list[str] = []
    for node in ast.walk(ast.parse(code, filename=module)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            found += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return tuple(found)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    anchor = parts[: len(parts) - node.level + (1 if is_package else 0)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def build_placeholder(target: Target) -> Package:
    """The stand-in deployed in ``external`` mode until a pipeline uploads the real code.

    It answers at every function's real handler path, so the pipeline only swaps the code
    and never has to touch the handler setting. A ``web_adapter`` function's handler is a
    start script: the placeholder's starts a small server (``functions.placeholder.web``) that
    tells the adapter it is ready and answers every request 503, as the handler does.
    """
    folder = ROOT / "functions" / "placeholder"
    entries = [("functions/__init__.py", ROOT / "functions" / "__init__.py")]
    for spec in FUNCTIONS:
        if spec.web_adapter:
            entries.append((spec.handler, folder / "run.sh"))
            entries += [
                (f"functions/placeholder/{name}", folder / name)
                for name in ("__init__.py", "handler.py", "web.py")
            ]
            continue
        module = spec.handler.rsplit(".", 1)[0].replace(".", "/")
        entries.append((f"{module}.py", folder / "handler.py"))
        package = module.rsplit("/", 1)[0]
        while package != "functions":
            entries.append((f"{package}/__init__.py", folder / "__init__.py"))
            package = package.rsplit("/", 1)[0]
    return _build_zip("placeholder", target, sorted(set(entries)))


def write_zip(entries: list[tuple[str, Path]], destination: Path) -> None:
    """Write entries (archive name, file) sorted, with fixed time, mode and compression: every
    file 0644 but start scripts, 0755 (never the checkout's modes, which vary by machine)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A private temporary name: parallel synths (pytest -n, several stacks) may build the
    # same zip at once, and each must publish a whole file.
    handle, name = tempfile.mkstemp(prefix=destination.name + ".", dir=destination.parent)
    os.close(handle)
    partial = Path(name)
    partial.chmod(0o644)
    with zipfile.ZipFile(partial, "w") as archive:
        for name, file in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = SCRIPT_MODE if name.endswith(SCRIPT_SUFFIXES) else FILE_MODE
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, file.read_bytes(), compresslevel=6)
    partial.replace(destination)


def _build_zip(name: str, target: Target, entries: list[tuple[str, Path]]) -> Package:
    digest = hashlib.sha256(f"{BUILD_FORMAT}\0{target.label}\0".encode())
    for arcname, file in sorted(entries):
        digest.update(arcname.encode() + b"\0" + _file_digest(file))
    path = BUILD / "packages" / target.label / f"{name}-{digest.hexdigest()[:20]}.zip"
    if not path.exists():
        write_zip(entries + _bytecode(entries, target, path.with_suffix(".pyc.d")), path)
    sha = _file_digest(path)
    return Package(
        name=name,
        path=path,
        sha256=sha.hex(),
        source_code_hash=base64.b64encode(sha).decode(),
        size=path.stat().st_size,
    )


def _file_digest(file: Path) -> bytes:
    """A file's SHA-256, read once per version of the file (its stat signature): a synth
    packages every function once per environment from the same few thousand files, and a
    test process synthesizes dozens of stacks.

    A file modified within the last :data:`_RACY_NS` is read every time, as git does with its
    index: a second write in the same clock tick may keep the size and the mtime.
    """
    stat = file.stat()
    if time.time_ns() - stat.st_mtime_ns < _RACY_NS:
        return hashlib.sha256(file.read_bytes()).digest()
    return _digest(file, stat.st_mtime_ns, stat.st_size, stat.st_ino)


@functools.lru_cache(maxsize=1 << 16)
def _digest(file: Path, _mtime_ns: int, _size: int, _inode: int) -> bytes:
    return hashlib.sha256(file.read_bytes()).digest()


def _bytecode(
    entries: list[tuple[str, Path]], target: Target, folder: Path
) -> list[tuple[str, Path]]:
    """Compiled modules for every source, so a cold start imports instead of compiling.

    Lambda cannot write ``__pycache__`` into its read-only task folder, so without these
    every cold start compiles every module it imports. They are unchecked-hash pycs (no
    source mtime inside), name their files under /var/task, and are compiled with a fixed
    hash seed, so they are as reproducible as the sources. Only possible when this
    interpreter is the runtime's version; other runtimes get sources only.
    """
    if target.python_version != f"{sys.version_info.major}.{sys.version_info.minor}":
        return []
    sources = [(arcname, file) for arcname, file in entries if arcname.endswith(".py")]
    jobs = []
    for arcname, file in sources:
        directory, _, module = arcname.rpartition("/")
        pyc = f"__pycache__/{module.removesuffix('.py')}.{sys.implementation.cache_tag}.pyc"
        cached = f"{directory}/{pyc}" if directory else pyc
        jobs.append((str(file), str(folder / cached), f"{LAMBDA_TASK_ROOT}/{arcname}"))
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-I", "-c", _COMPILE],
        input=json.dumps(jobs),
        env={"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PackagingError(f"could not compile the package's modules:\n{result.stderr.strip()}")
    compiled = set(json.loads(result.stdout))
    return [
        (Path(out).relative_to(folder).as_posix(), Path(out))
        for _, out, _ in jobs
        if out in compiled
    ]


# Runs in a child with PYTHONHASHSEED=0: set and frozenset constants are marshalled in hash
# order, which must not change from one build to the next.
# A module that does not compile (a file for another Python, a template) ships as source only,
# as it would be in any case; Lambda reports it if it is ever imported.
_COMPILE = """
import json, py_compile, sys
done = []
for source, out, shown in json.load(sys.stdin):
    try:
        py_compile.compile(source, cfile=out, dfile=shown, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        continue
    done.append(out)
print(json.dumps(done))
"""


def _entries(base: Path, roots: list[Path]) -> list[tuple[str, Path]]:
    return [(file.relative_to(base).as_posix(), file) for root in roots for file in _walk(root)]


@functools.cache
def _installed_entries(deps: Path) -> tuple[tuple[str, Path], ...]:
    """Every file of an installed dependencies folder, listed once per process: the folder is
    published whole, by a rename, under a name that digests what was installed in it
    (:func:`_install_dependencies`), and nothing writes to it afterwards."""
    return tuple(_entries(deps, [deps]))


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
        here = Path(directory)
        for file in sorted(files):
            if _shipped(here, file):
                yield here / file


def _shipped(directory: Path, file: str) -> bool:
    if file.endswith(_SKIP_SUFFIXES) or file == "requirements.txt":
        return False
    return not (directory.name.endswith(".dist-info") and file in _SKIP_DIST_INFO)


def _install_dependencies(requirements: Path, target: Target) -> Path:
    """pip-install pinned wheels for the Lambda platform once; later builds reuse the folder."""
    if not requirements.is_file():
        raise PackagingError(f"{requirements} is missing")
    text = requirements.read_text(encoding="utf-8")
    key = hashlib.sha256(f"{BUILD_FORMAT}\0{text}\0{target.label}".encode()).hexdigest()[:20]
    folder = BUILD / "deps" / f"{requirements.parent.name}-{target.label}-{key}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-compile", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", target.python_version, "--target", str(staging),
        "--requirement", str(requirements),
    ]  # fmt: skip
    for platform in target.platforms:
        command += ["--platform", platform]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise PackagingError(
            f"pip could not install {requirements.relative_to(ROOT)} for {target.label}:\n"
            f"{result.stderr.strip()}"
        )
    _strip_descriptions(staging)
    try:
        staging.rename(folder)
    except OSError:  # a concurrent build won the race; its folder is identical
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _strip_descriptions(site: Path) -> None:
    """Cut each installed distribution's ``METADATA`` to its headers. The body after them is
    the project's long description (its README, for pydantic its changelog: 144 kB), which
    nothing reads at runtime; the headers (name, version, requirements) are what
    ``importlib.metadata`` answers from."""
    for metadata in sorted(site.glob("*.dist-info/METADATA")):
        headers, blank, _ = metadata.read_bytes().partition(b"\n\n")
        metadata.write_bytes(headers + (b"\n" if blank else b""))


def main(argv: list[str] | None = None) -> int:
    """Write each environment's packages and a manifest of their hashes to ``--out``."""
    from compute.config import ConfigError, load_environments

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--config-dir", type=Path, default=ROOT / "config")
    args = parser.parse_args(argv)
    try:
        configs = load_environments(args.config_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for config in configs:
        target = Target(config.lambda_runtime, config.lambda_architecture)
        folder = args.out / config.environment
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {}
        for spec in FUNCTIONS:
            package = build_function(spec, target)
            shutil.copyfile(package.path, folder / f"{spec.suffix}.zip")
            manifest[f"{config.prefix}-{spec.suffix}"] = {
                "zip": f"{spec.suffix}.zip",
                "sha256": package.sha256,
                "source_code_hash": package.source_code_hash,
                "architecture": config.lambda_architecture,
                "runtime": config.lambda_runtime,
            }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(f"{folder}: {', '.join(sorted(manifest))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
