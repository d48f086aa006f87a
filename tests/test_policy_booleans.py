"""Every boolean the pack reads, over the real analyzer protocol: a boolean input is a boolean.

A program's ``True`` reaches the pack as a protobuf ``bool_value`` (the engine marshals resource inputs that
way; so does ``dbenv plan``). ``1``, ``0``, ``"true"``, ``"false"`` or ``"yes"`` in a resource's inputs come from
a hand-written plan or stack, and the provider would reject or coerce them in its own way (the pulumi-aws
schema types these inputs ``boolean``): the pack reports them as violations "expected true/false, got ...",
at the policy's level, never as true. Absent means the API default, named in the message.

Each row: policy, resource type, the property path, the other inputs, the stack kind (durable/ephemeral
rules read the stack's ``ephemeral`` tag), and the verdict for True, False and absent (with the AWS
default it rests on).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from automation.planning import policy_check
from automation.planning.policy_check import PackProcess
from tests.test_policy_rules import KEY, provider, res, run, verdict

pytestmark = pytest.mark.policy

INSTANCE, CLUSTER = "aws:rds/instance:Instance", "aws:rds/cluster:Cluster"
TABLE, PROXY = "aws:dynamodb/table:Table", "aws:rds/proxy:Proxy"
DMS_INSTANCE, KMS_KEY = "aws:dms/replicationInstance:ReplicationInstance", "aws:kms/key:Key"
MYSQL = {"engine": "mysql", "storageEncrypted": True, "kmsKeyId": KEY, "iamDatabaseAuthenticationEnabled": True}
AURORA = {"engine": "aurora-postgresql", "storageEncrypted": True, "iamDatabaseAuthenticationEnabled": True}
PROXY_OK = {"requireTls": True, "auths": [{"authScheme": "SECRETS", "iamAuth": "REQUIRED"}]}
PASS, MAND, ADV, NA = "pass", "violation:mandatory", "violation:advisory", "not_applicable"

# (policy, type, path, other inputs, stack, (if True, if False, if absent), AWS source)
BOOLEANS: list[tuple[str, str, tuple[str, ...], dict[str, Any], str | None, tuple[str, str, str], str]] = [
    ("rds-storage-encrypted", INSTANCE, ("storageEncrypted",), MYSQL, None, (PASS, MAND, MAND),
     "CreateDBInstance StorageEncrypted, default false"),
    ("rds-storage-encrypted", CLUSTER, ("storageEncrypted",), AURORA, None, (PASS, MAND, MAND),
     "CreateDBCluster StorageEncrypted, default false (provisioned)"),
    ("rds-iam-authentication-enabled", INSTANCE, ("iamDatabaseAuthenticationEnabled",), MYSQL, None,
     (PASS, MAND, MAND), "CreateDBInstance EnableIAMDatabaseAuthentication, default false"),
    ("rds-iam-authentication-enabled", CLUSTER, ("iamDatabaseAuthenticationEnabled",), AURORA, None,
     (PASS, MAND, MAND), "CreateDBCluster EnableIAMDatabaseAuthentication, default false"),
    ("rds-deletion-protection", INSTANCE, ("deletionProtection",), MYSQL, "false", (PASS, ADV, ADV),
     "CreateDBInstance DeletionProtection, default false"),
    ("rds-deletion-protection", CLUSTER, ("deletionProtection",), AURORA, "false", (PASS, ADV, ADV),
     "CreateDBCluster DeletionProtection, default false"),
    ("rds-multi-az", INSTANCE, ("multiAz",), MYSQL, "false", (PASS, ADV, ADV), "CreateDBInstance MultiAZ, default false"),
    ("rds-auto-minor-version-upgrade", INSTANCE, ("autoMinorVersionUpgrade",), MYSQL, None, (PASS, ADV, PASS),
     "CreateDBInstance AutoMinorVersionUpgrade, default true"),
    ("rds-copy-tags-to-snapshot", INSTANCE, ("copyTagsToSnapshot",), MYSQL, None, (PASS, ADV, ADV),
     "CreateDBInstance CopyTagsToSnapshot, default false"),
    ("rds-copy-tags-to-snapshot", CLUSTER, ("copyTagsToSnapshot",), AURORA, None, (PASS, ADV, ADV),
     "CreateDBCluster CopyTagsToSnapshot, default false"),
    ("rds-no-public-access", INSTANCE, ("publiclyAccessible",), MYSQL, None, (ADV, PASS, PASS),
     "CreateDBInstance PubliclyAccessible: private in a VPC without an internet gateway by default"),
    ("rds-no-public-access", "aws:rds/clusterInstance:ClusterInstance", ("publiclyAccessible",), {}, None,
     (ADV, PASS, PASS), "CreateDBInstance (Aurora) PubliclyAccessible"),
    ("rds-performance-insights-cmk", INSTANCE, ("performanceInsightsEnabled",), MYSQL, None, (MAND, NA, NA),
     "EnablePerformanceInsights without PerformanceInsightsKMSKeyId uses aws/rds; off by default"),
    ("rds-proxy-tls-required", PROXY, ("requireTls",), PROXY_OK, None, (PASS, MAND, MAND),
     "CreateDBProxy RequireTLS, default false"),
    ("ephemeral-teardown-safe", INSTANCE, ("skipFinalSnapshot",), MYSQL, "true", (PASS, ADV, ADV),
     "DeleteDBInstance SkipFinalSnapshot, default false (the provider's skip_final_snapshot too)"),
    ("ephemeral-teardown-safe", INSTANCE, ("deletionProtection",), {**MYSQL, "skipFinalSnapshot": True}, "true",
     (ADV, PASS, PASS), "DeletionProtection blocks DeleteDBInstance"),
    ("ephemeral-teardown-safe", CLUSTER, ("deletionProtection",), {**AURORA, "skipFinalSnapshot": True}, "true",
     (ADV, PASS, PASS), "DeletionProtection blocks DeleteDBCluster"),
    ("ephemeral-teardown-safe", TABLE, ("deletionProtectionEnabled",), {}, "true", (ADV, PASS, PASS),
     "DeletionProtectionEnabled blocks DeleteTable"),
    ("dynamodb-pitr-enabled", TABLE, ("pointInTimeRecovery", "enabled"), {}, "false", (PASS, ADV, ADV),
     "UpdateContinuousBackups PointInTimeRecoveryEnabled, off by default"),
    ("dynamodb-deletion-protection", TABLE, ("deletionProtectionEnabled",), {}, "false", (PASS, ADV, ADV),
     "CreateTable DeletionProtectionEnabled, default false"),
    ("dynamodb-table-encrypted-kms", TABLE, ("serverSideEncryption", "enabled"), {"serverSideEncryption": {
        "kmsKeyArn": KEY}}, None, (PASS, MAND, MAND), "SSESpecification Enabled false/absent: an AWS owned key"),
    ("kms-key-rotation-enabled", KMS_KEY, ("enableKeyRotation",), {}, None, (PASS, ADV, ADV),
     "EnableKeyRotation, off by default"),
    ("dms-replication-instance-not-public", DMS_INSTANCE, ("publiclyAccessible",), {"kmsKeyArn": KEY}, None,
     (MAND, PASS, MAND), "CreateReplicationInstance PubliclyAccessible, default true"),
    ("dms-auto-minor-version-upgrade", DMS_INSTANCE, ("autoMinorVersionUpgrade",), {}, None, (PASS, ADV, ADV),
     "CreateReplicationInstance AutoMinorVersionUpgrade (Security Hub DMS.6 wants it set)"),
    ("dms-replication-instance-multi-az", DMS_INSTANCE, ("multiAz",), {}, "false", (PASS, ADV, ADV),
     "CreateReplicationInstance MultiAZ, default false"),
]
# Malformed spellings of a boolean, and how the message shows each (numbers arrive as doubles: 1.0 shows as 1).
MALFORMED: list[tuple[Any, str]] = [(1, "1"), (0, "0"), ("true", '"true"'), ("false", '"false"'), ("yes", '"yes"')]


@pytest.fixture(scope="module")
def pack() -> Iterator[PackProcess]:
    with policy_check.running_pack(project="db-recipes", stack="policy-boolean-tests") as running:
        yield running


def _with(inputs: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``inputs`` with ``value`` at ``path`` (absent when ``value`` is None)."""
    result = {**inputs}
    target = result
    for key in path[:-1]:
        target[key] = {**target.get(key, {})}
        target = target[key]
    if value is None:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return result


