"""Lambda's code-signing API for moto, which implements none of it but
``GetFunctionCodeSigningConfig``.

The prod stack creates an ``aws_lambda_code_signing_config`` and attaches it to every function,
so Terraform stops at ``CreateCodeSigningConfig`` against plain moto. :func:`install` adds, in
this process and before moto's server or mock starts (both read the URL table then):

* the code-signing configs: ``CreateCodeSigningConfig``, ``GetCodeSigningConfig``,
  ``UpdateCodeSigningConfig``, ``DeleteCodeSigningConfig``, ``ListCodeSigningConfigs`` and
  ``ListFunctionsByCodeSigningConfig``, under ``/2020-04-22/code-signing-configs``;
* a function's config: ``PutFunctionCodeSigningConfig``, ``GetFunctionCodeSigningConfig`` and
  ``DeleteFunctionCodeSigningConfig`` under ``/2020-06-30/functions/{name}/code-signing-config``;
* ``CreateFunction`` refusing a ``CodeSigningConfigArn`` that names no config, as Lambda does;
  moto already keeps the one it is given, which the function's config then reads.

Shapes, ARNs (``arn:aws:lambda:<region>:<account>:code-signing-config:csc-<17 hex>``), status
codes and error types (``x-amzn-ErrorType``) follow the Lambda API reference. Everything else is
moto's own: the configs live on moto's ``LambdaBackend`` of the account and region (so moto's
reset forgets them), and the responses are a subclass of moto's ``LambdaResponse`` that every
Lambda route is pointed at, so no moto code is copied. Code is not verified against the
signing profiles: the emulator has no Signer, and Terraform deploys unsigned placeholders
(``Warn`` accepts them; ``Enforce`` would be a real deployment's concern).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from moto.awslambda import urls as lambda_urls
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend
from moto.awslambda.responses import LambdaResponse
from moto.core.responses import TYPE_RESPONSE
from moto.utilities.utils import get_partition

POLICIES = ("Warn", "Enforce")
MAX_PROFILE_VERSIONS = 20  # AllowedPublishers.SigningProfileVersionArns: 1 to 20
MAX_DESCRIPTION = 256
DEFAULT_MAX_ITEMS = 50
_CONFIGS_PATH = "/code-signing-configs"
_STORE = "code_signing_configs"  # the attribute of moto's LambdaBackend holding them
_installed = False


class CodeSigningConfigNotFound(LambdaClientError):
    """CreateFunction or PutFunctionCodeSigningConfig naming a config that does not exist."""

    code = 404

    def __init__(self, arn: str) -> None:
        super().__init__(
            "CodeSigningConfigNotFoundException", f"Code signing configuration {arn} not found."
        )


class ConfigResourceNotFound(LambdaClientError):
    """Get, Update, Delete or ListFunctionsBy a config that does not exist."""

    code = 404

    def __init__(self, arn: str) -> None:
        super().__init__(
            "ResourceNotFoundException", f"Code signing configuration {arn} not found."
        )


class ConfigInUse(LambdaClientError):
    """Lambda deletes a config only once no function uses it."""

    code = 409

    def __init__(self, arn: str, functions: list[str]) -> None:
        super().__init__(
            "ResourceConflictException",
            f"Code signing configuration {arn} is used by {len(functions)} function(s): "
            + ", ".join(functions),
        )


class InvalidParameter(LambdaClientError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameterValueException", message)


def _json(body: dict[str, Any], status: int = 200) -> TYPE_RESPONSE:
    """A JSON answer with Lambda's content type (moto's default for a string is HTML)."""
    return status, {"status": status, "Content-Type": "application/json"}, json.dumps(body)


def _now() -> str:
    """Lambda's timestamp format: ISO 8601 with milliseconds and a ``+0000`` offset."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


@dataclass
class CodeSigningConfig:
    """One config, as GetCodeSigningConfig describes it."""

    config_id: str
    arn: str
    profile_version_arns: list[str]
    untrusted_artifact_on_deployment: str = "Warn"
    description: str = ""
    last_modified: str = field(default_factory=_now)
    tags: dict[str, str] = field(default_factory=dict)  # TagResource, ListTags (not Get)

    def to_dict(self) -> dict[str, Any]:
        return {
            "CodeSigningConfigId": self.config_id,
            "CodeSigningConfigArn": self.arn,
            "Description": self.description,
            "AllowedPublishers": {"SigningProfileVersionArns": list(self.profile_version_arns)},
            "CodeSigningPolicies": {
                "UntrustedArtifactOnDeployment": self.untrusted_artifact_on_deployment
            },
            "LastModified": self.last_modified,
        }


def configs(backend: LambdaBackend) -> dict[str, CodeSigningConfig]:
    """The configs of one account and region (ARN -> config), kept on moto's backend so that
    moto's reset, which re-initialises the backend, forgets them too."""
    store: dict[str, CodeSigningConfig] | None = getattr(backend, _STORE, None)
    if store is None:
        store = {}
        setattr(backend, _STORE, store)
    return store


