"""Lambda packages: complete, built for the configured platform, and byte-reproducible."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import marshal
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from compute.packaging import (
    FIXED_TIME,
    ROOT,
    Target,
    _bytecode,
    _file_digest,
    _install_dependencies,
    _module_imports,
    build_function,
    build_placeholder,
    import_closure,
    module_file,
    write_zip,
)
from devserver.lambda_runtime import extract, runtime_site
from fakes.process import stop_process
from functions.contract import ADAPTER_ENV, AUTHORIZER, FUNCTIONS, OPENAI_API, FunctionSpec
from tests.support.events import load_event

X86 = Target("python3.11", "x86_64")
ARM = Target("python3.11", "arm64")
ELF_MACHINE = {b"\x3e\x00": "x86_64", b"\xb7\x00": "arm64"}
# A DynamoDB Streams batch as the session cleanup's mapping delivers it (keys only).
STREAM_BATCH = {
    "Records": [
        {
            "eventID": "1",
            "eventName": "REMOVE",
            "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": {"session_id": {"S": "s"}}, "SequenceNumber": "100"},
        }
    ]
}
PT = "aws_lambda_powertools"
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six"}


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_package_layout(spec: FunctionSpec) -> None:
    package = build_function(spec, X86)
    content = package.path.read_bytes()
    assert package.source_code_hash == base64.b64encode(hashlib.sha256(content).digest()).decode()
    entries = names(package.path)
    assert module_file(spec.module).as_posix() in entries
    assert "functions/__init__.py" in entries and "functions/contract.py" in entries
    assert entries == sorted(entries)
    assert not [e for e in entries if e.endswith(".pyi")]
    # Bytecode only as compiled by the build, one per shipped source, for this runtime.
    compiled = {e for e in entries if e.endswith(".pyc")}
    expected = {
        f"{e.rpartition('/')[0]}/__pycache__/{e.rpartition('/')[2][:-3]}.cpython-311.pyc".lstrip(
            "/"
        )
        for e in entries
        if e.endswith(".py")
    }
    # Every shipped module is compiled: none is known not to compile for this runtime.
    assert compiled == expected, {
        "not compiled": sorted(expected - compiled),
        "without source": sorted(compiled - expected),
    }
    assert not [e for e in entries if e.endswith(".dist-info/RECORD") or e.startswith("bin/")]
    assert not [e for e in entries if e.split("/")[0] in RUNTIME_PROVIDED]
    never_shipped = ("functions/placeholder", "tests/", "fakes/", "devserver/")  # test, dev code
    assert not [e for e in entries if e.startswith(never_shipped)]
    others = {s.key for s in FUNCTIONS} - {spec.key}
    assert not [e for e in entries if e.split("/")[:2] in ([["functions", o] for o in others])]
    with zipfile.ZipFile(package.path) as archive:
        for info in archive.infolist():
            assert info.date_time == FIXED_TIME
            assert info.external_attr >> 16 == (0o100755 if info.filename == "run.sh" else 0o100644)


def test_the_adapter_function_ships_its_start_script_executable_and_its_server() -> None:
    """Lambda execs the handler ``run.sh`` (through the adapter's wrapper): it must be there,
    be the function's own script, and be executable, whatever the checkout's mode was."""
    package = build_function(OPENAI_API, X86)
    with zipfile.ZipFile(package.path) as archive:
        script = archive.getinfo(OPENAI_API.handler)
        assert script.external_attr >> 16 == 0o100755
        content = archive.read(script)
        entries = archive.namelist()
    assert content == (ROOT / "functions" / OPENAI_API.key / "run.sh").read_bytes()
    assert b"functions.openai_api.app:app" in content  # the app the closure starts from
    assert OPENAI_API.module == "functions.openai_api.app"
    assert "functions/openai_api/app.py" in entries
    assert "uvicorn/__init__.py" in entries and "fastapi/__init__.py" in entries


def test_the_authorizer_ships_no_chat_or_data_code() -> None:
    """Its zip is its import closure: the authorizer and the contract, no layer it never uses."""
    entries = names(build_function(AUTHORIZER, X86).path)
    project = {e for e in entries if e.startswith("functions/") and e.endswith(".py")}
    assert "functions/contract.py" in project
    layers = ("functions/chat/", "functions/data/", "functions/domain/", "functions/main/")
    assert not [e for e in project if e.startswith(layers)]
    assert sorted(e for e in project if e.startswith("functions/core/")) == [
        "functions/core/__init__.py",
        "functions/core/settings.py",
    ]


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_each_zip_ships_exactly_its_handlers_import_closure(spec: FunctionSpec) -> None:
    entries = names(build_function(spec, X86).path)
    project = {e for e in entries if e.startswith("functions/") and e.endswith(".py")}
    closure = import_closure(spec.module)
    assert project == {module_file(name).as_posix() for name in closure}


# Powertools packages shipped whole, beyond the closure: they import submodules by name
# (``importlib.import_module``), which a static closure cannot follow. The session cleanup's
# batch utility imports the parser, whose package does.
WHOLE_POWERTOOLS = {"cleanup": ("shared/", "utilities/parser/")}


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_powertools_ships_as_the_closure_of_what_the_function_imports(spec: FunctionSpec) -> None:
    """Every module of the closure ships, and beyond it only the packages that import by
    name; what no function uses (feature flags, streaming, data masking) never does."""
    entries = names(build_function(spec, X86).path)
    shipped = {e for e in entries if e.startswith(f"{PT}/") and e.endswith(".py")}
    seeds = [
        imported
        for name in import_closure(spec.module)
        for imported in _module_imports(name)
        if imported.startswith(PT)
    ]
    if not seeds:
        assert not shipped
        return
    deps = _install_dependencies(ROOT / spec.requirements, X86)
    closure = {module_file(n, deps).as_posix() for n in import_closure(seeds, PT, deps)}
    assert closure <= shipped
    whole = tuple(f"{PT}/{folder}" for folder in WHOLE_POWERTOOLS.get(spec.key, ("shared/",)))
    assert not [e for e in shipped - closure if not e.startswith(whole)]
    unused = ("utilities/feature_flags/", "utilities/streaming/", "utilities/data_masking/")
    assert not [e for e in shipped if e.removeprefix(f"{PT}/").startswith(unused)]
    assert len(shipped) < 250  # of its 336
    assert f"{PT}/py.typed" in entries  # data files whole


def test_a_dependencys_metadata_keeps_its_headers_and_drops_its_long_description(
    tmp_path: Path,
) -> None:
    """importlib.metadata still answers from the package alone (name, version, requirements);
    the README or changelog that followed the headers is gone."""
    tree = extract(build_function(OPENAI_API, X86).path, tmp_path / "task")
    [pydantic] = metadata.distributions(path=[str(tree)], name="pydantic")
    assert pydantic.version == "2.14.4"
    assert pydantic.requires and any(r.startswith("pydantic-core") for r in pydantic.requires)
    text = (Path(str(pydantic.locate_file(""))) / f"pydantic-{pydantic.version}.dist-info"
            / "METADATA").read_text(encoding="utf-8")  # fmt: skip
    assert text.startswith("Metadata-Version:") and "\n\n" not in text
    assert len(text) < 10_000  # it was 144 kB with the changelog


def test_the_import_closure_follows_lazy_and_from_imports() -> None:
    closure = import_closure("functions.main.handler")
    assert {"functions", "functions.main", "functions.main.routers.sessions"} <= closure
    assert "functions.data.turns" in closure  # through main.deps, not named by the handler
    assert not [m for m in closure if m.startswith(("functions.websocket", "functions.cleanup"))]


@pytest.mark.parametrize(
    ("target", "machine"), [(X86, "x86_64"), (ARM, "arm64")], ids=["x86_64", "arm64"]
)
def test_native_code_matches_the_architecture(target: Target, machine: str) -> None:
    package = build_function(AUTHORIZER, target)  # cryptography and cffi ship native code
    with zipfile.ZipFile(package.path) as archive:
        shared_objects = [n for n in archive.namelist() if n.endswith(".so")]
        assert shared_objects
        for name in shared_objects:
            header = archive.read(name)[:20]
            assert header[:4] == b"\x7fELF"
            assert ELF_MACHINE[header[18:20]] == machine, name


def test_bytecode_is_reproducible_and_names_the_lambda_task_root(tmp_path: Path) -> None:
    entries = [("functions/contract.py", ROOT / "functions" / "contract.py")]
    first = _bytecode(entries, X86, tmp_path / "one")
    second = _bytecode(entries, X86, tmp_path / "two")
    assert [name for name, _ in first] == ["functions/__pycache__/contract.cpython-311.pyc"]
    assert first[0][1].read_bytes() == second[0][1].read_bytes()
    code = marshal.loads(first[0][1].read_bytes()[16:])  # noqa: S302 -- our own build output
    assert code.co_filename == "/var/task/functions/contract.py"
    assert _bytecode(entries, Target("python3.12", "x86_64"), tmp_path / "three") == []


def test_zips_are_byte_reproducible(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "b.py").write_text("B = 1\n")
    (source / "pkg" / "a.py").write_text("A = 1\n")
    entries = [(f"pkg/{p.name}", p) for p in (source / "pkg").iterdir()]
    write_zip(entries, tmp_path / "one.zip")
    for path in (source / "pkg").iterdir():  # new mtimes and modes must not matter
        os.utime(path, (1_900_000_000, 1_900_000_000))
        path.chmod(0o755)
    write_zip(list(reversed(entries)), tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    assert names(tmp_path / "one.zip") == ["pkg/a.py", "pkg/b.py"]


def _digest_of(file: Path) -> bytes:
    return hashlib.sha256(file.read_bytes()).digest()


def _rewrite(file: Path, text: str, mtime_ns: int) -> None:
    file.write_text(text)
    os.utime(file, ns=(mtime_ns, mtime_ns))


def test_a_file_is_hashed_again_when_it_changes(tmp_path: Path) -> None:
    """A build keeps each file's digest by its stat signature. A file edited since its last
    build has another mtime; a file written twice within one clock tick can keep its size,
    mtime and inode, which is why a file that young is always read (here both writes get the
    same mtime, just now)."""
    old, now = time.time_ns() - 60_000_000_000, time.time_ns()
    settled = tmp_path / "settled.py"
    _rewrite(settled, "A = 1\n", old)
    assert _file_digest(settled) == _digest_of(settled)
    _rewrite(settled, "A = 2\n", old + 1_000_000_000)
    assert _file_digest(settled) == _digest_of(settled)
    young = tmp_path / "young.py"
    _rewrite(young, "A = 1\n", now)
    first = _file_digest(young)
    _rewrite(young, "A = 2\n", now)
    assert _file_digest(young) == _digest_of(young) != first


def test_rebuilding_from_the_same_sources_gives_the_same_hash(tmp_path: Path) -> None:
    first = build_function(AUTHORIZER, X86)
    copy = tmp_path / "copy.zip"
    with zipfile.ZipFile(first.path) as archive:
        archive.extractall(tmp_path / "tree")
    tree = tmp_path / "tree"
    write_zip([(p.relative_to(tree).as_posix(), p) for p in tree.rglob("*") if p.is_file()], copy)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == first.sha256


def _call_in_fresh_interpreter(
    zip_path: Path, tmp_path: Path, code: str
) -> subprocess.CompletedProcess:
    tree = extract(zip_path, tmp_path / zip_path.stem)
    runtime = runtime_site(tmp_path / "runtime")
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        env={"PYTHONPATH": "", "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        input=f"{tree}\n{runtime}\n",
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_handler_imports_from_its_package_alone(spec: FunctionSpec, tmp_path: Path) -> None:
    """The handler, or the ASGI app a start script serves (an app is callable too)."""
    module, attribute = spec.entry
    code = (
        "import sys, importlib\n"
        "sys.path[:0] = sys.stdin.read().split()\n"
        f"handler = getattr(importlib.import_module({module!r}), {attribute!r})\n"
        "assert callable(handler)\n"
        "test_only = ('hypothesis', 'moto', 'pytest', 'tests')\n"
        "assert not [m for m in sys.modules if m.startswith(test_only)]\n"
    )
    result = _call_in_fresh_interpreter(build_function(spec, X86).path, tmp_path, code)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)
def test_cold_start_imports_shipped_bytecode(spec: FunctionSpec, tmp_path: Path) -> None:
    """With its source replaced by garbage, the handler still imports: from the shipped pyc."""
    tree = extract(build_function(spec, X86).path, tmp_path / "task")
    source = tree / module_file(spec.module)
    source.write_text("raise SystemExit('compiled at cold start: no bytecode shipped')\n")
    code = f"import sys; sys.path[:0] = sys.argv[1:]; import {spec.module}"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code, str(tree), str(runtime_site(tmp_path))],
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_placeholder_answers_503_and_denies_authorization(tmp_path: Path) -> None:
    """And fails a stream batch: answering it would make Lambda drop the removals."""
    package = build_placeholder(X86)
    rest = load_event("rest-proxy-request")
    token = load_event("rest-token-authorizer")
    code = (
        "import sys, json, importlib\n"
        "paths = sys.stdin.readline().split(); sys.path[:0] = paths\n"
        "events = json.loads(sys.stdin.read())\n"
        f"for handler in {[s.handler for s in FUNCTIONS if not s.web_adapter]!r}:\n"
        "    module, name = handler.rsplit('.', 1)\n"
        "    fn = getattr(importlib.import_module(module), name)\n"
        "    answer = fn(events['rest'], None)\n"
        "    assert answer['statusCode'] == 503, answer\n"
        "    assert json.loads(answer['body'])['error']['code'] == 'not_deployed'\n"
        "    try:\n"
        "        fn(events['token'], None)\n"
        "    except Exception as exc:\n"
        "        assert str(exc) == 'Unauthorized'\n"
        "    else:\n"
        "        raise AssertionError('an authorizer call was not denied')\n"
        "    try:\n"
        "        fn(events['stream'], None)\n"
        "    except RuntimeError as exc:\n"
        "        assert 'no code yet' in str(exc)\n"
        "    else:\n"
        "        raise AssertionError('a stream batch was consumed by the placeholder')\n"
    )
    tree = extract(package.path, tmp_path / "placeholder")
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        input=f"{tree}\n" + json.dumps({"rest": rest, "token": token, "stream": STREAM_BATCH}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_placeholder_behind_the_adapter_is_ready_and_answers_503(tmp_path: Path) -> None:
    """The placeholder's run.sh (at the adapter function's handler path, executable) starts a
    server that passes the adapter's readiness check and answers every other request 503."""
    package = build_placeholder(X86)
    with zipfile.ZipFile(package.path) as archive:
        assert archive.getinfo(OPENAI_API.handler).external_attr >> 16 == 0o100755
    tree = extract(package.path, tmp_path / "placeholder")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**ADAPTER_ENV, "PORT": str(port), "PATH": os.path.dirname(sys.executable) + ":/bin"}
    env = {key: value for key, value in env.items() if key != "AWS_LAMBDA_EXEC_WRAPPER"}
    server = subprocess.Popen(
        ["/bin/sh", str(tree / OPENAI_API.handler)],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ready = _get_when_up(
            f"http://127.0.0.1:{port}{ADAPTER_ENV['AWS_LWA_READINESS_CHECK_PATH']}"
        )
        assert ready.status == 200
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", data=b"{}", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 -- a local test server
        assert refused.value.code == 503
        assert json.loads(refused.value.read())["error"]["code"] == "not_deployed"
        assert refused.value.headers["Retry-After"] == "60"
    finally:
        stop_process(server, grace_seconds=5)


def _get_when_up(url: str) -> http.client.HTTPResponse:
    """GET ``url`` once the server listens (it starts a Python process first)."""
    for _ in range(200):
        try:
            return urllib.request.urlopen(url, timeout=10)  # noqa: S310 -- a local test server
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
            threading.Event().wait(0.05)
    raise AssertionError(f"nothing listened at {url}")