def _resources(row: tuple[Any, ...], value: Any) -> list[dict[str, Any]]:
    _policy, type_token, path, inputs, stack, _expected, _aws = row
    subject = res(type_token, "subject", **_with(inputs, path, value))
    return [provider(stack), subject] if stack is not None else [subject]


CASES = [(row, value, expected) for row in BOOLEANS
         for value, expected in zip((True, False, None), row[5], strict=True)]


@pytest.mark.parametrize(("row", "value", "expected"), CASES,
                         ids=[f"{row[0]}-{'.'.join(row[2])}-{value}-{i}" for i, (row, value, _) in enumerate(CASES)])
def test_a_real_boolean_or_absent_is_judged_by_its_value(pack: PackProcess, row: tuple[Any, ...], value: Any,
                                                         expected: str) -> None:
    assert verdict(run(pack, _resources(row, value)), row[0], "subject") == expected, row[6]


LEVELS = {"rds-storage-encrypted": MAND, "rds-iam-authentication-enabled": MAND, "rds-performance-insights-cmk": MAND,
          "rds-proxy-tls-required": MAND, "dynamodb-table-encrypted-kms": MAND,
          "dms-replication-instance-not-public": MAND}
MALFORMED_CASES = [(row, value, text) for row in BOOLEANS for value, text in MALFORMED]


