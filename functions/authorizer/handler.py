"""Lambda entry point (``contract.AUTHORIZER.handler``) for REST and WebSocket authorization.

Valid token: an Allow policy for the whole API stage (or, with per-route scopes, for exactly
the routes the token's scopes open), with ``principalId`` = the profile's user id and the
identity in the context. Anything else: ``raise Exception("Unauthorized")``, the one error API
Gateway turns into a 401 (any other exception would be a 500), after logging why.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from functions.authorizer.errors import Denied, InvalidToken
from functions.authorizer.events import AuthorizerRequest
from functions.authorizer.logs import log
from functions.authorizer.policy import MethodArn, build_policy, route_patterns
from functions.authorizer.settings import Settings
from functions.authorizer.verifier import Identity, TokenVerifier
from functions.contract import WEBSOCKET_CONNECT_ACCESS, Env
from functions.core.settings import ConfigurationError

SETTINGS_VARIABLES = (Env.JWT_ISSUER, Env.JWT_AUDIENCE, Env.JWKS_URL, Env.JWT_VALIDATION)


def _current_verifier() -> TokenVerifier:
    """The verifier for the current environment's settings."""
    return _verifier_from(*(os.environ.get(name, "") for name in SETTINGS_VARIABLES))


@functools.lru_cache(maxsize=1)
def _verifier_from(*values: str) -> TokenVerifier:
    """One verifier, and so one warm JWKS cache, per container.

    Keyed by the variables' raw values: Lambda never changes them, so the settings are parsed
    and checked (URLs, loopback addresses) once, while tests that point the environment at a
    new issuer get a fresh verifier without a reset hook. A bad value raises, and exceptions are
    not cached, so it is reported on every invocation. Not ``get_settings``, the other functions'
    per-container cache: that one is keyed by class and needs a reset when the variables change.
    """
    environ = dict(zip(SETTINGS_VARIABLES, values, strict=True))
    return TokenVerifier(Settings.from_env(environ))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Authorize one API Gateway request (see the module docstring for the contract)."""
    request_id = getattr(context, "aws_request_id", None)
    try:
        request = AuthorizerRequest.from_event(event)
        verifier = _current_verifier()
        identity = verifier.verify(request.token)
        resource = _resource(request.method_arn, identity, verifier.settings)
    except Exception as error:  # every failure, expected or not, must be a plain 401
        _log_denial(error, request_id)
        raise Exception("Unauthorized") from None
    log(logging.INFO, "allowed", request_id=request_id, principal_id=identity.user_id)
    return build_policy(identity.user_id, resource, identity.context())


def _resource(method_arn: MethodArn, identity: Identity, settings: Settings) -> str | list[str]:
    """What the Allow covers: the whole stage, unless per-route scopes are configured and the
    token lacks some of them.

    WebSocket: only ``$connect`` is authorized, so a token without the connect scopes is denied.
    REST: the policy lists exactly the routes whose scopes the token carries, whichever route
    was asked for, so API Gateway's cached policy (keyed by the token alone) gives the same
    answer for every route: 403 for a route the token may not call, Allow for the others. A token
    that may call no route at all is denied.
    """
    route_scopes = settings.route_scopes
    stage = method_arn.stage_wildcard()
    if not route_scopes:
        return stage
    if method_arn.is_websocket:
        needed = route_scopes.get(WEBSOCKET_CONNECT_ACCESS, ())
        if not identity.has_scopes(needed):
            raise InvalidToken(f"token lacks the connect scopes {list(needed)}")
        return stage
    lacking = [kind for kind, scopes in route_scopes.items() if not identity.has_scopes(scopes)]
    if not lacking:
        return stage
    allowed = [kind for kind in route_patterns() if kind not in lacking]
    if not allowed:
        raise InvalidToken(f"token lacks the scopes of every route ({lacking})")
    if method_arn.access_kind() not in allowed:
        log(logging.INFO, "the route needs more scopes: not in the policy", route=method_arn.route)
    return method_arn.routes_of(allowed)


def _log_denial(error: Exception, request_id: str | None) -> None:
    """Log why the request was denied, never the token.

    ``Denied`` and ``ConfigurationError`` messages are written not to contain it; other errors
    (bugs) are logged by type only.
    """
    level = _denial_level(error)
    if level is not None:
        log(level, "unauthorized", request_id=request_id, reason=str(error))
    else:
        log(
            logging.ERROR,
            "unauthorized: unexpected error",
            request_id=request_id,
            error=type(error).__name__,
        )


def _denial_level(error: Exception) -> int | None:
    """The level an expected denial is logged at; None for an unexpected error.

    Settings that cannot be used safely deny every request, as a warning: an operator must fix
    the stack, as when the identity provider is unreachable.
    """
    if isinstance(error, Denied):
        return error.log_level
    if isinstance(error, ConfigurationError):
        return logging.WARNING
    return None
