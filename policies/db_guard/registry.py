"""The pack, assembled: every service module's rules, in one order, with unique names."""

from __future__ import annotations

from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from . import dms, dynamodb, iam, kms, lambdas, logs, rds, secrets
from .fastpath import PolicyList
from .rules import ResourceRule, StackRule

PACK_NAME = "db-recipes-guard"
PACK_DESCRIPTION = ("db-recipes: encryption, TLS, IAM database authentication, rotation and safe teardown for AWS "
                    "databases, judged as AWS would")
SERVICES = (rds, dynamodb, kms, secrets, dms, iam, lambdas, logs)


def rules() -> list[ResourceRule | StackRule]:
    found: list[ResourceRule | StackRule] = []
    for module in SERVICES:
        found.extend(getattr(module, "RESOURCE_RULES", ()))
        found.extend(getattr(module, "STACK_RULES", ()))
    names = [rule.name for rule in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"policy names must be unique: {', '.join(duplicates)}")
    return found


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """The policies, each resource policy with the resource types it judges (see fastpath.PolicyList)."""
    return PolicyList((rule.policy(), rule.types if isinstance(rule, ResourceRule) else None) for rule in rules())