@pytest.mark.parametrize(("row", "value", "text"), MALFORMED_CASES,
                         ids=[f"{row[0]}-{'.'.join(row[2])}-{value!r}-{i}"
                              for i, (row, value, _) in enumerate(MALFORMED_CASES)])
def test_a_number_or_string_is_a_malformed_boolean_never_true(pack: PackProcess, row: tuple[Any, ...], value: Any,
                                                              text: str) -> None:
    policy, path = row[0], row[2]
    report = run(pack, _resources(row, value))
    assert verdict(report, policy, "subject") == LEVELS.get(policy, ADV)
    messages = [v.message for v in report.violations if v.policy == policy and v.resource == "subject"]
    assert any(m.startswith(f"{'.'.join(path)}: expected true/false, got {text}") for m in messages), messages


@pytest.mark.parametrize(("value", "expected"), [(True, "pass"), (False, "violation:advisory"), (None, "pass"),
                                                 (1, "violation:advisory"), ("true", "violation:advisory"),
                                                 ("yes", "violation:advisory"), (0, "violation:advisory")])
def test_rotation_enabled_is_a_boolean_too(pack: PackProcess, value: Any, expected: str) -> None:
    """SecretRotation rotationEnabled (a stack rule: the secret is judged through its rotations)."""
    secret = res("aws:secretsmanager/secret:Secret", "admin", name="app-db-admin", kmsKeyId=KEY)
    rotation = res("aws:secretsmanager/secretRotation:SecretRotation", "rot", secretId="app-db-admin",
                   rotationRules={"automaticallyAfterDays": 7}, **({} if value is None else {"rotationEnabled": value}))
    report = run(pack, [secret, rotation])
    assert verdict(report, "secretsmanager-rotation-enabled", "admin") == expected
    if expected != "pass" and value is not False:
        (message,) = [v.message for v in report.violations if v.policy == "secretsmanager-rotation-enabled"]
        assert "rotationEnabled: expected true/false, got" in message


def test_real_booleans_arrive_as_protobuf_bools_and_strings_as_strings() -> None:
    """The wire keeps the difference the pack relies on: a program's True is a bool_value, "true" a string_value."""
    struct = policy_check._struct({"a": True, "b": "true", "c": 1})
    assert struct.fields["a"].WhichOneof("kind") == "bool_value"
    assert struct.fields["b"].WhichOneof("kind") == "string_value"
    assert struct.fields["c"].WhichOneof("kind") == "number_value"
