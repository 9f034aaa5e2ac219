"""CloudWatch log groups: one per function and per API (and for WAF when it is on).

Log groups are created by Terraform, not by Lambda on first write, so their retention is
managed and ``terraform destroy`` removes them. They are encrypted with the stack's KMS key.
"""

from __future__ import annotations

from constructs import Construct

from compute.config import ComputeConfig
from compute.encryption import StackKey
from compute.provider import CloudwatchLogGroup
from functions.contract import FUNCTIONS

REST_API_LOGS = "rest-api"
WEBSOCKET_API_LOGS = "websocket-api"
WAF_LOGS = "waf"


def log_group_names(config: ComputeConfig) -> dict[str, str]:
    """Every log group of the stack by construct id. The key policy names them too, before
    the groups exist, so both read them from here."""
    names = {
        f"lambda-{spec.key}": f"/aws/lambda/{config.prefix}-{spec.suffix}" for spec in FUNCTIONS
    }
    names[REST_API_LOGS] = f"/aws/apigateway/{config.prefix}"
    names[WEBSOCKET_API_LOGS] = f"/aws/apigateway/{config.prefix}-websocket"
    if config.uses_waf:
        names[WAF_LOGS] = f"aws-waf-logs-{config.prefix}"  # WAF requires this prefix
    return names


class LogGroups(Construct):
    """One log group per function and per API (and for WAF when it is on), all with the
    configured retention and encrypted with the stack's key."""

    def __init__(self, scope: Construct, id_: str, *, config: ComputeConfig, key: StackKey) -> None:
        super().__init__(scope, id_)
        groups = {
            group_id: CloudwatchLogGroup(
                self,
                group_id,
                name=name,
                retention_in_days=config.log_retention_days,
                kms_key_id=key.arn,
            )
            for group_id, name in log_group_names(config).items()
        }
        self.functions = {spec.key: groups[f"lambda-{spec.key}"] for spec in FUNCTIONS}
        self.rest_api = groups[REST_API_LOGS]
        self.websocket_api = groups[WEBSOCKET_API_LOGS]
        self.waf: CloudwatchLogGroup | None = groups.get(WAF_LOGS)
