"""Identity provider profiles: which claims carry the user, the client, scopes, groups, roles and
tenant, and which extra checks a provider's tokens must pass.

Every list is "first present claim wins" (user id, client) or "union of all" (scopes, groups,
roles). docs/identity-providers.md says what each provider sends.
"""

from __future__ import annotations

# Reject any token whose token_use is present and not this (Cognito's ID tokens say "id").
ACCESS_TOKEN_USE = "access"  # noqa: S105 - a claim value, not a secret
# RFC 9068 section 2.1: JWT access tokens have typ "at+jwt"; "application/at+jwt" is the same
# media type written in full (RFC 7515 section 4.1.9). Compared case-insensitively.
ACCESS_TOKEN_TYPS = frozenset({"at+jwt", "application/at+jwt"})


class Profile:
    """One provider's claim mapping and checks. A plain class, not a dataclass: five of them
    are built at import, and dataclass generation would show in every cold start."""

    __slots__ = (
        "aud_required",
        "client_claims",
        "client_required",
        "group_claims",
        "name",
        "permission_claims",
        "role_claims",
        "scope_claims",
        "tenant_claim",
        "token_use_required",
        "user_id_claims",
    )

    def __init__(
        self,
        name: str,
        *,
        user_id_claims: tuple[str, ...],
        client_claims: tuple[str, ...],
        scope_claims: tuple[str, ...],
        permission_claims: tuple[str, ...],
        group_claims: tuple[str, ...] = (),
        role_claims: tuple[str, ...] = (),
        tenant_claim: str | None = None,
        token_use_required: bool = False,
        client_required: bool = False,
        aud_required: bool = False,
    ) -> None:
        self.name = name
        self.user_id_claims = user_id_claims  # first non-empty string wins; none: denied
        self.client_claims = client_claims  # first present wins; the audience without `aud`
        self.scope_claims = scope_claims  # what the context's `scope` lists
        self.permission_claims = permission_claims  # where required scopes are looked for
        self.group_claims = group_claims
        self.role_claims = role_claims
        self.tenant_claim = tenant_claim  # required when set; checked against allowed tenants
        self.token_use_required = token_use_required  # token_use must say "access"
        # The provider puts the client in every access token and never in its ID tokens (which
        # name the client in `aud` instead), so a token without one is not an access token.
        self.client_required = client_required
        self.aud_required = aud_required  # no client-for-audience fallback: `aud` must name us


PROFILES = {
    profile.name: profile
    for profile in (
        Profile(
            "generic",
            user_id_claims=("sub",),
            client_claims=("client_id", "azp", "cid", "appid"),
            scope_claims=("scope", "scp"),
            permission_claims=("scope", "scp"),
            group_claims=("groups",),
            role_claims=("roles",),
        ),
        # Access tokens: no aud, client_id, scope, token_use "access", cognito:groups.
        Profile(
            "cognito",
            user_id_claims=("sub",),
            client_claims=("client_id",),
            scope_claims=("scope",),
            permission_claims=("scope",),
            group_claims=("cognito:groups",),
            token_use_required=True,
            client_required=True,
        ),
        # Custom authorization servers: cid, scp (a list), uid (the immutable user id; `sub` is
        # the login, which can change, and is the client id in client-credentials tokens).
        Profile(
            "okta",
            user_id_claims=("uid", "sub"),
            client_claims=("cid",),
            scope_claims=("scp",),
            permission_claims=("scp",),
            group_claims=("groups",),
            client_required=True,
        ),
        # v2 tokens name the client in azp, v1 in appid; delegated permissions are scp (a
        # space-separated string), application permissions (app-only tokens) are roles. oid is
        # the stable user (or service principal) id; sub is pairwise per application.
        Profile(
            "entra",
            user_id_claims=("oid",),
            client_claims=("azp", "appid"),
            scope_claims=("scp",),
            permission_claims=("scp", "roles"),
            group_claims=("groups",),
            role_claims=("roles",),
            tenant_claim="tid",
            client_required=True,
        ),
        # The access token of the external trusted token issuer that IAM Identity Center trusts
        # (docs/identity-providers.md). Identity Center matches that issuer's tokens on `aud`,
        # so this API does too: a client id never stands in for the audience.
        Profile(
            "identity_center",
            user_id_claims=("sub",),
            client_claims=("client_id", "azp", "cid", "appid"),
            scope_claims=("scope", "scp"),
            permission_claims=("scope", "scp"),
            group_claims=("groups",),
            role_claims=("roles",),
            aud_required=True,
        ),
    )
}
DEFAULT_PROFILE = "generic"
