"""The function roles as synthesized: what they may touch, read from the JSON alone.

Every resource of every statement must be one of this stack's own: its tables and their
indexes, the function's own log group, the stack's KMS key, this WebSocket API's stage, the
configured models and knowledge base, or (VPC functions) network interfaces in this account.
``*`` is allowed only for the actions AWS does not scope to a resource, each statement exactly
one of those sets.
"""

from __future__ import annotations

import re

import pytest

from functions.contract import FUNCTIONS, MAIN, OPENAI_API, WEBSOCKET, FunctionSpec
from tests.compute.synth import STACKS
from tests.security.iam import allows, guardrail_arn, knowledge_base_arn, model_arns
from tests.security.synthesized import (
    ACCOUNT,
    PARTITION,
    STREAM_LABEL,
    Stack,
    Statement,
    UnknownReference,
)

pytestmark = STACKS

parametrize_functions = pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.key)

# Statements with resource "*", each justified by AWS not scoping these actions to a resource.
STAR_STATEMENTS = {
    # X-Ray accepts segments only on "*"; needed by active tracing.
    frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}),
    # EC2 Describe* has no resource-level permissions; Lambda needs them for VPC functions.
    frozenset({"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}),
    # ListKnowledgeBases has no resource-level permissions (GET /knowledge-bases).
    frozenset({"bedrock:ListKnowledgeBases"}),
}
VPC_ACTIONS = {
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
}
# Which actions each kind of owned resource may carry.
KIND_ACTIONS = {
    "table": re.compile(r"dynamodb:\w+"),
    "log-group": re.compile(r"logs:(CreateLogStream|PutLogEvents)"),
    "key": re.compile(r"kms:\w+"),
    "connections": re.compile(r"execute-api:ManageConnections"),
    "model": re.compile(r"bedrock:InvokeModel(WithResponseStream)?"),
    "knowledge-base": re.compile(r"bedrock:Retrieve"),
    "guardrail": re.compile(r"bedrock:ApplyGuardrail"),
    "network": re.compile(r"ec2:\w+"),
    "stream": re.compile(r"dynamodb:(DescribeStream|GetRecords|GetShardIterator|ListStreams)"),
    "queue": re.compile(r"sqs:SendMessage"),
    # Uploads into, reads and deletes from the sessions' prefixes; listing on the bucket (no s3:*).
    "attachments": re.compile(r"s3:(PutObject|GetObject|DeleteObject)"),
    "bucket": re.compile(r"s3:ListBucket"),
}
# Inverted or resource-policy statements have no place in a role's identity policy.
FORBIDDEN_STATEMENT_KEYS = {"not_actions", "not_resources", "principals", "not_principals"}
UNCONFIGURED_MODEL = "meta.llama3-70b-instruct-v1:0"
OTHER_KNOWLEDGE_BASE = "OTHERKB123"
OTHER_GUARDRAIL = "zz9999other"


def owned(stack: Stack, spec: FunctionSpec) -> list[tuple[str, str]]:
    """(kind, regex) of every ARN of this stack the function's policy may name."""
    arn = f"arn:{PARTITION}"
    region, account = re.escape(stack.region), ACCOUNT
    function = stack.function(spec)
    patterns: list[tuple[str, str]] = []
    for name, table in stack.tables().items():
        base = rf"{arn}:dynamodb:{region}:{account}:table/{re.escape(name)}"
        patterns.append(("table", base))
        for index in table.get("global_secondary_index", []):
            patterns.append(("table", rf"{base}/index/{re.escape(index['name'])}"))
        if table.get("stream_enabled"):  # the stream itself, or (listing) all of its streams
            patterns.append(("stream", rf"{base}/stream/({re.escape(STREAM_LABEL)}|\*)"))
    for queue in stack.resources("aws_sqs_queue").values():
        name = re.escape(queue["name"])
        patterns.append(("queue", rf"{arn}:sqs:{region}:{account}:{name}"))
    for bucket in stack.resources("aws_s3_bucket").values():  # objects under sessions/ only
        name = re.escape(bucket["bucket"])
        patterns.append(("attachments", rf"{arn}:s3:::{name}/sessions/\*"))
        patterns.append(("bucket", rf"{arn}:s3:::{name}"))
    group = re.escape(f"/aws/lambda/{function['function_name']}")
    patterns.append(("log-group", rf"{arn}:logs:{region}:{account}:log-group:{group}:\*"))
    for key in stack.resources("aws_kms_key"):
        patterns.append(("key", rf"{arn}:kms:{region}:{account}:key/{stack.api_id(key)}"))
    stage = stack.websocket_stage()
    api = f"{stack.api_id(stage.api_resource_id)}/{re.escape(stage.name)}"
    connections = rf"{arn}:execute-api:{region}:{account}:{api}/(\*|POST)/@connections/\*"
    patterns.append(("connections", connections))
    for model in stack.config.bedrock_models:
        arns = model_arns(stack.region, model)
        patterns += [("model", re.escape(model_arn)) for model_arn in arns]
        if len(arns) > 1:  # a cross-region profile: its model in whichever region it routes to
            base_model = re.escape(model.split(".", 1)[1])
            patterns.append(
                ("model", rf"{arn}:bedrock:(\*|[a-z0-9-]+)::foundation-model/{base_model}")
            )
    if stack.config.knowledge_base_id:
        kb = knowledge_base_arn(stack.region, stack.config.knowledge_base_id)
        patterns.append(("knowledge-base", re.escape(kb)))
    if stack.config.bedrock_guardrail_id:
        guardrail = guardrail_arn(stack.region, stack.config.bedrock_guardrail_id)
        patterns.append(("guardrail", re.escape(guardrail)))
    if function.get("vpc_config"):
        network = rf"{arn}:ec2:{region}:{account}:(network-interface|subnet|security-group)/\*"
        patterns.append(("network", network))
    return patterns


def kind_of(stack: Stack, spec: FunctionSpec, resource: str) -> str:
    """Which of this stack's own resources ``resource`` names; AssertionError if none."""
    arn = stack.concrete(resource)
    for kind, pattern in owned(stack, spec):
        if re.fullmatch(pattern, arn):
            return kind
    raise AssertionError(f"{spec.key}: {resource} ({arn}) is none of this stack's own resources")


def model_actions(statements: list[Statement]) -> set[str]:
    return {a for s in statements for a in s.actions if a.startswith("bedrock:InvokeModel")}


@parametrize_functions
def test_each_function_has_its_own_role_with_one_inline_policy(
    stack: Stack, spec: FunctionSpec
) -> None:
    """Mutations caught: a managed policy (e.g. AWSLambdaBasicExecutionRole) attached to a
    function role, one role shared by two functions, a second policy, a trust policy that lets
    anything but Lambda assume the role."""
    role_id = stack.role_id(spec)
    others = {stack.role_id(other) for other in FUNCTIONS if other is not spec}
    assert role_id not in others, f"{spec.key} shares its role"
    assert len(stack.role_policies(spec)) == 1
    references = {f"${{aws_iam_role.{role_id}.{attribute}}}" for attribute in ("id", "name")}
    attachments = stack.resources("aws_iam_role_policy_attachment").values()
    attached = [a["policy_arn"] for a in attachments if a["role"] in references]
    assert not attached, f"{spec.key}'s role has managed policies {attached}"
    role = stack.resources("aws_iam_role")[role_id]
    assert not role.get("managed_policy_arns") and not role.get("inline_policy")
    trust = re.fullmatch(
        r"\$\{data\.aws_iam_policy_document\.([\w-]+)\.json\}", role["assume_role_policy"]
    )
    assert trust, role["assume_role_policy"]
    [statement] = stack.data("aws_iam_policy_document")[trust[1]]["statement"]
    assert statement["actions"] == ["sts:AssumeRole"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["lambda.amazonaws.com"]}]


