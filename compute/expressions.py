"""Settings that are literals in an environment's stack and Terraform expressions in the module.

The constructs are written once for both. Where they turn a setting into text or do
arithmetic on it, they go through these helpers: a literal stays a literal, so an
environment's JSON keeps plain values, and a variable of the module becomes an expression
that Terraform evaluates at plan time. Python arithmetic or formatting on a CDKTF token would
silently produce garbage (a number token is an encoded float), which is why none is done
outside these functions.
"""

from __future__ import annotations

import math
from typing import Any

from cdktf import Fn, Op, Token


def is_expression(value: Any) -> bool:
    """Whether ``value`` is (or holds) a Terraform expression rather than a literal."""
    return Token.is_unresolved(value)


def text(value: Any) -> str:
    """A setting as it reads inside a string: ``30``, ``true``, or an interpolation."""
    if is_expression(value):
        return Token.as_string(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def joined(values: Any, separator: str = ",") -> str:
    """A list setting as one string (a Lambda environment variable)."""
    if is_expression(values):
        return Fn.join(separator, values)
    return separator.join(values)


def labelled(prefix: str, value: Any) -> str:
    """``prefix`` followed by a setting, where it may stand inside a function call (a
    conditional, ``jsonencode``), which a ``${…}`` interpolation may not."""
    if is_expression(value):
        return Fn.format(f"{prefix}%v", [value])
    return f"{prefix}{value}"


def percent(share: Any) -> str:
    """``0.8`` as ``80%``."""
    if is_expression(share):
        return f"{text(Op.mul(share, 100))}%"
    return f"{share:.0%}"


def product(*factors: Any) -> Any:
    """The product of settings and constants, rounded to a whole number."""
    if not any(is_expression(factor) for factor in factors):
        return round(math.prod(factors))
    result = factors[0]
    for factor in factors[1:]:
        result = Op.mul(result, factor)
    # Terraform has no round(); every product here is positive.
    return Token.as_number(Fn.floor(Op.add(result, 0.5)))


def ceiling(value: Any, share: float) -> Any:
    """``value * share`` rounded up: an alarm threshold at a share of a limit."""
    if is_expression(value):
        return Token.as_number(Fn.ceil(Op.mul(value, share)))
    return math.ceil(value * share)


def either(value: Any, fallback: Any) -> Any:
    """``value`` unless it is unset (None, or null in Terraform), else ``fallback``."""
    if is_expression(value) or is_expression(fallback):
        return Fn.coalesce([value, fallback])
    return fallback if value is None else value


def optional_text(value: Any) -> str:
    """An optional setting as text, empty when unset (None, or null in Terraform)."""
    if is_expression(value):
        return Token.as_string(Fn.conditional(Op.eq(value, Token.null_value()), "", value))
    return value or ""
