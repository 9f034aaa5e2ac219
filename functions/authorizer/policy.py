"""The IAM policy API Gateway expects back from a Lambda authorizer."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.authorizer.errors import MalformedEvent
from functions.contract import AUTHORIZED_ROUTES, ROUTE_ACCESS

_PLACEHOLDER = re.compile(r"\{[^/{}]+\}")


@functools.cache
def route_patterns() -> dict[str, tuple[tuple[str, re.Pattern[str]], ...]]:
    """Per kind of access: each authorized REST route (the OpenAI-compatible ones too) as a
    policy resource suffix (``GET/api/v1/sessions/*``) and the regex that matches its concrete
    method ARN routes.

    Built on first use: only per-route scopes need them, and compiling regexes at import time
    would slow every cold start."""
    kinds: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for route in AUTHORIZED_ROUTES:
        kind = ROUTE_ACCESS[(route.method, route.path)]
        path = route.full_path.removeprefix("/")
        resource = f"{route.method}/{_PLACEHOLDER.sub('*', path)}"
        regex = "[^/]+".join(map(re.escape, _PLACEHOLDER.split(f"{route.method}/{path}")))
        kinds.setdefault(kind, []).append((resource, re.compile(regex)))
    return {kind: tuple(routes) for kind, routes in kinds.items()}


_METHOD_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):execute-api:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<api_id>[A-Za-z0-9]+)/(?P<stage>[A-Za-z0-9_$-]+)/(?P<route>.+)"
)


@dataclass(slots=True)  # built per request; a frozen dataclass would cost ~1 us more
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

    def access_kind(self) -> str | None:
        """The ``contract.ROUTE_ACCESS`` kind of this REST route, None if it is no known route."""
        for kind, routes in route_patterns().items():
            if any(regex.fullmatch(self.route) for _, regex in routes):
                return kind
        return None

    def routes_of(self, kinds: list[str]) -> list[str]:
        """Policy resources for every REST route of these kinds on this API stage.

        A cached decision must hold for any route: API Gateway caches a TOKEN authorizer's
        policy by token alone, then checks each later request's method ARN against it. Listing
        exactly the routes the token may call (rather than the stage) keeps a cached allow for a
        read route from opening a chat route. ``*`` stands for one path parameter; read
        resources all start ``GET/`` and chat ones never do, so no ``*`` crosses kinds (the
        tests check every route against every policy).
        """
        base = (
            f"arn:{self.partition}:execute-api:{self.region}:{self.account}:"
            f"{self.api_id}/{self.stage}/"
        )
        patterns = route_patterns()
        return [base + resource for kind in kinds for resource, _ in patterns[kind]]


def build_policy(
    principal_id: str, resource: str | list[str], context: Mapping[str, str]
) -> dict[str, Any]:
    """Build an Allow of ``execute-api:Invoke`` on ``resource`` (one ARN pattern or several).

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
