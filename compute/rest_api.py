"""The REST API: the routes of ``contract.REST_ROUTES`` as Lambda proxy integrations to the
main function, guarded by a TOKEN authorizer on the jwt-authorizer function.

The routes of ``contract.OPENAI_ROUTES`` go to the openai-api function behind the same
authorizer, as streamed integrations: API Gateway calls Lambda's InvokeWithResponseStream
(``response-streaming-invocations``) and passes the answer on as it is written, for as long as
the function's timeout.

CORS preflights go to the main function too (unauthenticated): only the application can
answer for a list of allowed origins, and it must add the same headers to real responses.

Every method has a request validator that checks its required path parameters; request
bodies are validated by the application, which answers with the documented 4xx.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cdktf import Fn, Op, TerraformResourceLifecycle, Token
from constructs import Construct

from compute.config import ComputeConfig
from compute.expressions import is_expression, product, text
from compute.lambdas import allow_api_gateway
from compute.provider import (
    ApiGatewayAccount,
    ApiGatewayAuthorizer,
    ApiGatewayDeployment,
    ApiGatewayGatewayResponse,
    ApiGatewayIntegration,
    ApiGatewayMethod,
    ApiGatewayMethodSettings,
    ApiGatewayMethodSettingsSettings,
    ApiGatewayRequestValidator,
    ApiGatewayResource,
    ApiGatewayRestApi,
    ApiGatewayRestApiEndpointConfiguration,
    ApiGatewayStage,
    ApiGatewayStageAccessLogSettings,
    CloudwatchLogGroup,
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    IamRole,
    IamRolePolicy,
    LambdaFunction,
)
from compute.security import assume_role_policy
from functions.contract import (
    CORS_ALLOW_HEADERS,
    CORS_EXPOSE_HEADERS,
    OPENAI_API,
    OPENAI_ROUTES,
    REST_ROUTES,
    Route,
)

# One JSON line per request: what an operator needs to trace a call end to end.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "latency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "principalId": "$context.authorizer.principalId",
        "authorizerError": "$context.authorizer.error",
        "xrayTraceId": "$context.xrayTraceId",
    },
    separators=(",", ":"),
)
# The same lists as the main function's CORS middleware (one source: the contract).
CORS_HEADERS = ",".join(CORS_ALLOW_HEADERS)
CORS_EXPOSED_HEADERS = ",".join(CORS_EXPOSE_HEADERS)
CORS_METHODS = "GET,POST,PUT,PATCH,DELETE,OPTIONS"
CORS_RESPONSE_TYPES = ("UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX")
PATH_PARAMETER = re.compile(r"\{(\w+)\}")


class RestApi(Construct):
    """API, resources, methods, authorizer, deployment and stage, with their permissions."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: ComputeConfig,
        main: LambdaFunction,
        openai: LambdaFunction,
        authorizer: LambdaFunction,
        access_logs: CloudwatchLogGroup,
        account: ApiGatewayAccount | None,
    ) -> None:
        super().__init__(scope, id_)
        self._config = config
        self.api = ApiGatewayRestApi(
            self,
            "api",
            name=f"{config.prefix}-api",
            description=f"{config.project_name} {config.environment} REST API",
            endpoint_configuration=ApiGatewayRestApiEndpointConfiguration(types=["REGIONAL"]),
            # A replaced API (new id) is ready before the old one goes, like its deployments.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        self.validator = ApiGatewayRequestValidator(
            self,
            "validator",
            rest_api_id=self.api.id,
            name=f"{config.prefix}-parameters",
            validate_request_parameters=True,
            validate_request_body=False,  # the application validates bodies (pydantic)
        )
        self.authorizer = ApiGatewayAuthorizer(
            self,
            "jwt",
            rest_api_id=self.api.id,
            name=f"{config.prefix}-jwt",
            type="TOKEN",
            authorizer_uri=authorizer.invoke_arn,
            identity_source="method.request.header.Authorization",
            authorizer_result_ttl_in_seconds=config.authorizer_cache_ttl_seconds,
        )
        self._resources: dict[str, ApiGatewayResource] = {}
        self._parts: list = []  # what the deployment must wait for
        self._fingerprint: list[str] = []  # what forces a new deployment when it changes
        for route in REST_ROUTES:
            self._method(route.full_path, route.method, main, authorized=route.authorized)
        for route in OPENAI_ROUTES:
            self._method(
                route.full_path, route.method, openai, authorized=route.authorized, streamed=True
            )
        # Preflights of every path, the OpenAI-compatible ones too: main's CORS middleware
        # answers them for the configured origins, whatever the path.
        for path in sorted({route.full_path for route in (*REST_ROUTES, *OPENAI_ROUTES)}):
            self._method(path, "OPTIONS", main, authorized=False)
        self._gateway_responses()
        self._permissions(main, authorizer)
        self._openai_permissions(openai)
        self.stage = self._deploy(access_logs, account)

    def _resource(self, path: str) -> str:
        """The id of the resource at ``path``, creating it and its parents as needed."""
        if path == "":
            return self.api.root_resource_id
        if path not in self._resources:
            parent, _, part = path.rpartition("/")
            node_id = "resource" + path.replace("/", "-").replace("{", "").replace("}", "")
            self._resources[path] = ApiGatewayResource(
                self,
                node_id,
                rest_api_id=self.api.id,
                parent_id=self._resource(parent),
                path_part=part,
            )
        return self._resources[path].id

    def _method(
        self,
        path: str,
        verb: str,
        target: LambdaFunction,
        *,
        authorized: bool,
        streamed: bool = False,
    ) -> None:
        resource_id = self._resource(path)
        streaming = self._streaming() if streamed else {}
        node_id = f"{verb.lower()}{path.replace('/', '-').replace('{', '').replace('}', '')}"
        method = ApiGatewayMethod(
            self,
            node_id,
            rest_api_id=self.api.id,
            resource_id=resource_id,
            http_method=verb,
            authorization="CUSTOM" if authorized else "NONE",
            authorizer_id=self.authorizer.id if authorized else None,
            request_validator_id=self.validator.id,
            request_parameters={
                f"method.request.path.{name}": True for name in PATH_PARAMETER.findall(path)
            }
            or None,
        )
        integration = ApiGatewayIntegration(
            self,
            f"{node_id}-integration",
            rest_api_id=self.api.id,
            resource_id=resource_id,
            http_method=method.http_method,
            type="AWS_PROXY",
            integration_http_method="POST",
            uri=streaming_invoke_arn(target) if streamed else target.invoke_arn,
            **streaming,
        )
        self._parts += [method, integration]
        self._fingerprint += [
            method.id,
            method.authorization,
            method.request_validator_id,
            integration.id,
            integration.uri,
        ]
        # The streaming settings as set rather than as attribute references: the trigger then
        # names no attribute that only the 6.x provider has (the 5.x Terraform tests drop it).
        self._fingerprint += [text(value) for _, value in sorted(streaming.items())]

    def _streaming(self) -> dict[str, Any]:
        """A streamed integration's settings: API Gateway passes the answer on as it comes,
        and waits for it as long as the function may run (300 s at most: see
        ``config.OPENAI_TIMEOUT_MAX``), where a buffered one stops at 29 s."""
        timeout = self._config.timeout_for(OPENAI_API.key)
        return {"response_transfer_mode": "STREAM", "timeout_milliseconds": product(timeout, 1000)}

    def _gateway_responses(self) -> None:
        """API Gateway's own 401/403/4xx/5xx need CORS headers too, or browsers hide them."""
        origin = _origin_header(self._config.cors_allowed_origins)
        for response_type in CORS_RESPONSE_TYPES:
            self._fingerprint.append(response_type)
            self._parts.append(
                ApiGatewayGatewayResponse(
                    self,
                    f"response-{response_type.lower()}",
                    rest_api_id=self.api.id,
                    response_type=response_type,
                    response_parameters={
                        "gatewayresponse.header.Access-Control-Allow-Origin": origin,
                        "gatewayresponse.header.Access-Control-Allow-Headers": f"'{CORS_HEADERS}'",
                        "gatewayresponse.header.Access-Control-Allow-Methods": f"'{CORS_METHODS}'",
                        "gatewayresponse.header.Access-Control-Expose-Headers": (
                            f"'{CORS_EXPOSED_HEADERS}'"
                        ),
                    },
                )
            )

    def _permissions(self, main: LambdaFunction, authorizer: LambdaFunction) -> None:
        allow_api_gateway(
            self,
            "invoke-main",
            statement_id="AllowRestApiInvoke",
            function=main,
            source_arn=f"{self.api.execution_arn}/*",
        )
        allow_api_gateway(
            self,
            "invoke-authorizer",
            statement_id="AllowRestApiAuthorizer",
            function=authorizer,
            source_arn=f"{self.api.execution_arn}/authorizers/{self.authorizer.id}",
        )

    def _openai_permissions(self, openai: LambdaFunction) -> None:
        """Only its own routes may invoke the openai-api function (``lambda:InvokeFunction``
        covers InvokeWithResponseStream), from any stage of this API."""
        for route in OPENAI_ROUTES:
            allow_api_gateway(
                self,
                f"invoke-openai-{_node_suffix(route)}",
                statement_id=f"AllowRestApiInvoke{_node_suffix(route).title().replace('-', '')}",
                function=openai,
                source_arn=f"{self.api.execution_arn}/*/{route.method}{route.full_path}",
            )

    def _deploy(
        self, access_logs: CloudwatchLogGroup, account: ApiGatewayAccount | None
    ) -> ApiGatewayStage:
        config = self._config
        deployment = ApiGatewayDeployment(
            self,
            "deployment",
            rest_api_id=self.api.id,
            triggers={"redeployment": Fn.sha1(Fn.jsonencode(self._fingerprint))},
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            depends_on=self._parts,
        )
        stage = ApiGatewayStage(
            self,
            "stage",
            rest_api_id=self.api.id,
            deployment_id=deployment.id,
            stage_name=config.api_gateway_stage_name,
            xray_tracing_enabled=True,
            access_log_settings=ApiGatewayStageAccessLogSettings(
                destination_arn=access_logs.arn, format=ACCESS_LOG_FORMAT
            ),
            depends_on=[account] if account else None,
        )
        ApiGatewayMethodSettings(
            self,
            "method-settings",
            rest_api_id=self.api.id,
            stage_name=stage.stage_name,
            method_path="*/*",
            settings=ApiGatewayMethodSettingsSettings(
                metrics_enabled=True,
                logging_level="INFO",
                data_trace_enabled=False,
                throttling_rate_limit=config.api_gateway_throttle_rate_limit,
                throttling_burst_limit=config.api_gateway_throttle_burst_limit,
            ),
        )
        return stage


