"""One session-wide runner: every stack's Terraform run starts at once, in threads, and
each test waits for its own. An apply costs tens of seconds, mostly the provider's own
waits (an SQS queue polls six times, five seconds apart), so running the independent
stacks side by side is what keeps the group's wall time near the slowest single cycle."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from functions.contract import Env
from tests.terraform.harness import (
    Cycle,
    HarnessError,
    Tools,
    cycle,
    init,
    plan,
    refused_requests,
    refused_section,
    require_tools,
    validate,
)
from tests.terraform.harness import workspace as terraform_workspace
from tests.terraform.readback import check_stack
from tests.terraform.stacks import VARIANTS

HERE = Path(__file__).resolve().parent
# The spec's usage root (its `module "compute"` block verbatim) and its stand-in layers.
USAGE = HERE / "usage"
# What the usage root's values and the module's defaults make of the functions' variables:
# lists joined, unset optional values empty, numbers and booleans as text.
USAGE_ENVIRONMENT = {
    Env.BEDROCK_MODELS: (
        "anthropic.claude-3-5-sonnet-20240620-v1:0,anthropic.claude-3-haiku-20240307-v1:0"
    ),
    Env.KNOWLEDGE_BASE_ID: "KB12345678",
    Env.JWT_ISSUER: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example",
    Env.JWT_AUDIENCE: "ai-assistant-cli",
    Env.BEDROCK_GUARDRAIL_ID: "",
    Env.BEDROCK_GUARDRAIL_VERSION: "",
    Env.BEDROCK_PROMPT_CACHING: "true",
    Env.TITLE_MODEL_ID: "anthropic.claude-3-haiku-20240307-v1:0",
    Env.SESSION_TTL_DAYS: "30",
    Env.CORS_ALLOWED_ORIGINS: "*",
}
# Roots that call the module with non-default, invalid, or inconsistent values; each is
# assembled with the stand-in layers and the generated module (see module_root).
MODULE_ROOTS = {
    "module-values": HERE / "roots" / "module_values.tf",
    "module-invalid": HERE / "roots" / "module_invalid.tf",
    "module-guardrail-alone": HERE / "roots" / "module_guardrail_alone.tf",
}

ROOT = Path(__file__).resolve().parents[2]
# Where `make bench` asks for the per-stack timings (JSON), to show where the time goes.
TIMINGS_ENV = "COMPUTE_TERRAFORM_TIMINGS"
# Terraform runs at once. Each starts the 700 MB AWS provider several times, seconds of CPU
# each: on two shared cores, eleven at once took longer than three (the two environments
# and the variants one after another), which overlap the provider's sleeps and no more.
JOBS_ENV = "COMPUTE_TERRAFORM_JOBS"
DEFAULT_JOBS = 3


@dataclass
class VariantPlan:
    """A variant's validate and plan against an empty emulator."""

    name: str
    changes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ModulePlan:
    """A plan of a root that calls the module: Terraform's exit code and output, and the
    planned values (``terraform show -json``) when it planned."""

    name: str
    code: int
    output: str
    shown: dict | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Runs:
    """The futures of every run, by stack or variant name, and the synthesized roots."""

    base: Path
    roots: dict[str, Path] = field(default_factory=dict)
    cycles: dict[str, Future[Cycle]] = field(default_factory=dict)
    plans: dict[str, Future[VariantPlan]] = field(default_factory=dict)
    module_plans: dict[str, Future[ModulePlan]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def cycle(self, name: str) -> Cycle:
        return self.cycles[name].result()

    def plan(self, name: str) -> VariantPlan:
        return self.plans[name].result()

    def module_plan(self, name: str) -> ModulePlan:
        return self.module_plans[name].result()


def _full_cycle(
    tools: Tools, root: Path, work: Path, environment: dict[str, str] | None = None
) -> Cycle:
    with terraform_workspace(root, work, tools) as (tf, emulator, _):
        try:
            result = cycle(
                tf,
                readback=lambda result: check_stack(emulator, result, environment),
                name=work.name,
            )
        except HarnessError as exc:
            exc.add_note(refused_section(refused_requests(emulator.request_log)))
            raise
        result.refused_requests = refused_requests(emulator.request_log)
        if result.readback_error is not None:
            result.readback_error.add_note(refused_section(result.refused_requests))
        return result


def _plan_only(tools: Tools, root: Path, work: Path) -> VariantPlan:
    with terraform_workspace(root, work, tools) as (tf, _, _):
        init(tf)
        validate(tf)
        _, changes = plan(tf, details=False)
        return VariantPlan(name=work.name, changes=changes, seconds=tf.seconds())


def _module_plan(tools: Tools, root: Path, work: Path) -> ModulePlan:
    """init and plan, whatever the plan's outcome: the caller judges it."""
    with terraform_workspace(root, work, tools) as (tf, _, _):
        init(tf)
        run = tf("plan", "-input=false", "-json", "-out=tfplan", check=False)
        shown = json.loads(tf("show", "-json", "tfplan").output) if run.code == 0 else None
        return ModulePlan(work.name, run.code, run.output, shown, tf.seconds())


def module_root(base: Path, name: str, main: Path, module: Path) -> Path:
    """A root of ``main`` beside the stand-in layers and the generated module, as a
    caller's repository would have them (``./modules/compute``)."""
    root = base / "module-roots" / name
    shutil.copytree(USAGE / "modules", root / "modules")
    shutil.copytree(module, root / "modules" / "compute")
    shutil.copy(main, root / "main.tf")
    return root


# Whether any selected test waits for the stacks' runs (set at collection).
STACKS_SELECTED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[STACKS_SELECTED] = any(
        "terraform_runs" in getattr(item, "fixturenames", ()) for item in items
    )


@pytest.fixture(scope="session")
def terraform_tools() -> Tools:
    return require_tools()


@pytest.fixture(scope="session")
def terraform_runs(
    terraform_tools: Tools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """Synthesizes every environment and variant (in this thread: jsii is not thread-safe)
    and hands each to a thread as soon as it exists; environments first, being the longest."""
    from compute.config import load_environments
    from compute.module import write_module
    from compute.stack import build_app

    runs = Runs(base=tmp_path_factory.mktemp("terraform"))
    configs = load_environments(ROOT / "config")
    (runs.base / "synth").mkdir()
    build_app(configs, outdir=str(runs.base / "synth")).synth()
    # The module as `make module` writes it, from its generation defaults alone.
    module = write_module(runs.base / "module", environ={})
    jobs = int(os.environ.get(JOBS_ENV, DEFAULT_JOBS))
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="terraform") as pool:
        for config in configs:
            root = runs.base / "synth" / "stacks" / config.stack_name
            runs.roots[config.environment] = root
            runs.cycles[config.environment] = pool.submit(
                _full_cycle, terraform_tools, root, runs.base / "work" / config.environment
            )
        usage = module_root(runs.base, "usage", USAGE / "main.tf", module)
        runs.roots["usage"] = usage
        runs.cycles["usage"] = pool.submit(
            _full_cycle,
            terraform_tools,
            usage,
            runs.base / "work" / "usage",
            USAGE_ENVIRONMENT,
        )
        for name, main in MODULE_ROOTS.items():
            root = module_root(runs.base, name, main, module)
            runs.roots[name] = root
            runs.module_plans[name] = pool.submit(
                _module_plan, terraform_tools, root, runs.base / "work" / name
            )
        for name, config in VARIANTS.items():
            (runs.base / "variants" / name).mkdir(parents=True)
            build_app([config], outdir=str(runs.base / "variants" / name)).synth()
            root = runs.base / "variants" / name / "stacks" / config.stack_name
            runs.roots[name] = root
            runs.plans[name] = pool.submit(
                _plan_only, terraform_tools, root, runs.base / "work" / name
            )
        yield runs
    if os.environ.get(TIMINGS_ENV):
        _write_timings(runs, Path(os.environ[TIMINGS_ENV]))


def _write_timings(runs: Runs, path: Path) -> None:
    timings: dict[str, object] = {"wall_seconds": round(time.monotonic() - runs.started, 1)}
    for name, future in {**runs.cycles, **runs.plans, **runs.module_plans}.items():
        if future.done() and future.exception() is None:
            result = future.result()
            timings[name] = result.seconds
            if isinstance(result, Cycle):
                timings[f"{name} slowest apply"] = result.slowest_apply
                timings[f"{name} slowest destroy"] = result.slowest_destroy
    path.write_text(json.dumps(timings, indent=2))
