"""Test-support fakes shared by every test package: AWS event samples, moto, Bedrock, WebSockets.

Import them absolutely (``from tests.support.bedrock_fake import BedrockFake``); ready-made pytest
fixtures built on them live in :mod:`tests.support.fixtures`.
"""
