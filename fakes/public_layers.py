"""AWS's public Lambda Web Adapter layers for moto, which knows only the layers published in
the caller's own account.

The openai-api function runs behind the adapter, whose layers AWS publishes from an account of
its own (``compute.config.WEB_ADAPTER_ACCOUNT``), so ``CreateFunction`` against plain moto fails
with ``UnknownLayerVersionException``. :func:`install` makes moto's layer lookup answer for any
version of those layers with a stand-in carrying exactly the requested ARN, as Lambda's own
``GetFunction`` reads it back (so Terraform's second plan is empty). Every other unknown layer
is still refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from moto.awslambda.models import LayerStorage, LayerVersion
from moto.awslambda.utils import split_layer_arn

from compute.config import WEB_ADAPTER_ACCOUNT, WEB_ADAPTER_LAYERS

_installed = False


@dataclass(frozen=True)
class PublicLayerVersion:
    """What moto's ``CreateFunction`` reads of a layer version: its ARN and its size."""

    arn: str
    code_size: int = 0


def is_public_adapter_layer(arn: str) -> bool:
    layer = split_layer_arn(arn)
    return layer.account == WEB_ADAPTER_ACCOUNT and layer.layer_name in WEB_ADAPTER_LAYERS.values()


def install() -> None:
    """Patch moto's layer lookup, process-wide; idempotent."""
    global _installed  # noqa: PLW0603 - moto's backends are process-wide too
    if _installed:
        return
    lookup = LayerStorage.get_layer_version_by_arn

    def get_layer_version_by_arn(
        self: LayerStorage, arn: str
    ) -> LayerVersion | PublicLayerVersion | None:
        found = lookup(self, arn)
        if found is None and is_public_adapter_layer(arn):
            return PublicLayerVersion(arn)
        return found

    LayerStorage.get_layer_version_by_arn = get_layer_version_by_arn  # type: ignore[method-assign]
    _installed = True
