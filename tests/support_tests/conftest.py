"""Fixtures of the fakes under test (see tests.support.fixtures)."""

from tests.support.fixtures import bedrock, moto_env, moto_server, ws_management

__all__ = ["bedrock", "moto_env", "moto_server", "ws_management"]
