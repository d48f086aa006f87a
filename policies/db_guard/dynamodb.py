"""DynamoDB: customer-managed encryption (table and replicas), point-in-time recovery, deletion protection, autoscaling.

AWS behaviour: without SSESpecification a table uses an AWS owned key; ``enabled`` without a key ARN uses the
AWS managed key aws/dynamodb (CreateTable, SSESpecification). A replica without its own kmsKeyArn uses
aws/dynamodb (terraform-provider-aws, aws_dynamodb_table replica.kms_key_arn). BillingMode defaults to
PROVISIONED (CreateTable). Autoscaling is an Application Auto Scaling target per dimension
(dynamodb:table:ReadCapacityUnits ..., dynamodb:index:... per GSI).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, Severity

from .inputs import MISSING, as_list, is_aws_managed_key, is_set, is_true, known, lookup
from .rules import (
    DURABLE,
    Anchor,
    ResourceRule,
    StackFindings,
    StackIndex,
    StackReport,
    StackRule,
    Undetermined,
    judge_each,
    must_be_true,
)
from .tokens import APPAUTOSCALING_TARGET, DYNAMODB_TABLE, DYNAMODB_TABLE_REPLICA


def _key_problem(where: str, key: Any, default: str) -> list[str]:
    if not is_set(key):
        return [f"{where} is not set: {default}"]
    if is_aws_managed_key(key):
        return [f"{where} {key} is an AWS managed key"]
    return []


def _check_kms(props: Mapping[str, Any], _config: Mapping[str, Any], resource_type: str) -> list[str]:
    if resource_type == DYNAMODB_TABLE_REPLICA:
        return _key_problem("kmsKeyArn", lookup(props, "kmsKeyArn"), "the replica uses the AWS managed key aws/dynamodb")
    problems: list[str] = []
    sse = lookup(props, "serverSideEncryption")
    restored = is_set(lookup(props, "restoreSourceName")) or is_set(lookup(props, "restoreSourceTableArn"))
    if sse is MISSING and restored:
        raise Undetermined("restored table without serverSideEncryption: its encryption follows the source "
                           "table's, which is not judged here")
    if sse is MISSING:
        problems.append("serverSideEncryption is not set: the table uses an AWS owned key")
    elif not is_true(known(props, "serverSideEncryption", "enabled")):
        problems.append("serverSideEncryption.enabled is not true: the table uses an AWS owned key")
    else:
        problems += _key_problem("serverSideEncryption.kmsKeyArn", lookup(props, "serverSideEncryption", "kmsKeyArn"),
                                 "the table uses the AWS managed key aws/dynamodb")
    replicas = known(props, "replicas")
    for index, _replica in enumerate(as_list(replicas)):
        region = lookup(replicas, index, "regionName")
        problems += _key_problem(f"replicas[{index}].kmsKeyArn ({region if is_set(region) else 'replica'})",
                                 lookup(replicas, index, "kmsKeyArn"), "the replica uses aws/dynamodb")
    return problems


_check_pitr = must_be_true("pointInTimeRecovery", "enabled", default="the API default is off")


_check_deletion_protection = must_be_true("deletionProtectionEnabled", default="the API default is false")


def _check_autoscaling(index: StackIndex, config: Mapping[str, Any], report: StackReport,
                       findings: StackFindings) -> None:
    targets: set[tuple[str, str]] = set()
    for target in index.of(APPAUTOSCALING_TARGET):
        namespace = lookup(target.props, "serviceNamespace")
        resource_id, dimension = lookup(target.props, "resourceId"), lookup(target.props, "scalableDimension")
        if namespace == "dynamodb" and isinstance(resource_id, str) and isinstance(dimension, str):
            targets.add((resource_id, dimension))

    def judge(table: PolicyResource) -> None:
        mode = known(table.props, "billingMode")
        if isinstance(mode, str) and mode.upper() == "PAY_PER_REQUEST":
            return
        name = known(table.props, "name")
        if not isinstance(name, str):
            raise Undetermined("the table name is not known, so its autoscaling targets cannot be matched")
        wanted = [(f"table/{name}", f"dynamodb:table:{unit}CapacityUnits", "the table") for unit in ("Read", "Write")]
        gsis = known(table.props, "globalSecondaryIndexes")
        for i, _gsi in enumerate(as_list(gsis)):
            gsi = lookup(gsis, i, "name")
            wanted += [(f"table/{name}/index/{gsi}", f"dynamodb:index:{unit}CapacityUnits", f"index {gsi}")
                       for unit in ("Read", "Write")]
        missing = [f"{what} {dim.rsplit(':', 1)[1]}" for rid, dim, what in wanted if (rid, dim) not in targets]
        if missing:
            mode_text = "" if is_set(mode) else " (billingMode not set: the API default is PROVISIONED)"
            report(f"provisioned table{mode_text} without an autoscaling target for {', '.join(missing)}", table)

    judge_each(index.of(DYNAMODB_TABLE), config, findings, judge)


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "dynamodb-table-encrypted-kms",
        "DynamoDB tables and their replicas must be encrypted with a customer-managed KMS key.",
        (DYNAMODB_TABLE, DYNAMODB_TABLE_REPLICA), _check_kms,
        "set server_side_encryption={'enabled': True, 'kms_key_arn': <customer-managed key ARN>} and kms_key_arn on "
        "every replica (a key of the replica's region)",
        EnforcementLevel.MANDATORY, Anchor("dynamodb-table-encrypted-kms", "—", "CKV_AWS_119"),
    ),
    ResourceRule(
        "dynamodb-pitr-enabled",
        "DynamoDB tables of durable stacks should have point-in-time recovery.",
        (DYNAMODB_TABLE, ), _check_pitr,
        "set point_in_time_recovery={'enabled': True}",
        EnforcementLevel.ADVISORY, Anchor("dynamodb-pitr-enabled", "DynamoDB.2", "CKV_AWS_28"),
        severity=Severity.MEDIUM, scope=DURABLE,
    ),
    ResourceRule(
        "dynamodb-deletion-protection",
        "DynamoDB tables of durable stacks should have deletion protection.",
        (DYNAMODB_TABLE,), _check_deletion_protection,
        "set deletion_protection_enabled=True",
        EnforcementLevel.ADVISORY, Anchor("dynamodb-table-deletion-protection-enabled", "DynamoDB.6", "—"),
        severity=Severity.MEDIUM, scope=DURABLE,
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "dynamodb-autoscaling",
        "Provisioned DynamoDB tables should have autoscaling targets for reads and writes on the table and every GSI.",
        _check_autoscaling,
        "add aws.appautoscaling.Target + target-tracking Policy per dimension (recipe dynamodb-autoscaling), or use "
        "billing_mode='PAY_PER_REQUEST'",
        EnforcementLevel.ADVISORY, Anchor("dynamodb-autoscaling-enabled", "DynamoDB.1", "—"),
    ),
)
