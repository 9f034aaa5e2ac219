"""Lambda entry point (``contract.AUTHORIZER.handler``) for REST and WebSocket authorization.

Valid token: an Allow policy for the whole API stage, with ``principalId`` = ``sub`` and the
identity in the context. Anything else: ``raise Exception("Unauthorized")``, the one error API
Gateway turns into a 401 (any other exception would be a 500), after logging why.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from functions.authorizer.errors import Denied
from functions.authorizer.events import AuthorizerRequest
from functions.authorizer.logs import log
from functions.authorizer.policy import build_policy
from functions.authorizer.settings import Settings
from functions.authorizer.verifier import TokenVerifier
from functions.shared.contract import Env

SETTINGS_VARIABLES = (Env.JWT_ISSUER, Env.JWT_AUDIENCE, Env.JWKS_URL)


@functools.lru_cache(maxsize=1)
def verifier_for(settings: Settings) -> TokenVerifier:
    """One verifier, and so one warm JWKS cache, per container.

    Keyed by the settings: Lambda never changes them, while tests that point the environment at
    a new issuer get a fresh verifier without a reset hook (``verifier_for.cache_clear()`` also
    works).
    """
    return TokenVerifier(settings)


def _current_verifier() -> TokenVerifier:
    """The verifier for the current environment, validated once per distinct setting."""
    return _verifier_from(*(os.environ.get(name, "") for name in SETTINGS_VARIABLES))


@functools.lru_cache(maxsize=1)
def _verifier_from(issuer: str, audience: str, jwks_url: str) -> TokenVerifier:
    """Parsing and checking the settings (URLs, loopback addresses) is not free, and Lambda
    never changes them: only a new raw value builds a new ``Settings``. A bad value raises,
    and exceptions are not cached, so it is reported on every invocation."""
    environ = dict(zip(SETTINGS_VARIABLES, (issuer, audience, jwks_url), strict=True))
    return verifier_for(Settings.from_env(environ))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Authorize one API Gateway request (see the module docstring for the contract)."""
    request_id = getattr(context, "aws_request_id", None)
    try:
        request = AuthorizerRequest.from_event(event)
        identity = _current_verifier().verify(request.token)
    except Exception as error:  # every failure, expected or not, must be a plain 401
        _log_denial(error, request_id)
        raise Exception("Unauthorized") from None
    log(logging.INFO, "allowed", request_id=request_id, principal_id=identity.subject)
    return build_policy(identity.subject, request.method_arn.stage_wildcard(), identity.context())


def _log_denial(error: Exception, request_id: str | None) -> None:
    """Log why the request was denied, never the token.

    ``Denied`` messages are written not to contain it; other errors (bugs) are logged by type only.
    """
    if isinstance(error, Denied):
        log(error.log_level, "unauthorized", request_id=request_id, reason=str(error))
    else:
        log(
            logging.ERROR,
            "unauthorized: unexpected error",
            request_id=request_id,
            error=type(error).__name__,
        )
