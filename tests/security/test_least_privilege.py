"""Each function's real code paths, run with only its synthesized statements.

moto enforces IAM on DynamoDB and bedrock-agent (actions only: its DynamoDB checks use resource
``*``, hence the widened statements). For every call, including those to the services moto
cannot enforce (Bedrock runtime and agent runtime, the WebSocket management API), the recorded
call is checked against the real statements: the action, and the ARN the request names. The
other way round, every granted action (and every granted table or index) must be used by some
code path, or by AWS on the function's behalf for a setting it has.
"""

from __future__ import annotations

import pytest

from functions.contract import CLEANUP, MAIN, OPENAI_API, SESSIONS, WEBSOCKET, FunctionSpec
from tests.compute.synth import STACKS
from tests.security.code_paths import NEVER_GRANTED, Run
from tests.security.enforcing_moto import moto_action
from tests.security.iam import Call, allows, authorizations, request_arns
from tests.security.synthesized import ACCOUNT, PARTITION, Stack

pytestmark = STACKS

CODE_FUNCTIONS = (MAIN, WEBSOCKET, OPENAI_API, CLEANUP)  # the authorizer makes no AWS call
# What Lambda's event source mapping does with the role of the function it feeds.
STREAM_ACTIONS = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)
parametrize_functions = pytest.mark.parametrize("spec", CODE_FUNCTIONS, ids=lambda s: s.key)


def granted_actions(stack: Stack, spec: FunctionSpec) -> set[str]:
    return {action for statement in stack.statements(spec) for action in statement.actions}


def checks(run: Run, spec: FunctionSpec) -> list[tuple[str, str]]:
    """Every (action, ARN) IAM authorized the function's recorded calls by."""
    stack = run.stack
    api_id = stack.api_id(stack.websocket_stage().api_resource_id)
    return [
        check
        for call in run.functions[spec.key].calls
        for check in authorizations(stack, call, api_id)
    ]


def called_actions(run: Run, spec: FunctionSpec) -> set[str]:
    return {action for action, _ in checks(run, spec)}


def mapping_calls(run: Run, spec: FunctionSpec) -> list[Call]:
    return run.functions[spec.key].mapping_calls


def mappings_of(stack: Stack, spec: FunctionSpec) -> list[dict]:
    function = f"${{aws_lambda_function.{stack.function_id(spec)}.arn}}"
    mappings = stack.resources("aws_lambda_event_source_mapping").values()
    return [m for m in mappings if m["function_name"] == function]


