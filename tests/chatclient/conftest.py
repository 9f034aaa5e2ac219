"""The dev server of ``tests/dev`` (one per test session, on free ports, from a fresh synthesis)
for the chat client's terminal tests; its fixtures are reused as they are."""

from tests.dev.conftest import Api, alice, dev, logs, model, stacks_dir

__all__ = ["Api", "alice", "dev", "logs", "model", "stacks_dir"]
