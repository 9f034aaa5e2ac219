"""``make dev`` assembled: the synthesized stack's APIs and functions, and the local backends.

Order matters: backends first (DynamoDB with the stack's tables, the local model, the OIDC
issuer), then the WebSocket management API (its URL goes into the websocket function's
environment), then one warm worker per function, then the event source mappings start reading
the tables' streams (and the TTL sweeper its tables), then the two APIs start accepting clients.
:meth:`DevServer.stop` stops all of it, workers included, in the reverse order.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from devserver import endpoints, identity, workdir
from devserver.lambda_pool import Lambda, LogSink, print_log
from devserver.model import DEFAULT_CHUNK_DELAY_SECONDS, DEFAULT_FIRST_DELTA_SECONDS, local_model
from devserver.openai_api import OpenAIApp
from devserver.package_cache import PackageCache
from devserver.rest_gateway import RestGateway
from devserver.stack import Stack, StackError, is_websocket_callback, load_stack
from devserver.streams import SWEEP_SECONDS, StreamPoller, TtlSweeper
from devserver.websocket_gateway import Limits, WebSocketGateway
from fakes.bedrock import BedrockFake
from fakes.knowledge_base import BUILT_IN, Corpus, KnowledgeBaseFake
from fakes.moto import FAKE_CREDENTIAL, MotoServer
from fakes.oidc import LocalIssuer
from functions.contract import API_BASE_PATH, OPENAI_API, OPENAI_BASE_PATH, Env

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = ROOT / ".dev"
# A knowledge-base id the configuration accepts, for trying the knowledge-base path locally.
EXAMPLE_KNOWLEDGE_BASE_ID = "LOCALKB001"
KNOWLEDGE_BASE_HINT = (
    f"synthesize dev with one: make dev COMPUTE_DEV__KNOWLEDGE_BASE_ID={EXAMPLE_KNOWLEDGE_BASE_ID}"
)
# Variables of the caller's environment that carry AWS credentials, for --bedrock aws.
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "HOME",
)


@dataclass(frozen=True)
class Settings:
    """What ``make dev`` may be told; everything else comes from the stack."""

    stack_path: Path
    rest_port: int = 3000
    ws_port: int = 3001
    oidc_port: int = 3002
    management_port: int = 3003
    state_dir: Path = DEFAULT_STATE_DIR
    # The extracted function packages (devserver/package_cache.py); None: <state_dir>/packages.
    package_cache: Path | None = None
    dynamodb_endpoint: str | None = None  # None: a local moto server
    bedrock: Literal["local", "aws"] = "local"
    chunk_delay: float = DEFAULT_CHUNK_DELAY_SECONDS
    first_delta: float = DEFAULT_FIRST_DELTA_SECONDS
    limits: Limits = field(default_factory=Limits)
    # The local knowledge base's corpus: None is the built-in one (with the local model; with
    # --bedrock aws the stack's knowledge base is AWS's unless a folder is given).
    kb_dir: Path | None = None


class DevServer:
    """Every process and server ``make dev`` runs; a context manager."""

    def __init__(self, settings: Settings, log: LogSink = print_log) -> None:
        self.settings = settings
        self.log = log
        self.stack: Stack = load_stack(settings.stack_path)
        self.moto: MotoServer | None = None
        # KMS for the pagination key when DynamoDB is elsewhere (moto serves it otherwise).
        self.kms_moto: MotoServer | None = None
        self.model: BedrockFake | None = None
        self.knowledge_base: KnowledgeBaseFake | None = None
        self.corpus = self._corpus()
        self.issuer: LocalIssuer | None = None
        self.token_shape = identity.TokenShape()
        self.functions: Lambda | None = None
        self.rest: RestGateway | None = None
        self.openai: OpenAIApp | None = None
        self.websocket: WebSocketGateway | None = None
        self.pollers: list[StreamPoller] = []
        self.ttl: TtlSweeper | None = None
        self._workdir: Path | None = None
        self._stopped = threading.Event()

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        settings = self.settings
        dynamodb = settings.dynamodb_endpoint
        if dynamodb is None:
            self.moto = MotoServer().start()
            dynamodb = self.moto.url
        create_tables(self.stack, dynamodb, self.backend_env(dynamodb))
        if self.stack.mac_keys or self.stack.buckets:
            if self.moto is None:
                self.kms_moto = MotoServer().start()
            create_mac_keys(self.stack, self.kms_endpoint, self.backend_env(dynamodb))
            create_buckets(self.stack, self.kms_endpoint, self.backend_env(dynamodb))
        if settings.bedrock == "local":
            self.model = local_model(settings.chunk_delay, settings.first_delta).start()
        if self.corpus is not None:
            self.knowledge_base = KnowledgeBaseFake(
                self.knowledge_base_id, self.corpus, region=self.stack.region
            ).start()
        key = identity.signing_key(settings.state_dir)
        self.issuer = LocalIssuer(keys=[key]).start(settings.oidc_port)
        self.token_shape = token_shape(self.stack, self.issuer.url)
        self._workdir = workdir.create()
        packages = PackageCache(settings.package_cache or settings.state_dir / "packages")
        self.functions = Lambda(self._workdir, packages, log=self.log, region=self.stack.region)
        self.websocket = WebSocketGateway(
            self.stack.websocket,
            self.functions,
            self.stack.region,
            port=settings.ws_port,
            management_port=settings.management_port,
            limits=settings.limits,
            log=lambda line: self.log("websocket-api", line),
        )
        self.websocket.management.start()
        backend = self.backend_env(dynamodb)
        for function in self.stack.functions.values():
            if function.handler == OPENAI_API.handler:
                continue  # an HTTP app, not a handler: served by self.openai
            env = self.stack.environment(function, self._override) | backend
            self.functions.add(function, env)
        packages.evict()
        self.functions.warm_all()
        self.openai = self._openai_app(backend)
        if self.openai is not None:
            self.openai.start()
        self._start_streams(dynamodb)
        self.websocket.start()
        self.rest = RestGateway(
            self.stack.rest,
            self.functions,
            self.stack.region,
            port=settings.rest_port,
            access_log=lambda line: self.log("rest-api", line),
            openai=self.openai,
        ).start()
        self._write_endpoints()

    def _openai_app(self, backend: Mapping[str, str]) -> OpenAIApp | None:
        """The OpenAI-compatible app with its function's environment and timeout, or, while
        the stack has no such function, the main function's (the same chat settings); None
        for a stack with neither."""
        functions = self.stack.functions.values()
        function = next((f for f in functions if f.handler == OPENAI_API.handler), None)
        source = function.name if function else OPENAI_API.suffix  # as Lambda names its logs
        if function is None:
            main = next(
                (
                    route.function
                    for route in self.stack.rest.routes
                    if route.path == f"{API_BASE_PATH}/sessions" and route.function
                ),
                None,
            )
            if main is None:
                return None
            function = self.stack.function(main)
        env = self.stack.environment(function, self._override) | backend
        return OpenAIApp(env, function.timeout, lambda line: self.log(source, line))

    def _start_streams(self, endpoint: str) -> None:
        """A poller per event source mapping, and the TTL sweeper of every table with a TTL."""
        assert self.functions is not None
        functions = self.functions
        env = self.backend_env(endpoint)
        client = _client("dynamodb", endpoint, env)
        tables = self.stack.tables.values()
        self.ttl = TtlSweeper(
            client,
            {
                table.name: (table.ttl_attribute, tuple(name for name, _ in table.key_schema))
                for table in tables
                if table.ttl_attribute
            },
        )
        threading.Thread(target=self._sweep, name="ttl-sweeper", daemon=True).start()
        streams = _client("dynamodbstreams", endpoint, env)
        for mapping in self.stack.stream_mappings:
            table = self.stack.tables[mapping.table]
            arn = client.describe_table(TableName=table.name)["Table"].get("LatestStreamArn")
            if not arn:
                raise StackError(f"{table.name} has no stream at {endpoint}")
            name = self.stack.function(mapping.function).name
            poller = StreamPoller(
                mapping,
                table.name,
                arn,
                streams,
                invoke=lambda event, target=mapping.function: functions.invoke(target, event),
                log=lambda line, name=name: self.log(f"{name}-mapping", line),
                sweeper=self.ttl,
            )
            self.pollers.append(poller.start())

    def _sweep(self) -> None:
        while not self._stopped.wait(SWEEP_SECONDS):
            try:
                if self.ttl is not None:
                    self.ttl.sweep()
            except Exception as error:  # the sweeper outlives a bad scan, as DynamoDB's does
                self.log("ttl", f"sweeping failed: {error!r}")

    def _write_endpoints(self) -> None:
        """Where ``make chat`` finds the running server when given no URL
        (:func:`devserver.endpoints.running`)."""
        assert self.issuer is not None
        found = endpoints.Endpoints(
            rest_url=self.rest_url,
            openai_base_url=self.openai_base_url,
            ws_url=self.ws_url,
            issuer=self.issuer.url,
            token_shape=self.token_shape.to_json(),
            pid=os.getpid(),
        )
        endpoints.write(self.settings.state_dir, found)

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        for poller in self.pollers:
            poller.stop()
        for stop in (
            self.rest and self.rest.stop,
            self.openai and self.openai.stop,
            self.websocket and self.websocket.stop,
            self.functions and self.functions.close,
            self.issuer and self.issuer.stop,
            self.model and self.model.stop,
            self.knowledge_base and self.knowledge_base.stop,
            self.moto and self.moto.stop,
            self.kms_moto and self.kms_moto.stop,
        ):
            if stop:
                stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        endpoints.remove(self.settings.state_dir)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- environment ---------------------------------------------------------------------

    def _override(self, name: str, raw: str) -> str | None:
        """The values that must point at local stand-ins; all others are the stack's."""
        assert self.issuer is not None and self.websocket is not None
        if is_websocket_callback(raw):
            return self.websocket.callback_url
        if name == "JWT_ISSUER":
            return self.issuer.url
        if name == "JWKS_URL":
            return self.issuer.jwks_url if raw else ""  # empty: OIDC discovery, as deployed
        return None

    @property
    def kms_endpoint(self) -> str | None:
        """The local KMS and S3 (moto) holding the stack's HMAC keys and buckets; None before
        it starts."""
        server = self.moto or self.kms_moto
        return server.url if server else None

    def backend_env(self, dynamodb: str) -> dict[str, str]:
        """Region, credentials and endpoints every function gets on top of the stack's."""
        env = {
            "AWS_REGION": self.stack.region,
            "AWS_DEFAULT_REGION": self.stack.region,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
        }
        kms = self.kms_endpoint
        if kms is not None:  # the main function derives its pagination-token key there
            env["AWS_ENDPOINT_URL_KMS"] = kms
            # and signs attachment uploads for its buckets, which the clients post to
            env["AWS_ENDPOINT_URL_S3"] = kms
        if self.settings.bedrock == "aws":
            env |= {n: os.environ[n] for n in _CREDENTIAL_VARIABLES if n in os.environ}
            env["AWS_REGION"] = os.environ.get("AWS_REGION", self.stack.region)
            return env | self._knowledge_base_env()
        env |= {
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIAL,
            "AWS_SESSION_TOKEN": FAKE_CREDENTIAL,
        }
        if self.model is not None:
            env |= self.model.env()
        return env | self._knowledge_base_env()

    # ---- the knowledge base ----------------------------------------------------------------

    @property
    def knowledge_base_id(self) -> str:
        """The stack's knowledge base (the functions' ``KNOWLEDGE_BASE_ID``); empty: none."""
        ids = {
            function.environment.get(Env.KNOWLEDGE_BASE_ID, "")
            for function in self.stack.functions.values()
        }
        return max(ids, default="")

    def _corpus(self) -> Corpus | None:
        """What the local knowledge base serves, or None when it does not run: the stack has
        no knowledge base, or real Bedrock serves it (``--bedrock aws`` without ``--kb-dir``).
        """
        kb_dir = self.settings.kb_dir
        if not self.knowledge_base_id:
            if kb_dir is not None:
                raise StackError(
                    f"--kb-dir {kb_dir}: the stack {self.stack.path} has no knowledge base, so "
                    f"no function would ask it anything; {KNOWLEDGE_BASE_HINT}"
                )
            return None
        if kb_dir is not None:
            return Corpus.from_folder(kb_dir)
        return BUILT_IN if self.settings.bedrock == "local" else None

    def _knowledge_base_env(self) -> dict[str, str]:
        return self.knowledge_base.env() if self.knowledge_base is not None else {}

    def _knowledge_base_line(self) -> str:
        corpus = self.knowledge_base.corpus if self.knowledge_base is not None else None
        if corpus is not None:
            passages = len(corpus.passages)
            return f"{self.knowledge_base_id}, local: {corpus.description} ({passages} passages)"
        if self.knowledge_base_id:
            return f"{self.knowledge_base_id}, AWS (your credentials)"
        return f"none in this stack ({KNOWLEDGE_BASE_HINT})"

    def data_line(self) -> str:
        """Where the data lives, and so whether a restart keeps it."""
        if self.moto is not None:
            return "in memory (moto), lost when the dev server stops"
        return f"in the DynamoDB at {self.settings.dynamodb_endpoint}, kept across restarts"

    # ---- for people and tests ------------------------------------------------------------

    def token(self, user: str) -> str:
        assert self.issuer is not None
        key = identity.signing_key(self.settings.state_dir)
        return identity.mint(key, self.issuer.url, user, self.token_shape)

    @property
    def rest_url(self) -> str:
        assert self.rest is not None
        return self.rest.url

    @property
    def openai_base_url(self) -> str:
        """What OpenAI clients take as their base URL: the stage URL and ``/v1``."""
        return self.rest_url + OPENAI_BASE_PATH

    @property
    def ws_url(self) -> str:
        assert self.websocket is not None
        return self.websocket.url

    def ready_line(self) -> str:
        """The one line ``--quiet`` prints: where to connect, and that the data is temporary."""
        return (
            f"ai-assistant dev server: REST {self.rest_url}  WebSocket {self.ws_url}  "
            f"(data {self.data_line()}; Ctrl-C stops)"
        )

    def banner(self, user: str = "developer") -> str:
        token = self.token(user)
        dynamodb = self.moto.url if self.moto else self.settings.dynamodb_endpoint
        auth = '-H "Authorization: Bearer $AI_ASSISTANT_TOKEN"'
        return "\n".join(
            [
                "",
                f"ai-assistant dev server: stack {self.stack.path}",
                f"  REST API       {self.rest_url}",
                f"  OpenAI API     {self.openai_base_url}  (base URL; the token is the key)",
                f"  WebSocket API  {self.ws_url}",
                f"  OIDC issuer    {self.issuer.url if self.issuer else ''}"
                "  (the authorizer's JWT_ISSUER here, whatever the stack says)",
                f"  DynamoDB       {dynamodb}",
                f"  Bedrock        {'local model' if self.model else 'AWS (your credentials)'}",
                f"  Knowledge base {self._knowledge_base_line()}",
                f"  Data           {self.data_line()}",
                "",
                f"Token for user {user!r} (make dev-token USER=<name> for another):",
                f"  export AI_ASSISTANT_TOKEN={token}",
                "",
                "Try:",
                f"  curl -s {auth} {self.rest_url}/api/v1/sessions",
                f'  .venv/bin/python -m websockets "{self.ws_url}?token=$AI_ASSISTANT_TOKEN"',
                '      then send {"action": "ping"}',
                "  make chat",
                f"  OPENAI_BASE_URL={self.openai_base_url} OPENAI_API_KEY=$AI_ASSISTANT_TOKEN"
                " <any OpenAI client>  (docs/openai.md)",
                "",
                "Ctrl-C stops everything.",
                "",
            ]
        )


