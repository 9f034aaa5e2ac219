"""The attachments bucket: files a user uploads with a presigned POST (the main function signs
it) and then names in a message, so that no file goes through API Gateway or the WebSocket.

Private and encrypted like the tables: SSE-KMS under the stack's key (with an S3 bucket key,
so a busy bucket does not pay one KMS call per object), every public access blocked, ACLs off
(the bucket owns every object), TLS only. Objects live under ``sessions/<session_id>/``
(``functions.contract.attachment_key``): the session cleanup deletes a removed session's
prefix, and the lifecycle rule expires what is left after the session TTL, so an attachment
never outlives the idle session it belongs to.

No CORS configuration: the chat client posts the form from outside a browser. A browser
client would need one rule allowing POST from its origins.
"""

from __future__ import annotations

from typing import Any

from cdktf import Op, Token
from constructs import Construct

from compute.config import ComputeConfig
from compute.expressions import is_expression
from compute.provider import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    DataAwsIamPolicyDocumentStatementCondition,
    DataAwsIamPolicyDocumentStatementPrincipals,
    S3Bucket,
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
    S3BucketPolicy,
    S3BucketPublicAccessBlock,
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from functions.contract import ATTACHMENTS_BUCKET_SUFFIX

# A presigned POST is a single request: only a client's own multipart upload could leave parts
# behind, and a day is long enough for any upload to finish.
ABORT_INCOMPLETE_UPLOADS_DAYS = 1


class AttachmentsBucket(Construct):
    """The bucket and its settings, each its own resource as provider 5+ models them."""

    def __init__(self, scope: Construct, id_: str, *, config: ComputeConfig, key_arn: str) -> None:
        super().__init__(scope, id_)
        self.bucket = S3Bucket(
            self,
            "bucket",
            bucket=f"{config.prefix}-{ATTACHMENTS_BUCKET_SUFFIX}",
            # Uploads are transient: an environment can be destroyed with them in it, unless
            # it is protected as its tables are.
            force_destroy=_unprotected(config),
        )
        bucket_id = self.bucket.id
        S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=bucket_id,
            rule=[
                S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default=(
                        S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                            sse_algorithm="aws:kms", kms_master_key_id=key_arn
                        )
                    ),
                    bucket_key_enabled=True,
                )
            ],
        )
        S3BucketPublicAccessBlock(
            self,
            "public-access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
        S3BucketOwnershipControls(
            self,
            "ownership",
            bucket=bucket_id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )
        S3BucketPolicy(self, "policy", bucket=bucket_id, policy=self._tls_only().json)
        S3BucketLifecycleConfiguration(
            self,
            "lifecycle",
            bucket=bucket_id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="expire-with-sessions",
                    status="Enabled",
                    # The whole bucket: every object is an attachment under ATTACHMENTS_ROOT.
                    filter=[S3BucketLifecycleConfigurationRuleFilter()],
                    expiration=[
                        S3BucketLifecycleConfigurationRuleExpiration(days=config.session_ttl_days)
                    ],
                    abort_incomplete_multipart_upload=[
                        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                            days_after_initiation=ABORT_INCOMPLETE_UPLOADS_DAYS
                        )
                    ],
                )
            ],
        )

    def _tls_only(self) -> DataAwsIamPolicyDocument:
        """Deny every request made without TLS, whoever makes it."""
        return DataAwsIamPolicyDocument(
            self,
            "tls-only",
            statement=[
                DataAwsIamPolicyDocumentStatement(
                    sid="TlsOnly",
                    effect="Deny",
                    principals=[
                        DataAwsIamPolicyDocumentStatementPrincipals(type="*", identifiers=["*"])
                    ],
                    actions=["s3:*"],
                    resources=[self.bucket.arn, f"{self.bucket.arn}/*"],
                    condition=[
                        DataAwsIamPolicyDocumentStatementCondition(
                            test="Bool", variable="aws:SecureTransport", values=["false"]
                        )
                    ],
                )
            ],
        )

    @property
    def arn(self) -> str:
        return self.bucket.arn

    @property
    def name(self) -> str:
        return self.bucket.bucket


def _unprotected(config: ComputeConfig) -> Any:
    """Whether ``terraform destroy`` may empty the bucket: where the tables have no deletion
    protection (uploads are transient, but a protected environment keeps them as its data)."""
    protected = config.deletion_protection_enabled
    if is_expression(protected):
        return Token.as_any(Op.not_(protected))
    return not protected
