"""CloudWatch Logs: log groups keep their logs for a bounded, set time.

AWS behaviour: without retentionInDays a log group keeps events forever (PutRetentionPolicy; CreateLogGroup
sets none), so exported database logs grow without bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, Severity

from .inputs import MISSING, as_number, known, shown
from .rules import Anchor, ResourceRule
from .tokens import LOG_GROUP

DEFAULT_MIN_RETENTION_DAYS = 1


def _check_retention(props: Mapping[str, Any], config: Mapping[str, Any], _type: str) -> list[str]:
    minimum = int(config.get("minRetentionDays", DEFAULT_MIN_RETENTION_DAYS))
    value = known(props, "retentionInDays")
    days = as_number(value)
    if value is MISSING or days == 0:
        return [f"retentionInDays is {shown(value)}: the log group never expires its events"]
    if days is None:
        return [f"retentionInDays is {shown(value)}, which is not a number of days"]
    return [f"retentionInDays is {shown(value)}, below {minimum}"] if days < minimum else []


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "cloudwatch-log-group-retention",
        "CloudWatch log groups should set a retention period.",
        (LOG_GROUP,), _check_retention,
        "set retention_in_days (e.g. 7 for branch stacks, 365 for durable ones)",
        EnforcementLevel.ADVISORY, Anchor("cw-loggroup-retention-period-check", "CloudWatch.16", "CKV_AWS_338"),
        severity=Severity.LOW,
        extra_schema={"minRetentionDays": {"type": "integer", "minimum": 1, "maximum": 3653,
                                           "default": DEFAULT_MIN_RETENTION_DAYS,
                                           "description": "The least retention, in days."}},
    ),
)
