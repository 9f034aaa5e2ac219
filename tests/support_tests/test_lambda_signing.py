"""Lambda's code-signing API on the emulator (``python -m fakes.emulator``), driven
with boto3 as Terraform's provider drives it: a config's lifecycle, attaching one to a
function at creation and afterwards, reading it back, tags, and the errors AWS answers."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from fakes.moto import REGION

ACCOUNT = "123456789012"
PROFILE = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/aiassistantcli/a1B2c3D4e5"
OTHER_PROFILE = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/other/f6G7h8I9j0"
CONFIG_ARN = re.compile(
    rf"^arn:aws:lambda:{REGION}:{ACCOUNT}:code-signing-config:(?P<id>csc-[0-9a-f]{{17}})$"
)
LAST_MODIFIED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
MISSING = f"arn:aws:lambda:{REGION}:{ACCOUNT}:code-signing-config:csc-0123456789abcdef0"
# One emulator process (tests/support_tests/conftest.py) for this module and
# test_public_layers.py: one worker runs both.
pytestmark = pytest.mark.xdist_group("emulator")


def package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def create_config(lam: BaseClient, **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Description": "packages signed by the configured profiles",
        "AllowedPublishers": {"SigningProfileVersionArns": [PROFILE]},
        "CodeSigningPolicies": {"UntrustedArtifactOnDeployment": "Warn"},
    } | overrides
    return lam.create_code_signing_config(**params)


def create_function(lam: BaseClient, role: str, name: str, **extra: Any) -> dict[str, Any]:
    return lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": package()},
        **extra,
    )


def error_of(call: Any, **params: Any) -> tuple[int, str, str]:
    """(HTTP status, x-amzn-ErrorType header, error code) of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        call(**params)
    response = raised.value.response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    header = response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-errortype", "")
    return status, header.split(":")[0], response["Error"]["Code"]


# A config's lifecycle ----------------------------------------------------------------------------


def test_a_config_is_created_read_updated_listed_and_deleted(lam: BaseClient) -> None:
    created = create_config(lam, Tags={"Project": "ai-assistant-cli"})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    config = created["CodeSigningConfig"]
    match = CONFIG_ARN.match(config["CodeSigningConfigArn"])
    assert match, config["CodeSigningConfigArn"]
    assert config["CodeSigningConfigId"] == match["id"]
    assert config["AllowedPublishers"] == {"SigningProfileVersionArns": [PROFILE]}
    assert config["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Warn"}
    assert config["Description"] == "packages signed by the configured profiles"
    assert LAST_MODIFIED.match(config["LastModified"]), config["LastModified"]
    arn = config["CodeSigningConfigArn"]

    assert lam.get_code_signing_config(CodeSigningConfigArn=arn)["CodeSigningConfig"] == config
    assert lam.list_tags(Resource=arn)["Tags"] == {"Project": "ai-assistant-cli"}

    updated = lam.update_code_signing_config(
        CodeSigningConfigArn=arn,
        AllowedPublishers={"SigningProfileVersionArns": [PROFILE, OTHER_PROFILE]},
        CodeSigningPolicies={"UntrustedArtifactOnDeployment": "Enforce"},
    )["CodeSigningConfig"]
    assert updated["AllowedPublishers"]["SigningProfileVersionArns"] == [PROFILE, OTHER_PROFILE]
    assert updated["CodeSigningPolicies"] == {"UntrustedArtifactOnDeployment": "Enforce"}
    assert updated["Description"] == config["Description"]  # untouched when not given
    assert lam.get_code_signing_config(CodeSigningConfigArn=arn)["CodeSigningConfig"] == updated

    second = create_config(lam, Description="another")["CodeSigningConfig"]
    assert second["CodeSigningConfigArn"] != arn
    listed = lam.list_code_signing_configs()["CodeSigningConfigs"]
    assert sorted(c["CodeSigningConfigArn"] for c in listed) == sorted(
        [arn, second["CodeSigningConfigArn"]]
    )
    first_page = lam.list_code_signing_configs(MaxItems=1)
    assert len(first_page["CodeSigningConfigs"]) == 1 and first_page["NextMarker"]

    deleted = lam.delete_code_signing_config(CodeSigningConfigArn=arn)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(lam.get_code_signing_config, CodeSigningConfigArn=arn) == (
        404,
        "ResourceNotFoundException",
        "ResourceNotFoundException",
    )
    assert [
        c["CodeSigningConfigArn"] for c in lam.list_code_signing_configs()["CodeSigningConfigs"]
    ] == [second["CodeSigningConfigArn"]]


