"""Run-time configuration: the base of every function's settings, the helpers that read one
environment variable each, and the one configuration error.

Each function has one settings class, ``functions.<function>.settings.Settings``, which reads
the variables ``contract.FUNCTION_ENV`` lists for that function and no other (tests/contract
proves it). The variable *names* come from :mod:`functions.contract`, so the stack and the
code cannot drift apart. Standard library only: the authorizer builds on this module, and its
cold start must not pay for pydantic or boto3.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Self, TypeVar


class ConfigurationError(RuntimeError):
    """A function was deployed without a variable it needs, or with one it cannot use: a
    deployment bug, not a client's. The message names the variable."""


class FunctionSettings(ABC):
    """The base of each function's settings class, a frozen dataclass read once per container.

    Not a dataclass itself: with no fields of its own it would gain nothing, and generating one
    costs 0.4 ms of every cold start, the authorizer's too.
    """

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the process environment, or ``environ``.

        Raises :class:`ConfigurationError` naming the first missing or invalid variable.
        """
        return cls.read(os.environ if environ is None else environ)

    @classmethod
    @abstractmethod
    def read(cls, env: Mapping[str, str]) -> Self:
        """The settings in ``env``, read through the helpers below."""


def required(env: Mapping[str, str], name: str) -> str:
    """A variable that must be set; surrounding blanks are dropped, and blank is unset."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def optional(env: Mapping[str, str], name: str) -> str | None:
    """A variable that may be unset; surrounding blanks are dropped, and blank is unset."""
    return env.get(name, "").strip() or None


def listed(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated variable: its non-blank items, stripped, each once, in order."""
    raw = env.get(name, "")
    return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def integer(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """An optional integer variable of at least ``minimum``; unset or blank means ``default``."""
    raw = env.get(name, "")
    if not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigurationError(
            f"environment variable {name} must be an integer of at least {minimum}, got {raw!r}"
        )
    return value


def boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    """An optional ``true``/``false`` variable (any case); unset or blank means ``default``."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ConfigurationError(f"environment variable {name} must be true or false, got {raw!r}")
    return raw == "true"


SettingsT = TypeVar("SettingsT", bound=FunctionSettings)


@functools.cache
def get_settings(kind: type[SettingsT]) -> SettingsT:
    """This container's settings of ``kind``, read on first use (``get_settings.cache_clear()``
    resets them all)."""
    return kind.from_env()
