"""The authorizer's identity-provider settings: validation, the variables the stack sets, and
the synthesis warnings about an empty audience and Identity Center's own issuer URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compute.config import ComputeConfig
from functions.authorizer.settings import Settings
from functions.contract import AUTHORIZER, Env
from tests.compute.synth import STACKS, synth_stack
from tests.compute.test_config import assert_rejected

pytestmark = STACKS

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
ENTRA_V2 = f"https://login.microsoftonline.com/{TENANT}/v2.0"
COGNITO = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123"
OKTA = "https://example.okta.com/oauth2/default"


@pytest.mark.parametrize(
    ("text", "field", "rule"),
    [
        ('jwt_provider = "auth0"', "jwt_provider", "'generic', 'cognito', 'okta', 'entra'"),
        ('jwt_required_scopes = ["a b"]', "jwt_required_scopes.0", "should match pattern"),
        ('jwt_read_scopes = ["say \\"hi\\""]', "jwt_read_scopes.0", "should match pattern"),
        ('jwt_chat_scopes = [""]', "jwt_chat_scopes.0", "should match pattern"),
        ('jwt_required_scopes = "a"', "jwt_required_scopes", "valid list"),
        ('jwt_required_scopes = ["a", "a"]', "(file)", "jwt_required_scopes lists a value twice"),
        ('jwt_allowed_client_ids = ["a b"]', "jwt_allowed_client_ids.0", "should match pattern"),
        ('jwt_allowed_tenant_ids = ["contoso"]', "jwt_allowed_tenant_ids.0", "should match"),
        (
            f'jwt_allowed_tenant_ids = ["{TENANT}"]',
            "(file)",
            "jwt_allowed_tenant_ids applies only to jwt_provider = 'entra'",
        ),
        (
            'jwt_require_access_token_typ = "perhaps"',
            "jwt_require_access_token_typ",
            "valid boolean",
        ),
        (
            'jwt_provider = "cognito"\n'
            'identity_center_issuer_url = "https://cognito-idp.us-east-1.amazonaws.com/"',
            "(file)",
            "https://cognito-idp.<region>.amazonaws.com/<user pool id>",
        ),
        (
            'jwt_provider = "okta"\nidentity_center_issuer_url = "https://example.okta.com"',
            "(file)",
            "/oauth2/<authorization server id>",
        ),
        (
            'jwt_provider = "entra"\n'
            'identity_center_issuer_url = "https://login.microsoftonline.com/common/v2.0"',
            "(file)",
            "https://login.microsoftonline.com/<tenant id>/v2.0",
        ),
        (
            'jwt_provider = "entra"\n'
            f'identity_center_issuer_url = "https://sts.windows.net/{TENANT}"',
            "(file)",
            "with the trailing slash",
        ),
        (
            f'jwt_provider = "identity_center"\nidentity_center_issuer_url = "{OKTA}"',
            "(file)",
            "jwt_provider 'identity_center' needs jwt_audience",
        ),
        (
            'jwt_provider = "identity_center"\njwt_audience = "api"\n'
            'identity_center_issuer_url = "https://identitycenter.amazonaws.com/ssoins-1"',
            "(file)",
            "not Identity Center's own",
        ),
    ],
)
def test_bad_jwt_settings_name_field_file_and_rule(
    tmp_path: Path, text: str, field: str, rule: str
) -> None:
    assert_rejected(tmp_path, text, field, rule)


@pytest.mark.parametrize(
    ("provider", "issuer"),
    [
        ("entra", ENTRA_V2),
        ("entra", f"https://sts.windows.net/{TENANT}/"),
        ("entra", f"https://login.microsoftonline.us/{TENANT}/v2.0"),
        ("cognito", COGNITO),
        ("okta", OKTA),
        ("okta", "https://example.okta.com/oauth2/aus1a2b3c4d5e6f7g8h9"),
        ("generic", "https://example.auth0.com/"),
        ("identity_center", OKTA),
    ],
)
def test_issuer_forms_each_profile_accepts(provider: str, issuer: str) -> None:
    config = ComputeConfig(
        jwt_provider=provider, identity_center_issuer_url=issuer, jwt_audience="api"
    )
    assert config.identity_center_issuer_url == issuer


def test_the_stack_sets_the_authorizer_settings() -> None:
    config = ComputeConfig(
        identity_center_issuer_url=ENTRA_V2,
        jwt_audience="api-client-id",
        jwt_provider="entra",
        jwt_required_scopes=["access_as_user"],
        jwt_read_scopes=["Sessions.Read"],
        jwt_chat_scopes=["Chat.ReadWrite", "Chat.Stream"],
        jwt_allowed_client_ids=["cli", "web"],
        jwt_allowed_tenant_ids=[TENANT],
        jwt_require_access_token_typ=True,
    )
    synth = synth_stack(config)
    auth = next(
        f
        for f in synth["resource"]["aws_lambda_function"].values()
        if f["function_name"].endswith(AUTHORIZER.suffix)
    )["environment"]["variables"]

    assert auth == {
        Env.JWT_ISSUER: ENTRA_V2,
        Env.JWT_AUDIENCE: "api-client-id",
        Env.JWKS_URL: "",
        Env.JWT_VALIDATION: config.jwt_validation,
    }
    assert json.loads(auth[Env.JWT_VALIDATION]) == {
        "provider": "entra",
        "required_scopes": ["access_as_user"],
        "read_scopes": ["Sessions.Read"],
        "chat_scopes": ["Chat.ReadWrite", "Chat.Stream"],
        "allowed_client_ids": ["cli", "web"],
        "allowed_tenant_ids": [TENANT],
        "require_access_token_typ": True,
    }
    settings = Settings.from_env(auth)  # what the authorizer makes of it
    assert settings.provider == "entra"
    assert settings.chat_scopes == ("Chat.ReadWrite", "Chat.Stream")
    assert settings.allowed_tenant_ids == frozenset({TENANT})


def test_an_empty_audience_with_an_issuer_warns_naming_the_environment_and_the_risk(
    capsys: pytest.CaptureFixture,
) -> None:
    synth_stack(ComputeConfig(environment="qa", identity_center_issuer_url=OKTA))
    err = capsys.readouterr().out

    assert "compute-qa: jwt_audience is empty" in err
    assert "environment qa accepts tokens" in err
    assert "for any of its APIs and clients" in err
    assert "config/qa.toml" in err
    assert "identity_center_issuer_url is empty" not in err


def test_no_issuer_keeps_its_own_warning_only(capsys: pytest.CaptureFixture) -> None:
    synth_stack(ComputeConfig(environment="qa"))
    err = capsys.readouterr().out

    assert "the JWT authorizer denies every request" in err
    assert "jwt_audience is empty" not in err


def test_identity_center_issuer_warns(capsys: pytest.CaptureFixture) -> None:
    issuer = "https://identitycenter.amazonaws.com/ssoins-1234567890abcdef"
    synth_stack(ComputeConfig(identity_center_issuer_url=issuer, jwt_audience="api"))

    assert f"identity_center_issuer_url {issuer} is IAM Identity Center itself" in (
        capsys.readouterr().out
    )


def test_a_configured_audience_gives_no_audience_warning(capsys: pytest.CaptureFixture) -> None:
    synth_stack(ComputeConfig(identity_center_issuer_url=OKTA, jwt_audience="api://default"))

    assert "warning" not in capsys.readouterr().out
