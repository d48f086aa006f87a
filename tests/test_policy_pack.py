"""Every policy of the pack, driven over the real analyzer gRPC protocol (the pack runs as its own process).

One pack process serves the module; every case sends Configure and
ConfigureStack afresh, exactly as a new engine run would, and then Analyze
per resource and AnalyzeStack once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from automation.planning import policy_check
from automation.planning.policy_check import PackProcess, Report

pytestmark = pytest.mark.policy

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0d9f1c5e-3a8b-4c4f-9d55-1b2c3d4e5f60"
UNKNOWN = "[unknown]"
SECRET = "[secret]"


@pytest.fixture(scope="module")
def pack() -> Iterator[PackProcess]:
    with policy_check.running_pack(project="db-recipes", stack="policy-tests") as running:
        yield running


def resource(type_token: str, resource_name: str, **inputs: Any) -> dict[str, Any]:
    return {"type": type_token, "name": resource_name, "inputs": inputs}


def provider(ephemeral: str | None) -> dict[str, Any]:
    tags = {"project": "db-recipes", "stack": "t", "branch": "t", "managed-by": "pulumi"}
    if ephemeral is not None:
        tags["ephemeral"] = ephemeral
    return resource("pulumi:providers:aws", "aws", region="us-east-1", defaultTags=json.dumps({"tags": tags}))


def run(pack: PackProcess, resources: list[dict[str, Any]], config: dict[str, Any] | None = None) -> Report:
    target = policy_check.target_from_document({"project": "db-recipes", "stack": "t", "resources": resources})
    return policy_check.analyze(pack, target, config or {})


def verdict(report: Report, policy: str, name: str) -> str:
    """What ``policy`` said about resource ``name``: pass, violation:<level>, undetermined, exempted, not_applicable."""
    found = [v for v in report.violations if v.policy == policy and v.resource == name]
    if found:
        if all(v.undetermined for v in found):
            return "undetermined" if all(v.level == "advisory" for v in found) else f"undetermined:{found[0].level}"
        return f"violation:{found[0].level}"
    if any(n.policy == policy and n.resource == name for n in report.exempted):
        return "exempted"
    if any(n.policy == policy and n.resource == name for n in report.not_applicable):
        return "not_applicable"
    return "pass"


INSTANCE = "aws:rds/instance:Instance"
CLUSTER = "aws:rds/cluster:Cluster"
CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
GOOD_MYSQL = {"engine": "mysql", "storageEncrypted": True, "kmsKeyId": KEY_ARN,
              "iamDatabaseAuthenticationEnabled": True}
GOOD_AURORA = {"engine": "aurora-postgresql", "engineMode": "provisioned", "storageEncrypted": True,
               "iamDatabaseAuthenticationEnabled": True}
REPLICA = {"replicateSourceDb": "arn:aws:rds:us-east-1:123456789012:db:source", "instanceClass": "db.t4g.micro"}
GOOD_PROXY = {"engineFamily": "MYSQL", "requireTls": True,
              "auths": [{"authScheme": "SECRETS", "iamAuth": "REQUIRED", "secretArn": "arn:s"}]}
GOOD_DMS = {"kmsKeyArn": KEY_ARN, "publiclyAccessible": False, "replicationInstanceClass": "dms.t3.micro"}

# (policy, resource type, inputs, expected verdict)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    # rds-storage-encrypted
    ("rds-storage-encrypted", INSTANCE, GOOD_MYSQL, "pass"),
    ("rds-storage-encrypted", INSTANCE, {**GOOD_MYSQL, "storageEncrypted": False}, "violation:mandatory"),
    ("rds-storage-encrypted", INSTANCE, {"engine": "mysql"}, "violation:mandatory"),
    ("rds-storage-encrypted", INSTANCE, {**GOOD_MYSQL, "storageEncrypted": UNKNOWN}, "undetermined"),
    # a replica has its source's encryption; the source is not in this stack (CreateDBInstanceReadReplica)
    ("rds-storage-encrypted", INSTANCE, REPLICA, "undetermined"),
    ("rds-storage-encrypted", INSTANCE, {**REPLICA, "replicateSourceDb": UNKNOWN}, "undetermined"),
    # a boolean given as a string is a malformed input, never true (the engine sends a program's True as a bool)
    ("rds-storage-encrypted", INSTANCE, {**GOOD_MYSQL, "storageEncrypted": "TRUE"}, "violation:mandatory"),
    ("rds-storage-encrypted", INSTANCE, {**GOOD_MYSQL, "storageEncrypted": "false"}, "violation:mandatory"),
    # RestoreDBClusterFromSnapshot: with KmsKeyId the restored cluster is encrypted with it, else it inherits
    ("rds-storage-encrypted", CLUSTER, {"engine": "aurora-mysql", "snapshotIdentifier": "snap"}, "undetermined"),
    ("rds-storage-encrypted", CLUSTER, {"engine": "aurora-mysql", "snapshotIdentifier": "snap", "kmsKeyId": KEY_ARN},
     "pass"),
    ("rds-storage-encrypted", CLUSTER, {"engine": "aurora-postgresql", "kmsKeyId": KEY_ARN,
                                        "restoreToPointInTime": {"sourceClusterIdentifier": "prod",
                                                                 "restoreType": "copy-on-write"}}, "pass"),
    ("rds-storage-encrypted", INSTANCE, {"snapshotIdentifier": "elsewhere", "kmsKeyId": KEY_ARN}, "undetermined"),
    ("rds-storage-encrypted", CLUSTER, GOOD_AURORA, "pass"),
    ("rds-storage-encrypted", CLUSTER, {"engine": "aurora-mysql"}, "violation:mandatory"),
    ("rds-storage-encrypted", CLUSTER, {"engine": "aurora-mysql", "storageEncrypted": UNKNOWN}, "undetermined"),
    # rds-snapshot-encrypted: CopyDBSnapshot with KmsKeyId encrypts the copy; without, the copy keeps the source's
    ("rds-snapshot-encrypted", "aws:rds/snapshotCopy:SnapshotCopy", {"kmsKeyId": KEY_ARN}, "pass"),
    ("rds-snapshot-encrypted", "aws:rds/snapshotCopy:SnapshotCopy", {"kmsKeyId": UNKNOWN}, "pass"),
    ("rds-snapshot-encrypted", "aws:rds/snapshotCopy:SnapshotCopy",
     {"sourceDbSnapshotIdentifier": "s"}, "undetermined"),
    ("rds-snapshot-encrypted", "aws:rds/snapshot:Snapshot", {"dbInstanceIdentifier": "elsewhere"}, "undetermined"),
    # rds-iam-authentication-enabled
    ("rds-iam-authentication-enabled", INSTANCE, GOOD_MYSQL, "pass"),
    ("rds-iam-authentication-enabled", INSTANCE, {**GOOD_MYSQL, "engine": "postgres",
                                                  "iamDatabaseAuthenticationEnabled": False}, "violation:mandatory"),
    ("rds-iam-authentication-enabled", INSTANCE, {**GOOD_MYSQL, "engine": "mariadb",
                                                  "iamDatabaseAuthenticationEnabled": None}, "violation:mandatory"),
    ("rds-iam-authentication-enabled", INSTANCE, {**GOOD_MYSQL, "iamDatabaseAuthenticationEnabled": UNKNOWN},
     "undetermined"),
    ("rds-iam-authentication-enabled", INSTANCE, {**GOOD_MYSQL, "engine": "sqlserver-ex",
                                                  "iamDatabaseAuthenticationEnabled": False}, "not_applicable"),
    # a read replica has its own EnableIAMDatabaseAuthentication (CreateDBInstanceReadReplica)
    ("rds-iam-authentication-enabled", INSTANCE, REPLICA, "violation:mandatory"),
    ("rds-iam-authentication-enabled", INSTANCE, {**REPLICA, "iamDatabaseAuthenticationEnabled": True}, "pass"),
    ("rds-iam-authentication-enabled", INSTANCE, {**REPLICA, "iamDatabaseAuthenticationEnabled": "true"},
     "violation:mandatory"),
    ("rds-iam-authentication-enabled", INSTANCE, {**GOOD_MYSQL, "engine": "MySQL",
                                                  "iamDatabaseAuthenticationEnabled": False}, "violation:mandatory"),
    ("rds-iam-authentication-enabled", CLUSTER, GOOD_AURORA, "pass"),
    ("rds-iam-authentication-enabled", CLUSTER, {"engine": "aurora-mysql", "storageEncrypted": True},
     "violation:mandatory"),
    ("rds-iam-authentication-enabled", CLUSTER, {"engine": "neptune"}, "not_applicable"),
    # Multi-AZ DB clusters (engine mysql/postgres on a DB cluster) support IAM database authentication
    ("rds-iam-authentication-enabled", CLUSTER, {"engine": "postgres"}, "violation:mandatory"),
    ("rds-iam-authentication-enabled", CLUSTER, {"engine": "mysql", "iamDatabaseAuthenticationEnabled": True},
     "pass"),
    ("rds-iam-authentication-enabled", INSTANCE, {"engine": "aurora-mysql"}, "not_applicable"),
    ("rds-iam-authentication-enabled", INSTANCE, {"snapshotIdentifier": "encrypted-copy"}, "violation:mandatory"),
    # rds-proxy-iam-auth-required / rds-proxy-tls-required
    ("rds-proxy-iam-auth-required", "aws:rds/proxy:Proxy", GOOD_PROXY, "pass"),
    ("rds-proxy-iam-auth-required", "aws:rds/proxy:Proxy",
     {**GOOD_PROXY, "auths": [{"authScheme": "SECRETS", "iamAuth": "DISABLED"}]}, "violation:mandatory"),
    ("rds-proxy-iam-auth-required", "aws:rds/proxy:Proxy",
     {**GOOD_PROXY, "auths": [GOOD_PROXY["auths"][0], {"authScheme": "SECRETS"}]}, "violation:mandatory"),
    ("rds-proxy-iam-auth-required", "aws:rds/proxy:Proxy", {"requireTls": True}, "violation:mandatory"),
    ("rds-proxy-iam-auth-required", "aws:rds/proxy:Proxy",
     {"requireTls": True, "defaultAuthScheme": "IAM_AUTH"}, "pass"),
    ("rds-proxy-iam-auth-required", "aws:rds/proxy:Proxy",
     {**GOOD_PROXY, "auths": [{"authScheme": "SECRETS", "iamAuth": UNKNOWN}]}, "undetermined"),
    ("rds-proxy-tls-required", "aws:rds/proxy:Proxy", GOOD_PROXY, "pass"),
    ("rds-proxy-tls-required", "aws:rds/proxy:Proxy", {**GOOD_PROXY, "requireTls": False}, "violation:mandatory"),
    ("rds-proxy-tls-required", "aws:rds/proxy:Proxy", {"auths": GOOD_PROXY["auths"]}, "violation:mandatory"),
    ("rds-proxy-tls-required", "aws:rds/proxy:Proxy", {**GOOD_PROXY, "requireTls": UNKNOWN}, "undetermined"),
    ("rds-proxy-iam-auth-required", "aws:rds/proxy:Proxy", {**GOOD_PROXY, "auths": UNKNOWN}, "undetermined"),
    # dynamodb-table-encrypted-kms
    ("dynamodb-table-encrypted-kms", "aws:dynamodb/table:Table",
     {"serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY_ARN}}, "pass"),
    ("dynamodb-table-encrypted-kms", "aws:dynamodb/table:Table",
     {"serverSideEncryption": {"enabled": True, "kmsKeyArn": UNKNOWN}}, "pass"),
    ("dynamodb-table-encrypted-kms", "aws:dynamodb/table:Table",
     {"serverSideEncryption": {"enabled": True}}, "violation:mandatory"),
    ("dynamodb-table-encrypted-kms", "aws:dynamodb/table:Table",
     {"serverSideEncryption": {"enabled": False, "kmsKeyArn": KEY_ARN}}, "violation:mandatory"),
    ("dynamodb-table-encrypted-kms", "aws:dynamodb/table:Table",
     {"serverSideEncryption": {"enabled": UNKNOWN, "kmsKeyArn": KEY_ARN}}, "undetermined"),
    ("dynamodb-table-encrypted-kms", "aws:dynamodb/table:Table", {"billingMode": "PROVISIONED"},
     "violation:mandatory"),
    ("dynamodb-table-encrypted-kms", "aws:dynamodb/table:Table",
     {"serverSideEncryption": {"enabled": True, "kmsKeyArn": "alias/aws/dynamodb"}}, "violation:mandatory"),
    # secretsmanager-secret-encrypted-cmk
    ("secretsmanager-secret-encrypted-cmk", "aws:secretsmanager/secret:Secret", {"kmsKeyId": KEY_ARN}, "pass"),
    ("secretsmanager-secret-encrypted-cmk", "aws:secretsmanager/secret:Secret", {"kmsKeyId": UNKNOWN}, "pass"),
    ("secretsmanager-secret-encrypted-cmk", "aws:secretsmanager/secret:Secret", {"kmsKeyId": SECRET}, "pass"),
    ("secretsmanager-secret-encrypted-cmk", "aws:secretsmanager/secret:Secret", {"name": "s"},
     "violation:mandatory"),
    ("secretsmanager-secret-encrypted-cmk", "aws:secretsmanager/secret:Secret", {"kmsKeyId": "aws/secretsmanager"},
     "violation:mandatory"),
    ("secretsmanager-secret-encrypted-cmk", "aws:secretsmanager/secret:Secret",
     {"kmsKeyId": "alias/aws/secretsmanager"}, "violation:mandatory"),
    ("secretsmanager-secret-encrypted-cmk", "aws:secretsmanager/secret:Secret",
     {"kmsKeyId": "arn:aws:kms:us-east-1:123456789012:alias/aws/secretsmanager"}, "violation:mandatory"),
    # dms-replication-instance-encrypted / -not-public
    ("dms-replication-instance-encrypted", "aws:dms/replicationInstance:ReplicationInstance", GOOD_DMS, "pass"),
    ("dms-replication-instance-encrypted", "aws:dms/replicationInstance:ReplicationInstance",
     {"publiclyAccessible": False}, "violation:mandatory"),
    ("dms-replication-instance-encrypted", "aws:dms/replicationInstance:ReplicationInstance",
     {**GOOD_DMS, "kmsKeyArn": UNKNOWN}, "pass"),
    ("dms-replication-instance-not-public", "aws:dms/replicationInstance:ReplicationInstance", GOOD_DMS, "pass"),
    ("dms-replication-instance-not-public", "aws:dms/replicationInstance:ReplicationInstance",
     {"kmsKeyArn": KEY_ARN}, "violation:mandatory"),
    ("dms-replication-instance-not-public", "aws:dms/replicationInstance:ReplicationInstance",
     {**GOOD_DMS, "publiclyAccessible": True}, "violation:mandatory"),
    ("dms-replication-instance-not-public", "aws:dms/replicationInstance:ReplicationInstance",
     {**GOOD_DMS, "publiclyAccessible": UNKNOWN}, "undetermined"),
    # aurora-serverless-v1-retired
    ("aurora-serverless-v1-retired", CLUSTER, GOOD_AURORA, "pass"),
    ("aurora-serverless-v1-retired", CLUSTER, {k: v for k, v in GOOD_AURORA.items() if k != "engineMode"}, "pass"),
    ("aurora-serverless-v1-retired", CLUSTER, {**GOOD_AURORA, "engineMode": "serverless"}, "violation:mandatory"),
    ("aurora-serverless-v1-retired", CLUSTER, {**GOOD_AURORA, "engineMode": UNKNOWN}, "undetermined"),
    ("aurora-serverless-v1-retired", INSTANCE, {**GOOD_MYSQL, "engineMode": "serverless"}, "pass"),
    # rds-no-public-access (advisory)
    ("rds-no-public-access", INSTANCE, GOOD_MYSQL, "pass"),
    ("rds-no-public-access", INSTANCE, {**GOOD_MYSQL, "publiclyAccessible": False}, "pass"),
    ("rds-no-public-access", INSTANCE, {**GOOD_MYSQL, "publiclyAccessible": True}, "violation:advisory"),
    ("rds-no-public-access", CLUSTER_INSTANCE, {"publiclyAccessible": True}, "violation:advisory"),
    ("rds-no-public-access", CLUSTER_INSTANCE, {"publiclyAccessible": UNKNOWN}, "undetermined"),
    # kms-key-rotation-enabled (advisory)
    ("kms-key-rotation-enabled", "aws:kms/key:Key", {"enableKeyRotation": True}, "pass"),
    ("kms-key-rotation-enabled", "aws:kms/key:Key", {"description": "k"}, "violation:advisory"),
    ("kms-key-rotation-enabled", "aws:kms/key:Key", {"enableKeyRotation": UNKNOWN}, "undetermined"),
    ("kms-key-rotation-enabled", "aws:kms/key:Key", {"enableKeyRotation": True, "keyUsage": UNKNOWN},
     "undetermined"),
    ("kms-key-rotation-enabled", "aws:kms/key:Key",
     {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}, "not_applicable"),
    ("kms-key-rotation-enabled", "aws:kms/key:Key",
     {"customerMasterKeySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"}, "not_applicable"),
    # dms-endpoint-ssl (advisory)
    ("dms-endpoint-ssl", "aws:dms/endpoint:Endpoint", {"engineName": "mysql", "sslMode": "require"}, "pass"),
    ("dms-endpoint-ssl", "aws:dms/endpoint:Endpoint", {"engineName": "mysql", "sslMode": "none"},
     "violation:advisory"),
    ("dms-endpoint-ssl", "aws:dms/endpoint:Endpoint", {"engineName": "postgres"}, "violation:advisory"),
    ("dms-endpoint-ssl", "aws:dms/endpoint:Endpoint", {"engineName": "dynamodb"}, "not_applicable"),
    ("dms-endpoint-ssl", "aws:dms/endpoint:Endpoint", {"engineName": "mysql", "sslMode": UNKNOWN}, "undetermined"),
]


@pytest.mark.parametrize(("policy", "type_token", "inputs", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_resource_policy(pack: PackProcess, policy: str, type_token: str, inputs: dict[str, Any],
                         expected: str) -> None:
    report = run(pack, [resource(type_token, "subject", **{k: v for k, v in inputs.items() if v is not None})])
    assert verdict(report, policy, "subject") == expected


def test_violation_message_names_the_problem_and_the_remediation(pack: PackProcess) -> None:
    report = run(pack, [resource(INSTANCE, "db", engine="mysql", storageEncrypted=False,
                                 iamDatabaseAuthenticationEnabled=True)])
    (violation,) = [v for v in report.violations if v.policy == "rds-storage-encrypted"]
    assert violation.message.startswith("unencrypted storage: storageEncrypted is false")
    assert "Remediation:" in violation.message and "storage_encrypted=True" in violation.message
    assert violation.urn.endswith("::db") and violation.type == INSTANCE


def test_other_types_are_not_judged(pack: PackProcess) -> None:
    report = run(pack, [resource("aws:ec2/vpc:Vpc", "vpc", cidrBlock="10.0.0.0/16")])
    assert report.violations == [] and report.exempted == []
    assert [n for n in report.not_applicable if n.resource == "vpc"] == []


def exemption(policy: str, name: str, reason: str = "demo source, encrypted by the recipe") -> dict[str, Any]:
    return {policy: {"exemptions": [{"resource": name, "reason": reason}]}}


def test_exempted_resource_is_reported_as_exempted_not_passed(pack: PackProcess) -> None:
    bad = resource(INSTANCE, "source-db", engine="mysql", storageEncrypted=False, iamDatabaseAuthenticationEnabled=True)
    other = resource(INSTANCE, "other-db", engine="mysql", storageEncrypted=False, iamDatabaseAuthenticationEnabled=True)
    report = run(pack, [bad, other], exemption("rds-storage-encrypted", "source-db"))
    assert verdict(report, "rds-storage-encrypted", "source-db") == "exempted"
    (note,) = [n for n in report.exempted if n.resource == "source-db"]
    assert note.reason == "demo source, encrypted by the recipe" and note.type == INSTANCE
    # The exemption names one resource for one policy: nothing else is waived.
    assert verdict(report, "rds-storage-encrypted", "other-db") == "violation:mandatory"
    assert not report.passed


# One failing resource per resource policy: each must be exemptable by configuration alone.
FAILING: dict[str, tuple[str, dict[str, Any]]] = {
    "rds-storage-encrypted": (INSTANCE, {"engine": "mysql", "iamDatabaseAuthenticationEnabled": True}),
    "rds-snapshot-not-public": ("aws:rds/snapshot:Snapshot", {"sharedAccounts": ["all"]}),
    "rds-performance-insights-cmk": (INSTANCE, {"performanceInsightsEnabled": True}),
    "rds-auto-minor-version-upgrade": (INSTANCE, {"autoMinorVersionUpgrade": False}),
    "rds-log-exports": (INSTANCE, {"engine": "postgres"}),
    "rds-copy-tags-to-snapshot": (INSTANCE, {"engine": "postgres"}),
    "kms-key-policy-not-public": ("aws:kms/key:Key", {"policy": json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]})}),
    "dms-endpoint-verify-certificate": ("aws:dms/endpoint:Endpoint", {"engineName": "mysql", "sslMode": "verify-full"}),
    "dms-auto-minor-version-upgrade": ("aws:dms/replicationInstance:ReplicationInstance", {}),
    "dms-task-logging": ("aws:dms/replicationTask:ReplicationTask", {}),
    "iam-no-kms-decrypt-on-all-keys": ("aws:iam/policy:Policy", {"policy": json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]})}),
    "lambda-no-credentials-in-environment": ("aws:lambda/function:Function",
                                             {"environment": {"variables": {"DB_PASSWORD": "hunter2-secret"}}}),
    "lambda-supported-runtime": ("aws:lambda/function:Function", {"runtime": "python3.9"}),
    "cloudwatch-log-group-retention": ("aws:cloudwatch/logGroup:LogGroup", {}),
    "rds-iam-authentication-enabled": (INSTANCE, {"engine": "mysql", "storageEncrypted": True}),
    "rds-proxy-iam-auth-required": ("aws:rds/proxy:Proxy", {"requireTls": True}),
    "rds-proxy-tls-required": ("aws:rds/proxy:Proxy", {"defaultAuthScheme": "IAM_AUTH"}),
    "dynamodb-table-encrypted-kms": ("aws:dynamodb/table:Table", {}),
    "secretsmanager-secret-encrypted-cmk": ("aws:secretsmanager/secret:Secret", {}),
    "dms-replication-instance-encrypted": ("aws:dms/replicationInstance:ReplicationInstance",
                                           {"publiclyAccessible": False}),
    "dms-replication-instance-not-public": ("aws:dms/replicationInstance:ReplicationInstance", {}),
    "aurora-serverless-v1-retired": (CLUSTER, {**GOOD_AURORA, "engineMode": "serverless"}),
    "rds-no-public-access": (CLUSTER_INSTANCE, {"publiclyAccessible": True}),
    "kms-key-rotation-enabled": ("aws:kms/key:Key", {}),
    "dms-endpoint-ssl": ("aws:dms/endpoint:Endpoint", {"engineName": "mysql"}),
    "iam-no-wildcard-data-access": ("aws:iam/policy:Policy", {"policy": None}),
}


@pytest.mark.parametrize("policy", sorted(FAILING))
def test_every_resource_policy_accepts_exemptions(pack: PackProcess, policy: str) -> None:
    type_token, inputs = FAILING[policy]
    inputs = {**inputs, "policy": WILDCARD_DOC} if inputs.get("policy", "") is None else inputs
    failing = run(pack, [resource(type_token, "x", **inputs), resource(type_token, "y", **inputs)])
    assert verdict(failing, policy, "x").startswith("violation")
    exempted = run(pack, [resource(type_token, "x", **inputs), resource(type_token, "y", **inputs)],
                   exemption(policy, "x"))
    assert verdict(exempted, policy, "x") == "exempted"
    assert verdict(exempted, policy, "y") == verdict(failing, policy, "y")  # only the named resource


def test_every_policy_can_fail_and_be_exempted(pack: PackProcess) -> None:
    # Policies judged per stack kind or across resources are exercised in test_policy_rules.py.
    elsewhere = {"rds-storage-cmk", "rds-storage-cmk-ephemeral", "rds-tls-enforced", "rds-deletion-protection",
                 "rds-backup-retention", "rds-multi-az", "ephemeral-teardown-safe", "dynamodb-pitr-enabled",
                 "dynamodb-deletion-protection", "dynamodb-autoscaling", "secretsmanager-rotation-enabled",
                 "dms-replication-instance-multi-az", "lambda-in-vpc-for-database", "rds-snapshot-encrypted",
                 "rds-snapshot-copy-cmk", "dynamodb-restore-cmk", "dms-endpoint-cmk", "kms-key-provenance"}
    assert set(run(pack, []).levels) == set(FAILING) | elsewhere


# ----------------------------------------------------------------------- iam-no-wildcard-data-access

WILDCARD_DOC = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", '
                '"Resource": "*"}]}')
SCOPED_DOC = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["rds-db:connect"], '
              '"Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-ABC/app"}]}')


@pytest.mark.parametrize(("statement", "expected"), [
    ({"Effect": "Allow", "Action": "rds-data:*", "Resource": "*"}, "violation:advisory"),
    ({"Effect": "Allow", "Action": ["rds-data:ExecuteStatement"], "Resource": ["*"]}, "violation:advisory"),
    ({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}, "violation:advisory"),
    ({"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}, "violation:advisory"),
    ({"Effect": "Allow", "Action": "*", "Resource": "*"}, "violation:advisory"),
    ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, "violation:advisory"),
    ({"Effect": "Allow", "NotAction": ["rds-db:*", "rds-data:*", "secretsmanager:*"], "Resource": "*"}, "pass"),
    ({"Effect": "Deny", "Action": "rds-db:connect", "Resource": "*"}, "pass"),
    ({"Effect": "Allow", "Action": "ec2:DescribeNetworkInterfaces", "Resource": "*"}, "pass"),
    ({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
      "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-abc"}, "pass"),
])
def test_iam_wildcard_statements(pack: PackProcess, statement: dict[str, Any], expected: str) -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    report = run(pack, [resource("aws:iam/rolePolicy:RolePolicy", "grant", role="r", policy=document)])
    assert verdict(report, "iam-no-wildcard-data-access", "grant") == expected


def test_iam_role_inline_policies_and_unknown_documents(pack: PackProcess) -> None:
    role = resource("aws:iam/role:Role", "role", assumeRolePolicy="{}",
                    inlinePolicies=[{"name": "ok", "policy": SCOPED_DOC}, {"name": "bad", "policy": WILDCARD_DOC}])
    unknown = resource("aws:iam/policy:Policy", "later", policy=UNKNOWN)
    scoped = resource("aws:iam/policy:Policy", "scoped", policy=SCOPED_DOC)
    report = run(pack, [role, unknown, scoped])
    assert verdict(report, "iam-no-wildcard-data-access", "role") == "violation:advisory"
    (message,) = [v.message for v in report.violations if v.resource == "role"]
    assert message.startswith("inlinePolicies[1].policy: Statement[0] allows rds-db:connect")
    assert verdict(report, "iam-no-wildcard-data-access", "later") == "undetermined"
    assert verdict(report, "iam-no-wildcard-data-access", "scoped") == "pass"


# ----------------------------------------------------------------------- configuration


def test_advisory_policy_can_be_made_mandatory(pack: PackProcess) -> None:
    public = resource(INSTANCE, "db", **GOOD_MYSQL, publiclyAccessible=True)
    assert verdict(run(pack, [public]), "rds-no-public-access", "db") == "violation:advisory"
    strict = run(pack, [public], {"rds-no-public-access": "mandatory"})
    assert verdict(strict, "rds-no-public-access", "db") == "violation:mandatory"
    assert not strict.passed
    via_object = run(pack, [public], {"rds-no-public-access": {"enforcementLevel": "mandatory"}})
    assert verdict(via_object, "rds-no-public-access", "db") == "violation:mandatory"


def test_all_and_disabled_levels(pack: PackProcess) -> None:
    public = resource(INSTANCE, "db", engine="mysql", publiclyAccessible=True)
    report = run(pack, [public], {"all": "mandatory", "rds-storage-encrypted": "disabled"})
    assert verdict(report, "rds-no-public-access", "db") == "violation:mandatory"
    assert verdict(report, "rds-storage-encrypted", "db") == "pass"
    assert report.levels["rds-storage-encrypted"] == "disabled"
    assert report.summary()["policies"] == len(report.levels) - 1


def test_levels_report_the_defaults(pack: PackProcess) -> None:
    report = run(pack, [])
    mandatory = {name for name, level in report.levels.items() if level == "mandatory"}
    assert mandatory == {
        "rds-storage-encrypted", "rds-storage-cmk", "rds-snapshot-encrypted", "rds-snapshot-not-public",
        "rds-tls-enforced", "rds-iam-authentication-enabled", "rds-performance-insights-cmk",
        "rds-proxy-iam-auth-required", "rds-proxy-tls-required", "aurora-serverless-v1-retired",
        "dynamodb-table-encrypted-kms", "kms-key-policy-not-public", "secretsmanager-secret-encrypted-cmk",
        "dms-replication-instance-encrypted", "dms-replication-instance-not-public", "dms-endpoint-verify-certificate",
        "lambda-no-credentials-in-environment", "rds-snapshot-copy-cmk", "dynamodb-restore-cmk", "dms-endpoint-cmk",
        "kms-key-provenance",
    }
    assert len(report.levels) == 44
    assert report.pack == "db-recipes-guard" and report.version == "0.1.0"


@pytest.mark.parametrize(("config", "error"), [
    ({"rds-storage-encryptd": "mandatory"}, "unknown policy 'rds-storage-encryptd'"),
    ({"rds-storage-encrypted": {"exemptions": [{"resource": "x"}]}}, "'reason' is required"),
    ({"rds-storage-encrypted": {"exemptions": [{"resource": "x", "reason": ""}]}}, "must not be empty"),
    ({"rds-storage-encrypted": {"exemption": []}}, "unknown property 'exemption'"),
    ({"secretsmanager-rotation-enabled": {"maxRotationDays": "thirty"}}, "expected integer"),
    ({"secretsmanager-rotation-enabled": {"maxRotationDays": 0}}, "below the minimum 1"),
])
def test_bad_policy_config_is_refused_before_analysis(pack: PackProcess, config: dict[str, Any], error: str) -> None:
    with pytest.raises(policy_check.PolicyCheckError, match=error.replace("(", r"\(")):
        run(pack, [resource(INSTANCE, "db")], config)

