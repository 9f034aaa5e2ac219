"""Real Terraform on what the project synthesizes: the harness behind ``tests/terraform``.

Synthesis tests read JSON; only Terraform itself says whether that JSON initializes,
validates, applies, converges (a second plan with no changes) and destroys. This module
runs those steps against a local AWS emulator, offline, with the one provider this machine
mirrors. It knows nothing of CDKTF: hand :func:`prepare` any root folder of ``*.tf.json`` /
``*.tf`` files (nested ``modules/...`` folders included) and :func:`cycle` runs it.

What it changes in the root, and nothing else (docs/testing.md, "Proven by Terraform"):

- the ``hashicorp/aws`` version pin of every module, to the mirrored version;
- the backend, replaced by a local one in the work folder;
- the ``aws`` provider block, pointed at the emulator with test credentials;
- the attributes of :data:`SIX_ONLY_ATTRIBUTES`, which the mirrored 5.x provider lacks.

Every other provider, and every other attribute the mirrored provider does not know, makes
the cycle fail with its name: that is what the tests are for.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakes.process import stop_process

TERRAFORM_ENV = "TERRAFORM"
MIRROR_ENV = "TF_PROVIDER_MIRROR"
REQUIRE_ENV = "COMPUTE_REQUIRE_TERRAFORM"
DEFAULT_MIRROR = Path("/opt/tf-plugins")
ROOT = Path(__file__).resolve().parents[2]  # the project, from where the emulator imports
AWS_SOURCE = "registry.terraform.io/hashicorp/aws"
MIRROR_GLOB = f"{AWS_SOURCE}/*/*/terraform-provider-aws*"


@dataclass(frozen=True)
class SixOnly:
    """An attribute the synthesized JSON sets that exists only in AWS provider 6.x."""

    resource_type: str
    attribute: str
    reason: str  # why dropping it for the 5.x run loses nothing the tests check


# Attributes removed before the run, each with its reason; everything else the stacks set is
# known to the mirrored 5.x provider too (terraform validate proves it on every run).
SIX_ONLY_ATTRIBUTES: tuple[SixOnly, ...] = (
    SixOnly(
        "aws_api_gateway_integration",
        "response_transfer_mode",
        "API Gateway's response streaming came after 5.x (provider 6.25 has it). Without it the "
        "streamed routes' integrations are buffered ones with the same URI, authorizer and "
        "timeout, which is all the read-backs check; the mode itself is proven by the "
        "synthesis tests (tests/compute/test_stack.py).",
    ),
)

# Terraform resource/data type prefix -> the provider's endpoint key, longest prefix first.
# A type matching none fails prepare() by name, so no call can leave for real AWS unnoticed.
SERVICE_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("aws_api_gateway_", "apigateway"),
    ("aws_apigatewayv2_", "apigatewayv2"),
    ("aws_cloudwatch_log_", "logs"),
    ("aws_cloudwatch_", "cloudwatch"),
    ("aws_dynamodb_", "dynamodb"),
    ("aws_iam_", "iam"),
    ("aws_kms_", "kms"),
    ("aws_lambda_", "lambda"),
    ("aws_sns_", "sns"),
    ("aws_sqs_", "sqs"),
    ("aws_wafv2_", "wafv2"),
    ("aws_s3_", "s3"),
    ("aws_caller_identity", "sts"),
    ("aws_ssm_", "ssm"),
    ("aws_secretsmanager_", "secretsmanager"),
)
# Types that make no API call at all.
LOCAL_TYPES = frozenset({"aws_partition", "aws_iam_policy_document", "aws_region"})
# Always pointed at the emulator: the provider asks STS for the account when it starts, and
# deleting a function attached to a VPC waits on its network interfaces through EC2.
ALWAYS_ENDPOINTS = ("sts", "iam", "ec2")

TAIL_LINES = 60
# Terraform's default of 10 leaves the emulator idle while the provider sleeps in waiters.
PARALLELISM = ("-parallelism=30",)
COMMAND_TIMEOUT = 900  # seconds: a hung provider fails the test instead of the whole run


class HarnessError(AssertionError):
    """A step failed; the message carries what Terraform or the emulator said."""


# Tools -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    """The Terraform binary and the provider mirror, and the AWS provider version it holds."""

    terraform: Path
    mirror: Path
    aws_version: str


def find_tools() -> Tools | str:
    """The tools, or one line saying exactly what is missing."""
    terraform = os.environ.get(TERRAFORM_ENV) or shutil.which("terraform")
    if not terraform or not Path(terraform).is_file():
        where = f"${TERRAFORM_ENV}={terraform}" if os.environ.get(TERRAFORM_ENV) else "PATH"
        return f"terraform not found (looked in {where}; set {TERRAFORM_ENV})"
    mirror = Path(os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR)
    binaries = sorted(mirror.glob(MIRROR_GLOB))
    if not binaries:
        return (
            f"no hashicorp/aws provider in the mirror {mirror} (looked for {MIRROR_GLOB}; "
            f"set {MIRROR_ENV})"
        )
    versions = {binary.parent.parent.name for binary in binaries}
    if len(versions) > 1:
        return f"several hashicorp/aws versions in {mirror}: {sorted(versions)}; keep one"
    return Tools(terraform=Path(terraform), mirror=mirror, aws_version=versions.pop())


def require_tools() -> Tools:
    """The tools, or skip (fail when ``COMPUTE_REQUIRE_TERRAFORM=1``, as CI sets) saying why."""
    found = find_tools()
    if isinstance(found, Tools):
        return found
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {found}", pytrace=False)
    pytest.skip(found)


def cli_config(tools: Tools, folder: Path) -> Path:
    """A CLI config that installs hashicorp/aws from the mirror and nothing from anywhere."""
    path = folder / "terraformrc"
    path.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{tools.mirror}"\n'
        f'    include = ["{AWS_SOURCE}"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n'
        "}\n"
    )
    return path


# Emulator --------------------------------------------------------------------------------------


def emulator_command(host: str, port: int, request_log: Path) -> list[str]:
    """The emulator's command line: the one place to change which emulator the cycles use.
    moto's server plus the AWS APIs the stacks need that moto lacks (code signing)."""
    return [
        sys.executable, "-m", "fakes.emulator", "--host", host, "--port", str(port),
        "--request-log", str(request_log),
    ]  # fmt: skip


