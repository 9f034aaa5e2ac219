"""Test-support helpers shared by every test package: AWS event samples, the spec, moto tables
from the contract, the Lambda clock.

Import them absolutely (``from tests.support.events import load_event``); ready-made pytest
fixtures live in :mod:`tests.support.fixtures`. The AWS doubles themselves (moto, Bedrock, the
OIDC issuer, ``@connections``, DynamoDB faults and metering) live in :mod:`fakes`.
"""