@parametrize_functions
def test_no_action_is_a_wildcard_and_every_statement_allows(
    stack: Stack, spec: FunctionSpec
) -> None:
    """Mutations caught: ``dynamodb:*``, ``bedrock:Invoke*``, ``*``; a NotAction/NotResource
    statement (which grants everything else); a Deny that hides an over-broad Allow."""
    statements = stack.statements(spec)
    assert statements
    for statement in statements:
        assert statement.raw.get("effect", "Allow") == "Allow", statement.sid
        assert not FORBIDDEN_STATEMENT_KEYS & set(statement.raw), statement.sid
        assert statement.actions and statement.resources, statement.sid
        for action in statement.actions:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", action), f"{statement.sid}: {action}"


@parametrize_functions
def test_star_resources_only_for_unscoped_actions(stack: Stack, spec: FunctionSpec) -> None:
    """Mutations caught: ``*`` added to a table statement; an extra action slipped into the
    X-Ray statement; EC2 describe rights on a function outside a VPC."""
    for statement in stack.statements(spec):
        if "*" not in statement.resources:
            continue
        assert statement.resources == ("*",), statement.sid
        assert frozenset(statement.actions) in STAR_STATEMENTS, statement.sid
        if set(statement.actions) <= VPC_ACTIONS:
            assert stack.function(spec).get("vpc_config"), f"{spec.key} is not in a VPC"


