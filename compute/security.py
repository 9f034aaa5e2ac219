"""IAM for the functions: one least-privilege role per function, or, when the AI-services
layer hands us its role, an inline policy on that role for what only this stack knows.

Every statement names this stack's own resources by reference. The few ``*`` resources
are the actions AWS does not scope to a resource (X-Ray writes, describing subnets and
network interfaces for VPC functions, listing knowledge bases), each commented where it is
granted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cdktf import Fn
from constructs import Construct

from compute.config import ComputeConfig
from compute.provider import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    DataAwsIamPolicyDocumentStatementCondition,
    DataAwsIamPolicyDocumentStatementPrincipals,
    DynamodbTable,
    IamRole,
    IamRolePolicy,
)
from functions.contract import (
    ATTACHMENTS_ROOT,
    AUTHORIZER,
    CLEANUP,
    FUNCTIONS,
    INFERENCE_PROFILE_PREFIXES,
    MAIN,
    OPENAI_API,
    SESSIONS,
    TABLES,
    USER_CONNECTIONS,
    USER_INDEX,
    WEBSOCKET,
)

# What each function's code calls on each table, and on each index as "<table>/<index>"
# (see the repositories in functions/data/; tests/security proves it against the code's real calls).
TABLE_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    MAIN.key: {
        "sessions": (
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
            "dynamodb:ConditionCheckItem",  # a turn's transactions fence on the session
        ),
        f"sessions/{USER_INDEX.name}": ("dynamodb:Query",),
        # Turns (PutItem), listings, exports and the feedback's lookup (Query); feedback, and
        # a regenerate or edit marking the replaced turn superseded (UpdateItem); deletes: the
        # session cleanup
        "messages": ("dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"),
        "connections": ("dynamodb:DeleteItem",),  # DELETE /me
        f"connections/{USER_CONNECTIONS.name}": ("dynamodb:Query",),
        # Idempotency-Key: claim, result, release (functions/data/idempotency.py)
        "idempotency": ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        # Budgets: reserve and settle (UpdateItem), GET /usage (GetItem); answer leases: take
        # (PutItem) and free (DeleteItem) (functions/data/quota.py)
        "usage": (
            "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem",
        ),
    },
    WEBSOCKET.key: {
        "sessions": ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"),
        # get: replay; update: a regenerate or edit, as main
        "messages": (
            "dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:UpdateItem",
        ),
        "connections": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"),
        "idempotency": ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        # Budgets and leases as main; a streamed answer's record and the look for a cancel
        # (GetItem, functions/data/answers.py)
        "usage": (
            "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem",
        ),
    },
    AUTHORIZER.key: {},
    # A chat turn, as main's POST .../messages takes one: a session-bound turn loads, fences and
    # touches its session and stores question and answer; a stateless one only budgets and
    # leases; both claim their Idempotency-Key. Nothing of listing, deleting or GET /usage.
    OPENAI_API.key: {
        "sessions": ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"),
        "messages": ("dynamodb:PutItem", "dynamodb:Query"),
        "idempotency": ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        "usage": ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"),
    },
    # MessageRepository.delete_all: Query the session's keys, BatchWriteItem the deletes. Not
    # one item action on the sessions table: the removed session's key is in the record.
    CLEANUP.key: {"messages": ("dynamodb:Query", "dynamodb:BatchWriteItem")},
}  # fmt: skip
BEDROCK_ACTIONS: dict[str, tuple[str, ...]] = {
    MAIN.key: ("bedrock:InvokeModel",),  # converse
    WEBSOCKET.key: ("bedrock:InvokeModelWithResponseStream",),  # converse_stream
    AUTHORIZER.key: (),
    CLEANUP.key: (),
    # converse for "stream": false, converse_stream for "stream": true
    OPENAI_API.key: ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"),
}


@dataclass(frozen=True)
class Grants:
    """The ARNs the policies name; all are Terraform references or built from them."""

    partition: str
    account_id: str
    tables: dict[str, DynamodbTable]
    log_group_arns: dict[str, str]
    knowledge_base_id: str | None
    websocket_connections_arn: str  # execute-api ARN of this API's stage's @connections
    vpc: bool
    key_arn: str  # the stack's KMS key: environment variables and tables
    cleanup_failures_arn: str  # the SQS queue the sessions stream mapping sends failures to
    pagination_key_arn: str  # the HMAC key main derives its next_token signing key from
    attachments_bucket_arn: str  # the bucket of attachment uploads (compute/attachments.py)


def assume_role_policy(scope: Construct, id_: str, service: str) -> DataAwsIamPolicyDocument:
    return DataAwsIamPolicyDocument(
        scope,
        id_,
        statement=[
            DataAwsIamPolicyDocumentStatement(
                actions=["sts:AssumeRole"],
                principals=[
                    DataAwsIamPolicyDocumentStatementPrincipals(
                        type="Service", identifiers=[service]
                    )
                ],
            )
        ],
    )


class FunctionRoles(Construct):
    """The role each function runs with, and the policy that lets it do its job."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: ComputeConfig,
        grants: Grants,
        external_role_arn: str | None,
    ) -> None:
        super().__init__(scope, id_)
        self._config = config
        self._grants = grants
        self.role_arns: dict[str, str] = {}
        self.policies: dict[str, IamRolePolicy] = {}  # function key -> the policy it runs with
        if external_role_arn:
            self._extend_external_role(external_role_arn)
        else:
            self._create_roles()

    def _create_roles(self) -> None:
        trust = assume_role_policy(self, "lambda-trust", "lambda.amazonaws.com")
        for spec in FUNCTIONS:
            role = IamRole(
                self,
                f"{spec.key}-role",
                name=f"{self._config.prefix}-{spec.suffix}",
                assume_role_policy=trust.json,
            )
            document = DataAwsIamPolicyDocument(
                self,
                f"{spec.key}-policy-document",
                statement=self._statements([spec.key], own_only=False),
            )
            self.policies[spec.key] = IamRolePolicy(
                self,
                f"{spec.key}-policy",
                role=role.id,
                name="least-privilege",
                policy=document.json,
            )
            self.role_arns[spec.key] = role.arn

    def _extend_external_role(self, role_arn: str) -> None:
        """The outer module grants Bedrock; it cannot know our tables, logs or WebSocket API."""
        keys = [spec.key for spec in FUNCTIONS]
        document = DataAwsIamPolicyDocument(
            self, "external-role-document", statement=self._statements(keys, own_only=True)
        )
        role_name = Fn.element(Fn.reverse(Fn.split("/", role_arn)), 0)
        policy = IamRolePolicy(
            self,
            "external-role-policy",
            role=role_name,
            name=f"{self._config.prefix}-compute",
            policy=document.json,
        )
        self.role_arns = {key: role_arn for key in keys}
        self.policies = {key: policy for key in keys}

    def _statements(
        self, keys: list[str], *, own_only: bool
    ) -> list[DataAwsIamPolicyDocumentStatement]:
        statements = [self._logs(keys), self._encryption(keys)]
        statements += self._tables(keys)
        if MAIN.key in keys:
            # functions/data/pagination.py: one GenerateMac per container, on this key only.
            statements.append(
                DataAwsIamPolicyDocumentStatement(
                    sid="PaginationKey",
                    actions=["kms:GenerateMac"],
                    resources=[self._grants.pagination_key_arn],
                )
            )
        if MAIN.key in keys:
            statements.append(self._attachment_uploads())
        if {MAIN.key, WEBSOCKET.key, OPENAI_API.key} & set(keys):
            statements.append(self._attachment_reads())
        if WEBSOCKET.key in keys:
            statements.append(
                DataAwsIamPolicyDocumentStatement(
                    sid="WebSocketCallbacks",
                    actions=["execute-api:ManageConnections"],
                    resources=[self._grants.websocket_connections_arn],
                )
            )
        if CLEANUP.key in keys:
            statements += self._sessions_stream()
            statements += self._attachment_cleanup()
        if own_only:
            return statements
        statements += self._bedrock(keys)
        # X-Ray accepts segments only on resource "*".
        statements.append(
            DataAwsIamPolicyDocumentStatement(
                sid="Tracing",
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                resources=["*"],
            )
        )
        if self._grants.vpc:
            statements += self._vpc()
        return statements

    def _vpc(self) -> list[DataAwsIamPolicyDocumentStatement]:
        """Lambda manages a VPC function's network interfaces with the function's role."""
        grants = self._grants
        ec2 = f"arn:{grants.partition}:ec2:{self._config.aws_region}:{grants.account_id}"
        return [
            DataAwsIamPolicyDocumentStatement(
                sid="VpcNetworkInterfaces",
                actions=[
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                # This account and region only; the subnets may come from remote state.
                resources=[
                    f"{ec2}:network-interface/*",
                    f"{ec2}:subnet/*",
                    f"{ec2}:security-group/*",
                ],
            ),
            # Describe calls have no resource-level permissions in EC2.
            DataAwsIamPolicyDocumentStatement(
                sid="VpcDescribe",
                actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                resources=["*"],
            ),
        ]

    def _sessions_stream(self) -> list[DataAwsIamPolicyDocumentStatement]:
        """What Lambda's event source mapping does with the cleanup function's role: read the
        sessions table's stream, and send what it could not process to the failure queue
        (encrypted with the stack's key, hence GenerateDataKey in ``StackKey``)."""
        sessions = self._grants.tables[SESSIONS.suffix]
        return [
            DataAwsIamPolicyDocumentStatement(
                sid="SessionsStream",
                actions=[
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                ],
                resources=[sessions.stream_arn],
            ),
            # Listing names no stream yet: scoped to this table's streams, as AWS documents it.
            DataAwsIamPolicyDocumentStatement(
                sid="SessionsStreams",
                actions=["dynamodb:ListStreams"],
                resources=[f"{sessions.arn}/stream/*"],
            ),
            DataAwsIamPolicyDocumentStatement(
                sid="CleanupFailures",
                actions=["sqs:SendMessage"],
                resources=[self._grants.cleanup_failures_arn],
            ),
        ]

    def _attachment_uploads(self) -> DataAwsIamPolicyDocumentStatement:
        """The presigned POSTs main signs are authorized as PutObject with main's role, so the
        role may put objects under the sessions' prefixes only (SSE-KMS under the stack key:
        GenerateDataKey, which ``_encryption`` grants main for its tables)."""
        return DataAwsIamPolicyDocumentStatement(
            sid="AttachmentUploads",
            actions=["s3:PutObject"],
            resources=[f"{self._grants.attachments_bucket_arn}/{ATTACHMENTS_ROOT}*"],
        )

    def _attachment_reads(self) -> DataAwsIamPolicyDocumentStatement:
        """A question's attachments are read before its model call (functions/chat/attachments.py):
        GetObject under the sessions' prefixes only (SSE-KMS: ``kms:Decrypt`` on the stack key,
        which ``_encryption`` grants every role)."""
        return DataAwsIamPolicyDocumentStatement(
            sid="AttachmentReads",
            actions=["s3:GetObject"],
            resources=[f"{self._grants.attachments_bucket_arn}/{ATTACHMENTS_ROOT}*"],
        )

    def _attachment_cleanup(self) -> list[DataAwsIamPolicyDocumentStatement]:
        """A removed session's attachments: list its prefix (only prefixes under the sessions
        root may be listed) and delete what is there (DeleteObjects is authorized per key)."""
        bucket = self._grants.attachments_bucket_arn
        return [
            DataAwsIamPolicyDocumentStatement(
                sid="AttachmentListing",
                actions=["s3:ListBucket"],
                resources=[bucket],
                condition=[
                    DataAwsIamPolicyDocumentStatementCondition(
                        test="StringLike", variable="s3:prefix", values=[f"{ATTACHMENTS_ROOT}*"]
                    )
                ],
            ),
            DataAwsIamPolicyDocumentStatement(
                sid="AttachmentDeletes",
                actions=["s3:DeleteObject"],
                resources=[f"{bucket}/{ATTACHMENTS_ROOT}*"],
            ),
        ]

    def _encryption(self, keys: list[str]) -> DataAwsIamPolicyDocumentStatement:
        """Decrypt the environment variables; read and write tables encrypted with the key."""
        actions = {"kms:Decrypt"}
        if any(TABLE_ACTIONS[key] for key in keys):
            actions.add("kms:GenerateDataKey")
        return DataAwsIamPolicyDocumentStatement(
            sid="StackKey", actions=sorted(actions), resources=[self._grants.key_arn]
        )

    def _logs(self, keys: list[str]) -> DataAwsIamPolicyDocumentStatement:
        return DataAwsIamPolicyDocumentStatement(
            sid="Logs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[f"{self._grants.log_group_arns[key]}:*" for key in keys],
        )

    def _tables(self, keys: list[str]) -> list[DataAwsIamPolicyDocumentStatement]:
        statements = []
        for schema in TABLES:
            arn = self._grants.tables[schema.suffix].arn
            targets = [(schema.suffix, f"Table{schema.suffix.title()}", arn)]
            targets += [
                (f"{schema.suffix}/{index.name}", f"Index{index.name}", f"{arn}/index/{index.name}")
                for index in schema.indexes
            ]
            for target, sid, resource in targets:
                actions = {action for key in keys for action in TABLE_ACTIONS[key].get(target, ())}
                if actions:
                    statements.append(
                        DataAwsIamPolicyDocumentStatement(
                            sid=sid, actions=sorted(actions), resources=[resource]
                        )
                    )
        return statements

    def _bedrock(self, keys: list[str]) -> list[DataAwsIamPolicyDocumentStatement]:
        actions = sorted({action for key in keys for action in BEDROCK_ACTIONS[key]})
        if not actions:
            return []
        statements = [
            DataAwsIamPolicyDocumentStatement(
                sid="Models", actions=actions, resources=self.model_arns()
            )
        ]
        if self._config.title_model_id:
            # Session titles: one converse call on the title model after a complete answer
            # (functions/chat/titles.py), from every chat function, the streaming one too.
            statements.append(
                DataAwsIamPolicyDocumentStatement(
                    sid="TitleModel",
                    actions=["bedrock:InvokeModel"],
                    resources=self._arns_of((self._config.title_model_id,)),
                )
            )
        # Only the functions that converse with a model (main, websocket, openai-api) have
        # actions here.
        if self._grants.knowledge_base_id:
            statements.append(
                DataAwsIamPolicyDocumentStatement(
                    sid="KnowledgeBase",
                    actions=["bedrock:Retrieve"],
                    resources=[self.knowledge_base_arn()],
                )
            )
        if self._config.bedrock_guardrail_id:
            # Every model call carries the guardrail (guardrailConfig), which IAM authorizes
            # as ApplyGuardrail on that guardrail.
            statements.append(
                DataAwsIamPolicyDocumentStatement(
                    sid="Guardrail",
                    actions=["bedrock:ApplyGuardrail"],
                    resources=[self.guardrail_arn(self._config.bedrock_guardrail_id)],
                )
            )
        if MAIN.key in keys and self._grants.knowledge_base_id:
            # GET /knowledge-bases (answered empty when knowledge bases are off);
            # ListKnowledgeBases has no resource-level permissions.
            statements.append(
                DataAwsIamPolicyDocumentStatement(
                    sid="ListKnowledgeBases",
                    actions=["bedrock:ListKnowledgeBases"],
                    resources=["*"],
                )
            )
        return statements

    def model_arns(self) -> list[str]:
        """Foundation-model ARNs, plus the profile ARN for cross-region inference profiles."""
        return self._arns_of(self._config.bedrock_models)

    def _arns_of(self, models: Iterable[str]) -> list[str]:
        """The ARNs IAM checks when a request names one of ``models``."""
        grants, region = self._grants, self._config.aws_region
        arns: list[str] = []
        for model in models:
            profile = model.startswith(INFERENCE_PROFILE_PREFIXES)
            if profile:
                arns.append(
                    f"arn:{grants.partition}:bedrock:{region}:{grants.account_id}:inference-profile/{model}"
                )
                base = model.split(".", 1)[1]
                arns.append(f"arn:{grants.partition}:bedrock:*::foundation-model/{base}")
            else:
                arns.append(f"arn:{grants.partition}:bedrock:{region}::foundation-model/{model}")
        return arns

    def guardrail_arn(self, guardrail_id: str) -> str:
        grants = self._grants
        return (
            f"arn:{grants.partition}:bedrock:{self._config.aws_region}:{grants.account_id}"
            f":guardrail/{guardrail_id}"
        )

    def knowledge_base_arn(self) -> str:
        grants = self._grants
        return (
            f"arn:{grants.partition}:bedrock:{self._config.aws_region}:{grants.account_id}"
            f":knowledge-base/{grants.knowledge_base_id}"
        )
