"""Why a request is denied. The handler turns each of these, and the settings'
``ConfigurationError`` (``functions.core.settings``), into API Gateway's 401."""

from __future__ import annotations

import logging


class Denied(Exception):
    """A request that must get a 401. The message is the logged reason; it never echoes the token.

    ``log_level`` separates a client's bad token (routine) from a problem on our side that an
    operator must fix (configuration, identity provider unreachable).
    """

    log_level = logging.INFO


class MalformedEvent(Denied):
    """The event is not an authorizer event API Gateway would send."""


class InvalidToken(Denied):
    """The token is missing, unreadable, forged, expired or meant for someone else."""


class KeysUnavailable(Denied):
    """The issuer's signing keys could not be loaded, so nothing can be verified."""

    log_level = logging.WARNING
