"""IAM semantics the tests need: which action an SDK call is authorized as, which ARNs it
names, and whether a policy's statements allow that (action, ARN) pair.

The mapping from API operation to IAM action and the ARNs each request names are AWS's rules,
written down here independently of ``compute/security.py``, so the tests judge the stack's
policies rather than repeat them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.security.synthesized import ACCOUNT, PARTITION, STREAM_LABEL, Stack, Statement

# Operations whose IAM action is not "<signing name>:<operation>" (Service Authorization
# Reference). Every other recorded operation maps to its signing name and operation name, as
# DynamoDB's do (dynamodb:GetItem).
_ACTIONS: dict[tuple[str, str], str] = {
    ("bedrock-runtime", "Converse"): "bedrock:InvokeModel",
    ("bedrock-runtime", "ConverseStream"): "bedrock:InvokeModelWithResponseStream",
    ("bedrock-agent-runtime", "Retrieve"): "bedrock:Retrieve",
    ("bedrock-agent", "ListKnowledgeBases"): "bedrock:ListKnowledgeBases",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "DeleteObjects"): "s3:DeleteObject",  # authorized per key
    ("apigatewaymanagementapi", "PostToConnection"): "execute-api:ManageConnections",
    ("apigatewaymanagementapi", "GetConnection"): "execute-api:ManageConnections",
    ("apigatewaymanagementapi", "DeleteConnection"): "execute-api:ManageConnections",
}
_CONNECTION_METHODS = {
    "PostToConnection": "POST",
    "GetConnection": "GET",
    "DeleteConnection": "DELETE",
}
# Regions a cross-region inference profile may route to; IAM checks the foundation model in
# each (Bedrock user guide, "Prerequisites for inference profiles").
_PROFILE_REGIONS = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-southeast-1", "ap-southeast-2"),
}


@dataclass(frozen=True)
class Call:
    """One SDK call a function made: service, operation, its API parameters and the URL."""

    service: str  # botocore service name, e.g. "bedrock-runtime"
    signing_name: str  # the IAM service prefix botocore signs with, e.g. "bedrock"
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    url: str = ""

    @property
    def action(self) -> str:
        return _ACTIONS.get((self.service, self.operation), f"{self.signing_name}:{self.operation}")


def wildcard_match(pattern: str, value: str) -> bool:
    """IAM's ARN matching: ``*`` is any run of characters, ``?`` any one, case-sensitive."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def allows(stack: Stack, statements: Iterable[Statement], action: str, arn: str) -> bool:
    """Whether some statement allows ``action`` on ``arn`` (actions hold no wildcard here)."""
    return any(
        action in statement.actions
        and any(wildcard_match(stack.concrete(resource), arn) for resource in statement.resources)
        for statement in statements
    )


def model_arns(region: str, model_id: str) -> list[str]:
    """Every ARN IAM evaluates when a request names ``model_id``."""
    geography, _, base = model_id.partition(".")
    if geography in _PROFILE_REGIONS and "." in base:
        profile = f"arn:{PARTITION}:bedrock:{region}:{ACCOUNT}:inference-profile/{model_id}"
        models = [
            f"arn:{PARTITION}:bedrock:{target}::foundation-model/{base}"
            for target in _PROFILE_REGIONS[geography]
        ]
        return [profile, *models]
    return [f"arn:{PARTITION}:bedrock:{region}::foundation-model/{model_id}"]


def knowledge_base_arn(region: str, knowledge_base_id: str) -> str:
    return f"arn:{PARTITION}:bedrock:{region}:{ACCOUNT}:knowledge-base/{knowledge_base_id}"


def guardrail_arn(region: str, guardrail_id: str) -> str:
    return f"arn:{PARTITION}:bedrock:{region}:{ACCOUNT}:guardrail/{guardrail_id}"


