"""Hypothesis: no input ever gets an Allow it should not, and every denial is the plain 401.

Bounded to 200 examples per property with no deadline, so the suite stays fast on 2 cores.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from fakes.oidc import AUDIENCE, LocalIssuer, SigningKey
from functions.authorizer.handler import handler
from tests.functions.authorizer.helpers import (
    bearer_event,
    connect_event,
    hs256_forgery,
    set_rules,
    token_event,
    unsigned,
    with_payload,
)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    # The issuer and log capture are safe to share between examples: a new issuer per example
    # would only make every example pay a cold cache.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def at(offsets: list[int | None]) -> st.SearchStrategy[int | None]:
    """NumericDates this many seconds from the moment of the draw (None: claim removed)."""
    return st.sampled_from(offsets).map(
        lambda offset: None if offset is None else int(time.time()) + offset
    )


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def outcome(event: Any, caplog: pytest.LogCaptureFixture) -> str:
    """'allow', or 'deny' after checking the denial is exactly the 401 and was not a crash."""
    caplog.clear()
    try:
        response = handler(event, None)
    except Exception as error:
        assert type(error) is Exception
        assert error.args == ("Unauthorized",)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        return "deny"
    assert response["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    return "allow"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="functions.authorizer")
    return caplog


# --- arbitrary strings ---------------------------------------------------------------------------

jwt_shaped = st.lists(st.text(alphabet=BASE64URL, max_size=60), min_size=1, max_size=5).map(
    ".".join
)


@FUZZ
@given(value=st.text(max_size=300) | jwt_shaped | jwt_shaped.map("Bearer ".__add__))
def test_arbitrary_authorization_values_are_denied(
    env: LocalIssuer, logs: pytest.LogCaptureFixture, value: str
) -> None:
    assert outcome(token_event(value), logs) == "deny"
    assert outcome(connect_event(header=value), logs) == "deny"
    assert outcome(connect_event(query=value), logs) == "deny"


def _segments(token: str) -> list[bytes | None]:
    decoded: list[bytes | None] = []
    for segment in token.split("."):
        try:
            decoded.append(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (binascii.Error, ValueError):
            decoded.append(None)
    return decoded


@FUZZ
@given(data=st.data())
def test_any_edit_of_a_valid_token_is_denied(
    env: LocalIssuer, logs: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    """Replace, insert or delete characters anywhere in a valid token.

    Edits that decode to the very same bytes (base64 padding bits) are not forgeries and are
    skipped, and so is whitespace added around an unchanged token: the header grammar allows
    it (RFC 6750's ``Bearer 1*SP token``, and HTTP trims a value's outer whitespace).
    """
    token = env.token(data.draw(st.sampled_from(env.keys)))
    start = data.draw(st.integers(0, len(token) - 1))
    end = data.draw(st.integers(start, min(len(token), start + 3)))
    replacement = data.draw(st.text(alphabet=BASE64URL + ".=+/ ", max_size=3))
    edited = token[:start] + replacement + token[end:]
    assume(edited.split(".")[:3] != token.split(".")[:3])
    assume(_segments(edited) != _segments(token))
    assume(edited.strip(" ") != token)

    assert outcome(bearer_event(edited), logs) == "deny"


# --- forged claims ------------------------------------------------------------------------------

# Values each claim may take instead of the valid one: the edges of each rule plus anything.
claim_changes = {
    "iss": st.sampled_from(["https://evil.example.com", None]) | json_values,
    "sub": st.sampled_from(["", "  ", None]) | json_values,
    "aud": st.sampled_from([[AUDIENCE, "x"], "other", None]) | json_values,
    "client_id": st.sampled_from([AUDIENCE, "other"]) | json_values,
    "token_use": st.sampled_from(["access", "id", "refresh"]) | json_values,
    "exp": at([-30, -90, -600, None]) | json_values,
    "nbf": at([-600, 30, 90, 600]),
    "iat": at([30, 90, 600, None]),
    "email": json_values,
    "scope": json_values,
    "scp": json_values,
    "username": json_values,
}


@st.composite
def claim_sets(draw: st.DrawFn, issuer: LocalIssuer) -> dict[str, Any]:
    """The issuer's valid claims with zero to three of them changed or removed.

    Starting from a valid set keeps about a third of the examples fully valid, and the rest
    each break (or keep) a rule in a few places, instead of breaking everything at once.
    """
    claims = issuer.claims()
    changed = draw(st.lists(st.sampled_from(sorted(claim_changes)), max_size=3, unique=True))
    for name in changed:
        claims[name] = draw(claim_changes[name])
    return {name: value for name, value in claims.items() if value is not None}


Forge = Callable[[dict[str, Any]], str]


@pytest.fixture
def forgeries(
    env: LocalIssuer,
    rsa_key: SigningKey,
    attacker_rsa_key: SigningKey,
    attacker_ec_key: SigningKey,
) -> dict[str, Forge]:
    """Ways to make a token the issuer never signed, each naming a published ``kid``."""
    pem = rsa_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_json = json.dumps(rsa_key.public_jwk()).encode()
    return {
        "attacker_rsa": attacker_rsa_key.sign,
        "attacker_ec": attacker_ec_key.sign,
        "none": lambda claims: unsigned(claims, rsa_key.kid),
        "hs256_pem": lambda claims: hs256_forgery(claims, pem, rsa_key.kid),
        "hs256_jwk": lambda claims: hs256_forgery(claims, jwk_json, rsa_key.kid),
        "tampered": lambda claims: with_payload(env.token(sub="someone-else"), claims),
    }


FORGERIES = ("attacker_rsa", "attacker_ec", "none", "hs256_pem", "hs256_jwk", "tampered")


@FUZZ
@given(data=st.data(), forgery=st.sampled_from(FORGERIES))
def test_forged_tokens_never_get_an_allow(
    env: LocalIssuer,
    logs: pytest.LogCaptureFixture,
    forgeries: dict[str, Forge],
    data: st.DataObject,
    forgery: str,
) -> None:
    """Whatever the claims, even perfectly valid ones, a token the issuer did not sign is denied."""
    claims = data.draw(claim_sets(env))
    token = forgeries[forgery](claims)
    assume(
        forgery != "tampered" or _segments(token)[1] != _segments(env.token(sub="someone-else"))[1]
    )

    assert outcome(bearer_event(token), logs) == "deny"


def expected_outcome(claims: dict[str, Any], issuer: str) -> str:
    """An independent statement of the rules, to check the authorizer against.

    The audience: ``aud`` (a string or a list) must contain it; only a token without ``aud`` may
    name it in ``client_id``. A ``token_use`` other than ``access`` is never a bearer token.
    """
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    exp = claims.get("exp")
    sub = claims.get("sub")
    now = time.time()
    valid = (
        claims.get("iss") == issuer
        and (AUDIENCE in audiences if "aud" in claims else claims.get("client_id") == AUDIENCE)
        and claims.get("token_use", "access") == "access"
        and isinstance(sub, str)
        and bool(sub.strip())
        and type(exp) in (int, float)
        and math.isfinite(exp)
        and exp > now - 60
        and claims.get("nbf", now) <= now + 60
        and claims.get("iat", now) <= now + 60
    )
    return "allow" if valid else "deny"


@FUZZ
@given(data=st.data())
def test_issuer_signed_tokens_are_allowed_exactly_when_the_claims_are_valid(
    env: LocalIssuer, logs: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    claims = data.draw(claim_sets(env))
    token = data.draw(st.sampled_from(env.keys)).sign(claims)

    expected = expected_outcome(claims, env.url)
    event(expected)  # `pytest --hypothesis-show-statistics` shows both outcomes are exercised

    assert outcome(bearer_event(token), logs) == expected


# --- profiles, scopes, clients, tenants and typ --------------------------------------------------

CHAT_SCOPE = "assistant/chat"
CLIENTS = ("web", "cli")
TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
# An independent statement of each profile: where the user id, client, permissions and tenant
# are, and what the profile requires.
PROFILE_RULES: dict[str, dict[str, Any]] = {
    "generic": {"user": ("sub",), "client": ("client_id", "azp", "cid", "appid"),
                "permissions": ("scope", "scp")},
    "cognito": {"user": ("sub",), "client": ("client_id",), "permissions": ("scope",),
                "token_use": True, "client_required": True},
    "okta": {"user": ("uid", "sub"), "client": ("cid",), "permissions": ("scp",),
             "client_required": True},
    "entra": {"user": ("oid",), "client": ("azp", "appid"), "permissions": ("scp", "roles"),
              "client_required": True, "tenant": "tid"},
    "identity_center": {"user": ("sub",), "client": ("client_id", "azp", "cid", "appid"),
                        "permissions": ("scope", "scp"), "aud_required": True},
}  # fmt: skip
VALID_FOR = {
    "generic": {"client_id": "web", "scope": f"openid {CHAT_SCOPE}"},
    "cognito": {"client_id": "web", "scope": CHAT_SCOPE, "token_use": "access"},
    "okta": {"cid": "web", "scp": [CHAT_SCOPE], "uid": "00u1"},
    "entra": {"azp": "web", "scp": f"{CHAT_SCOPE} other", "oid": "oid-1", "tid": TENANT},
    "identity_center": {"client_id": "web", "scope": CHAT_SCOPE},
}
scope_values = (
    st.sampled_from([CHAT_SCOPE, f"a {CHAT_SCOPE}", [CHAT_SCOPE], ["x", CHAT_SCOPE], "chat", []])
    | json_values
)
client_values = st.sampled_from([*CLIENTS, "foreign", AUDIENCE]) | json_values
profile_changes = {
    "aud": st.sampled_from([[AUDIENCE, "x"], "other", None]) | json_values,
    "sub": st.sampled_from(["", None, "user-9"]) | json_values,
    "token_use": st.sampled_from(["access", "id", None]) | json_values,
    "client_id": client_values,
    "azp": client_values,
    "cid": client_values,
    "appid": client_values,
    "scope": scope_values,
    "scp": scope_values,
    "roles": scope_values,
    "uid": st.sampled_from(["", None, "00u2"]) | json_values,
    "oid": st.sampled_from(["", None, "oid-2"]) | json_values,
    "tid": st.sampled_from([TENANT, "72f988bf-86f1-41af-91ab-2d7cd011db47", None]) | json_values,
}
ACCESS_TYPS = ("at+jwt", "application/at+jwt")
typ_values = st.sampled_from(["at+jwt", "application/at+jwt", "AT+JWT", "JWT", None, 42])


def _first(claims: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _permissions(claims: dict[str, Any], names: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for name in names:
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return found


def expected_profile_outcome(
    claims: dict[str, Any], typ: object, profile: str, require_typ: bool
) -> str:
    """Allowed exactly when the base rules hold and the profile's own rules hold too, with
    ``assistant/chat`` required, clients ``web``/``cli`` allowed and (Entra) one tenant."""
    rules = PROFILE_RULES[profile]
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    client = _first(claims, rules["client"])
    user = _first(claims, rules["user"])
    tenant_claim = rules.get("tenant")
    checks = [
        "aud" in claims or not rules.get("aud_required"),
        AUDIENCE in audiences if "aud" in claims else client == AUDIENCE,
        claims.get("token_use", "access") == "access",
        "token_use" in claims or not rules.get("token_use"),
        isinstance(claims.get("sub"), str) and bool(claims["sub"].strip()),
        user is not None and bool(user.strip()),
        client is not None or not rules.get("client_required"),
        client in CLIENTS,
        tenant_claim is None or claims.get(tenant_claim) == TENANT,
        CHAT_SCOPE in _permissions(claims, rules["permissions"]),
        not require_typ or (isinstance(typ, str) and typ.lower() in ACCESS_TYPS),
    ]
    return "allow" if all(checks) else "deny"


@pytest.mark.parametrize(
    "case",
    [(profile, typ) for profile in sorted(PROFILE_RULES) for typ in (False, True)],
    ids=lambda case: f"{case[0]}-{'typ-required' if case[1] else 'typ-free'}",
)
@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_profile_rules_allow_exactly_the_valid_tokens(
    env: LocalIssuer,
    logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, bool],
    data: st.DataObject,
) -> None:
    """Per profile: audience, token kind, typ, user id, allowed clients, tenant, required scope."""
    profile, require_typ = case
    set_rules(
        monkeypatch,
        provider=profile,
        required_scopes=[CHAT_SCOPE],
        allowed_client_ids=list(CLIENTS),
        allowed_tenant_ids=[TENANT] if profile == "entra" else [],
        require_access_token_typ=require_typ,
    )
    claims = env.claims(scope=None) | VALID_FOR[profile]
    changed = data.draw(st.lists(st.sampled_from(sorted(profile_changes)), max_size=3, unique=True))
    for name in changed:
        claims[name] = data.draw(profile_changes[name])
    claims = {name: value for name, value in claims.items() if value is not None}
    typ = data.draw(typ_values)
    token = data.draw(st.sampled_from(env.keys)).sign(claims, headers={"typ": typ})

    expected = expected_profile_outcome(claims, typ, profile, require_typ)
    event(expected)

    assert outcome(bearer_event(token), logs) == expected