# Shown when a cycle fails, at most: the last ones (an apply's failure comes late).
REFUSED_SHOWN = 40


def refused_requests(request_log: Path) -> list[str]:
    """The requests the emulator refused, other than not-found answers (the provider reads
    what does not exist yet, and its waiters poll for deletions), and every retried attempt,
    each with the other attempts of its SDK invocation: whether a ``409`` on a create was the
    SDK retrying a call moto had already answered, or a second call, is in those lines. One
    line each, oldest first, the last :data:`REFUSED_SHOWN`."""
    if not request_log.exists():
        return []
    records = [json.loads(line) for line in request_log.read_text().splitlines() if line]
    invocations = {r["invocation"] for r in records if _flagged(r) and r["invocation"]}
    shown = [r for r in records if _flagged(r) or r["invocation"] in invocations]
    return [_request_line(record) for record in shown[-REFUSED_SHOWN:]]


def refused_section(lines: list[str]) -> str:
    """:func:`refused_requests`' lines, under a heading, for a failure's message."""
    if not lines:
        return "The emulator refused no request (not-found answers aside) and saw no retry."
    heading = "What the emulator refused (not-found answers aside) or saw retried:"
    return "\n".join([heading, *lines])


FIRST_ATTEMPT = "attempt=1;"  # amz-sdk-request: attempt=1; max=25


# Not-found answers outside 404: SQS's and DynamoDB's are 400s, which deletion waiters poll for.
NOT_FOUND = re.compile(r"NotFound|DoesNotExist|NoSuch")


def _flagged(record: dict[str, Any]) -> bool:
    missing = record["status"] == 404 or bool(NOT_FOUND.search(record.get("error", "")))
    refused = record["status"] >= 400 and not missing
    return refused or not (record["attempt"] or FIRST_ATTEMPT).startswith(FIRST_ATTEMPT)


