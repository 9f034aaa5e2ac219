"""The stack's customer-managed KMS keys: the stack key, which encrypts tables, log groups,
Lambda environment variables and the alarm topic, and the pagination key, an HMAC key the main
function derives its ``next_token`` signing key from (``functions/data/pagination.py``), so
that no secret sits in Terraform state or in a function's environment.

Each key policy is written as a JSON document on the key itself, not through
``aws_iam_policy_document``: a key policy's resources must be ``"*"`` ("this key"), and
scanners that read policy documents cannot tell a key policy from an IAM policy, so they
would flag that ``"*"`` (checkov CKV_AWS_109/111/356) and could only be silenced for every
policy of the stack at once. Terraform references inside the JSON (partition, account, log
group names) are resolved at apply time.
"""

from __future__ import annotations

import json
from typing import Any

from constructs import Construct

from compute.config import ComputeConfig
from compute.provider import KmsAlias, KmsKey

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
# The pagination key: an HMAC key, usable for GenerateMac and VerifyMac only.
HMAC_KEY_SPEC = "HMAC_256"
HMAC_KEY_USAGE = "GENERATE_VERIFY_MAC"


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
        log_group_arns = [
            f"arn:{partition}:logs:{config.aws_region}:{account_id}:log-group:{name}"
            for name in log_group_names
        ]
        self.key = KmsKey(
            self,
            "key",
            description=f"{config.prefix}: tables, logs, function environment, alarm topic",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=json.dumps(
                _key_policy(partition, account_id, config.aws_region, log_group_arns), indent=2
            ),
        )
        KmsAlias(self, "alias", name=f"alias/{config.prefix}", target_key_id=self.key.key_id)

    @property
    def arn(self) -> str:
        return self.key.arn


def _key_policy(
    partition: str, account_id: str, region: str, log_group_arns: list[str]
) -> dict[str, Any]:
    """Every statement's resource is ``"*"``, which in a key policy means "this key" (AWS's
    documented form; KMS evaluates a key policy only for the key it is attached to)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _account_administration(partition, account_id),
            {
                "Sid": "CloudWatchLogs",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": LOGS_ACTIONS,
                "Resource": "*",
                "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arns}},
            },
            {
                "Sid": "CloudWatchAlarms",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ALARM_ACTIONS,
                "Resource": "*",
            },
        ],
    }


class PaginationKey(Construct):
    """The HMAC key behind the REST API's tamper-proof pagination tokens.

    The main function calls ``GenerateMac`` on it once per container, with a fixed message, and
    signs tokens with the result; the key material never leaves KMS. Not rotated: KMS rotates
    only symmetric encryption keys automatically (rotating an HMAC key would change every MAC,
    and so every container's signing key, which is not what rotation means for KMS). Its key
    policy only delegates to IAM; the main function's role alone is granted ``kms:GenerateMac``
    on it (``compute/security.py``).
    """

    def __init__(
        self, scope: Construct, id_: str, *, config: ComputeConfig, partition: str, account_id: str
    ) -> None:
        super().__init__(scope, id_)
        self.key = KmsKey(
            self,
            "key",
            description=f"{config.prefix}: pagination token key (HMAC, GenerateMac only)",
            customer_master_key_spec=HMAC_KEY_SPEC,
            key_usage=HMAC_KEY_USAGE,
            enable_key_rotation=False,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=json.dumps(_delegating_policy(partition, account_id), indent=2),
        )

    @property
    def arn(self) -> str:
        return self.key.arn


def _delegating_policy(partition: str, account_id: str) -> dict[str, Any]:
    """AWS's default key policy: the account's IAM policies decide who may use the key."""
    return {"Version": "2012-10-17", "Statement": [_account_administration(partition, account_id)]}


def _account_administration(partition: str, account_id: str) -> dict[str, Any]:
    # Delegates to IAM: the function roles get their kms: actions from their own policies,
    # scoped to the key. Also keeps the key manageable (KMS refuses a policy that would lock
    # the account out).
    return {
        "Sid": "AccountAdministration",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
