"""The IAM policy API Gateway expects back from a Lambda authorizer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.authorizer.errors import MalformedEvent

_METHOD_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):execute-api:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<api_id>[A-Za-z0-9]+)/(?P<stage>[A-Za-z0-9_$-]+)/(?P<route>.+)"
)


@dataclass(frozen=True)
class MethodArn:
    """The ``methodArn`` of an authorizer event, split into the parts the policy is built from.

    REST: ``.../{api_id}/{stage}/{METHOD}/{path}``; WebSocket: ``.../{api_id}/{stage}/{route_key}``.
    """

    partition: str
    region: str
    account: str
    api_id: str
    stage: str
    route: str

    @classmethod
    def parse(cls, arn: str) -> MethodArn:
        """Split ``arn``, or raise ``MalformedEvent`` if it is not an execute-api method ARN."""
        match = _METHOD_ARN.fullmatch(arn)
        if match is None:
            raise MalformedEvent("methodArn is not an execute-api method ARN")
        return cls(**match.groupdict())

    @property
    def is_websocket(self) -> bool:
        """WebSocket route keys (``$connect``) have no ``METHOD/path`` slash."""
        return "/" not in self.route

    def stage_wildcard(self) -> str:
        """Every route of this API stage, so API Gateway's cached decision serves them all.

        REST resources are ``{stage}/{METHOD}/{path}``, hence ``/*/*``. A WebSocket API only
        authorizes ``$connect`` (``{stage}/$connect``), hence ``/*``.
        """
        base = (
            f"arn:{self.partition}:execute-api:{self.region}:{self.account}:"
            f"{self.api_id}/{self.stage}/*"
        )
        return base if self.is_websocket else base + "/*"


def build_policy(principal_id: str, resource: str, context: Mapping[str, str]) -> dict[str, Any]:
    """Build an Allow of ``execute-api:Invoke`` on ``resource``.

    There is no Deny counterpart: a denial is ``raise Exception("Unauthorized")``, which API
    Gateway answers with 401.
    """
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource},
            ],
        },
        "context": dict(context),
    }
