"""The stack's customer-managed KMS key: tables, log groups, Lambda environment variables
and the alarm topic are all encrypted with it.

The key policy is an ``aws_kms_key_policy`` of its own rather than the key's ``policy``
argument, so that every statement can name the key's own ARN: in a key policy that is
exactly what ``"*"`` means ("this key"), but scanners reading the policy document cannot
know the document belongs to a key and would flag ``"*"`` as unscoped. The key starts with
KMS's default policy (the account root only) until the explicit one replaces it, and every
log group waits for the explicit policy, because CloudWatch Logs checks it on association.
"""

from __future__ import annotations

from constructs import Construct

from compute.config import ComputeConfig
from compute.provider import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    DataAwsIamPolicyDocumentStatementCondition,
    DataAwsIamPolicyDocumentStatementPrincipals,
    KmsAlias,
    KmsKey,
    KmsKeyPolicy,
)

DELETION_WINDOW_DAYS = 30
# What CloudWatch Logs needs to encrypt and read a log group's events (AWS's documented set).
LOGS_ACTIONS = [
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
]
# What CloudWatch needs to publish an alarm to an SNS topic encrypted with this key. Without
# it, alarms fire but the topic never receives them (the AWS-managed alias/aws/sns key
# cannot grant this, which is why the topic uses this key).
ALARM_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey*"]


class StackKey(Construct):
    """One key per environment, rotated yearly, with an explicit key policy."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: ComputeConfig,
        partition: str,
        account_id: str,
        log_group_names: list[str],
    ) -> None:
        super().__init__(scope, id_)
        self.key = KmsKey(
            self,
            "key",
            description=f"{config.prefix}: tables, logs, function environment, alarm topic",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
        )
        KmsAlias(self, "alias", name=f"alias/{config.prefix}", target_key_id=self.key.key_id)
        log_group_arns = [
            f"arn:{partition}:logs:{config.aws_region}:{account_id}:log-group:{name}"
            for name in log_group_names
        ]
        document = DataAwsIamPolicyDocument(
            self,
            "policy-document",
            statement=[
                # Delegates to IAM: the function roles get their kms: actions from their own
                # policies, scoped to this key. Also keeps the key manageable (KMS refuses a
                # policy that would lock the account out).
                DataAwsIamPolicyDocumentStatement(
                    sid="AccountAdministration",
                    actions=["kms:*"],
                    resources=[self.key.arn],
                    principals=[
                        _principal("AWS", f"arn:{partition}:iam::{account_id}:root"),
                    ],
                ),
                DataAwsIamPolicyDocumentStatement(
                    sid="CloudWatchLogs",
                    actions=LOGS_ACTIONS,
                    resources=[self.key.arn],
                    principals=[_principal("Service", f"logs.{config.aws_region}.amazonaws.com")],
                    condition=[
                        DataAwsIamPolicyDocumentStatementCondition(
                            test="ArnEquals",
                            variable="kms:EncryptionContext:aws:logs:arn",
                            values=log_group_arns,
                        )
                    ],
                ),
                DataAwsIamPolicyDocumentStatement(
                    sid="CloudWatchAlarms",
                    actions=ALARM_ACTIONS,
                    resources=[self.key.arn],
                    principals=[_principal("Service", "cloudwatch.amazonaws.com")],
                ),
            ],
        )
        self.policy = KmsKeyPolicy(self, "policy", key_id=self.key.id, policy=document.json)

    @property
    def arn(self) -> str:
        return self.key.arn


def _principal(kind: str, identifier: str) -> DataAwsIamPolicyDocumentStatementPrincipals:
    return DataAwsIamPolicyDocumentStatementPrincipals(type=kind, identifiers=[identifier])
