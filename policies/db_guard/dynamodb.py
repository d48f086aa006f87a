"""DynamoDB: customer-managed encryption (table and replicas), point-in-time recovery, deletion protection, autoscaling.

AWS behaviour: without SSESpecification a table uses an AWS owned key; ``enabled`` without a key ARN uses the
AWS managed key aws/dynamodb (CreateTable, SSESpecification). A replica without its own kmsKeyArn uses
aws/dynamodb (terraform-provider-aws, aws_dynamodb_table replica.kms_key_arn). A table restored to a point in
time (``restoreSourceName`` / ``restoreSourceTableArn``) takes "the current settings of the source table",
encryption included, unless SSESpecificationOverride gives new ones (RestoreTableToPointInTime,
SSESpecificationOverride; the provider sends ``serverSideEncryption`` as that override). BillingMode defaults to
PROVISIONED (CreateTable). Autoscaling is an Application Auto Scaling target per dimension
(dynamodb:table:ReadCapacityUnits ..., dynamodb:index:... per GSI).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, Severity

from .inputs import MISSING, UNKNOWN, as_list, boolean, is_aws_managed_key, is_set, known, lookup
from .keys import customer_managed
from .rules import (
    DURABLE,
    Anchor,
    NotApplicable,
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
    if _restored(props):
        raise NotApplicable("restored table: dynamodb-restore-cmk judges it with its source")
    if sse is MISSING:
        problems.append("serverSideEncryption is not set: the table uses an AWS owned key")
    elif boolean(props, "serverSideEncryption", "enabled") is not True:
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


def _restored(props: Mapping[str, Any]) -> bool:
    return is_set(lookup(props, "restoreSourceName")) or is_set(lookup(props, "restoreSourceTableArn"))


def _table_name(identifier: str) -> str:
    """``arn:aws:dynamodb:<region>:<account>:table/<name>`` -> ``<name>``; a name is returned as is."""
    return identifier.split(":table/", 1)[1] if ":table/" in identifier else identifier


def _sse_problem(table: PolicyResource, index: StackIndex, depth: int = 0) -> str | None:
    """Why ``table``'s data is not under a customer-managed key (None when it is), following restores."""
    props = table.props
    sse = lookup(props, "serverSideEncryption")
    if sse is MISSING and _restored(props):
        return _source_problem(table, index, depth)
    if sse is MISSING:
        return "serverSideEncryption is not set: the table uses an AWS owned key"
    if boolean(props, "serverSideEncryption", "enabled") is not True:
        return "serverSideEncryption.enabled is not true: the table uses an AWS owned key"
    key = lookup(props, "serverSideEncryption", "kmsKeyArn")
    if not is_set(key):
        return "serverSideEncryption.kmsKeyArn is not set: the table uses the AWS managed key aws/dynamodb"
    if not customer_managed(key, table, "serverSideEncryption"):
        return f"serverSideEncryption.kmsKeyArn {key} is an AWS managed key"
    return None


def _source_problem(table: PolicyResource, index: StackIndex, depth: int) -> str | None:
    props = table.props
    named = lookup(props, "restoreSourceName")
    identifier = named if is_set(named) else lookup(props, "restoreSourceTableArn")
    inherit = "without serverSideEncryption a restored table takes its source table's encryption"
    prove = "serverSideEncryption {enabled: true, kmsKeyArn: <a customer-managed key of this stack>}"
    if identifier is UNKNOWN:
        raise Undetermined(f"the source table is not known yet, and {inherit}", preview=True)
    found = [t for t in index.of(DYNAMODB_TABLE)
             if isinstance(lookup(t.props, "name"), str) and lookup(t.props, "name") == _table_name(str(identifier))]
    if len(found) != 1 or depth > 20:
        raise Undetermined(f"restored from table {identifier}, which is not in this stack, and {inherit}", prove)
    problem = _sse_problem(found[0], index, depth + 1)
    return None if problem is None else f"restored from {found[0].name} without serverSideEncryption: {problem}"


def _check_restore_cmk(index: StackIndex, config: Mapping[str, Any], report: StackReport,
                       findings: StackFindings) -> None:
    def judge(table: PolicyResource) -> None:
        problem = _sse_problem(table, index)
        if problem is not None:
            report(problem, table)

    judge_each([t for t in index.of(DYNAMODB_TABLE) if _restored(t.props)], config, findings, judge)


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
            raise Undetermined("the table name is not set (the provider generates one), so its autoscaling "
                               "targets cannot be matched", "name")
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
        "dynamodb-restore-cmk",
        "Restored DynamoDB tables must be encrypted with a customer-managed KMS key, their own or the one they "
        "take from their source table.",
        _check_restore_cmk,
        "set server_side_encryption={'enabled': True, 'kms_key_arn': <customer-managed key ARN>} on the restored "
        "table (the SSESpecificationOverride of the restore)",
        EnforcementLevel.MANDATORY, Anchor("dynamodb-table-encrypted-kms", "—", "CKV_AWS_119"), severity=Severity.HIGH,
    ),
    StackRule(
        "dynamodb-autoscaling",
        "Provisioned DynamoDB tables should have autoscaling targets for reads and writes on the table and every GSI.",
        _check_autoscaling,
        "add aws.appautoscaling.Target + target-tracking Policy per dimension (recipe dynamodb-autoscaling), or use "
        "billing_mode='PAY_PER_REQUEST'",
        EnforcementLevel.ADVISORY, Anchor("dynamodb-autoscaling-enabled", "DynamoDB.1", "—"),
    ),
)