@parametrize_functions
def test_every_resource_is_this_stacks_own(stack: Stack, spec: FunctionSpec) -> None:
    """Mutations caught: a table ARN with ``*`` in it, another stack's table or log group
    (a data source or a literal ARN), logs on another function's group, ManageConnections on
    the REST API or on every stage, a model or knowledge base not in the config, and an action
    on a resource of the wrong kind (e.g. ``bedrock:Retrieve`` on a table)."""
    for statement in stack.statements(spec):
        if statement.resources == ("*",):
            continue
        for resource in statement.resources:
            try:
                kind = kind_of(stack, spec, resource)
            except UnknownReference as error:
                raise AssertionError(f"{spec.key} {statement.sid}: {error}") from None
            for action in statement.actions:
                assert KIND_ACTIONS[kind].fullmatch(action), f"{action} on a {kind}: {resource}"


@parametrize_functions
def test_bedrock_is_limited_to_the_configured_models(stack: Stack, spec: FunctionSpec) -> None:
    """Every configured model (and for a cross-region profile, the model in each region it
    routes to) is invocable with the function's model actions, the title model with
    ``converse``'s; a model outside the config is not.

    Mutations caught: a model dropped from the policy, a profile granted without its
    foundation model, ``foundation-model/*``, the title model missing from a chat function."""
    statements = stack.statements(spec)
    chat_actions = {a for s in statements if s.sid == "Models" for a in s.actions}
    for action in chat_actions:
        for model in stack.config.bedrock_models:
            for arn in model_arns(stack.region, model):
                assert allows(stack, statements, action, arn), f"{action} on {arn}"
    if chat_actions and stack.config.title_model_id:
        for arn in model_arns(stack.region, stack.config.title_model_id):
            assert allows(stack, statements, "bedrock:InvokeModel", arn), arn
    for action in model_actions(statements):
        for arn in model_arns(stack.region, UNCONFIGURED_MODEL):
            assert not allows(stack, statements, action, arn), f"{action} on {arn}"


@parametrize_functions
def test_retrieve_only_from_the_configured_knowledge_base(stack: Stack, spec: FunctionSpec) -> None:
    """Mutations caught: ``knowledge-base/*``; Retrieve granted when no knowledge base is
    configured; the knowledge base missing from a function that chats."""
    statements = stack.statements(spec)
    granted = {a for s in statements for a in s.actions}
    knowledge_base = stack.config.knowledge_base_id
    other = knowledge_base_arn(stack.region, OTHER_KNOWLEDGE_BASE)
    assert not allows(stack, statements, "bedrock:Retrieve", other)
    if knowledge_base and model_actions(statements):
        arn = knowledge_base_arn(stack.region, knowledge_base)
        assert allows(stack, statements, "bedrock:Retrieve", arn)
    elif not knowledge_base:
        assert "bedrock:Retrieve" not in granted