def _profile_versions(body: dict[str, Any], required: bool) -> list[str] | None:
    publishers = body.get("AllowedPublishers")
    if publishers is None:
        if required:
            raise InvalidParameter("AllowedPublishers is required.")
        return None
    arns = publishers.get("SigningProfileVersionArns") if isinstance(publishers, dict) else None
    if not isinstance(arns, list) or not 1 <= len(arns) <= MAX_PROFILE_VERSIONS:
        raise InvalidParameter(
            "AllowedPublishers.SigningProfileVersionArns must list 1 to "
            f"{MAX_PROFILE_VERSIONS} signing profile version ARNs."
        )
    for arn in arns:
        if not isinstance(arn, str) or ":signer:" not in arn:
            raise InvalidParameter(f"{arn!r} is not a signing profile version ARN.")
    return list(arns)


def _policy(body: dict[str, Any]) -> str | None:
    policies = body.get("CodeSigningPolicies")
    if policies is None:
        return None
    value = policies.get("UntrustedArtifactOnDeployment", "Warn")
    if value not in POLICIES:
        raise InvalidParameter(
            f"Value '{value}' at 'codeSigningPolicies.untrustedArtifactOnDeployment' failed to "
            f"satisfy constraint: Member must satisfy enum value set: [{', '.join(POLICIES)}]"
        )
    return str(value)


