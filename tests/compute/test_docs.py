"""The configuration page's tables are the model's: every field documented, marked spec
or extension, and ``docs/configuration.md`` exactly what ``make docs`` writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from compute.config import Backend, ComputeConfig, RemoteState, RemoteStateS3, field_origin
from tests.support.spec import spec_text
from tools.docs import PAGE, TABLES, render, render_type

ROOT = Path(__file__).resolve().parents[2]
MODELS = (ComputeConfig, Backend, RemoteState, RemoteStateS3)


def test_the_configuration_page_is_what_make_docs_writes() -> None:
    current = PAGE.read_text()
    assert render(current) == current, f"{PAGE.name}'s config tables are stale: run `make docs`"


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_field_has_a_description_and_an_origin(model: type[BaseModel]) -> None:
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert not undocumented
    for field in model.model_fields.values():
        field_origin(field)  # raises without one


def test_the_spec_fields_are_exactly_the_spec_variables() -> None:
    spec = spec_text()
    names = {line.split("`")[1] for line in spec.splitlines() if line.startswith("| `")}
    marked = {n for n, f in ComputeConfig.model_fields.items() if field_origin(f) == "spec"}
    assert marked == names


@pytest.mark.parametrize(
    ("field", "rendered"),
    [
        ("lambda_timeout", "int (1\u2013900)"),
        ("lambda_reserved_concurrency", "int (≥ -1)"),
        ("alarm_lambda_duration_share", "float (> 0, ≤ 1)"),
        ("waf_rate_limit", "int (10\u20132,000,000,000)"),
        ("project_name", "str (≤ 40 characters)"),
        ("private_subnet_ids", "list[str]"),
        ("bedrock_models", "list[str] (≥ 1 item)"),
        ("tags", "dict[str, str]"),
        ("lambda_architecture", '"x86_64" | "arm64"'),
        ("vpc_id", "str"),
        ("websocket_lambda_timeout", "int (1\u2013900)"),
        ("backend", "table"),
    ],
)
def test_types_render_as_a_config_author_reads_them(field: str, rendered: str) -> None:
    info = ComputeConfig.model_fields[field]
    assert render_type(info.annotation, info.metadata) == rendered


def test_the_tables_replace_only_what_is_between_their_markers() -> None:
    page = "".join(
        f"before {name}\n<!-- config-table:{name}:start -->\nstale\n"
        f"<!-- config-table:{name}:end -->\n"
        for name in TABLES
    )
    rendered = render(page)
    assert "stale" not in rendered
    for name in TABLES:
        assert f"before {name}\n<!-- config-table:{name}:start -->\n\n| " in rendered
    assert "| `lambda_timeout` | `int (1\u2013900)` | `30` | Lambda timeout" in rendered
    assert "| `bucket` | `str (≥ 3 characters)` | required |" in rendered
    assert '| `lambda_architecture` | `"x86_64" \\| "arm64"` | `"x86_64"` |' in rendered


@pytest.mark.parametrize(
    ("page", "complaint"),
    [
        ("no markers at all", "missing"),
        ("<!-- config-table:nonsense:start -->\n<!-- config-table:nonsense:end -->", "unknown"),
    ],
)
def test_missing_or_unknown_tables_are_errors(page: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        render(page)
