"""One default TLS context per test process for httpx.

Every httpx client builds an SSL context and loads certifi's CA bundle into it, whatever the
scheme of the URLs it will call: 22 ms of CPU each, and about 450 clients in a run
(``httpx.post`` makes one per call), though every test speaks plain HTTP to loopback.
:func:`share` gives the clients that verify with the default bundle one context per process,
per bundle the environment names (``SSL_CERT_FILE``, ``SSL_CERT_DIR``): what one long-lived
client of the product already does. ``verify=False``, a context of the caller's own and a
client certificate get a context of their own, as before. The product's code is untouched.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx._transports.default as transports

_create_ssl_context = transports.create_ssl_context
_SHARED: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}


def _shared_ssl_context(
    verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True
) -> ssl.SSLContext:
    if verify is not True or cert is not None:
        return _create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
    environ = os.environ if trust_env else {}
    key = (trust_env, environ.get("SSL_CERT_FILE"), environ.get("SSL_CERT_DIR"))
    if key not in _SHARED:
        _SHARED[key] = _create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
    return _SHARED[key]


def share() -> None:
    """Make every httpx transport created from now on in this process share default contexts."""
    transports.create_ssl_context = _shared_ssl_context