def token_shape(stack: Stack, issuer: str) -> identity.TokenShape:
    """How tokens must look to the stack's authorizer, with ``issuer`` as its issuer."""
    functions = {r.authorizer.function for r in stack.rest.routes if r.authorizer}
    functions |= {r.authorizer for r in stack.websocket.routes.values() if r.authorizer}
    if not functions:
        return identity.TokenShape()
    function = stack.function(sorted(functions)[0])
    env = stack.environment(function, lambda name, raw: issuer if name == "JWT_ISSUER" else None)
    return identity.TokenShape.for_authorizer(env)


def create_mac_keys(stack: Stack, endpoint: str | None, env: Mapping[str, str]) -> None:
    """Create each HMAC key of the stack (the pagination key) at ``endpoint``, a local KMS,
    and bind its ARN, so the main function derives its token key from a key of this run."""
    import boto3

    assert endpoint is not None, "the local KMS is not running"
    client = boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name=stack.region,
        aws_access_key_id=FAKE_CREDENTIAL,
        aws_secret_access_key=FAKE_CREDENTIAL,
    )
    for resource_id, key in stack.mac_keys.items():
        metadata = client.create_key(
            KeySpec=key.key_spec, KeyUsage=key.key_usage, Description=key.description
        )["KeyMetadata"]
        stack.bind_key(resource_id, metadata["Arn"])


