"""``make docs``: the configuration tables of ``docs/configuration.md``, generated from the
config model.

Each table sits between ``<!-- config-table:<name>:start -->`` and
``<!-- config-table:<name>:end -->``; everything outside the markers is left as written.
The model (``compute/config.py``) is the one source: its fields' types, constraints,
defaults, descriptions and origin (spec or extension), so the tables cannot drift from the
code. ``tests/compute/test_docs.py`` fails when the page differs from what this writes.
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from compute.config import Backend, ComputeConfig, RemoteState, RemoteStateS3, field_origin

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
MARKER = re.compile(
    r"(?P<start><!-- config-table:(?P<name>[\w-]+):start -->\n)"
    r".*?"
    r"(?P<end><!-- config-table:(?P=name):end -->)",
    re.DOTALL,
)
Fields = list[tuple[str, FieldInfo]]


@dataclass(frozen=True)
class Table:
    """One generated table: what its first column names, and the fields it lists."""

    column: str
    fields: Callable[[], Fields]


def _of_origin(origin: str) -> Callable[[], Fields]:
    return lambda: [
        (name, field)
        for name, field in ComputeConfig.model_fields.items()
        if field_origin(field) == origin
    ]


def _all_of(model: type[BaseModel]) -> Callable[[], Fields]:
    return lambda: list(model.model_fields.items())


# Table name (in the markers) -> the table, its rows in the model's order.
TABLES = {
    "spec": Table("variable", _of_origin("spec")),
    "extension": Table("variable", _of_origin("extension")),
    "backend": Table("key", _all_of(Backend)),
    "remote-state": Table("key", _all_of(RemoteState)),
    "remote-state-layer": Table("key", _all_of(RemoteStateS3)),
}
RANGE = "\u2013"  # an en dash, as in "int (1" + RANGE + "900)"


def render_type(annotation: Any, metadata: list[Any]) -> str:
    """A field's type as a config file's author reads it: the kind, its bounds, a literal's
    choices. Optional is left out (the default says "unset"), and so are patterns (the
    description says what a value looks like; the error quotes the pattern)."""
    annotation, metadata = _unwrap(annotation, metadata)
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(value) for value in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        return _constrained(f"list[{render_type(item, [])}]", metadata)
    if origin is dict:
        key, value = get_args(annotation)
        return f"dict[{render_type(key, [])}, {render_type(value, [])}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return _constrained(annotation.__name__, metadata)


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    """The type inside ``Annotated`` (with its constraints added) and ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            for info in extra:
                metadata = [*metadata, *(info.metadata if isinstance(info, FieldInfo) else [info])]
        elif origin in (Union, types.UnionType) and type(None) in get_args(annotation):
            (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        else:
            return annotation, metadata


def _constrained(kind: str, metadata: list[Any]) -> str:
    """``kind`` with its bounds: one range when closed, else each rule."""
    low = next((item.ge for item in metadata if isinstance(item, annotated_types.Ge)), None)
    high = next((item.le for item in metadata if isinstance(item, annotated_types.Le)), None)
    if low is not None and high is not None:
        return f"{kind} ({_number(low)}{RANGE}{_number(high)})"
    rules = [rule for item in metadata if (rule := _rule(kind, item))]
    return f"{kind} ({', '.join(rules)})" if rules else kind


def _rule(kind: str, item: Any) -> str | None:
    if isinstance(item, annotated_types.Ge):
        return f"≥ {_number(item.ge)}"
    if isinstance(item, annotated_types.Gt):
        return f"> {_number(item.gt)}"
    if isinstance(item, annotated_types.Le):
        return f"≤ {_number(item.le)}"
    if isinstance(item, annotated_types.MinLen):
        return f"≥ {item.min_length} {_unit(kind, item.min_length)}"
    if isinstance(item, annotated_types.MaxLen):
        return f"≤ {item.max_length} {_unit(kind, item.max_length)}"
    return None  # a pattern: the description says what a value looks like


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _unit(kind: str, count: int) -> str:
    unit = "character" if kind == "str" else "item"
    return unit if count == 1 else f"{unit}s"


def render_default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "unset"
    return f"`{_toml(field.default)}`"


def _toml(value: Any) -> str:
    """A value as written in a config file (TOML): strings quoted, tables inline."""
    if isinstance(value, BaseModel):
        return _toml(value.model_dump(exclude_none=True))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{key} = {_toml(item)}" for key, item in value.items())
        return f"{{ {pairs} }}" if pairs else "{}"
    return str(value)


def table(spec: Table) -> str:
    rows = [f"| {spec.column} | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in spec.fields():
        cells = (
            f"`{name}`",
            f"`{render_type(field.annotation, field.metadata)}`",
            render_default(field),
            field.description or "",
        )
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def render(page: str) -> str:
    """``page`` with every marked table regenerated; each known table must appear once."""
    found: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ValueError(
                f"the page marks an unknown config table {name!r}; known: {list(TABLES)}"
            )
        found.append(name)
        # Blank lines around the table, so that no renderer reads a marker as one of its rows.
        return f"{match['start']}\n{table(TABLES[name])}\n{match['end']}"

    rendered = MARKER.sub(replace, page)
    missing = [name for name in TABLES if name not in found]
    twice = sorted({name for name in found if found.count(name) > 1})
    if missing or twice:
        raise ValueError(f"config tables: missing {missing}, marked twice {twice}")
    return rendered


def main() -> int:
    current = PAGE.read_text()
    rendered = render(current)
    if rendered == current:
        print(f"{PAGE.name}: configuration tables up to date")
    else:
        PAGE.write_text(rendered)
        print(f"{PAGE.name}: configuration tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