def api_gateway_account(
    scope: Construct, config: ComputeConfig, *, partition: str, account_id: str
) -> ApiGatewayAccount:
    """The account-wide role API Gateway needs to write execution and access logs.

    It is one setting per account and region, so only one stack may own it: switch
    ``manage_api_gateway_account`` off where another stack already does.
    """
    trust = assume_role_policy(scope, "apigw-cloudwatch-trust", "apigateway.amazonaws.com")
    role = IamRole(
        scope,
        "apigw-cloudwatch-role",
        name=f"{config.prefix}-apigw-logs",
        assume_role_policy=trust.json,
    )
    document = DataAwsIamPolicyDocument(
        scope,
        "apigw-cloudwatch-policy-document",
        statement=[
            DataAwsIamPolicyDocumentStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogGroups",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                    "logs:GetLogEvents",
                    "logs:FilterLogEvents",
                ],
                # API Gateway names its execution log groups itself, per API and stage, and
                # the role serves every API of the account in this region.
                resources=[f"arn:{partition}:logs:{config.aws_region}:{account_id}:log-group:*"],
            )
        ],
    )
    policy = IamRolePolicy(
        scope, "apigw-cloudwatch-policy", role=role.id, name="push-logs", policy=document.json
    )
    return ApiGatewayAccount(
        scope, "apigw-account", cloudwatch_role_arn=role.arn, depends_on=[policy]
    )


def streaming_invoke_arn(function: LambdaFunction) -> str:
    """The integration URI of Lambda's InvokeWithResponseStream for ``function``, in the
    function's own partition and region (the provider's ``response_streaming_invoke_arn``
    attribute comes after the pinned version)."""
    parts = Fn.split(":", function.arn)
    return Fn.format(
        "arn:%s:apigateway:%s:lambda:path/2021-11-15/functions/%s/response-streaming-invocations",
        [Fn.element(parts, 1), Fn.element(parts, 3), function.arn],
    )


def _node_suffix(route: Route) -> str:
    """``post-v1-chat-completions``: a route's method and path as a construct id part."""
    return f"{route.method.lower()}{route.full_path.replace('/', '-')}"


def _origin_header(origins: Any) -> str:
    """A single origin (or "*") is a static header; for a list, echo the caller's origin:
    these bodies are generic errors, so exposing them to any origin leaks nothing."""
    echo = "method.request.header.Origin"
    if is_expression(origins):
        single = Fn.format("'%s'", [Fn.element(origins, 0)])
        return Token.as_string(Fn.conditional(Op.eq(Fn.length_of(origins), 1), single, echo))
    return f"'{origins[0]}'" if len(origins) == 1 else echo
