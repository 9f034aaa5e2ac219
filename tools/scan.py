"""``make scan``: checkov on every synthesized environment, one skip list per environment.

checkov cannot skip a check for one resource of a ``cdk.tf.json``, so each environment has a
checkov config, ``.checkov/<env>.yaml``, whose ``skip-check`` entries each carry a one-line
reason as a comment. This script runs checkov once over all stacks without the skip lists,
then applies each environment's list itself, which lets it report what every skip hides
and fail on a skip that no longer matches anything (a stale skip would silently hide the
next real finding of that check). Passed and failed figures equal those of
``checkov --config-file .checkov/<env>.yaml``; skipped counts the findings the list hid.

Exit status: 0 when every environment has no failed check and no stale skip, 1 otherwise,
2 when the scan itself cannot run (no stacks, no config for a stack, checkov crashed).

Runs with the checkov tool environment's Python (``.tools/checkov/bin/python``); the
classification functions need only PyYAML, so the project's tests import them too.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STACK_PREFIX = "compute-"
SKIP_ENTRY = re.compile(r"^\s*-\s*(?P<check>CKV2?_[A-Z0-9]+_\d+)\s*(#\s*(?P<reason>\S.*?))?\s*$")
CHECK_ERROR = re.compile(r"Failed to run check (?P<check>\S+) on (?P<file>[^:]+):(?P<resource>\S+)")


class ScanError(Exception):
    """The scan cannot give an answer (as opposed to an answer with findings)."""


@dataclass(frozen=True)
class SkipList:
    """One environment's skip-check entries, each with its reason."""

    path: Path
    reasons: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> SkipList:
        """Read a checkov config; every skip-check entry must have a ``# reason``."""
        text = path.read_text(encoding="utf-8")
        declared = (yaml.safe_load(text) or {}).get("skip-check") or []
        reasons: dict[str, str] = {}
        for line in text.splitlines():
            match = SKIP_ENTRY.match(line)
            if not match:
                continue
            if not match["reason"]:
                raise ScanError(f"{path}: skip {match['check']} has no reason comment")
            reasons[match["check"]] = match["reason"]
        if sorted(reasons) != sorted(declared):
            raise ScanError(
                f"{path}: skip-check must list one check id per line with a reason; "
                f"read {sorted(declared)}, understood {sorted(reasons)}"
            )
        return cls(path=path, reasons=reasons)


@dataclass
class EnvironmentResult:
    """What checkov found in one environment, after its skip list."""

    environment: str
    skips: SkipList
    passed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def stale_skips(self) -> list[str]:
        return sorted(set(self.skips.reasons) - set(self.skipped))

    @property
    def clean(self) -> bool:
        return not self.failed and not self.stale_skips


def environment_of(file_path: str) -> str:
    """``.../stacks/compute-prod/cdk.tf.json`` -> ``prod``."""
    stack = Path(file_path).parent.name
    if not stack.startswith(STACK_PREFIX):
        raise ScanError(f"{file_path} is not a compute-<env> stack")
    return stack.removeprefix(STACK_PREFIX)


def classify(
    report: dict[str, Any], skips: dict[str, SkipList], stderr: str = ""
) -> dict[str, EnvironmentResult]:
    """Split checkov's JSON report (run without skips) by environment and apply the lists."""
    results = {env: EnvironmentResult(env, skip_list) for env, skip_list in skips.items()}

    def result_for(item: dict[str, Any]) -> EnvironmentResult:
        env = environment_of(item["file_path"])
        if env not in results:
            raise ScanError(f"checkov reported on {item['file_path']}, which has no skip list")
        return results[env]

    for item in report["results"]["passed_checks"]:
        result = result_for(item)
        if item["check_id"] not in result.skips.reasons:
            result.passed += 1
    for item in report["results"]["failed_checks"]:
        result = result_for(item)
        if item["check_id"] in result.skips.reasons:
            result.skipped[item["check_id"]] += 1
        else:
            result.failed.append(item)
    for match in CHECK_ERROR.finditer(stderr):
        result_for({"file_path": match["file"]}).errors.append(
            f"{match['check']} on {match['resource']}"
        )
    return results


def render(result: EnvironmentResult) -> str:
    """The per-environment summary ``make scan`` prints."""
    lines = [
        f"{STACK_PREFIX}{result.environment} ({result.skips.path}): passed {result.passed}, "
        f"failed {len(result.failed)}, skipped {sum(result.skipped.values())} "
        f"({len(result.skips.reasons)} checks)"
    ]
    for item in result.failed:
        lines.append(f"  FAILED {item['check_id']} {item['resource']}: {item['check_name']}")
    for check, reason in result.skips.reasons.items():
        count = result.skipped[check]
        lines.append(f"  skipped {check} x{count}: {reason}")
    lines += [f"  STALE skip {check}: matches nothing, remove it" for check in result.stale_skips]
    if result.errors:
        checks = Counter(error.split()[0] for error in result.errors)
        lines.append(
            "  checkov could not evaluate: "
            + ", ".join(f"{check} on {count} resources" for check, count in checks.items())
        )
    return "\n".join(lines)


def run_checkov(checkov: Path, files: list[Path]) -> tuple[dict[str, Any], str]:
    """One checkov process over every stack: its start-up dominates the run time."""
    # Not --quiet: with JSON output it drops the passed checks.
    command = [str(checkov), "--framework", "terraform_json", "--output", "json"]
    command += ["--skip-download"]  # no network: the guideline links are not needed
    for file in files:
        command += ["--file", str(file)]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    if process.returncode not in (0, 1):  # 1 means findings, anything else a crash
        raise ScanError(f"checkov exited with {process.returncode}:\n{process.stderr}")
    report = json.loads(process.stdout)
    if isinstance(report, list):  # checkov returns a list when several frameworks ran
        raise ScanError("checkov ran more than the terraform_json framework")
    return report, process.stderr


def scan(outdir: Path, config_dir: Path, checkov: Path) -> int:
    files = sorted(outdir.glob(f"stacks/{STACK_PREFIX}*/cdk.tf.json"))
    if not files:
        raise ScanError(f"no {STACK_PREFIX}<env> stacks in {outdir}; synthesize first")
    skips: dict[str, SkipList] = {}
    for file in files:
        env = environment_of(str(file))
        config = config_dir / f"{env}.yaml"
        if not config.is_file():
            raise ScanError(f"{config} is missing: every environment needs its skip list")
        skips[env] = SkipList.load(config)
    started = time.monotonic()
    report, stderr = run_checkov(checkov, files)
    results = classify(report, skips, stderr)
    version = report.get("summary", {}).get("checkov_version", "?")
    for result in results.values():
        print(render(result))
    clean = all(result.clean for result in results.values())
    verdict = "clean" if clean else "NOT clean"
    print(
        f"checkov {version}: {len(results)} environments {verdict} "
        f"({time.monotonic() - started:.1f} s)"
    )
    return 0 if clean else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, nargs="?", default=Path("cdktf.out"))
    parser.add_argument("--config-dir", type=Path, default=Path(".checkov"))
    parser.add_argument("--checkov", type=Path, default=Path(sys.executable).with_name("checkov"))
    args = parser.parse_args(argv)
    try:
        return scan(args.outdir, args.config_dir, args.checkov)
    except ScanError as exc:
        print(f"scan: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
