"""The new rules, table-driven, over the real analyzer protocol; each case names the AWS behaviour it encodes.

Sources: AWS API reference (RDS, DMS, DynamoDB, KMS, Secrets Manager), AWS Config managed-rule and Security
Hub control docs, checkov's Terraform check fixtures (bridgecrewio/checkov tests/terraform/checks/resource/aws).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from automation.planning import policy_check
from automation.planning.policy_check import PackProcess, Report

pytestmark = pytest.mark.policy

KEY = "arn:aws:kms:us-east-1:123456789012:key/0d9f1c5e-3a8b-4c4f-9d55-1b2c3d4e5f60"
U = "[unknown]"
STACK = "urn:pulumi:t::db-recipes::"
INSTANCE, CLUSTER = "aws:rds/instance:Instance", "aws:rds/cluster:Cluster"
PG, CPG = "aws:rds/parameterGroup:ParameterGroup", "aws:rds/clusterParameterGroup:ClusterParameterGroup"


@pytest.fixture(scope="module")
def pack() -> Iterator[PackProcess]:
    with policy_check.running_pack(project="db-recipes", stack="policy-rule-tests") as running:
        yield running


def res(type_token: str, logical: str, deps: tuple[str, ...] = (), parent: str | None = None,
        **inputs: Any) -> dict[str, Any]:
    return {"urn": f"{STACK}{type_token}::{logical}", "type": type_token, "name": logical, "inputs": inputs,
            "dependencies": [f"{STACK}{d}" for d in deps], "parent": f"{STACK}{parent}" if parent else None}


def provider(ephemeral: str) -> dict[str, Any]:
    return res("pulumi:providers:aws", "aws", region="us-east-1",
               defaultTags=json.dumps({"tags": {"ephemeral": ephemeral}}))


def run(pack: PackProcess, resources: list[dict[str, Any]], config: dict[str, Any] | None = None) -> Report:
    target = policy_check.target_from_document({"project": "db-recipes", "stack": "t", "resources": resources})
    return policy_check.analyze(pack, target, config or {})


def verdict(report: Report, policy: str, name: str) -> str:
    """pass, violation:<level>, undetermined (advisory) or undetermined:<level> (strict), exempted, not_applicable."""
    found = [v for v in report.violations if v.policy == policy and v.resource == name]
    if found:
        if all(v.undetermined for v in found):
            return "undetermined" if all(v.level == "advisory" for v in found) else f"undetermined:{found[0].level}"
        return f"violation:{found[0].level}"
    if any(n.policy == policy and n.resource == name for n in report.exempted):
        return "exempted"
    if any(note.policy == policy and note.resource == name for note in report.not_applicable):
        return "not_applicable"
    return "pass"


def db(logical: str = "db", **inputs: Any) -> dict[str, Any]:
    return res(INSTANCE, logical, **{"engine": "mysql", "storageEncrypted": True, "kmsKeyId": KEY,
                                  "iamDatabaseAuthenticationEnabled": True, **inputs})


# (policy, resources, subject, expected, AWS behaviour)
CASES: list[tuple[str, list[dict[str, Any]], str, str, str]] = [
    # rds-tls-enforced
    ("rds-tls-enforced", [db(parameterGroupName="tls"), res(PG, "g", name="tls", family="mysql8.4",
                          parameters=[{"name": "require_secure_transport", "value": "1"}])], "db", "pass",
     "require_secure_transport=1 refuses plaintext (RDS User Guide, MySQL SSL)"),
    ("rds-tls-enforced", [db(parameterGroupName="tls"), res(PG, "g", name="tls", family="mysql8.4",
                          parameters=[{"name": "REQUIRE_SECURE_TRANSPORT", "value": "ON"}])], "db", "pass",
     "parameter values ON/1 are the same setting"),
    ("rds-tls-enforced", [db(parameterGroupName="tls"), res(PG, "g", name="tls", family="mysql8.4",
                          parameters=[{"name": "require_secure_transport", "value": "0"}])], "db", "violation:mandatory",
     "0 allows plaintext"),
    ("rds-tls-enforced", [db()], "db", "violation:mandatory", "default group: require_secure_transport OFF"),
    ("rds-tls-enforced", [db(engine="POSTGRES", engineVersion="16.3")], "db", "pass",
     "RDS for PostgreSQL 15+ defaults rds.force_ssl=1; engine names are case-insensitive"),
    ("rds-tls-enforced", [db(engine="postgres", engineVersion="14.9")], "db", "violation:mandatory",
     "RDS for PostgreSQL before 15 defaults rds.force_ssl=0"),
    ("rds-tls-enforced", [db(engine="postgres")], "db", "undetermined",
     "no version: the default group's rds.force_ssl depends on the version RDS picks"),
    ("rds-tls-enforced", [db(parameterGroupName="elsewhere")], "db", "undetermined", "group not in the stack"),
    ("rds-tls-enforced", [res(CLUSTER, "c", engine="aurora-postgresql", dbClusterParameterGroupName="cpg"),
                          res(CPG, "g", name="cpg", family="aurora-postgresql16",
                              parameters=[{"name": "rds.force_ssl", "value": "1"}])], "c", "pass",
     "Aurora PostgreSQL: rds.force_ssl in the cluster parameter group"),
    ("rds-tls-enforced", [res(CLUSTER, "c", engine="aurora-postgresql")], "c", "violation:mandatory",
     "Aurora PostgreSQL defaults rds.force_ssl=0"),
    ("rds-tls-enforced", [db(engine="oracle-ee")], "db", "pass", "Oracle: TLS through option groups, not judged"),
    # rds-storage-cmk (durable) / -ephemeral
    ("rds-storage-cmk", [provider("false"), res("aws:kms/key:Key", "k"), db(deps=("aws:kms/key:Key::k",))], "db",
     "pass", "kmsKeyId of a customer-managed key the stack creates"),
    ("rds-storage-cmk", [provider("false"), db()], "db", "undetermined",
     "a key ARN of no key in the stack: AWS managed keys have key ARNs too (KMS Developer Guide, AWS managed keys)"),
    ("rds-storage-cmk", [provider("false"), db(kmsKeyId="alias/app-data")], "db", "pass",
     "a customer alias (outside aws/) can only point to a customer managed key (KMS CreateAlias)"),
    ("rds-storage-cmk", [provider("false"), db(kmsKeyId=None)], "db", "violation:mandatory",
     "storageEncrypted without KmsKeyId uses aws/rds (CreateDBInstance KmsKeyId)"),
    ("rds-storage-cmk", [provider("false"), db(kmsKeyId="alias/aws/rds")], "db", "violation:mandatory",
     "the aws/rds alias is the AWS managed key"),
    ("rds-storage-cmk", [provider("true"), db(kmsKeyId="alias/aws/rds")], "db", "pass",
     "ephemeral stacks: the stack is not applicable here, rds-storage-cmk-ephemeral judges it"),
    ("rds-storage-cmk-ephemeral", [provider("true"), db(kmsKeyId="alias/aws/rds")], "db", "violation:advisory",
     "advisory on ephemeral stacks"),
    ("rds-storage-cmk", [provider("false"), res(CLUSTER, "c", engine="aurora-mysql", snapshotIdentifier="s")], "c",
     "undetermined", "restore without KmsKeyId: the key is the snapshot's"),
    # encryption through the stack's own chain: unencrypted source -> replica -> snapshot -> KMS copy -> restore
    ("rds-snapshot-encrypted", [db("src", storageEncrypted=False, kmsKeyId=None, identifier="src"),
                                res("aws:rds/snapshot:Snapshot", "snap", dbInstanceIdentifier="src",
                                    dbSnapshotIdentifier="s1")], "snap", "violation:mandatory",
     "a DB snapshot has its instance's encryption"),
    ("rds-storage-encrypted", [res("aws:rds/snapshotCopy:SnapshotCopy", "copy", sourceDbSnapshotIdentifier="s1",
                                   targetDbSnapshotIdentifier="s2", kmsKeyId=KEY),
                               res(INSTANCE, "restored", snapshotIdentifier="arn:aws:rds:us-east-1:1:snapshot:S2")],
     "restored", "pass", "CopyDBSnapshot with KmsKeyId encrypts; a restore takes the snapshot's encryption"),
    ("rds-storage-encrypted", [db("src", storageEncrypted=False, kmsKeyId=None, identifier="src"),
                               res(INSTANCE, "replica", replicateSourceDb="src")], "replica", "violation:mandatory",
     "a replica of an unencrypted source is unencrypted"),
    ("rds-snapshot-encrypted", [res(CLUSTER, "c", clusterIdentifier="c1", storageEncrypted=False),
                                res("aws:rds/clusterSnapshotCopy:ClusterSnapshotCopy", "cc", kmsKeyId=KEY,
                                    sourceDbClusterSnapshotIdentifier="cs"),
                                res("aws:rds/clusterSnapshot:ClusterSnapshot", "cs", dbClusterIdentifier="c1",
                                    dbClusterSnapshotIdentifier="cs")], "cc", "violation:mandatory",
     "a DB cluster snapshot cannot be encrypted by copying (CopyDBClusterSnapshot KmsKeyId)"),
    # rds-snapshot-not-public
    ("rds-snapshot-not-public", [res("aws:rds/snapshot:Snapshot", "s", sharedAccounts=["123456789012"])], "s", "pass",
     "sharing with a named account"),
    ("rds-snapshot-not-public", [res("aws:rds/clusterSnapshot:ClusterSnapshot", "s", sharedAccounts=["All"])], "s",
     "violation:mandatory", "restore attribute 'all' makes a snapshot public (ModifyDBSnapshotAttribute)"),
    # rds-performance-insights-cmk (checkov CKV_AWS_354 fixtures: enabled without key fails)
    ("rds-performance-insights-cmk", [db(performanceInsightsEnabled="true")], "db", "violation:mandatory",
     "PI without PerformanceInsightsKMSKeyId uses aws/rds"),
    ("rds-performance-insights-cmk", [db(performanceInsightsEnabled=True, performanceInsightsKmsKeyId=KEY)], "db",
     "pass", "customer-managed PI key"),
    ("rds-performance-insights-cmk", [db()], "db", "not_applicable", "PI off (the API default)"),
    # rds-auto-minor-version-upgrade / rds-multi-az / rds-log-exports / rds-copy-tags-to-snapshot
    ("rds-auto-minor-version-upgrade", [db()], "db", "pass", "AutoMinorVersionUpgrade defaults to true"),
    ("rds-auto-minor-version-upgrade", [db(autoMinorVersionUpgrade="false")], "db", "violation:advisory",
     "booleans may arrive as strings"),
    ("rds-multi-az", [provider("false"), db(multiAz="yes")], "db", "violation:advisory",
     "a YAML spelling of a boolean is a malformed input, not true"),
    ("rds-multi-az", [provider("false"), db(multiAz=True)], "db", "pass", "MultiAZ"),
    ("rds-multi-az", [provider("false"), db()], "db", "violation:advisory", "MultiAZ defaults to false"),
    ("rds-log-exports", [db(engine="postgres", enabledCloudwatchLogsExports=["postgresql", "upgrade"])], "db", "pass",
     "Security Hub RDS.9 PostgreSQL log types"),
    ("rds-log-exports", [db(engine="mariadb", enabledCloudwatchLogsExports=["error"])], "db", "violation:advisory",
     "Security Hub RDS.9 MariaDB: audit, error, general, slowquery"),
    ("rds-copy-tags-to-snapshot", [db(copyTagsToSnapshot=True)], "db", "pass", "CopyTagsToSnapshot"),
    # dynamodb
    ("dynamodb-table-encrypted-kms", [res("aws:dynamodb/table:Table", "t", serverSideEncryption={
        "enabled": True, "kmsKeyArn": KEY}, replicas=[{"regionName": "eu-west-1"}])], "t", "violation:mandatory",
     "a replica without kms_key_arn uses aws/dynamodb"),
    ("dynamodb-table-encrypted-kms", [res("aws:dynamodb/tableReplica:TableReplica", "r", kmsKeyArn=KEY)], "r", "pass",
     "replica with its own customer-managed key"),
    ("dynamodb-table-encrypted-kms", [res("aws:dynamodb/table:Table", "t", restoreSourceName="src")], "t",
     "not_applicable", "a restored table is judged with its source by dynamodb-restore-cmk"),
    ("dynamodb-autoscaling", [res("aws:dynamodb/table:Table", "t", name="items", readCapacity=1, writeCapacity=1)],
     "t", "violation:advisory", "BillingMode defaults to PROVISIONED; no Application Auto Scaling target"),
    ("dynamodb-autoscaling", [res("aws:dynamodb/table:Table", "t", name="items", billingMode="PAY_PER_REQUEST")], "t",
     "pass", "on-demand tables do not scale capacity"),
    ("dynamodb-autoscaling", [res("aws:dynamodb/table:Table", "t", name="items", billingMode="PROVISIONED"),
                              *[res("aws:appautoscaling/target:Target", f"{d}", serviceNamespace="dynamodb",
                                    resourceId="table/items", scalableDimension=f"dynamodb:table:{d}CapacityUnits")
                                for d in ("Read", "Write")]], "t", "pass", "read and write targets on the table"),
    # kms
    ("kms-key-policy-not-public", [res("aws:kms/key:Key", "k", policy=json.dumps({"Statement": {
        "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "kms:Decrypt", "Resource": "*"}}))], "k",
     "violation:mandatory", "Principal AWS * is every account (checkov CKV_AWS_33 fixture)"),
    ("kms-key-policy-not-public", [res("aws:kms/keyPolicy:KeyPolicy", "k", keyId="k", policy=json.dumps({
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
                       "Condition": {"StringEquals": {"kms:CallerAccount": "123456789012"}}}]}))], "k", "pass",
     "a Condition narrows the wildcard principal"),
    ("kms-key-policy-not-public", [res("aws:kms/key:Key", "k")], "k", "pass", "default key policy: account root"),
    # iam
    ("iam-no-wildcard-data-access", [res("aws:iam/policy:Policy", "p", policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Action": "RDS-DB:Connect",
        "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:*/app"}]}))], "p", "violation:advisory",
     "wildcard resource id in an rds-db ARN; action names are case-insensitive"),
    ("iam-no-wildcard-data-access", [res("aws:iam/rolePolicy:RolePolicy", "p", role="r", policy=json.dumps({
        "Statement": {"Effect": "Allow", "Action": "rds-db:*",
                      "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/*"}}))], "p",
     "violation:advisory", "wildcard db user; a single Statement object"),
    ("iam-no-wildcard-data-access", [res("aws:iam/role:Role", "r", inlinePolicies=[{"name": "i", "policy": {
        "Statement": [{"Effect": "Allow", "Action": ["rds-db:connect"],
                       "Resource": ["arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app"]}]}}])], "r", "pass",
     "one user on one database, inline policy as an object"),
    ("iam-no-kms-decrypt-on-all-keys", [res("aws:iam/policy:Policy", "p", policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Action": "kms:ReEncrypt*", "Resource": "arn:aws:kms:*:123456789012:key/*"}]}))], "p",
     "violation:advisory", "Security Hub KMS.1: decryption actions on all keys"),
    ("iam-no-kms-decrypt-on-all-keys", [res("aws:iam/policy:Policy", "p", policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY}]}))], "p", "pass", "one key"),
    # dms
    ("dms-replication-instance-encrypted", [res("aws:dms/replicationInstance:ReplicationInstance", "r",
                                                kmsKeyArn="arn:aws:kms:us-east-1:123456789012:alias/aws/dms")], "r",
     "violation:mandatory", "the aws/dms alias is AWS managed"),
    ("dms-endpoint-verify-certificate", [res("aws:dms/endpoint:Endpoint", "e", engineName="postgres",
                                             sslMode="VERIFY-CA", certificateArn="arn:aws:dms:::cert:X")], "e", "pass",
     "verify-ca with a CA certificate"),
    ("dms-endpoint-verify-certificate", [res("aws:dms/endpoint:Endpoint", "e", engineName="mysql",
                                             sslMode="require")], "e", "not_applicable", "require verifies nothing"),
    ("dms-task-logging", [res("aws:dms/replicationTask:ReplicationTask", "t", replicationTaskSettings=json.dumps(
        {"Logging": {"EnableLogging": True, "LogComponents": [
            {"Id": "SOURCE_CAPTURE", "Severity": "LOGGER_SEVERITY_ERROR"}]}}))], "t", "violation:advisory",
     "Config dms-replication-task-sourcedb-logging: at least LOGGER_SEVERITY_DEFAULT"),
    ("dms-task-logging", [res("aws:dms/replicationTask:ReplicationTask", "t", replicationTaskSettings=json.dumps(
        {"Logging": {"EnableLogging": True}}))], "t", "pass", "logging on, default severities"),
    ("dms-task-logging", [res("aws:dms/replicationTask:ReplicationTask", "t", replicationTaskSettings=json.dumps(
        {"Logging": {"EnableLogging": "true"}}))], "t", "violation:advisory",
     "task settings are JSON: EnableLogging is a JSON boolean (DMS task settings, Logging)"),
    ("dms-auto-minor-version-upgrade", [res("aws:dms/replicationInstance:ReplicationInstance", "r",
                                            autoMinorVersionUpgrade=True)], "r", "pass", "DMS.6"),
    # lambda
    ("lambda-no-credentials-in-environment", [res("aws:lambda/function:Function", "f", environment={"variables": {
        "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x", "PASSWORD_LENGTH": "41"}})], "f", "pass",
     "references and lengths are not credentials"),
    ("lambda-no-credentials-in-environment", [res("aws:lambda/function:Function", "f", environment={"variables": {
        "DATABASE_URL": "postgres://app:s3cret@db:5432/app"}})], "f", "violation:mandatory",
     "a URL with a password (checkov CKV_AWS_45)"),
    ("lambda-no-credentials-in-environment", [res("aws:lambda/function:Function", "f", environment={"variables": {
        "KEY": "AKIAIOSFODNN7EXAMPLE"}})], "f", "violation:mandatory", "an AWS access key id"),
    ("lambda-supported-runtime", [res("aws:lambda/function:Function", "f", runtime="nodejs18.x")], "f",
     "violation:advisory", "Node.js 18 is deprecated (Lambda runtimes page)"),
    ("lambda-supported-runtime", [res("aws:lambda/function:Function", "f", packageType="Image")], "f",
     "not_applicable", "container images carry their runtime"),
    ("lambda-in-vpc-for-database", [res("aws:lambda/function:Function", "f", environment={"variables": {
        "DB_HOST": "x.cluster-abc.us-east-1.rds.amazonaws.com"}})], "f", "violation:advisory",
     "a function outside the VPC talking to a database (Lambda.3)"),
    ("lambda-in-vpc-for-database", [res("aws:lambda/function:Function", "f", vpcConfig={"subnetIds": ["s"]},
                                        environment={"variables": {"DB_HOST": "x.rds.amazonaws.com"}})], "f", "pass",
     "inside the VPC"),
    # logs
    ("cloudwatch-log-group-retention", [res("aws:cloudwatch/logGroup:LogGroup", "g", retentionInDays="7")], "g",
     "pass", "retention as a string"),
    ("cloudwatch-log-group-retention", [res("aws:cloudwatch/logGroup:LogGroup", "g", retentionInDays=0)], "g",
     "violation:advisory", "0 / absent: never expire"),
]


@pytest.mark.parametrize(("policy", "resources", "subject", "expected", "aws"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule(pack: PackProcess, policy: str, resources: list[dict[str, Any]], subject: str, expected: str,
              aws: str) -> None:
    resources = [{**r, "inputs": {k: v for k, v in r["inputs"].items() if v is not None}} for r in resources]
    assert verdict(run(pack, resources), policy, subject) == expected, aws


# ----------------------------------------------------------------------- rotation, wherever it is declared

SECRET_T, ROTATION_T = "aws:secretsmanager/secret:Secret", "aws:secretsmanager/secretRotation:SecretRotation"


@pytest.mark.parametrize("how", ["arn", "partial-arn", "name", "component"])
def test_rotation_found_by_arn_name_or_component_output(pack: PackProcess, how: str) -> None:
    secret = res(SECRET_T, "admin", parent="db-recipes:rotation:RotatedSecret::comp", name="app-db-admin",
                 kmsKeyId=KEY)
    component = res("db-recipes:rotation:RotatedSecret", "comp")
    secret_id = {"arn": "arn:aws:secretsmanager:us-east-1:1:secret:app-db-admin-AbC123",
                 "partial-arn": "arn:aws:secretsmanager:us-east-1:1:secret:app-db-admin",
                 "name": "app-db-admin", "component": U}[how]
    deps = ("db-recipes:rotation:RotatedSecret::comp",) if how == "component" else ()
    rotation = res(ROTATION_T, "rot", deps=deps, secretId=secret_id, rotationRules={"automaticallyAfterDays": "30"})
    report = run(pack, [component, secret, rotation])
    assert verdict(report, "secretsmanager-rotation-enabled", "admin") == "pass"
    alone = run(pack, [component, secret])
    assert verdict(alone, "secretsmanager-rotation-enabled", "admin") == "violation:advisory"


# ----------------------------------------------------------------------- scale and failures


def test_thousands_of_resources_without_cancelled_calls(pack: PackProcess) -> None:
    resources = []
    for i in range(1000):
        resources.append(res(SECRET_T, f"s{i}", name=f"db-admin-{i}", kmsKeyId=KEY))
        resources.append(res(ROTATION_T, f"r{i}", secretId=f"db-admin-{i}", rotationRules={"automaticallyAfterDays": 7}))
        resources.append(db(f"d{i}", parameterGroupName="tls"))
    resources.append(res(PG, "g", name="tls", parameters=[{"name": "require_secure_transport", "value": "1"}]))
    report = run(pack, resources)
    assert report.resources == 3001
    assert [v for v in report.violations if v.policy == "secretsmanager-rotation-enabled"] == []
    assert [v for v in report.violations if v.level == "mandatory"] == []


def test_a_pack_that_dies_mid_run_raises_pack_error() -> None:
    with policy_check.running_pack(project="db-recipes", stack="dies") as running:
        running.connect()
        running._process.kill()
        running._process.wait()
        target = policy_check.target_from_document({"resources": [db()]})
        with pytest.raises(policy_check.PackError, match="the policy pack failed"):
            policy_check.analyze(running, target, {})
