"""The suite's shared parsing of botocore's data files (tests/support/botocore_models.py)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import botocore.loaders
import botocore.session
import pytest

from tests.support import botocore_models


def _files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    load_file = botocore.loaders.JSONFileLoader.load_file

    def recording(self: botocore.loaders.JSONFileLoader, file_path: str) -> object:
        read.append(file_path)
        return load_file(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", recording)
    return read


def test_a_new_session_reads_no_model_an_earlier_one_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the functions' per-test containers rely on. MediaConvert: no code of the project
    uses it, so the first session of this test is the first to read its model."""
    read = _files_read(monkeypatch)
    credentials = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    boto3.session.Session(region_name="us-east-1").client("mediaconvert", **credentials)
    first = [path for path in read if "/mediaconvert/" in path]
    read.clear()
    boto3.session.Session(region_name="eu-west-1").client("mediaconvert", **credentials)

    assert first, "the first session read no model: it was already cached"
    assert [path for path in read if "/mediaconvert/" in path] == []


def test_loaders_with_different_search_paths_share_nothing(tmp_path: Path) -> None:
    """A folder of extra models only shows to the loader that searches it."""
    model = tmp_path / "madeup" / "2020-01-01" / "service-2.json"
    model.parent.mkdir(parents=True)
    model.write_text(json.dumps({"metadata": {}, "operations": {}, "shapes": {}}))
    plain = botocore.session.create_loader()
    extended = botocore.session.create_loader()
    extended.search_paths.append(str(tmp_path))

    assert "madeup" in extended.list_available_services("service-2")
    assert "madeup" not in plain.list_available_services("service-2")
    assert "madeup" not in botocore.session.create_loader().list_available_services("service-2")


def _rule_sets_built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    built: list[object] = []
    rule_set = botocore_models._RuleSet  # botocore's class: what the shared factory builds
    init = rule_set.__init__

    def recording(self: object, **data: object) -> None:
        built.append(data)
        init(self, **data)

    monkeypatch.setattr(rule_set, "__init__", recording)
    return built


def test_a_new_client_builds_no_endpoint_rules_an_earlier_one_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each still resolves its own endpoint from the shared rules: its region, its URL."""
    credentials = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    boto3.session.Session(region_name="us-east-1").client("sqs", **credentials)
    built = _rule_sets_built(monkeypatch)
    west = boto3.session.Session(region_name="eu-west-1").client("sqs", **credentials)
    local = boto3.session.Session(region_name="eu-west-1").client(
        "sqs", endpoint_url="http://127.0.0.1:4566", **credentials
    )
    assert built == []
    assert west.meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    assert local.meta.endpoint_url == "http://127.0.0.1:4566"
