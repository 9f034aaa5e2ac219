"""What the Terraform tests run: every environment of ``config/`` through a full cycle, the
variants the stack tests synthesize through validate and plan, and what the emulator is
known not to do."""

from __future__ import annotations

from compute.config import ComputeConfig

# The variants of tests/compute, with the configs those tests synthesize them from.
SIGNING_PROFILE = (
    "arn:aws:signer:us-east-1:123456789012:/signing-profiles/aiassistantcli/a1B2c3D4e5"
)
VARIANTS: dict[str, ComputeConfig] = {
    # test_variants.test_the_stack_never_drops_a_vpc_silently's complete network
    "vpc": ComputeConfig(
        vpc_id="vpc-0123456789abcdef0",
        private_subnet_ids=["subnet-0123456789abcdef0"],
        lambda_security_group_id="sg-0123456789abcdef0",
    ),
    # test_variants.outer_role
    "outer-role": ComputeConfig(
        lambda_bedrock_role_arn="arn:aws:iam::123456789012:role/service/ai-services-lambda",
        bedrock_guardrail_id="a1b2c3d4e5f6",
        bedrock_guardrail_version="DRAFT",
    ),
    # the prod example's knowledge base
    "knowledge-base": ComputeConfig(knowledge_base_id="KB12345678"),
    # test_security.test_waf_*: with_waf
    "waf": ComputeConfig(waf_enabled=True, waf_rate_limit=500),
    "provisioned-capacity": ComputeConfig(
        dynamodb_billing_mode="PROVISIONED", dynamodb_read_capacity=5, dynamodb_write_capacity=5
    ),
    "arm64": ComputeConfig(lambda_architecture="arm64"),
    # test_variants.external
    "external-code": ComputeConfig(code_deployment_mode="external"),
    # the prod example's guardrail
    "guardrail": ComputeConfig(bedrock_guardrail_id="a1b2c3d4e5f6", bedrock_guardrail_version="1"),
    # test_security.test_dev_has_no_code_signing_and_warn_is_a_choice: warned
    "code-signing": ComputeConfig(
        code_signing_profile_version_arns=[SIGNING_PROFILE], code_signing_policy="Warn"
    ),
}

# Resource type -> why the emulator cannot create it. An apply must fail on exactly the
# resources of these types in a stack, and on nothing else: when the emulator learns the
# API, the test fails until the entry goes, so a fixed gap shows up.
EMULATOR_GAPS: dict[str, str] = {}