def platform_actions(stack: Stack, spec: FunctionSpec) -> dict[str, str]:
    """Actions AWS performs with the function's role rather than the code, each with the
    synthesized setting that needs it."""
    function = stack.function(spec)
    needs: dict[str, str] = {
        # The Lambda service writes the function's logs with its role.
        "logs:CreateLogStream": "logging",
        "logs:PutLogEvents": "logging",
    }
    if function.get("tracing_config", {}).get("mode") == "Active":
        needs |= {"xray:PutTraceSegments": "tracing", "xray:PutTelemetryRecords": "tracing"}
    if function.get("kms_key_arn"):
        needs["kms:Decrypt"] = "environment variables encrypted with kms_key_arn"
    encrypted = {
        name
        for name, table in stack.tables().items()
        if table.get("server_side_encryption", {}).get("kms_key_arn")
    }
    variables = stack.environment(spec, websocket_callback_url="")
    if encrypted & set(variables.values()):
        needs["kms:Decrypt"] = "tables encrypted with the stack key"
        needs["kms:GenerateDataKey"] = "tables encrypted with the stack key"
    for mapping in mappings_of(stack, spec):
        if ":dynamodb:" in stack.concrete(mapping["event_source_arn"]):
            needs |= dict.fromkeys(STREAM_ACTIONS, "a mapping from a DynamoDB stream")
        if mapping.get("destination_config", {}).get("on_failure"):
            needs["sqs:SendMessage"] = "the mapping's on-failure destination (an SQS queue)"
            needs["kms:GenerateDataKey"] = "the failure queue is encrypted with the stack key"
    if function.get("vpc_config"):
        vpc = (
            "ec2:CreateNetworkInterface",
            "ec2:DeleteNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        )
        needs |= dict.fromkeys(vpc, "vpc_config (Lambda manages the function's ENIs)")
    return needs


def test_every_code_path_succeeds_under_enforcement(run: Run) -> None:
    """Mutations caught: a DynamoDB or bedrock-agent action the code needs removed from a
    statement (BatchWriteItem from main: DELETE answers 500; ListKnowledgeBases in prod), a
    table env var wired to the wrong table, a callback URL of another stage."""
    failed = [step for step in run.steps if not step.ok]
    assert not failed, "\n".join(f"{s.function} {s.name}: {s.detail}" for s in failed)
    assert {step.function for step in run.steps} == {spec.key for spec in CODE_FUNCTIONS}


def test_actions_outside_the_policy_are_refused(run: Run) -> None:
    """Scan and DeleteTable, sent first after the setup budget, are refused to every function,
    and so is every DynamoDB action only another function holds (websocket has no
    BatchWriteItem; the authorizer touches no table): enforcement was live for every call.

    Mutations caught: a policy granting ``dynamodb:*`` or one function's actions to another;
    a setup budget too large, which would let the functions' calls through unchecked."""
    for function in ("main", "websocket", "openai_api", "authorizer", "cleanup"):
        for action in NEVER_GRANTED:
            assert (function, action) in run.refusals
    assert ("websocket", "dynamodb:BatchWriteItem") in run.refusals
    for function in (
        "main",
        "websocket",
        "openai_api",
        "authorizer",
    ):  # only the cleanup's mapping reads
        for action in (*STREAM_ACTIONS, "sqs:SendMessage"):
            assert (function, action) in run.refusals
    for (function, action), answer in run.refusals.items():
        assert answer.startswith("403 "), f"{function} was allowed {action}: {answer!r}"
        assert f"is not authorized to perform: {moto_action(action)}" in answer, answer


@parametrize_functions
def test_every_called_action_is_granted(run: Run, spec: FunctionSpec) -> None:
    """Including the calls moto cannot enforce: Converse(Stream), Retrieve,
    PostToConnection, and ApplyGuardrail for a model call with a guardrail. Mutations caught:
    ``bedrock:InvokeModelWithResponseStream`` or ``execute-api:ManageConnections`` dropped
    from the websocket role, the guardrail statement dropped (prod)."""
    missing = called_actions(run, spec) - granted_actions(run.stack, spec)
    assert not missing, f"{spec.key} calls {sorted(missing)} without a grant"


@parametrize_functions
def test_every_call_names_a_granted_resource(run: Run, spec: FunctionSpec) -> None:
    """Each recorded call's ARNs (table or index, model and the regions a profile routes to,
    knowledge base, the connection on this stage, the guardrail) are allowed by the real
    statements.

    Mutations caught: the UserIndex ARN dropped from the sessions statement, the messages
    table missing from websocket's, a profile granted in one region only, ManageConnections
    on another stage, ApplyGuardrail on another guardrail."""
    stack, statements = run.stack, run.stack.statements(spec)
    for action, arn in checks(run, spec):
        assert allows(stack, statements, action, arn), f"{action} on {arn}"


@parametrize_functions
def test_model_calls_carry_the_configured_guardrail(run: Run, spec: FunctionSpec) -> None:
    """With a guardrail configured (prod), every model call names it, so ApplyGuardrail on
    exactly its ARN is what the role needs; without one (dev), none does. Mutations caught:
    the guardrail's variables not wired to the functions, or the code leaving it out of a
    call."""
    guardrail = run.stack.config.bedrock_guardrail_id
    model_calls = [c for c in run.functions[spec.key].calls if c.service == "bedrock-runtime"]
    assert bool(model_calls) is (spec is not CLEANUP)
    for call in model_calls:
        config = call.params.get("guardrailConfig")
        named = config and (config["guardrailIdentifier"], config["guardrailVersion"])
        expected = guardrail and (guardrail, run.stack.config.bedrock_guardrail_version)
        assert named == expected, call.params


def _unused(run: Run, spec: FunctionSpec) -> set[str]:
    platform = platform_actions(run.stack, spec)
    return granted_actions(run.stack, spec) - called_actions(run, spec) - set(platform)


@parametrize_functions
def test_every_granted_action_is_used(run: Run, spec: FunctionSpec) -> None:
    """Every action of the role is called by some code path, or used by AWS on the function's
    behalf for a setting the function has (logs, tracing, encryption, VPC).

    Mutations caught: a leftover grant (``dynamodb:Scan``, ``bedrock:Retrieve`` without a
    knowledge base), VPC rights on a function outside a VPC."""
    unused = _unused(run, spec)
    assert not unused, f"{spec.key} is granted {sorted(unused)} but nothing uses them"


@parametrize_functions
def test_every_granted_table_resource_is_used(run: Run, spec: FunctionSpec) -> None:
    """Each (DynamoDB action, table or index ARN) pair of the role is used by some call.

    Mutations caught: a table granted to a function that never touches it, Query granted on
    a base table that is only queried through an index."""
    stack = run.stack
    api_id = stack.api_id(stack.websocket_stage().api_resource_id)
    used = {
        (call.action, arn)
        for call in [*run.functions[spec.key].calls, *mapping_calls(run, spec)]
        for arn in request_arns(stack, call, api_id)
    }
    granted = {
        (action, stack.concrete(resource))
        for statement in stack.statements(spec)
        for action in statement.actions
        if action.startswith("dynamodb:")
        for resource in statement.resources
    }
    unused = sorted(granted - used)
    assert not unused, f"{spec.key} is granted, but never uses: {unused}"


def test_the_mapping_needs_exactly_the_stream_and_queue_grants(run: Run) -> None:
    """The cleanup's mapping, driven with the cleanup's credentials under enforcement, read
    the stream and sent a failure to the queue: each of its calls is allowed by the real
    statements (the action, and the stream or queue it names), and together they use every
    stream and queue action of the role.

    Mutations caught: GetRecords or ListStreams dropped, the stream grant on another table's
    stream, SendMessage on another queue, a leftover stream or SQS action."""
    stack, statements = run.stack, run.stack.statements(CLEANUP)
    calls = mapping_calls(run, CLEANUP)
    assert calls, "the mapping made no call: the cleanup run is broken"
    for call in calls:
        for arn in request_arns(stack, call, ""):
            assert allows(stack, statements, call.action, arn), f"{call.action} on {arn}"
    granted = {a for s in statements for a in s.actions if a in STREAM_ACTIONS or "sqs:" in a}
    assert granted == {call.action for call in calls} == {*STREAM_ACTIONS, "sqs:SendMessage"}


def test_cleanup_cannot_touch_the_sessions_items(run: Run) -> None:
    """It reads the removed session's key from the stream, never the table. Mutations
    caught: any item action on the sessions table or its index, the table granted instead of
    its stream, Scan."""
    stack, statements = run.stack, run.stack.statements(CLEANUP)
    sessions = stack.table_names()[SESSIONS.env]
    table = f"arn:{PARTITION}:dynamodb:{stack.region}:{ACCOUNT}:table/{sessions}"
    items = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchWriteItem")
    for action in items:
        for arn in (table, f"{table}/index/UserIndex"):
            assert not allows(stack, statements, f"dynamodb:{action}", arn), f"{action} on {arn}"
    for action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan"):
        assert run.refusals[CLEANUP.key, f"dynamodb:{action}"].startswith("403 ")
    assert {call.action for call in run.functions[CLEANUP.key].calls} == {
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
        "s3:ListBucket",  # the removed session's attachments
        "s3:DeleteObject",
    }
