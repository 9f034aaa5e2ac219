"""AWS's public Lambda Web Adapter layers on the emulator: a function may name them, reads them
back exactly, and a layer nobody published is still refused."""

from __future__ import annotations

import pytest
from botocore.client import BaseClient

from compute.config import web_adapter_layer
from tests.support_tests.test_lambda_signing import create_function, error_of

# The code-signing tests' emulator process and its per-test fixtures (conftest.py).
pytestmark = pytest.mark.xdist_group("emulator")


@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_a_function_names_the_public_adapter_layer(
    lam: BaseClient, role: str, architecture: str
) -> None:
    layer = web_adapter_layer("us-east-1", architecture)
    create_function(lam, role, "adapted", Layers=[layer], Architectures=[architecture])
    layers = lam.get_function(FunctionName="adapted")["Configuration"]["Layers"]
    assert [entry["Arn"] for entry in layers] == [layer]  # what Terraform wrote: no drift


def test_other_unknown_layers_are_still_refused(lam: BaseClient, role: str) -> None:
    """Only AWS's adapter layers are known without being published. Mutations caught: an
    extension that accepts every layer ARN."""
    stranger = "arn:aws:lambda:us-east-1:753240598075:layer:SomethingElse:26"
    status, _, code = error_of(
        create_function, lam=lam, role=role, name="stranger", Layers=[stranger]
    )
    assert (status, code) == (404, "ResourceNotFoundException")
