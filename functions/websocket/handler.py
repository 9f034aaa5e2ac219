"""Lambda entry point of the WebSocket API: routes ``$connect``, ``$disconnect`` and every
message.

``$connect`` registers the connection under the authorizer's user, ``$disconnect`` forgets it.
A message is parsed (:mod:`functions.websocket.protocol`) and answered with frames
(:mod:`functions.websocket.frames`): ``pong``, a chat turn (:mod:`functions.websocket.turn`),
nothing for an accepted cancel (the cancelled answer's ``end`` frame tells it), or ``error``
with a code from :data:`functions.domain.errors.ERROR_CODES`, the same code REST answers with,
echoing the request's ``idempotency_key`` or ``message_id``. Message routes always answer 200:
the outcome travels in the frames. A client found gone while answering has its connection
record deleted.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes.api_gateway_websocket_event import (
    APIGatewayWebSocketEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.chat.service import ChatService
from functions.contract import Metric
from functions.core import aws, deadline
from functions.core.aws_errors import for_client
from functions.core.identity import user_id_from
from functions.core.observability import count, logger, metrics, tracer
from functions.core.settings import get_settings
from functions.data.attachments import AttachmentStore
from functions.data.connections import ConnectionRepository
from functions.data.turns import Store
from functions.domain.errors import BadRequest
from functions.websocket import frames
from functions.websocket.protocol import Cancel, Ping, echo, parse
from functions.websocket.sender import Poster
from functions.websocket.settings import Settings
from functions.websocket.turn import answer

_OK = {"statusCode": 200}


def settings() -> Settings:
    return get_settings(Settings)


def connections(config: Settings) -> ConnectionRepository:
    repository = Store.from_settings(config).connections
    if repository is None:  # from_env requires the table for this function
        raise RuntimeError("the WebSocket function has no connections table")
    return repository


def on_connect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    """Register the connection under the user the authorizer vouched for."""
    user_id = user_id_from(event.raw_event)
    if user_id is None:
        return {"statusCode": 401}
    connections(settings()).put(event.request_context.connection_id, user_id)
    return _OK


def on_disconnect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    connections(settings()).delete(event.request_context.connection_id)
    return _OK


def on_message(event: APIGatewayWebSocketEvent, context: LambdaContext) -> dict[str, Any]:
    """Answer one client frame; every failure becomes an error frame."""
    config = settings()
    connection_id = event.request_context.connection_id
    poster = Poster(
        aws.client("apigatewaymanagementapi", endpoint_url=config.websocket_callback_url),
        connection_id,
    )
    try:
        request = parse(event)
        if isinstance(request, Ping):
            poster.send(frames.pong())
        elif isinstance(request, Cancel):
            ChatService(config, Store.from_settings(config)).cancel(
                _user_of(event, config), request.message_id
            )
        else:
            answer(
                ChatService(
                    config,
                    Store.from_settings(config),
                    attachments=AttachmentStore(config.attachments_bucket),
                ),
                poster,
                _user_of(event, config),
                request,
                context,
                flush_interval=config.stream_flush_interval_ms / 1000,
            )
    except Exception as error:
        domain = for_client(error)
        fields = echo(event) | domain.fields()
        poster.send(frames.error(domain.code, domain.message, domain.retry_after, **fields))
    if poster.gone:
        count(Metric.CLIENT_GONE)
        connections(config).delete(connection_id)
    return _OK


def _user_of(event: APIGatewayWebSocketEvent, config: Settings) -> str:
    """The authorizer's user: from the event when API Gateway passes it on, else as recorded
    at ``$connect``."""
    user_id = user_id_from(event.raw_event)
    if user_id is not None:
        return user_id
    connection = connections(config).get(event.request_context.connection_id)
    if connection is None or not connection.user_id:
        raise BadRequest("this connection is not registered; reconnect")
    return connection.user_id


_ROUTES = {"$connect": on_connect, "$disconnect": on_disconnect}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)  # answers hold users' chats
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    websocket = APIGatewayWebSocketEvent(event)
    on_route = _ROUTES.get(websocket.request_context.route_key)
    with deadline.bound(deadline.Deadline.of(context)):
        return on_route(websocket) if on_route else on_message(websocket, context)