def _request_line(record: dict[str, Any]) -> str:
    where = f"{record['method']} {record['path']}"
    if record["query"]:
        where += f"?{record['query']}"
    if record["target"]:
        where += f" ({record['target']})"
    line = (
        f"{record['at']:9.3f} s  {record['service'] or '?'} {where} -> {record['status']}, "
        f"queued {record['waited_ms']} ms, answered in {record['took_ms']} ms, "
        f"{record['attempt'] or 'no attempt header'} of invocation {record['invocation']}, "
        f"from {record['client']}"
    )
    return line + (f": {record['error']}" if "error" in record else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Emulator:
    """One emulator process on a free loopback port: one per stack, so stacks never share
    state, and killed when the context exits."""

    def __init__(self, log: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.log = log
        self.request_log = log.with_name(f"{log.stem}-requests.jsonl")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                emulator_command(self.host, self.port, self.request_log),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise HarnessError(f"emulator exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):  # noqa: S310
                    return
            except urllib.error.HTTPError:
                return  # it answers HTTP
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise HarnessError(f"emulator not answering on {self.url} after {timeout} s")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, grace_seconds=10)

    def log_tail(self) -> str:
        return tail(self.log.read_text(errors="replace")) if self.log.exists() else ""

    def client(self, service: str) -> Any:
        """A boto3 client on the emulator, for read-backs after apply."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


# Preparing a root ------------------------------------------------------------------------------

OVERRIDE = "zz_harness_override.tf.json"
PROVIDERS = "zz_harness_providers.tf.json"
HCL_TYPES = re.compile(r'^\s*(?:resource|data)\s+"(aws_[a-z0-9_]+)"', re.MULTILINE)
HCL_AWS_PROVIDER = re.compile(r'^\s*provider\s+"aws"', re.MULTILINE)
HCL_BACKEND = re.compile(r'^\s*backend\s+"', re.MULTILINE)


@dataclass
class Prepared:
    """A work folder ready for :func:`cycle`, and what :func:`prepare` changed in it."""

    root: Path
    aws_types: set[str]
    endpoints: list[str]
    removed: list[str] = field(default_factory=list)  # "file: type.name.attribute"


def endpoint_for(type_: str) -> str | None:
    if type_ in LOCAL_TYPES:
        return None
    for prefix, endpoint in SERVICE_ENDPOINTS:
        if type_.startswith(prefix):
            return endpoint
    raise HarnessError(
        f"{type_}: no emulator endpoint known for it; add its service to SERVICE_ENDPOINTS"
    )


def _module_dirs(root: Path) -> list[Path]:
    """The root and every folder under it that holds Terraform files (nested modules)."""
    return sorted(
        {p.parent for p in root.rglob("*.tf*") if p.name.endswith((".tf", ".tf.json"))}
        - {p for p in root.rglob(".terraform*")}
    )


def prepare(source: Path, work: Path, tools: Tools, emulator_url: str) -> Prepared:
    """Copy ``source`` to ``work`` and rewrite what the run needs, nothing more (module doc).

    ``.tf.json`` files lose the :data:`SIX_ONLY_ATTRIBUTES` in place; pins, backend and
    provider settings go into Terraform override files, so HCL roots work alike and the
    changes are in plain sight in the work folder."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    aws_types: set[str] = set()
    removed: list[str] = []
    has_provider = False
    for directory in _module_dirs(work):
        is_root = directory == work
        for path in sorted(directory.glob("*.tf.json")):
            document = json.loads(path.read_text())
            removed += [f"{path.relative_to(work)}: {r}" for r in _drop_six_only(document)]
            path.write_text(json.dumps(document, indent=2))
            for kind in ("resource", "data"):
                aws_types |= {t for t in document.get(kind, {}) if t.startswith("aws_")}
            has_provider |= is_root and "aws" in document.get("provider", {})
        for path in sorted(directory.glob("*.tf")):
            text = path.read_text()
            aws_types |= set(HCL_TYPES.findall(text))
            has_provider |= is_root and bool(HCL_AWS_PROVIDER.search(text))
        pin = {
            "required_providers": {"aws": {"source": "hashicorp/aws", "version": tools.aws_version}}
        }
        terraform: dict[str, Any] = dict(pin)
        if is_root:
            terraform["backend"] = {"local": {"path": str(work / "terraform.tfstate")}}
        (directory / OVERRIDE).write_text(json.dumps({"terraform": terraform}, indent=2))
    endpoints = sorted({*ALWAYS_ENDPOINTS, *filter(None, map(endpoint_for, aws_types))})
    provider = {
        "access_key": "test",
        "secret_key": "test",
        "skip_credentials_validation": True,
        "skip_metadata_api_check": True,
        "skip_requesting_account_id": False,
        "s3_use_path_style": True,
        "endpoints": [{name: emulator_url for name in endpoints}],
    }
    if has_provider:
        # Merged into the root's own aws block: region, default tags etc. stay as written.
        overrides = json.loads((work / OVERRIDE).read_text())
        (work / OVERRIDE).write_text(json.dumps({**overrides, "provider": {"aws": provider}}))
    else:
        (work / PROVIDERS).write_text(
            json.dumps({"provider": {"aws": {"region": "us-east-1", **provider}}}, indent=2)
        )
    return Prepared(root=work, aws_types=aws_types, endpoints=endpoints, removed=removed)


def _drop_six_only(document: dict[str, Any]) -> list[str]:
    dropped = []
    for item in SIX_ONLY_ATTRIBUTES:
        for name, body in document.get("resource", {}).get(item.resource_type, {}).items():
            if item.attribute in body:
                del body[item.attribute]
                dropped.append(f"{item.resource_type}.{name}.{item.attribute}")
    return dropped


# Running Terraform -----------------------------------------------------------------------------


@dataclass
class Run:
    """One terraform command: its exit code, its combined output and its wall time."""

    args: list[str]
    code: int
    output: str
    seconds: float


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def errors_of(output: str) -> str:
    """Terraform's error diagnostics (from the first ``Error:`` on), else the output's tail."""
    start = output.find("Error: ")
    return tail(output[start:] if start >= 0 else output, 120)


class Terraform:
    """Runs terraform in one work folder, offline, with the mirror and the emulator."""

    def __init__(self, tools: Tools, work: Path, config_file: Path) -> None:
        self.tools = tools
        self.work = work
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))},
            "TF_CLI_CONFIG_FILE": str(config_file),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        self.runs: list[Run] = []

    def __call__(self, *args: str, check: bool = True, codes: Sequence[int] = (0,)) -> Run:
        started = time.monotonic()
        done = subprocess.run(
            [str(self.tools.terraform), *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT,
        )
        run = Run(
            list(args), done.returncode, done.stdout + done.stderr, time.monotonic() - started
        )
        self.runs.append(run)
        if check and run.code not in codes:
            raise HarnessError(
                f"terraform {' '.join(args)} exited {run.code} in {self.work}:\n"
                f"{errors_of(run.output)}"
            )
        return run

    def seconds(self) -> dict[str, float]:
        """Wall time per subcommand (summed when it ran more than once)."""
        totals: dict[str, float] = {}
        for run in self.runs:
            totals[run.args[0]] = totals.get(run.args[0], 0.0) + run.seconds
        return {k: round(v, 1) for k, v in totals.items()}


def messages(output: str) -> list[dict[str, Any]]:
    """The machine-readable UI's messages (``-json``), skipping any line that is not one."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def error_diagnostics(output: str) -> list[dict[str, Any]]:
    return [
        m["diagnostic"]
        for m in messages(output)
        if m.get("type") == "diagnostic" and m["diagnostic"].get("severity") == "error"
    ]


def describe(diagnostics: list[dict[str, Any]]) -> str:
    """One paragraph per error: the resource address, the summary, the provider's detail."""
    return "\n".join(
        f"{d.get('address') or '(no address)'}: {d.get('summary')}: {d.get('detail', '')}".strip()
        for d in diagnostics
    )


def failed_addresses(output: str) -> dict[str, str]:
    """Address -> its error, for each resource an apply or destroy (``-json``) failed on.

    Terraform attaches the address to create and update errors but not to delete errors,
    so those are matched through the id the ``apply_start`` hook announced (the provider's
    messages name it in parentheses: "deleting AWS DynamoDB Table (name): ...")."""
    found = messages(output)
    errored = [m["hook"]["resource"]["addr"] for m in found if m.get("type") == "apply_errored"]
    ids = {
        m["hook"]["resource"]["addr"]: m["hook"].get("id_value")
        for m in found
        if m.get("type") == "apply_start"
    }
    diagnostics = error_diagnostics(output)
    failed: dict[str, str] = {}
    for address in errored:
        text = [
            f"{d.get('summary')}: {d.get('detail', '')}"
            for d in diagnostics
            if d.get("address") == address
            or (ids.get(address) and f"({ids[address]})" in d.get("summary", ""))
        ]
        failed[address] = "\n".join(text) or "(no diagnostic names it)"
    return failed


def slowest(output: str, count: int = 5) -> list[tuple[str, float]]:
    """The resources that took longest to apply or destroy, from the ``-json`` hooks."""
    done = [
        (m["hook"]["resource"]["addr"], float(m["hook"].get("elapsed_seconds", 0)))
        for m in messages(output)
        if m.get("type") == "apply_complete"
    ]
    return sorted(done, key=lambda item: -item[1])[:count]


def _errors(run: Run) -> str:
    found = error_diagnostics(run.output)
    return describe(found) if found else tail(run.output)


def init(tf: Terraform) -> Run:
    """``terraform init``; a provider missing from the mirror fails here, by name."""
    run = tf("init", "-input=false", "-no-color", check=False)
    if run.code != 0:
        missing = sorted(
            set(re.findall(r"provider (registry\.terraform\.io/[\w\-/]+)", run.output))
        )
        named = f" (not installable offline: {', '.join(missing)})" if missing else ""
        raise HarnessError(f"terraform init failed{named}:\n{errors_of(run.output)}")
    return run


def validate(tf: Terraform) -> Run:
    """``terraform validate``; each error named with where it is (resource and argument)."""
    run = tf("validate", "-json", "-no-color", check=False)
    try:
        report = json.loads(run.output[run.output.find("{") :])
    except ValueError:
        raise HarnessError(f"terraform validate gave no JSON:\n{tail(run.output)}") from None
    problems = [
        f"{d['summary']}: {d.get('detail', '')} "
        f"[{d.get('snippet', {}).get('context') or ''} in {d.get('range', {}).get('filename')}"
        f":{d.get('range', {}).get('start', {}).get('line')}]"
        for d in report.get("diagnostics", [])
        if d["severity"] == "error"
    ]
    if run.code != 0 or not report.get("valid"):
        raise HarnessError(
            f"terraform validate in {tf.work}: {len(problems)} error(s)\n" + "\n".join(problems)
        )
    return run


def _short(value: object, limit: int = 200) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def plan_changes(tf: Terraform, plan_file: str = "tfplan") -> list[str]:
    """Each change a saved plan holds: address, action and the attributes it changes."""
    shown = json.loads(tf("show", "-json", "-no-color", plan_file).output)
    changes = []
    for change in shown.get("resource_changes", []):
        actions = change["change"]["actions"]
        if actions in (["no-op"], ["read"]):
            continue
        before = change["change"].get("before") or {}
        after = change["change"].get("after") or {}
        unknown = change["change"].get("after_unknown") or {}
        attributes = sorted(
            key
            for key in {*before, *after, *unknown}
            if before.get(key) != after.get(key) or unknown.get(key) is True
        )
        detail = ""
        if "update" in actions or ("delete" in actions and "create" in actions):
            detail = ": " + "; ".join(
                f"{k}: {_short(before.get(k))} -> "
                f"{'(known after apply)' if unknown.get(k) is True else _short(after.get(k))}"
                for k in attributes
            )
        changes.append(f"{change['address']} {'/'.join(actions)}{detail}")
    return changes


def planned(output: str) -> list[str]:
    """``address action`` for each change a ``plan -json`` run announced."""
    return [
        f"{m['change']['resource']['addr']} {m['change']['action']}"
        for m in messages(output)
        if m.get("type") == "planned_change" and m["change"]["action"] != "read"
    ]


def plan(tf: Terraform, *extra: str, details: bool = True) -> tuple[Run, list[str]]:
    """``terraform plan -detailed-exitcode``: exit 0, or 2 with the planned changes, each
    with the attributes it changes when ``details`` (a ``terraform show`` more)."""
    run = tf(
        "plan", "-input=false", "-json", "-detailed-exitcode", *PARALLELISM, "-out=tfplan",
        *extra, check=False,
    )  # fmt: skip
    if run.code not in (0, 2):
        raise HarnessError(f"terraform plan exited {run.code} in {tf.work}:\n{_errors(run)}")
    if run.code == 0:
        return run, []
    return run, plan_changes(tf) if details else planned(run.output)


def state(tf: Terraform) -> dict[str, Any]:
    """The local state file itself (format 4), read directly: ``terraform output`` and
    ``state list`` would each start the 700 MB provider again for the same facts."""
    path = tf.work / "terraform.tfstate"
    return json.loads(path.read_text()) if path.exists() else {}


def state_outputs(tf: Terraform) -> dict[str, Any]:
    return {name: output["value"] for name, output in state(tf).get("outputs", {}).items()}


def state_addresses(tf: Terraform) -> set[str]:
    """Addresses as ``terraform state list`` prints them (data sources and modules too)."""
    addresses = set()
    for resource in state(tf).get("resources", []):
        module = f"{resource['module']}." if resource.get("module") else ""
        prefix = "data." if resource["mode"] == "data" else ""
        base = f"{module}{prefix}{resource['type']}.{resource['name']}"
        for instance in resource.get("instances", []):
            key = instance.get("index_key")
            addresses.add(base if key is None else f"{base}[{json.dumps(key)}]")
    return addresses


@dataclass
class Cycle:
    """What one full cycle did: the timings, the outputs after apply, what failed where."""

    name: str
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    apply_failed: dict[str, str] = field(default_factory=dict)
    slowest_apply: list[tuple[str, float]] = field(default_factory=list)
    slowest_destroy: list[tuple[str, float]] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    second_plan: list[str] = field(default_factory=list)
    destroy_failed: dict[str, str] = field(default_factory=dict)
    refused_requests: list[str] = field(default_factory=list)  # see refused_requests()
    apply_output: str = ""
    destroy_output: str = ""
    left_in_state: set[str] = field(default_factory=set)
    readback_error: BaseException | None = None


def cycle(
    tf: Terraform,
    *,
    readback: Any = None,
    destroy: bool = True,
    name: str = "",
) -> Cycle:
    """init, validate, apply, a second plan, ``readback(cycle)`` while applied, destroy.

    Apply errors do not stop the cycle: Terraform creates everything it can, and the caller
    compares :attr:`Cycle.apply_failed` with the emulator's known gaps. Likewise for destroy
    (deletion protection). The second plan may only create what apply could not."""
    result = Cycle(name=name or tf.work.name)
    init(tf)
    validate(tf)
    applied = tf("apply", "-auto-approve", "-input=false", "-json", *PARALLELISM, check=False)
    result.apply_output = applied.output
    result.slowest_apply = slowest(applied.output)
    result.apply_failed = failed_addresses(applied.output) if applied.code else {}
    if applied.code and not result.apply_failed:
        raise HarnessError(f"terraform apply exited {applied.code}:\n{_errors(applied)}")
    result.outputs = state_outputs(tf)
    _, result.second_plan = plan(tf)
    if readback is not None:
        try:
            readback(result)
        except BaseException as exc:  # reported by the test that owns the read-back
            result.readback_error = exc
    if destroy:
        # The second plan has just refreshed every resource; when it found nothing to change,
        # the state is current and destroy's own refresh (a minute for prod on two busy
        # cores) would read it all again.
        fresh = ("-refresh=false",) if not result.second_plan else ()
        destroyed = tf(
            "destroy", "-auto-approve", "-input=false", "-json", *PARALLELISM, *fresh,
            check=False,
        )  # fmt: skip
        result.destroy_output = destroyed.output
        result.slowest_destroy = slowest(destroyed.output)
        result.destroy_failed = failed_addresses(destroyed.output) if destroyed.code else {}
        if destroyed.code and not result.destroy_failed:
            raise HarnessError(f"terraform destroy exited {destroyed.code}:\n{_errors(destroyed)}")
        result.left_in_state = state_addresses(tf)
    result.seconds = tf.seconds()
    return result


@contextlib.contextmanager
def workspace(
    source: Path, work: Path, tools: Tools
) -> Iterator[tuple[Terraform, Emulator, Prepared]]:
    """An emulator, a prepared copy of ``source`` and a terraform runner on both.

    No plugin cache: init links the provider from the unpacked mirror in under a second,
    and Terraform's cache is not safe for the concurrent inits of parallel cycles."""
    work.parent.mkdir(parents=True, exist_ok=True)
    config = cli_config(tools, work.parent)
    with Emulator(log=work.parent / f"{work.name}-emulator.log") as emulator:
        prepared = prepare(source, work, tools, emulator.url)
        yield Terraform(tools, work, config), emulator, prepared
