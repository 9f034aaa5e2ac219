"""The suite's shared default TLS context for httpx (tests/support/tls.py)."""

from __future__ import annotations

import ssl

import certifi
import httpx
import pytest


def _context(client: httpx.Client) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


def test_default_clients_share_one_context_that_still_verifies() -> None:
    first, second = httpx.Client(), httpx.Client()
    assert _context(first) is _context(second)
    assert _context(first).verify_mode == ssl.CERT_REQUIRED
    assert _context(first).check_hostname
    assert _context(first).cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded


def test_a_client_that_does_not_verify_gets_a_context_of_its_own() -> None:
    unverified = httpx.Client(verify=False)  # noqa: S501 - the case under test
    assert _context(unverified) is not _context(httpx.Client())
    assert _context(unverified).verify_mode == ssl.CERT_NONE


def test_another_bundle_named_by_the_environment_gets_its_own_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = _context(httpx.Client())
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert _context(httpx.Client()) is not default
    assert _context(httpx.Client()) is _context(httpx.Client())