@parametrize_functions
def test_manage_connections_only_on_this_websocket_stage(stack: Stack, spec: FunctionSpec) -> None:
    """Only the WebSocket function may post to connections, and only on its API's stage.

    Mutations caught: the grant on the REST API, on ``*/@connections/*`` of every stage, or
    on another function's role."""
    statements = stack.statements(spec)
    stage = stack.websocket_stage()
    api = stack.api_id(stage.api_resource_id)
    base = f"arn:{PARTITION}:execute-api:{stack.region}:{ACCOUNT}"
    own = f"{base}:{api}/{stage.name}/POST/@connections/abc="
    granted = allows(stack, statements, "execute-api:ManageConnections", own)
    assert granted is (spec is WEBSOCKET)
    for elsewhere in (
        f"{base}:{api}/other-stage/POST/@connections/abc=",
        f"{base}:otherapi/{stage.name}/POST/@connections/abc=",
    ):
        assert not allows(stack, statements, "execute-api:ManageConnections", elsewhere)


@parametrize_functions
def test_apply_guardrail_only_on_the_configured_guardrail(stack: Stack, spec: FunctionSpec) -> None:
    """The functions that call a model may apply the configured guardrail and no other; with
    none configured, nobody may apply any.

    Mutations caught: ``guardrail/*`` or ``*`` as the resource, the statement missing from a
    function that chats, ApplyGuardrail granted without a guardrail or to the authorizer."""
    statements = stack.statements(spec)
    granted = {a for s in statements for a in s.actions}
    configured = stack.config.bedrock_guardrail_id
    assert not allows(
        stack, statements, "bedrock:ApplyGuardrail", guardrail_arn(stack.region, OTHER_GUARDRAIL)
    )
    if configured and model_actions(statements):
        arn = guardrail_arn(stack.region, configured)
        assert allows(stack, statements, "bedrock:ApplyGuardrail", arn)
        [statement] = [s for s in statements if "bedrock:ApplyGuardrail" in s.actions]
        assert (statement.actions, statement.resources) == (
            ("bedrock:ApplyGuardrail",),
            (
                f"arn:${{data.aws_partition.partition.partition}}:bedrock:{stack.region}:"
                f"${{data.aws_caller_identity.caller.account_id}}:guardrail/{configured}",
            ),
        )
    else:
        assert "bedrock:ApplyGuardrail" not in granted


# What a chat turn of main's POST .../messages does, and websocket's streamed one. Nothing of
# listing or deleting sessions, DELETE /me, GET /usage, pagination or @connections.
CHAT_TURN_EXCLUDES = {
    "dynamodb:DeleteItem": ("sessions", "connections"),
    "dynamodb:Query": ("/index/",),
    "dynamodb:GetItem": ("usage", "connections"),
    "dynamodb:PutItem": ("connections",),
}
NOT_A_CHAT_TURN = {"bedrock:ListKnowledgeBases", "kms:GenerateMac", "execute-api:ManageConnections"}


def test_the_openai_function_may_do_no_more_than_a_chat_turn(stack: Stack) -> None:
    """Its role is bounded by the chat functions': every action on every resource it is
    granted, main or websocket is granted too (its own log group aside), and none of what only
    main's other routes or websocket's connections need. Mutations caught: the openai-api role
    given main's whole table grants (DeleteItem on sessions, the UserIndex query), GenerateMac on
    the pagination key, ListKnowledgeBases, ManageConnections, a model or table no chat function
    may use. Its own code paths, run against enforcing moto, belong in test_least_privilege once
    its app lands."""
    chat = stack.statements(MAIN) + stack.statements(WEBSOCKET)
    statements = stack.statements(OPENAI_API)
    assert model_actions(statements) == {
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
    }
    for statement in statements:
        assert not NOT_A_CHAT_TURN & set(statement.actions), statement.sid
        if statement.sid == "Logs" or statement.resources == ("*",):
            continue
        for resource in statement.resources:
            arn = stack.concrete(resource)
            for action in statement.actions:
                assert allows(stack, chat, action, arn), f"{action} on {arn}"
                excluded = CHAT_TURN_EXCLUDES.get(action, ())
                assert not [part for part in excluded if part in arn], f"{action} on {arn}"
    stars = {frozenset(s.actions) for s in statements if s.resources == ("*",)}
    assert stars <= {frozenset(s.actions) for s in chat if s.resources == ("*",)}
