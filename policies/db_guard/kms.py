"""KMS: key rotation, and no key policy that lets anyone use the key.

AWS behaviour: a key created without a policy gets the default key policy (the account root only);
``Principal: "*"`` or ``{"AWS": "*"}`` is everyone, in every account, unless a Condition narrows it
(KMS Developer Guide, "Default key policy" and "Allowing users in other accounts"). Whether a key named by an
input is customer managed: see ``keys``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, Severity

from .iam import granted
from .inputs import MISSING, as_list, boolean, document, is_aws_managed_key, is_set, known, lookup, statements
from .keys import customer_managed
from .rules import (
    Anchor,
    NotApplicable,
    ResourceRule,
    StackFindings,
    StackIndex,
    StackReport,
    StackRule,
    judge_each,
    must_be_true,
)
from .tokens import (
    DMS_REPLICATION_INSTANCE,
    DYNAMODB_TABLE,
    DYNAMODB_TABLE_REPLICA,
    KMS_KEY,
    KMS_KEY_POLICY,
    RDS_CLUSTER,
    RDS_CLUSTER_INSTANCE,
    RDS_INSTANCE,
    SECRET,
)

PUBLIC_KEY_ACTIONS = ("kms:*", "kms:Decrypt")


def _symmetric_key(props: Mapping[str, Any], _resource_type: str) -> None:
    spec = known(props, "customerMasterKeySpec")
    usage = known(props, "keyUsage")
    if spec not in (MISSING, "SYMMETRIC_DEFAULT") or usage not in (MISSING, "ENCRYPT_DECRYPT"):
        raise NotApplicable(f"asymmetric or HMAC key ({spec if spec is not MISSING else usage}): AWS cannot rotate it")
    if is_set(lookup(props, "customKeyStoreId")) or is_set(lookup(props, "xksKeyId")):
        raise NotApplicable("key in a custom key store: AWS cannot rotate it automatically")


_check_key_rotation = must_be_true("enableKeyRotation", default="the API default is off")


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(p == "*" for p in as_list(principal.get("AWS")))
    return False


def _check_key_policy(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    problems = []
    for label, statement in statements(document(known(props, "policy"))):
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        if not _is_everyone(statement.get("Principal")) and "NotPrincipal" not in statement:
            continue
        actions = [a for a in granted(statement, ("kms:Decrypt", "kms:Encrypt", "kms:PutKeyPolicy"))]
        if "kms:Decrypt" in actions:
            everything = len(actions) == 3
            problems.append(f"{label} allows {'kms:*' if everything else 'kms:Decrypt'} to every principal "
                            f"(Principal \"*\") without a Condition")
    return problems


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "kms-key-rotation-enabled",
        "Symmetric KMS keys should rotate their key material automatically.",
        (KMS_KEY,), _check_key_rotation,
        "set enable_key_rotation=True on the key",
        EnforcementLevel.ADVISORY, Anchor("cmk-backing-key-rotation-enabled", "KMS.4", "CKV_AWS_7"),
        applies=_symmetric_key, severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "kms-key-policy-not-public",
        "KMS key policies must not grant kms:* or kms:Decrypt to a wildcard principal without a condition.",
        (KMS_KEY, KMS_KEY_POLICY), _check_key_policy,
        "name the principals (account root, roles) or add a Condition (kms:CallerAccount, kms:ViaService, ...)",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "CKV_AWS_33"), severity=Severity.CRITICAL,
    ),
)


def _named_keys(resource: PolicyResource) -> list[tuple[Any, str, str]]:
    """(key, top-level input, label) for every key input that a resource policy judges by its name alone."""
    props, kind = resource.props, resource.resource_type
    if kind == SECRET:
        return [(lookup(props, "kmsKeyId"), "kmsKeyId", "kmsKeyId")]
    if kind in (DMS_REPLICATION_INSTANCE, DYNAMODB_TABLE_REPLICA):
        return [(lookup(props, "kmsKeyArn"), "kmsKeyArn", "kmsKeyArn")]
    if kind == DYNAMODB_TABLE:
        keys = [(lookup(props, "serverSideEncryption", "kmsKeyArn"), "serverSideEncryption",
                 "serverSideEncryption.kmsKeyArn")]
        replicas = lookup(props, "replicas")
        keys += [(lookup(replicas, index, "kmsKeyArn"), "replicas", f"replicas[{index}].kmsKeyArn")
                 for index, _ in enumerate(as_list(replicas))]
        return keys
    if boolean(props, "performanceInsightsEnabled") is True:
        return [(lookup(props, "performanceInsightsKmsKeyId"), "performanceInsightsKmsKeyId",
                 "performanceInsightsKmsKeyId")]
    return []


def _check_key_provenance(index: StackIndex, config: Mapping[str, Any], report: StackReport,
                          findings: StackFindings) -> None:
    def judge(resource: PolicyResource) -> None:
        for key, prop, label in _named_keys(resource):
            if is_set(key) and not is_aws_managed_key(key):  # absent or AWS managed: the resource policy says so
                customer_managed(key, resource, prop, label)

    judge_each(index.of(SECRET, DMS_REPLICATION_INSTANCE, DYNAMODB_TABLE, DYNAMODB_TABLE_REPLICA, RDS_INSTANCE,
                        RDS_CLUSTER, RDS_CLUSTER_INSTANCE), config, findings, judge)


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "kms-key-provenance",
        "A key given by id or ARN where a customer-managed key is required (secrets, DMS replication instances, "
        "DynamoDB tables and replicas, Performance Insights) must be provably customer managed: a key of this "
        "stack or a customer alias.",
        _check_key_provenance,
        "name the key by the stack's aws.kms.Key (its arn output) or by a customer alias (alias/<name>)",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "—"), severity=Severity.HIGH,
    ),
)