def authorizations(stack: Stack, call: Call, websocket_api_id: str) -> list[tuple[str, str]]:
    """Every (action, ARN) IAM authorizes a recorded call by, all of which must be allowed:
    the call's own action on each ARN it names, and for a model call that carries a guardrail
    (``guardrailConfig``), ``bedrock:ApplyGuardrail`` on that guardrail (Bedrock user guide,
    guardrails with the Converse API: the caller needs ApplyGuardrail on it)."""
    checks = [(call.action, arn) for arn in request_arns(stack, call, websocket_api_id)]
    guardrail = call.params.get("guardrailConfig") if call.service == "bedrock-runtime" else None
    if guardrail:
        arn = guardrail_arn(stack.region, guardrail["guardrailIdentifier"])
        checks.append(("bedrock:ApplyGuardrail", arn))
    return checks


def request_arns(  # noqa: PLR0911 - one rule per service, as AWS's reference lists them
    stack: Stack, call: Call, websocket_api_id: str
) -> list[str]:
    """The ARNs a recorded call is authorized against (all must be allowed)."""
    region, params = stack.region, call.params
    if call.service == "dynamodb":
        tables = list(params["RequestItems"]) if "RequestItems" in params else [params["TableName"]]
        arns = [f"arn:{PARTITION}:dynamodb:{region}:{ACCOUNT}:table/{name}" for name in tables]
        if params.get("IndexName"):
            arns = [f"{arn}/index/{params['IndexName']}" for arn in arns]
        return arns
    if call.service in ("dynamodbstreams", "sqs"):
        return _event_source_arns(call, region)
    if call.service == "bedrock-runtime":
        return model_arns(region, params["modelId"])
    if call.service == "bedrock-agent-runtime":
        return [knowledge_base_arn(region, params["knowledgeBaseId"])]
    if call.service == "bedrock-agent":
        return ["*"]  # List* actions have no resource-level permissions
    if call.service == "kms":
        # KMS authorizes a request on the key it names; the code names keys by ARN only.
        key = params["KeyId"]
        assert key.startswith("arn:"), f"{call.operation} names {key!r}, not a key ARN"
        return [key]
    if call.service == "s3":
        # Listing is authorized on the bucket, object actions on each object's ARN (S3 has no
        # region or account in its ARNs).
        bucket = f"arn:{PARTITION}:s3:::{params['Bucket']}"
        if call.operation == "ListObjectsV2":
            return [bucket]
        if call.operation == "DeleteObjects":
            return [f"{bucket}/{item['Key']}" for item in params["Delete"]["Objects"]]
        return [f"{bucket}/{params['Key']}"]
    if call.service == "apigatewaymanagementapi":
        stage = re.sub(r"^https?://[^/]+/", "", call.url).split("/@connections/")[0]
        method = _CONNECTION_METHODS[call.operation]
        return [
            f"arn:{PARTITION}:execute-api:{region}:{ACCOUNT}:{websocket_api_id}/{stage}/{method}"
            f"/@connections/{params['ConnectionId']}"
        ]
    raise AssertionError(f"no ARN rule for {call.service}:{call.operation}; add one to iam.py")


def _event_source_arns(call: Call, region: str) -> list[str]:
    """The ARNs of what a stream mapping does with a function's role: read the stream, send
    a failed batch to its on-failure queue."""
    params = call.params
    if call.service == "sqs":
        name = params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return [f"arn:{PARTITION}:sqs:{region}:{ACCOUNT}:{name}"]
    # GetRecords names its stream through the iterator: opaque in AWS (IAM still authorizes
    # the stream), "<stream ARN>|1|<id>" in moto.
    stream = params.get("StreamArn") or params.get("ShardIterator", "").split("|", 1)[0]
    if stream.startswith("arn:"):
        # The label is the time AWS (here moto) enabled the stream; the stack names the
        # stream by reference, made concrete with STREAM_LABEL.
        return [re.sub(r"/stream/[^/]+$", f"/stream/{STREAM_LABEL}", stream)]
    if call.operation == "ListStreams":  # authorized on the table's streams
        table = params["TableName"]
        return [f"arn:{PARTITION}:dynamodb:{region}:{ACCOUNT}:table/{table}/stream/*"]
    raise AssertionError(f"no ARN rule for {call.service}:{call.operation}; add one to iam.py")
