"""Test-support helpers shared by every test package: AWS event samples, moto tables, the
WebSocket management fake.

Import them absolutely (``from tests.support.events import load_event``); ready-made pytest
fixtures built on them live in :mod:`tests.support.fixtures`. The fakes ``make dev`` uses too
(moto, Bedrock, the OIDC issuer, the Lambda runtime stand-in) live in :mod:`devserver`.
"""