def create_buckets(stack: Stack, endpoint: str | None, env: Mapping[str, str]) -> None:
    """Create the stack's buckets (the attachments bucket) in the local S3, keeping existing
    ones. moto's S3 accepts presigned POSTs but enforces none of their policy's conditions."""
    assert endpoint is not None, "the local S3 is not running"
    client = _client("s3", endpoint, env)
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    for name in stack.buckets.values():
        if name not in existing:
            client.create_bucket(Bucket=name)


def create_tables(stack: Stack, endpoint: str, env: Mapping[str, str]) -> None:
    """Create the stack's tables (keys, GSIs, TTL, stream) at ``endpoint``, keeping existing
    ones (whose stream is turned on when the stack has one and they do not)."""
    client = _client("dynamodb", endpoint, env)
    existing = set(client.list_tables().get("TableNames", []))
    for table in stack.tables.values():
        if table.name in existing:
            described = client.describe_table(TableName=table.name)["Table"]
            if table.stream_view_type and not described.get("LatestStreamArn"):
                client.update_table(
                    TableName=table.name,
                    StreamSpecification={
                        "StreamEnabled": True,
                        "StreamViewType": table.stream_view_type,
                    },
                )
            continue
        client.create_table(**table.create_table_params())
        if table.ttl_attribute:
            client.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )


def _client(service: str, endpoint: str, env: Mapping[str, str]) -> Any:
    """A client of the local DynamoDB (or its streams) with the functions' credentials."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", FAKE_CREDENTIAL),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIAL),
    )