def test_config_tags_are_added_and_removed(lam: BaseClient) -> None:
    arn = create_config(lam)["CodeSigningConfig"]["CodeSigningConfigArn"]
    assert lam.list_tags(Resource=arn)["Tags"] == {}
    lam.tag_resource(Resource=arn, Tags={"Owner": "platform", "Env": "prod"})
    lam.untag_resource(Resource=arn, TagKeys=["Env"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"Owner": "platform"}
    assert error_of(lam.list_tags, Resource=MISSING)[0] == 404


def test_unknown_configs_are_404s_of_the_documented_type(lam: BaseClient) -> None:
    for call, params in (
        (lam.get_code_signing_config, {"CodeSigningConfigArn": MISSING}),
        (lam.update_code_signing_config, {"CodeSigningConfigArn": MISSING, "Description": "x"}),
        (lam.delete_code_signing_config, {"CodeSigningConfigArn": MISSING}),
        (lam.list_functions_by_code_signing_config, {"CodeSigningConfigArn": MISSING}),
    ):
        assert error_of(call, **params) == (
            404,
            "ResourceNotFoundException",
            "ResourceNotFoundException",
        ), call


def test_invalid_configs_are_refused(lam: BaseClient) -> None:
    invalid = (
        {"AllowedPublishers": {"SigningProfileVersionArns": ["not-a-profile"]}},
        {"CodeSigningPolicies": {"UntrustedArtifactOnDeployment": "Maybe"}},
    )
    for overrides in invalid:
        assert error_of(lambda **p: create_config(lam, **p), **overrides) == (
            400,
            "InvalidParameterValueException",
            "InvalidParameterValueException",
        )
    assert lam.list_code_signing_configs()["CodeSigningConfigs"] == []


# Functions and their config ----------------------------------------------------------------------


def test_a_config_attached_at_creation_is_read_back(lam: BaseClient, role: str) -> None:
    arn = create_config(lam)["CodeSigningConfig"]["CodeSigningConfigArn"]
    create_function(lam, role, "signed-at-creation", CodeSigningConfigArn=arn)
    answer = lam.get_function_code_signing_config(FunctionName="signed-at-creation")
    assert (answer["CodeSigningConfigArn"], answer["FunctionName"]) == (arn, "signed-at-creation")
    function_arn = lam.get_function(FunctionName="signed-at-creation")["Configuration"][
        "FunctionArn"
    ]
    assert lam.list_functions_by_code_signing_config(CodeSigningConfigArn=arn)["FunctionArns"] == [
        function_arn
    ]


def test_a_config_is_attached_replaced_and_detached_afterwards(lam: BaseClient, role: str) -> None:
    create_function(lam, role, "signed-later")
    unsigned = lam.get_function_code_signing_config(FunctionName="signed-later")
    assert (unsigned["CodeSigningConfigArn"], unsigned["FunctionName"]) == ("", "signed-later")
    first = create_config(lam)["CodeSigningConfig"]["CodeSigningConfigArn"]
    second = create_config(lam)["CodeSigningConfig"]["CodeSigningConfigArn"]
    put = lam.put_function_code_signing_config(
        FunctionName="signed-later", CodeSigningConfigArn=first
    )
    assert (put["CodeSigningConfigArn"], put["FunctionName"]) == (first, "signed-later")
    lam.put_function_code_signing_config(FunctionName="signed-later", CodeSigningConfigArn=second)
    read = lam.get_function_code_signing_config(FunctionName="signed-later")
    assert read["CodeSigningConfigArn"] == second
    assert (
        lam.list_functions_by_code_signing_config(CodeSigningConfigArn=first)["FunctionArns"] == []
    )
    deleted = lam.delete_function_code_signing_config(FunctionName="signed-later")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    read = lam.get_function_code_signing_config(FunctionName="signed-later")
    assert read["CodeSigningConfigArn"] == ""


def test_a_config_in_use_is_not_deleted(lam: BaseClient, role: str) -> None:
    arn = create_config(lam)["CodeSigningConfig"]["CodeSigningConfigArn"]
    create_function(lam, role, "in-use", CodeSigningConfigArn=arn)
    assert error_of(lam.delete_code_signing_config, CodeSigningConfigArn=arn) == (
        409,
        "ResourceConflictException",
        "ResourceConflictException",
    )
    lam.delete_function(FunctionName="in-use")
    lam.delete_code_signing_config(CodeSigningConfigArn=arn)


def test_naming_a_missing_config_or_function_is_a_404(lam: BaseClient, role: str) -> None:
    not_found = (404, "CodeSigningConfigNotFoundException", "CodeSigningConfigNotFoundException")
    assert (
        error_of(lambda **p: create_function(lam, role, "never", **p), CodeSigningConfigArn=MISSING)
        == not_found
    )
    assert error_of(lam.get_function, FunctionName="never")[0] == 404  # nothing was created
    create_function(lam, role, "exists")
    assert (
        error_of(
            lam.put_function_code_signing_config,
            FunctionName="exists",
            CodeSigningConfigArn=MISSING,
        )
        == not_found
    )
    arn = create_config(lam)["CodeSigningConfig"]["CodeSigningConfigArn"]
    for call, params in (
        (lam.get_function_code_signing_config, {}),
        (lam.put_function_code_signing_config, {"CodeSigningConfigArn": arn}),
        (lam.delete_function_code_signing_config, {}),
    ):
        status, header, code = error_of(call, FunctionName="missing", **params)
        assert (status, header, code) == (
            404,
            "ResourceNotFoundException",
            "ResourceNotFoundException",
        ), call


def test_functions_keep_their_own_tags(lam: BaseClient, role: str) -> None:
    """Tags of a function still go to moto's own implementation."""
    function_arn = create_function(lam, role, "tagged", Tags={"Owner": "platform"})["FunctionArn"]
    assert lam.list_tags(Resource=function_arn)["Tags"] == {"Owner": "platform"}
