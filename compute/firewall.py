"""The optional WAFv2 web ACL in front of the REST stage (``waf_enabled``, on outside dev).

Rules, in order: a per-IP rate limit, then AWS's managed groups: IP reputation, anonymous
IPs (Tor and anonymizing proxies; its hosting-provider rule only counts, because the CLI
legitimately runs on cloud machines and CI runners) and known bad inputs (Log4Shell-style
payloads). The broader common rule set is left out on purpose: its 8 KB body limit would
block long chat messages. Requests are logged to an ``aws-waf-logs-`` group with the
Authorization header redacted, so no token reaches a log.

The WebSocket API cannot have a web ACL: WAF does not support API Gateway v2 APIs.
"""

from __future__ import annotations

from typing import Any

from constructs import Construct

from compute.config import ComputeConfig
from compute.provider import (
    ApiGatewayStage,
    CloudwatchLogGroup,
    Wafv2WebAcl,
    Wafv2WebAclAssociation,
    Wafv2WebAclDefaultAction,
    Wafv2WebAclDefaultActionAllow,
    Wafv2WebAclLoggingConfiguration,
    Wafv2WebAclLoggingConfigurationRedactedFields,
    Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader,
    Wafv2WebAclRule,
    Wafv2WebAclRuleAction,
    Wafv2WebAclRuleActionBlock,
    Wafv2WebAclRuleOverrideAction,
    Wafv2WebAclRuleOverrideActionNone,
    Wafv2WebAclRuleVisibilityConfig,
    Wafv2WebAclVisibilityConfig,
)

# Managed group -> its rules that only count instead of blocking.
MANAGED_RULE_GROUPS: dict[str, tuple[str, ...]] = {
    "AWSManagedRulesAmazonIpReputationList": (),
    "AWSManagedRulesAnonymousIpList": ("HostingProviderIPList",),
    "AWSManagedRulesKnownBadInputsRuleSet": (),
}


class WebFirewall(Construct):
    """Web ACL, its association with the REST stage, and its request log."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: ComputeConfig,
        stage: ApiGatewayStage,
        log_group: CloudwatchLogGroup,
    ) -> None:
        super().__init__(scope, id_)
        self._prefix = config.prefix
        # The bindings type ``statement`` as Any (it nests too deeply to generate), so the
        # statements are plain dicts in Terraform's own attribute names.
        rules = [
            Wafv2WebAclRule(
                name="rate-limit-per-ip",
                priority=0,
                action=Wafv2WebAclRuleAction(block=Wafv2WebAclRuleActionBlock()),
                statement={
                    "rate_based_statement": {
                        "limit": config.waf_rate_limit,
                        "aggregate_key_type": "IP",
                    }
                },
                visibility_config=self._rule_visibility("rate-limit-per-ip"),
            )
        ]
        for priority, (group, counted) in enumerate(MANAGED_RULE_GROUPS.items(), start=1):
            rules.append(
                Wafv2WebAclRule(
                    name=group,
                    priority=priority,
                    # "none" keeps the group's own block actions (instead of counting only).
                    override_action=Wafv2WebAclRuleOverrideAction(
                        none=Wafv2WebAclRuleOverrideActionNone()
                    ),
                    statement=_managed(group, counted),
                    visibility_config=self._rule_visibility(group),
                )
            )
        self.acl = Wafv2WebAcl(
            self,
            "acl",
            name=f"{config.prefix}-api",
            description=f"{config.project_name} {config.environment} REST API",
            scope="REGIONAL",
            default_action=Wafv2WebAclDefaultAction(allow=Wafv2WebAclDefaultActionAllow()),
            rule=rules,
            visibility_config=Wafv2WebAclVisibilityConfig(
                cloudwatch_metrics_enabled=True,
                metric_name=f"{config.prefix}-api",
                sampled_requests_enabled=True,
            ),
        )
        Wafv2WebAclAssociation(
            self, "association", resource_arn=stage.arn, web_acl_arn=self.acl.arn
        )
        Wafv2WebAclLoggingConfiguration(
            self,
            "logging",
            resource_arn=self.acl.arn,
            log_destination_configs=[log_group.arn],
            redacted_fields=[
                Wafv2WebAclLoggingConfigurationRedactedFields(
                    single_header=Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader(
                        name="authorization"
                    )
                )
            ],
        )

    def _rule_visibility(self, rule: str) -> Wafv2WebAclRuleVisibilityConfig:
        return Wafv2WebAclRuleVisibilityConfig(
            cloudwatch_metrics_enabled=True,
            metric_name=f"{self._prefix}-{rule}",
            sampled_requests_enabled=True,
        )


def _managed(group: str, counted: tuple[str, ...]) -> dict[str, Any]:
    statement: dict[str, Any] = {"name": group, "vendor_name": "AWS"}
    if counted:
        statement["rule_action_override"] = [
            {"name": rule, "action_to_use": {"count": {}}} for rule in counted
        ]
    return {"managed_rule_group_statement": statement}
