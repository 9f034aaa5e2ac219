"""The WebSocket API: ``$connect`` behind a REQUEST authorizer, all routes to the websocket
function. API and stage exist before the function, because the function's role and its
``WEBSOCKET_CALLBACK_URL`` name them; routes are attached once the functions exist."""

from __future__ import annotations

import json

from cdktf import Fn
from constructs import Construct

from compute.config import ComputeConfig
from compute.lambdas import allow_api_gateway
from compute.provider import (
    ApiGatewayAccount,
    Apigatewayv2Api,
    Apigatewayv2Authorizer,
    Apigatewayv2Integration,
    Apigatewayv2Route,
    Apigatewayv2Stage,
    Apigatewayv2StageAccessLogSettings,
    Apigatewayv2StageDefaultRouteSettings,
    CloudwatchLogGroup,
    LambdaFunction,
)
from functions.contract import WEBSOCKET_ROUTES

ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "routeKey": "$context.routeKey",
        "eventType": "$context.eventType",
        "connectionId": "$context.connectionId",
        "status": "$context.status",
        "integrationLatency": "$context.integrationLatency",
        "principalId": "$context.authorizer.principalId",
        "authorizerError": "$context.authorizer.error",
    },
    separators=(",", ":"),
)
CONNECT = "$connect"


class WebSocketApi(Construct):
    """API and stage; call ``connect`` to add the authorizer, routes and permissions."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: ComputeConfig,
        access_logs: CloudwatchLogGroup,
        account: ApiGatewayAccount | None,
    ) -> None:
        super().__init__(scope, id_)
        self._config = config
        self.api = Apigatewayv2Api(
            self,
            "api",
            name=f"{config.prefix}-websocket",
            description=f"{config.project_name} {config.environment} WebSocket API",
            protocol_type="WEBSOCKET",
            route_selection_expression="$request.body.action",
        )
        self.stage = Apigatewayv2Stage(
            self,
            "stage",
            api_id=self.api.id,
            name=config.api_gateway_stage_name,
            auto_deploy=True,
            access_log_settings=Apigatewayv2StageAccessLogSettings(
                destination_arn=access_logs.arn, format=ACCESS_LOG_FORMAT
            ),
            default_route_settings=Apigatewayv2StageDefaultRouteSettings(
                throttling_rate_limit=config.api_gateway_throttle_rate_limit,
                throttling_burst_limit=config.api_gateway_throttle_burst_limit,
                detailed_metrics_enabled=True,
                logging_level="INFO",
                data_trace_enabled=False,
            ),
            depends_on=[account] if account else None,
        )

    @property
    def callback_url(self) -> str:
        """The management API endpoint: the stage URL, over https instead of wss."""
        return Fn.replace(self.stage.invoke_url, "wss://", "https://")

    @property
    def connections_arn(self) -> str:
        """The execute-api ARN that ``ManageConnections`` needs: posting, on this stage only."""
        return f"{self.api.execution_arn}/{self.stage.name}/POST/@connections/*"

    def connect(self, *, handler: LambdaFunction, authorizer: LambdaFunction) -> None:
        jwt = Apigatewayv2Authorizer(
            self,
            "jwt",
            api_id=self.api.id,
            name=f"{self._config.prefix}-websocket-jwt",
            authorizer_type="REQUEST",
            authorizer_uri=authorizer.invoke_arn,
        )
        integration = Apigatewayv2Integration(
            self,
            "integration",
            api_id=self.api.id,
            integration_type="AWS_PROXY",
            integration_method="POST",
            integration_uri=handler.invoke_arn,
        )
        self.routes = {
            key: Apigatewayv2Route(
                self,
                "route-" + key.removeprefix("$"),
                api_id=self.api.id,
                route_key=key,
                target=f"integrations/{integration.id}",
                authorization_type="CUSTOM" if key == CONNECT else "NONE",
                authorizer_id=jwt.id if key == CONNECT else None,
            )
            for key in WEBSOCKET_ROUTES
        }
        allow_api_gateway(
            self,
            "invoke-handler",
            statement_id="AllowWebSocketInvoke",
            function=handler,
            source_arn=f"{self.api.execution_arn}/*",
        )
        allow_api_gateway(
            self,
            "invoke-authorizer",
            statement_id="AllowWebSocketAuthorizer",
            function=authorizer,
            source_arn=f"{self.api.execution_arn}/authorizers/{jwt.id}",
        )
