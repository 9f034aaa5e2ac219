"""The REST API on 127.0.0.1, emulating API Gateway REST in front of the stack's functions.

What API Gateway does and this does too: routes and methods exactly as synthesized (an unknown
path or method is 403 ``Missing Authentication Token``, another stage 403 ``Forbidden``); the
Lambda proxy event (v1) with the resource, path parameters, multi-value headers and query and
the request context; the TOKEN authorizer invoked with the identity source header (no header: 401
without invoking it), its policy evaluated against the method ARN, its result cached per token
for the stack's TTL (and a cached policy evaluated against each new method ARN), its
``principalId`` and ``context`` handed to the integration; the gateway responses (401, 403,
413, 5xx) with their synthesized headers (CORS); the integration timeout (29 s by default) as
504; a request body over 10 MB as 413; a throttled function as 500 and a failed or malformed
integration answer as 502.

The OpenAI-compatible routes (``contract.OPENAI_ROUTES``) go to the app ``run.sh`` serves
(:mod:`devserver.openai_api`), as the Lambda Web Adapter's streaming integration does: after
the stack's TOKEN authorizer, with API Gateway's request context in a header, and the answer
relayed as it arrives (chunked), not buffered.

Not emulated: stage throttling and WAF (their limits are far above a developer's traffic), the
request validators (the routes already require their path parameters), X-Ray and access logs
to CloudWatch (one line per request is printed instead), IAM.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from devserver.lambda_pool import ACCOUNT_ID, FunctionError, InvocationError, Lambda, Throttled
from devserver.openai_api import OpenAIApp, Upstream
from devserver.stack import RestApi, RestRoute, TokenAuthorizer
from fakes.loopback import QuietHTTPServer
from functions.contract import OPENAI_ROUTES, REST_INTEGRATION_TIMEOUT_SECONDS

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway REST's payload quota
API_ID = "devrestapi"

AccessLog = Callable[[str], None]


@dataclass(eq=False)
class GatewayResponse(Exception):
    """An answer API Gateway itself gives (not the integration's)."""

    response_type: str
    status: int
    message: str | None
    error_type: str | None = None


MISSING_TOKEN = GatewayResponse(
    "MISSING_AUTHENTICATION_TOKEN",
    403,
    "Missing Authentication Token",
    "MissingAuthenticationTokenException",
)
UNAUTHORIZED = GatewayResponse("UNAUTHORIZED", 401, "Unauthorized", "UnauthorizedException")
ACCESS_DENIED = GatewayResponse(
    "ACCESS_DENIED", 403, "User is not authorized to access this resource", "AccessDeniedException"
)
AUTHORIZER_FAILURE = GatewayResponse("AUTHORIZER_FAILURE", 500, None, "AuthorizerFailureException")
TOO_LARGE = GatewayResponse("REQUEST_TOO_LARGE", 413, "Request Too Long")
TIMEOUT = GatewayResponse("INTEGRATION_TIMEOUT", 504, "Endpoint request timed out")
INTEGRATION_FAILURE = GatewayResponse("INTEGRATION_FAILURE", 500, "Internal server error")
BAD_GATEWAY = GatewayResponse("DEFAULT_5XX", 502, "Internal server error")
WRONG_STAGE = GatewayResponse("DEFAULT_4XX", 403, "Forbidden", "ForbiddenException")


@dataclass(frozen=True)
class _Decision:
    principal_id: str
    policy: Mapping[str, Any]
    context: Mapping[str, Any]
    expires_at: float


def _resource_matches(pattern: str, arn: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def policy_allows(policy: Mapping[str, Any], method_arn: str) -> bool:
    """IAM evaluation of an authorizer policy for one ARN: an explicit Deny wins, then Allow."""
    allowed = False
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if not any(a in ("execute-api:Invoke", "execute-api:*", "*") for a in actions):
            continue
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        if any(_resource_matches(str(r), method_arn) for r in resources):
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


class TokenAuthorizerCache:
    """API Gateway's per-token cache of authorizer decisions (TTL from the stack)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str], _Decision] = {}

    def get(self, authorizer: TokenAuthorizer, token: str) -> _Decision | None:
        with self._lock:
            decision = self._decisions.get((authorizer.function, token))
            if decision is not None and decision.expires_at > time.monotonic():
                return decision
            return None

    def put(self, authorizer: TokenAuthorizer, token: str, decision: _Decision) -> None:
        if authorizer.ttl_seconds > 0:
            with self._lock:
                self._decisions[(authorizer.function, token)] = decision


class RestGateway:
    """The REST stage of one stack, served on ``127.0.0.1:<port>``."""

    def __init__(
        self,
        api: RestApi,
        functions: Lambda,
        region: str,
        *,
        port: int = 0,
        access_log: AccessLog | None = None,
        openai: OpenAIApp | None = None,
    ) -> None:
        self.api = api
        self.functions = functions
        self.openai = openai
        # The OpenAI-compatible routes, behind the authorizer the stack's other routes use.
        authorizer = next((route.authorizer for route in api.routes if route.authorizer), None)
        self.openai_routes = {
            (route.method, route.full_path): RestRoute(
                route.method,
                route.full_path,
                None,
                authorizer,
                REST_INTEGRATION_TIMEOUT_SECONDS * 1000,
            )
            for route in OPENAI_ROUTES
        }
        self.region = region
        self.cache = TokenAuthorizerCache()
        self.authorizer_invocations = 0
        self._access_log = access_log
        # Literal paths win over templated ones, as API Gateway prefers the most specific.
        self._routes = sorted(api.routes, key=lambda route: route.path.count("{"))
        self._patterns = {route: route.pattern for route in self._routes}
        self._httpd = QuietHTTPServer(("127.0.0.1", port), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The stage's invoke URL, like ``https://{id}.execute-api.{region}.amazonaws.com/v1``."""
        return f"http://127.0.0.1:{self.port}/{self.api.stage}"

    def start(self) -> RestGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ---- one request ---------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[RestRoute, dict[str, str]]:
        if self.openai is not None and (method, path) in self.openai_routes:
            return self.openai_routes[(method, path)], {}
        for route in self._routes:
            match = self._patterns[route].match(path)
            if match and route.method in (method, "ANY"):
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        raise MISSING_TOKEN

    def method_arn(self, method: str, path: str) -> str:
        stage = self.api.stage
        return f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{API_ID}/{stage}/{method}{path}"

    def authorize(
        self, authorizer: TokenAuthorizer, headers: Mapping[str, str], method_arn: str
    ) -> _Decision:
        token = headers.get(authorizer.header.lower(), "")
        if not token.strip():
            raise UNAUTHORIZED  # API Gateway does not invoke a TOKEN authorizer without a token
        decision = self.cache.get(authorizer, token)
        if decision is None:
            decision = self._invoke_authorizer(authorizer, token, method_arn)
            self.cache.put(authorizer, token, decision)
        if not policy_allows(decision.policy, method_arn):
            raise ACCESS_DENIED
        return decision

    def _invoke_authorizer(
        self, authorizer: TokenAuthorizer, token: str, method_arn: str
    ) -> _Decision:
        self.authorizer_invocations += 1
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
        try:
            result = self.functions.invoke(authorizer.function, event)
        except FunctionError as error:
            if error.message == "Unauthorized":
                raise UNAUTHORIZED from None
            raise AUTHORIZER_FAILURE from None
        except InvocationError:
            raise AUTHORIZER_FAILURE from None
        if not isinstance(result, dict) or not isinstance(result.get("policyDocument"), dict):
            raise GatewayResponse("AUTHORIZER_CONFIGURATION_ERROR", 500, None) from None
        return _Decision(
            principal_id=str(result.get("principalId", "")),
            policy=result["policyDocument"],
            context=dict(result.get("context") or {}),
            expires_at=time.monotonic() + authorizer.ttl_seconds,
        )

    def integrate(self, route: RestRoute, event: dict[str, Any]) -> dict[str, Any]:
        if route.function is None:
            raise GatewayResponse("DEFAULT_5XX", 500, "Internal server error")
        future = self.functions.submit(route.function, event)
        try:
            result = future.result(timeout=route.timeout_ms / 1000)
        except FutureTimeout:
            raise TIMEOUT from None  # the invocation runs on, as in Lambda
        except Throttled:
            raise INTEGRATION_FAILURE from None
        except InvocationError:
            raise BAD_GATEWAY from None
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            raise BAD_GATEWAY
        return result

    def log_access(self, line: str) -> None:
        if self._access_log is not None:
            self._access_log(line)


def proxy_event(
    *,
    gateway: RestGateway,
    route: RestRoute,
    path_parameters: Mapping[str, str],
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    decision: _Decision | None,
) -> dict[str, Any]:
    """The Lambda proxy (v1) event API Gateway REST sends, as in ``shared/events``."""
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    authorizer: dict[str, Any] = {}
    if decision is not None:
        authorizer = {**decision.context, "principalId": decision.principal_id}
        authorizer["integrationLatency"] = 0
    host = single_headers.get("Host", f"127.0.0.1:{gateway.port}")
    return {
        "version": "1.0",
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "authorizer": authorizer or None,
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "extendedRequestId": request_id,
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": source_ip,
                "user": None,
                "userAgent": single_headers.get("User-Agent"),
                "userArn": None,
            },
            "path": f"/{gateway.api.stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": route.path,
            "resourcePath": route.path,
            "stage": gateway.api.stage,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def _forward(
    app: OpenAIApp,
    *,
    method: str,
    parts: SplitResult,
    headers: list[tuple[str, str]],
    body: bytes,
    event: Mapping[str, Any],
) -> Upstream:
    """Send an authorized request on to the OpenAI-compatible app, as the adapter does."""
    path = parts.path.removeprefix(f"/{event['requestContext']['stage']}")
    target = f"{path}?{parts.query}" if parts.query else path
    try:
        return app.forward(method, target, headers, body, event["requestContext"])
    except TimeoutError:
        raise TIMEOUT from None
    except OSError:
        raise BAD_GATEWAY from None


def _handler_class(gateway: RestGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate sends

        def _serve(self) -> None:
            started = time.monotonic()
            status = self._answer()
            elapsed = (time.monotonic() - started) * 1000
            gateway.log_access(f"{self.command} {self.path} {status} {elapsed:.0f}ms")

        def _answer(self) -> int:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                if length > MAX_PAYLOAD_BYTES:
                    self.close_connection = True  # the body is never read
                    raise TOO_LARGE
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                stage_prefix = f"/{gateway.api.stage}"
                if parts.path != stage_prefix and not parts.path.startswith(stage_prefix + "/"):
                    raise WRONG_STAGE
                path = parts.path[len(stage_prefix) :] or "/"
                route, parameters = gateway.route(self.command, path)
                headers = list(self.headers.items())
                lower = {name.lower(): value for name, value in headers}
                decision = None
                if route.authorizer is not None:
                    arn = gateway.method_arn(self.command, path)
                    decision = gateway.authorize(route.authorizer, lower, arn)
                event = proxy_event(
                    gateway=gateway,
                    route=route,
                    path_parameters=parameters,
                    method=self.command,
                    path=path,
                    query=parse_qsl(parts.query, keep_blank_values=True),
                    headers=headers,
                    body=body,
                    source_ip=self.client_address[0],
                    decision=decision,
                )
                if gateway.openai is not None and route.function is None:
                    upstream = _forward(
                        gateway.openai,
                        method=self.command,
                        parts=parts,
                        headers=headers,
                        body=body,
                        event=event,
                    )
                    return self._relay(upstream)
                result = gateway.integrate(route, event)
            except GatewayResponse as response:
                return self._gateway_response(response)
            return self._integration_response(result)

        def _relay(self, upstream: Upstream) -> int:
            """The app's answer as it arrives: chunk by chunk when it is a stream."""
            if not upstream.streamed:
                self._send(upstream.status, upstream.headers, b"".join(upstream.body))
                return upstream.status
            self.send_response(upstream.status)
            for name, value in upstream.headers:
                self.send_header(name, value)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in upstream.body:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return upstream.status

        def _gateway_response(self, response: GatewayResponse) -> int:
            headers = gateway.api.response_headers(response.response_type, response.status)
            headers["Content-Type"] = "application/json"
            if response.error_type:
                headers["x-amzn-ErrorType"] = response.error_type
            body = json.dumps({"message": response.message}).encode()
            self._send(response.status, list(headers.items()), body)
            return response.status

        def _integration_response(self, result: Mapping[str, Any]) -> int:
            headers: list[tuple[str, str]] = []
            single = result.get("headers") or {}
            multi = result.get("multiValueHeaders") or {}
            for name, values in multi.items():
                headers += [(name, str(value)) for value in values]
            headers += [(n, str(v)) for n, v in single.items() if n not in multi]
            raw = result.get("body") or ""
            body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
            self._send(int(result["statusCode"]), headers, body)
            return int(result["statusCode"])

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Access lines go through ``gateway.log_access`` instead."""

    return Handler