def _description(body: dict[str, Any]) -> str | None:
    description = body.get("Description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise InvalidParameter(f"Description must be at most {MAX_DESCRIPTION} characters.")
    return description


class CodeSigningLambdaResponse(LambdaResponse):
    """moto's Lambda responses, plus the code-signing operations. moto's dispatcher finds the
    operation from the method and path through botocore's model, and calls the method of the
    same name here."""

    # ---- configs ------------------------------------------------------------------------

    def create_code_signing_config(self) -> TYPE_RESPONSE:
        body = self.json_body
        config_id = f"csc-{secrets.token_hex(9)[:17]}"
        partition = get_partition(self.region)
        config = CodeSigningConfig(
            config_id=config_id,
            arn=f"arn:{partition}:lambda:{self.region}:{self.current_account}"
            f":code-signing-config:{config_id}",
            profile_version_arns=_profile_versions(body, required=True) or [],
            untrusted_artifact_on_deployment=_policy(body) or "Warn",
            description=_description(body) or "",
            tags=dict(body.get("Tags") or {}),
        )
        configs(self.backend)[config.arn] = config
        return _json({"CodeSigningConfig": config.to_dict()}, 201)

    def get_code_signing_config(self) -> TYPE_RESPONSE:
        config = self._config()
        return _json({"CodeSigningConfig": config.to_dict()})

    def update_code_signing_config(self) -> TYPE_RESPONSE:
        config = self._config()
        body = self.json_body
        arns = _profile_versions(body, required=False)
        policy = _policy(body)
        description = _description(body)
        if arns is not None:
            config.profile_version_arns = arns
        if policy is not None:
            config.untrusted_artifact_on_deployment = policy
        if description is not None:
            config.description = description
        config.last_modified = _now()
        return _json({"CodeSigningConfig": config.to_dict()})

    def delete_code_signing_config(self) -> TYPE_RESPONSE:
        config = self._config()
        users = self._functions_using(config.arn)
        if users:
            raise ConfigInUse(config.arn, users)
        del configs(self.backend)[config.arn]
        return 204, {"status": 204}, ""

    def list_code_signing_configs(self) -> TYPE_RESPONSE:
        page, marker = self._page(sorted(configs(self.backend).values(), key=lambda c: c.arn))
        answer: dict[str, Any] = {"CodeSigningConfigs": [c.to_dict() for c in page]}
        if marker:
            answer["NextMarker"] = marker
        return _json(answer)

    def list_functions_by_code_signing_config(self) -> TYPE_RESPONSE:
        config = self._config()
        page, marker = self._page(self._function_arns_using(config.arn))
        answer: dict[str, Any] = {"FunctionArns": page}
        if marker:
            answer["NextMarker"] = marker
        return _json(answer)

    # ---- tags: a config's on the config, anything else moto's ------------------------------

    def list_tags(self) -> TYPE_RESPONSE:
        config = self._tagged_config()
        if config is None:
            return super().list_tags()
        return _json({"Tags": dict(config.tags)})

    def tag_resource(self) -> TYPE_RESPONSE:
        config = self._tagged_config()
        if config is None:
            return super().tag_resource()
        config.tags.update(self.json_body.get("Tags") or {})
        return 204, {"status": 204}, ""

    def untag_resource(self) -> TYPE_RESPONSE:
        config = self._tagged_config()
        if config is None:
            return super().untag_resource()
        for key in self.querystring.get("tagKeys", []):
            config.tags.pop(key, None)
        return 204, {"status": 204}, ""

    # ---- a function's config -------------------------------------------------------------

    def put_function_code_signing_config(self) -> TYPE_RESPONSE:
        function = self.backend.get_function(self._function_name())
        arn = self.json_body.get("CodeSigningConfigArn", "")
        if arn not in configs(self.backend):
            raise CodeSigningConfigNotFound(arn)
        function.code_signing_config_arn = arn
        return _json({"CodeSigningConfigArn": arn, "FunctionName": function.function_name})

    def get_function_code_signing_config(self) -> TYPE_RESPONSE:
        """As Lambda answers it: both members always present, the ARN empty when none."""
        function = self.backend.get_function(self._function_name())
        arn = function.code_signing_config_arn or ""
        return _json({"CodeSigningConfigArn": arn, "FunctionName": function.function_name})

    def delete_function_code_signing_config(self) -> TYPE_RESPONSE:
        function = self.backend.get_function(self._function_name())
        function.code_signing_config_arn = None
        return 204, {"status": 204}, ""

    def create_function(self) -> TYPE_RESPONSE:
        """moto's, after Lambda's check that the config it names exists."""
        arn = self.json_body.get("CodeSigningConfigArn")
        if arn and arn not in configs(self.backend):
            raise CodeSigningConfigNotFound(arn)
        return super().create_function()

    # ---- helpers ---------------------------------------------------------------------------

    def _config(self) -> CodeSigningConfig:
        """The config the path names (its ARN, URL-encoded or not)."""
        path = unquote(self.path.split("?", 1)[0]).rstrip("/")
        tail = path.split(f"{_CONFIGS_PATH}/", 1)[1]
        arn = tail.removesuffix("/functions")
        config = configs(self.backend).get(arn)
        if config is None:
            raise ConfigResourceNotFound(arn)
        return config

    def _tagged_config(self) -> CodeSigningConfig | None:
        """The config ``/<version>/tags/<ARN>`` names, or None when the ARN is no config's
        (a function's: moto's own tags). A config ARN naming no config is a 404."""
        arn = unquote(self.path.split("?", 1)[0]).split("/tags/", 1)[1]
        if ":code-signing-config:" not in arn:
            return None
        config = configs(self.backend).get(arn)
        if config is None:
            raise ConfigResourceNotFound(arn)
        return config

    def _function_name(self) -> str:
        """``FunctionName`` of ``/<version>/functions/<name>/code-signing-config``."""
        return unquote(self.path.split("?", 1)[0]).rstrip("/").rsplit("/", 2)[-2]

    def _function_arns_using(self, arn: str) -> list[str]:
        return sorted(
            function.function_arn
            for function in self.backend.list_functions()
            if function.code_signing_config_arn == arn
        )

    def _functions_using(self, arn: str) -> list[str]:
        return sorted(
            function.function_name
            for function in self.backend.list_functions()
            if function.code_signing_config_arn == arn
        )

    def _page(self, items: list[Any]) -> tuple[list[Any], str | None]:
        """Marker and MaxItems paging; the marker is the index of the next item."""
        marker = self.querystring.get("Marker", ["0"])[0]
        size = self.querystring.get("MaxItems", [str(DEFAULT_MAX_ITEMS)])[0]
        try:
            start, count = int(marker), int(size)
        except ValueError:
            raise InvalidParameter("Marker and MaxItems must be numbers here.") from None
        if not 1 <= count <= DEFAULT_MAX_ITEMS:
            raise InvalidParameter(f"MaxItems must be between 1 and {DEFAULT_MAX_ITEMS}.")
        end = start + count
        return items[start:end], (str(end) if end < len(items) else None)


_CONFIG_ROUTES = (
    r"{0}/(?P<api_version>[^/]+)/code-signing-configs/?$",
    r"{0}/(?P<api_version>[^/]+)/code-signing-configs/(?P<code_signing_config_arn>[^/]+)/?$",
    r"{0}/(?P<api_version>[^/]+)/code-signing-configs/(?P<code_signing_config_arn>[^/]+)"
    r"/functions/?$",
)


def install() -> None:
    """Route every Lambda URL, and the code-signing configs' own, to
    :class:`CodeSigningLambdaResponse`. Idempotent; must run before moto's server (or
    ``mock_aws``) starts in this process, since both build their URL table then. The
    ``/functions/{name}/code-signing-config`` route is moto's already."""
    global _installed  # noqa: PLW0603 - moto's URL table is process-wide too
    if _installed:
        return
    paths = lambda_urls.url_paths
    for path in list(paths):
        paths[path] = CodeSigningLambdaResponse.dispatch
    for path in _CONFIG_ROUTES:
        paths[path] = CodeSigningLambdaResponse.dispatch
    _installed = True
