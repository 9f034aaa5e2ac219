"""The checkov gate's own rules: the skip lists (a reason for each, prod within its budget,
dev adding only what its config switches off) and how ``tools/scan.py`` turns checkov's
JSON report into pass/fail.

checkov itself runs once per suite, on the whole-app synth of ``test_synthesis.py``. These
tests feed the classifier reports shaped like checkov's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.compute.synth import ROOT
from tools.scan import ScanError, SkipList, classify, environment_of, render

CHECKOV = ROOT / ".checkov"
# Six for the APIs and functions, four for the attachments bucket (.checkov/prod.yaml says why).
PROD_BUDGET = 10
# What dev's configuration switches off, and so the only skips dev may add to prod's.
DEV_SWITCHED_OFF = {
    "CKV_AWS_117": "vpc_id",
    "CKV2_AWS_29": "waf_enabled",
    "CKV_AWS_272": "code_signing_profile_version_arns",
    "CKV_AWS_338": "log_retention_days",
}


def finding(env: str, check: str, resource: str = "aws_x.y") -> dict[str, Any]:
    return {
        "check_id": check,
        "check_name": f"name of {check}",
        "resource": resource,
        "file_path": f"/cdktf.out/stacks/compute-{env}/cdk.tf.json",
    }


def report(passed: list[dict], failed: list[dict]) -> dict[str, Any]:
    return {"results": {"passed_checks": passed, "failed_checks": failed}}


@pytest.fixture
def skips(tmp_path: Path) -> dict[str, SkipList]:
    path = tmp_path / "prod.yaml"
    path.write_text("skip-check:\n  - CKV_AWS_116  # synchronous only\n  - CKV_AWS_59 # health\n")
    return {"prod": SkipList.load(path)}


# The shipped skip lists -----------------------------------------------------------------------


def test_every_environment_has_a_skip_list_with_reasons() -> None:
    environments = {path.stem for path in (ROOT / "config").glob("*.toml")} | {"dev"}
    for env in environments:
        skip_list = SkipList.load(CHECKOV / f"{env}.yaml")
        assert all(len(reason) > 20 for reason in skip_list.reasons.values())


def test_prod_skips_stay_within_budget() -> None:
    assert len(SkipList.load(CHECKOV / "prod.yaml").reasons) <= PROD_BUDGET


def test_dev_adds_only_what_its_config_switches_off() -> None:
    prod = SkipList.load(CHECKOV / "prod.yaml").reasons
    dev = SkipList.load(CHECKOV / "dev.yaml").reasons
    assert {check: dev[check] for check in prod} == prod
    extra = {check: reason for check, reason in dev.items() if check not in prod}
    assert set(extra) == set(DEV_SWITCHED_OFF)
    for check, setting in DEV_SWITCHED_OFF.items():
        assert extra[check].startswith("dev config:") and setting in extra[check]


# Reading a skip list ----------------------------------------------------------------------------


def test_a_skip_without_a_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text("skip-check:\n  - CKV_AWS_116  # synchronous only\n  - CKV_AWS_59\n")
    with pytest.raises(ScanError, match="CKV_AWS_59 has no reason"):
        SkipList.load(path)


def test_a_skip_list_checkov_would_read_differently_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text("skip-check: [CKV_AWS_116, CKV_AWS_59]  # both inline\n")
    with pytest.raises(ScanError, match="one check id per line"):
        SkipList.load(path)


# Classifying checkov's report --------------------------------------------------------------------


def test_skipped_findings_are_counted_and_other_failures_fail(skips: dict) -> None:
    results = classify(
        report(
            passed=[finding("prod", "CKV_AWS_7"), finding("prod", "CKV_AWS_59", "aws_m.auth")],
            failed=[
                finding("prod", "CKV_AWS_116", "aws_lambda_function.a"),
                finding("prod", "CKV_AWS_116", "aws_lambda_function.b"),
                finding("prod", "CKV_AWS_59", "aws_m.health"),
                finding("prod", "CKV_AWS_158", "aws_cloudwatch_log_group.g"),
            ],
        ),
        skips,
    )
    prod = results["prod"]
    assert prod.passed == 1  # a skipped check's passes are not counted, as in checkov
    assert [item["check_id"] for item in prod.failed] == ["CKV_AWS_158"]
    assert prod.skipped == {"CKV_AWS_116": 2, "CKV_AWS_59": 1}
    assert not prod.clean
    text = render(prod)
    assert "passed 1, failed 1, skipped 3 (2 checks)" in text
    assert "FAILED CKV_AWS_158 aws_cloudwatch_log_group.g" in text
    assert "skipped CKV_AWS_116 x2: synchronous only" in text


def test_a_skip_that_matches_nothing_is_stale(skips: dict) -> None:
    results = classify(report([], [finding("prod", "CKV_AWS_116")]), skips)
    assert results["prod"].stale_skips == ["CKV_AWS_59"]
    assert not results["prod"].clean
    assert "STALE skip CKV_AWS_59" in render(results["prod"])


def test_clean_when_every_failure_is_skipped(skips: dict) -> None:
    failed = [finding("prod", "CKV_AWS_116"), finding("prod", "CKV_AWS_59")]
    assert classify(report([finding("prod", "CKV_AWS_7")], failed), skips)["prod"].clean


def test_checks_checkov_could_not_run_are_reported(skips: dict) -> None:
    stderr = (
        "[ERROR]  Failed to run check CKV2_AWS_70 on "
        "/cdktf.out/stacks/compute-prod/cdk.tf.json:aws_api_gateway_method.options\n"
    )
    failed = [finding("prod", "CKV_AWS_116"), finding("prod", "CKV_AWS_59")]
    result = classify(report([], failed), skips, stderr)["prod"]
    assert result.errors == ["CKV2_AWS_70 on aws_api_gateway_method.options"]
    assert "could not evaluate: CKV2_AWS_70 on 1 resources" in render(result)


def test_a_stack_without_a_skip_list_stops_the_scan(skips: dict) -> None:
    with pytest.raises(ScanError, match="no skip list"):
        classify(report([], [finding("qa", "CKV_AWS_7")]), skips)
    with pytest.raises(ScanError, match="not a compute-<env> stack"):
        environment_of("/cdktf.out/stacks/network-prod/cdk.tf.json")
