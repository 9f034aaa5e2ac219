"""Record what the functions' code does while it runs: the AWS calls it makes and the
environment variables it reads.

* Calls: a boto3 session whose event system has two hooks. ``before-parameter-build`` keeps a
  copy of the API parameters in the request context; ``before-call`` (same context, now with
  the URL) records the call. Clients copy their session's handlers when they are created, so
  every client the functions create from this session records, whatever the service. A
  ``TransactWriteItems`` is recorded as its items (``PutItem``, ``UpdateItem``,
  ``DeleteItem``, ``ConditionCheckItem``, each with its own parameters), because IAM
  authorizes a transaction item by item under those actions.
* Environment reads: ``os.environ`` lookups (``[]``, ``get``, ``in``, ``os.getenv`` all end in
  ``__getitem__``) whose first caller outside ``os`` and ``collections.abc`` is a module under
  ``functions/``. Reads by boto3 or Powertools are theirs, not the code's.
"""

from __future__ import annotations

import _collections_abc
import copy
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.compute.synth import ROOT
from tests.security.iam import Call

FUNCTIONS_DIR = ROOT / "functions"
_PARAMS = "recorded-api-params"
_TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# Frames of the lookup itself; both modules are frozen in CPython 3.11+, hence the code objects.
_PLUMBING = {
    os.getenv.__code__.co_filename,
    _collections_abc.Mapping.get.__code__.co_filename,
    os.__file__,
    _collections_abc.__file__,
}


def recording_session(calls: list[Call]) -> boto3.session.Session:
    """A boto3 session (credentials from the environment) whose clients append to ``calls``."""
    session = boto3.session.Session()

    def keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS] = copy.deepcopy(params)

    def record(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        api_params = context.get(_PARAMS, {})
        parts = (
            [(_TRANSACTION_ITEMS[kind], body) for item in api_params["TransactItems"]
             for kind, body in item.items()]
            if model.name == "TransactWriteItems"
            else [(model.name, api_params)]
        )  # fmt: skip
        for operation, operation_params in parts:
            calls.append(
                Call(
                    service=model.service_model.service_name,
                    signing_name=model.service_model.signing_name,
                    operation=operation,
                    params=operation_params,
                    url=params.get("url", ""),
                )
            )

    session.events.register("before-parameter-build", keep_params)
    session.events.register("before-call", record)
    return session


def _read_by_code() -> bool:
    """Whether the environment lookup in progress was made by a module under ``functions/``."""
    frame = sys._getframe(2)  # skip this function and the patched __getitem__
    while frame is not None and frame.f_code.co_filename in _PLUMBING:
        frame = frame.f_back
    return frame is not None and Path(frame.f_code.co_filename).is_relative_to(FUNCTIONS_DIR)


@contextmanager
def environment_reads() -> Iterator[set[str]]:
    """Collect the names of the variables ``functions/`` code reads while the block runs."""
    reads: set[str] = set()
    environ_type = type(os.environ)
    original = environ_type.__getitem__

    def getitem(self: os._Environ[str], key: str) -> str:
        if _read_by_code():
            reads.add(key)
        return original(self, key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(environ_type, "__getitem__", getitem)
        yield reads
