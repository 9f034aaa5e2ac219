"""Imported at start-up by a synth the tests run with this folder on ``PYTHONPATH`` (``site``
imports any ``sitecustomize`` it finds): at exit, the process writes the name of every module
it imported to the file ``IMPORTS_PROBE_OUT`` names.

It tells which provider submodules a synth loaded when the synth runs under the CDKTF CLI,
whose app command leaves no room for ``python -X importtime``, and which shows anything the app
writes to stderr as an ``[ERROR]`` line."""

import atexit
import json
import os
import sys


def _write_imports() -> None:
    with open(os.environ["IMPORTS_PROBE_OUT"], "w", encoding="utf-8") as out:
        json.dump(sorted(sys.modules), out)


if os.environ.get("IMPORTS_PROBE_OUT"):
    atexit.register(_write_imports)
