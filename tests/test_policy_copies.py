"""Copies and restores: which key their data ends up under, and what the plan cannot prove.

Every copy and restore resource x {source in the stack encrypted with a customer-managed key (CMK), with the
AWS managed key aws/rds, unencrypted, outside the stack} x {no kmsKeyId, a key of the stack, a key id the
stack does not create, an AWS managed alias}, judged over the real analyzer protocol. AWS behaviour:

- CopyDBSnapshot (KmsKeyId): without it the copy "is encrypted with the same KMS key as the source DB
  snapshot"; with it an unencrypted snapshot's copy is encrypted. checkov CKV_AWS_266 asks every
  aws_db_snapshot_copy for kms_key_id; the pack credits a source's CMK and reports what the plan cannot show.
- CopyDBClusterSnapshot (KmsKeyId): without it the copy keeps the source's key; with it an unencrypted
  source is an error ("You cannot encrypt an unencrypted DB cluster snapshot when you copy it").
- RestoreDBInstanceFromDBSnapshot / CreateDBInstanceReadReplica / RestoreDBInstanceToPointInTime: the new
  instance has its source's encryption.
- RestoreDBClusterFromSnapshot (KmsKeyId): with it the cluster is encrypted with it (an unencrypted snapshot
  too: Aurora User Guide, encrypted DB cluster limitations); without it the snapshot's key, or none.
- RestoreDBClusterToPointInTime (KmsKeyId): re-keys an encrypted source; an unencrypted source with KmsKeyId
  is rejected.
- DynamoDB RestoreTableToPointInTime: the restored table takes the source's encryption settings unless
  SSESpecificationOverride (the provider's serverSideEncryption) gives new ones.
- DMS CreateEndpoint (KmsKeyId): without it the connection parameters are encrypted with aws/dms.
- KMS: aliases under aws/ are AWS managed keys; a customer alias can only point to a customer managed key
  (CreateAlias, TargetKeyId); a key id or ARN alone does not say which kind of key it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from automation.planning import policy_check
from automation.planning.policy_check import PackProcess
from tests.test_policy_rules import KEY, provider, res, run, verdict

pytestmark = pytest.mark.policy

INSTANCE, CLUSTER, KEY_T = "aws:rds/instance:Instance", "aws:rds/cluster:Cluster", "aws:kms/key:Key"
SNAPSHOT, SNAPSHOT_COPY = "aws:rds/snapshot:Snapshot", "aws:rds/snapshotCopy:SnapshotCopy"
CLUSTER_SNAPSHOT, CLUSTER_COPY = "aws:rds/clusterSnapshot:ClusterSnapshot", "aws:rds/clusterSnapshotCopy:ClusterSnapshotCopy"
TABLE, ENDPOINT = "aws:dynamodb/table:Table", "aws:dms/endpoint:Endpoint"
STACK_KEY = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-2222-3333-4444-555566667777"
KEY_DEP = f"{KEY_T}::stack-key"
SOURCES = ("cmk", "aws", "unencrypted", "external")
KEYS = ("none", "own", "foreign", "aws")
P, M, U, N = "pass", "violation:mandatory", "undetermined", "not_applicable"


def key_inputs(key: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """kmsKeyId for a copy or restore: none, the stack's key (a dependency), a key id of no stack key, aws/rds."""
    return {"none": ({}, ()), "own": ({"kmsKeyId": STACK_KEY}, (KEY_DEP,)), "foreign": ({"kmsKeyId": KEY}, ()),
            "aws": ({"kmsKeyId": "alias/aws/rds"}, ())}[key]


def instance_source(source: str) -> list[dict[str, Any]]:
    """An instance (identifier src) and its snapshot (identifier s1), encrypted as ``source`` says."""
    if source == "external":
        return []
    encryption = {"cmk": {"storageEncrypted": True, "kmsKeyId": STACK_KEY}, "aws": {"storageEncrypted": True},
                  "unencrypted": {"storageEncrypted": False}}[source]
    deps = (KEY_DEP,) if source == "cmk" else ()
    return [res(INSTANCE, "src", deps, engine="mysql", identifier="src", **encryption),
            res(SNAPSHOT, "snap", dbInstanceIdentifier="src", dbSnapshotIdentifier="s1")]


def cluster_source(source: str) -> list[dict[str, Any]]:
    """A cluster (c1) and its cluster snapshot (cs1), encrypted as ``source`` says."""
    if source == "external":
        return []
    encryption = {"cmk": {"storageEncrypted": True, "kmsKeyId": STACK_KEY}, "aws": {"storageEncrypted": True},
                  "unencrypted": {"storageEncrypted": False}}[source]
    deps = (KEY_DEP,) if source == "cmk" else ()
    return [res(CLUSTER, "src", deps, engine="aurora-mysql", clusterIdentifier="c1", **encryption),
            res(CLUSTER_SNAPSHOT, "snap", dbClusterIdentifier="c1", dbClusterSnapshotIdentifier="cs1")]


def _subject(type_token: str, key: str, **inputs: Any) -> dict[str, Any]:
    extra, deps = key_inputs(key)
    return res(type_token, "subject", deps, **inputs, **extra)


def snapshot_copy(source: str, key: str) -> list[dict[str, Any]]:
    identifier = "arn:aws:rds:us-east-1:999999999999:snapshot:shared" if source == "external" else \
        "arn:aws:rds:us-east-1:123456789012:snapshot:s1"
    return [*instance_source(source), _subject(SNAPSHOT_COPY, key, sourceDbSnapshotIdentifier=identifier,
                                                targetDbSnapshotIdentifier="copy1")]


def cluster_snapshot_copy(source: str, key: str) -> list[dict[str, Any]]:
    identifier = "shared-cluster-snapshot" if source == "external" else "cs1"
    return [*cluster_source(source), _subject(CLUSTER_COPY, key, sourceDbClusterSnapshotIdentifier=identifier,
                                               targetDbClusterSnapshotIdentifier="copy1")]


def instance_restore(source: str, key: str) -> list[dict[str, Any]]:
    identifier = "elsewhere" if source == "external" else "s1"
    return [*instance_source(source), _subject(INSTANCE, key, snapshotIdentifier=identifier)]


def instance_replica(source: str, key: str) -> list[dict[str, Any]]:
    identifier = "arn:aws:rds:us-east-1:999999999999:db:elsewhere" if source == "external" else "src"
    return [*instance_source(source), _subject(INSTANCE, key, replicateSourceDb=identifier)]


def cluster_restore(source: str, key: str) -> list[dict[str, Any]]:
    identifier = "elsewhere" if source == "external" else "cs1"
    return [*cluster_source(source), _subject(CLUSTER, key, engine="aurora-mysql", snapshotIdentifier=identifier)]


def cluster_clone(source: str, key: str) -> list[dict[str, Any]]:
    identifier = "elsewhere" if source == "external" else "c1"
    return [*cluster_source(source), _subject(CLUSTER, key, engine="aurora-mysql", restoreToPointInTime={
        "sourceClusterIdentifier": identifier, "restoreType": "copy-on-write", "useLatestRestorableTime": True})]


# Verdicts per source (cmk, aws, unencrypted, external), one row per key (none, own, foreign, aws):
# the CMK policy first (rds-snapshot-copy-cmk for copies, rds-storage-cmk on a durable stack for restores),
# then the encryption policy (rds-snapshot-encrypted / rds-storage-encrypted).
EXPECTED: dict[str, tuple[str, str, dict[str, tuple[tuple[str, str], ...]]]] = {
    # a DB snapshot copy: kmsKeyId encrypts (even an unencrypted source); without it, the source's key
    "snapshot-copy": ("rds-snapshot-copy-cmk", "rds-snapshot-encrypted", {
        "none": ((P, P), (M, P), (P, M), (U, U)),
        "own": ((P, P), (P, P), (P, P), (P, P)),
        "foreign": ((U, P), (U, P), (U, P), (U, P)),
        "aws": ((M, P), (M, P), (M, P), (M, P)),
    }),
    # a cluster snapshot copy: kmsKeyId re-keys an encrypted source only
    "cluster-snapshot-copy": ("rds-snapshot-copy-cmk", "rds-snapshot-encrypted", {
        "none": ((P, P), (M, P), (P, M), (U, U)),
        "own": ((P, P), (P, P), (P, M), (P, P)),
        "foreign": ((U, P), (U, P), (P, M), (U, P)),
        "aws": ((M, P), (M, P), (P, M), (M, P)),
    }),
    # an instance restored from a snapshot: the snapshot's encryption, whatever kmsKeyId says
    "instance-restore": ("rds-storage-cmk", "rds-storage-encrypted", {
        key: ((P, P), (M, P), (P, M), (U, U)) for key in KEYS
    }),
    # a read replica: its source's encryption (in the same region)
    "instance-replica": ("rds-storage-cmk", "rds-storage-encrypted", {
        key: ((P, P), (M, P), (P, M), (U, U)) for key in KEYS
    }),
    # a cluster restored from a snapshot: kmsKeyId encrypts, even from an unencrypted snapshot
    "cluster-restore": ("rds-storage-cmk", "rds-storage-encrypted", {
        "none": ((P, P), (M, P), (P, M), (U, U)),
        "own": ((P, P), (P, P), (P, P), (P, P)),
        "foreign": ((U, P), (U, P), (U, P), (U, P)),
        "aws": ((M, P), (M, P), (M, P), (M, P)),
    }),
    # a point-in-time restore or clone: kmsKeyId re-keys an encrypted source; an unencrypted one is rejected
    "cluster-clone": ("rds-storage-cmk", "rds-storage-encrypted", {
        "none": ((P, P), (M, P), (P, M), (U, U)),
        "own": ((P, P), (P, P), (P, M), (P, P)),
        "foreign": ((U, P), (U, P), (P, M), (U, P)),
        "aws": ((M, P), (M, P), (P, M), (M, P)),
    }),
}
BUILDERS = {"snapshot-copy": snapshot_copy, "cluster-snapshot-copy": cluster_snapshot_copy,
            "instance-restore": instance_restore, "instance-replica": instance_replica,
            "cluster-restore": cluster_restore, "cluster-clone": cluster_clone}
CASES = [(kind, source, key, *EXPECTED[kind][2][key][i]) for kind in EXPECTED for key in KEYS
         for i, source in enumerate(SOURCES)]


@pytest.fixture(scope="module")
def pack() -> Iterator[PackProcess]:
    with policy_check.running_pack(project="db-recipes", stack="policy-copy-tests") as running:
        yield running


def stack_with(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [provider("false"), res(KEY_T, "stack-key", enableKeyRotation=True), *resources]


@pytest.mark.parametrize(("kind", "source", "key", "cmk", "encrypted"), CASES,
                         ids=[f"{c[0]}-{c[1]}-source-{c[2]}-key" for c in CASES])
def test_copy_or_restore(pack: PackProcess, kind: str, source: str, key: str, cmk: str, encrypted: str) -> None:
    cmk_policy, encryption_policy, _ = EXPECTED[kind]
    report = run(pack, stack_with(BUILDERS[kind](source, key)))
    assert (verdict(report, cmk_policy, "subject"), verdict(report, encryption_policy, "subject")) == (cmk, encrypted)


def test_undetermined_says_what_is_unknown_and_what_proves_it(pack: PackProcess) -> None:
    report = run(pack, stack_with(snapshot_copy("external", "none")))
    (message,) = [v.message for v in report.violations if v.policy == "rds-snapshot-copy-cmk"]
    assert message == ("cannot verify offline: copy of arn:aws:rds:us-east-1:999999999999:snapshot:shared, which is "
                       "not in this stack, and without kmsKeyId a copy keeps its source's encryption — set kmsKeyId "
                       "to prove it")
    foreign = run(pack, stack_with(snapshot_copy("cmk", "foreign")))
    (message,) = [v.message for v in foreign.violations if v.policy == "rds-snapshot-copy-cmk"]
    assert message.startswith(f"cannot verify offline: kmsKeyId of subject {KEY} is not a key of this stack")
    assert message.endswith("— set kmsKeyId to a key this stack creates (aws.kms.Key) or to a customer alias to "
                            "prove it")


STRICT_POLICIES = ("rds-snapshot-copy-cmk", "rds-snapshot-encrypted")


def test_strict_makes_undetermined_a_violation_at_the_policy_level(pack: PackProcess) -> None:
    resources = stack_with(snapshot_copy("external", "none"))
    target = policy_check.target_from_document({"project": "db-recipes", "stack": "t", "resources": resources})
    strict = policy_check.analyze(pack, target, {}, strict=True)
    for policy in STRICT_POLICIES:
        assert verdict(strict, policy, "subject") == "undetermined:mandatory"
    assert not strict.passed and strict.summary()["undetermined"] == 2
    # The pack config alone does it too (what `pulumi preview --policy-pack-config` sends), per policy.
    configured = run(pack, resources, {"rds-snapshot-copy-cmk": {"strict": True}})
    assert verdict(configured, "rds-snapshot-copy-cmk", "subject") == "undetermined:mandatory"
    assert verdict(configured, "rds-snapshot-encrypted", "subject") == "undetermined"
    lenient = run(pack, resources)
    assert lenient.passed and lenient.summary()["undetermined"] == 2


def test_values_unknown_during_preview_stay_advisory_under_strict(pack: PackProcess) -> None:
    copy = res(SNAPSHOT_COPY, "subject", sourceDbSnapshotIdentifier="[unknown]", targetDbSnapshotIdentifier="c")
    target = policy_check.target_from_document({"project": "db-recipes", "stack": "t",
                                                "resources": stack_with([copy])})
    report = policy_check.analyze(pack, target, {}, strict=True)
    (violation,) = [v for v in report.violations if v.policy == "rds-snapshot-copy-cmk"]
    assert violation.level == "advisory"
    assert violation.message == ("cannot verify during preview: sourceDbSnapshotIdentifier is not known yet, and "
                                 "without kmsKeyId a copy keeps its source's encryption; judged again at update")
    # A key known to come from the stack's key (a dependency) is proven even while its value is unknown.
    later = res(SNAPSHOT_COPY, "subject", (KEY_DEP,), sourceDbSnapshotIdentifier="x", kmsKeyId="[unknown]")
    assert verdict(run(pack, stack_with([later])), "rds-snapshot-copy-cmk", "subject") == "pass"


def test_strict_keeps_an_advisory_policy_advisory_and_resource_policies_follow_it(pack: PackProcess) -> None:
    """A resource policy's undetermined verdict (Analyze) follows the same rule as a stack policy's: strict
    reports it at the policy's level, which for an advisory policy is advisory still; an unknown value during
    preview stays advisory even for a mandatory policy."""
    replica = res(INSTANCE, "subject", replicateSourceDb="src", iamDatabaseAuthenticationEnabled=True)
    assert verdict(run(pack, [replica]), "rds-log-exports", "subject") == "undetermined"
    strict = run(pack, [replica], {"rds-log-exports": {"strict": True}})
    assert verdict(strict, "rds-log-exports", "subject") == "undetermined"
    unknown = res(INSTANCE, "subject", engine="mysql", iamDatabaseAuthenticationEnabled="[unknown]")
    target = policy_check.target_from_document({"project": "db-recipes", "stack": "t", "resources": [unknown]})
    report = policy_check.analyze(pack, target, {}, strict=True)
    assert verdict(report, "rds-iam-authentication-enabled", "subject") == "undetermined"
    (violation,) = [v for v in report.violations if v.policy == "rds-iam-authentication-enabled"]
    assert violation.message.startswith("cannot verify during preview: ")


# ----------------------------------------------------------------------- DynamoDB restores

RESTORE = "dynamodb-restore-cmk"


def table_source(source: str) -> list[dict[str, Any]]:
    if source == "external":
        return []
    sse = {"cmk": {"enabled": True, "kmsKeyArn": STACK_KEY}, "aws": {"enabled": True},
           "unencrypted": {"enabled": False}}[source]
    return [res(TABLE, "src", (KEY_DEP,) if source == "cmk" else (), name="orders", serverSideEncryption=sse)]


def restored_table(source: str, sse: str) -> list[dict[str, Any]]:
    override = {"none": ({}, ()), "own": ({"serverSideEncryption": {"enabled": True, "kmsKeyArn": STACK_KEY}},
                                          (KEY_DEP,)),
                "foreign": ({"serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY}}, ()),
                "aws": ({"serverSideEncryption": {"enabled": True}}, ())}[sse]
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/" + ("orders" if source != "external" else "legacy")
    return [*table_source(source), res(TABLE, "subject", override[1], name="orders-restored",
                                       restoreSourceTableArn=arn, restoreToLatestTime=True, **override[0])]


TABLE_EXPECTED = {  # per source (cmk, aws managed, AWS owned, external), for each SSESpecificationOverride
    "none": (P, M, M, U),
    "own": (P, P, P, P),
    "foreign": (U, U, U, U),
    "aws": (M, M, M, M),
}
TABLE_CASES = [(source, sse, TABLE_EXPECTED[sse][i]) for sse in TABLE_EXPECTED for i, source in enumerate(SOURCES)]


@pytest.mark.parametrize(("source", "sse", "expected"), TABLE_CASES,
                         ids=[f"{c[0]}-source-{c[1]}-override" for c in TABLE_CASES])
def test_dynamodb_restore(pack: PackProcess, source: str, sse: str, expected: str) -> None:
    report = run(pack, stack_with(restored_table(source, sse)))
    assert verdict(report, RESTORE, "subject") == expected
    # The restored table is judged here, with its source; the per-table policy leaves it to this one.
    assert verdict(report, "dynamodb-table-encrypted-kms", "subject") == N


def test_dynamodb_restore_by_name_follows_the_source_and_its_restores(pack: PackProcess) -> None:
    source = res(TABLE, "src", (KEY_DEP,), name="orders", serverSideEncryption={"enabled": True,
                                                                               "kmsKeyArn": STACK_KEY})
    first = res(TABLE, "first", name="orders-1", restoreSourceName="orders")
    second = res(TABLE, "second", name="orders-2", restoreSourceName="orders-1")
    report = run(pack, stack_with([source, first, second]))
    assert verdict(report, RESTORE, "first") == P and verdict(report, RESTORE, "second") == P
    bare = res(TABLE, "src", name="orders")
    report = run(pack, stack_with([bare, first, second]))
    (message,) = [v.message.splitlines()[0] for v in report.violations if v.resource == "second" and v.policy == RESTORE]
    assert message == ("restored from first without serverSideEncryption: restored from src without "
                       "serverSideEncryption: serverSideEncryption is not set: the table uses an AWS owned key")


# ----------------------------------------------------------------------- DMS endpoints


@pytest.mark.parametrize(("inputs", "deps", "expected"), [
    ({}, (), M),  # CreateEndpoint without KmsKeyId: aws/dms
    ({"kmsKeyArn": STACK_KEY}, (KEY_DEP,), P),
    ({"kmsKeyArn": KEY}, (), U),
    ({"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:alias/aws/dms"}, (), M),
    ({"kmsKeyArn": "alias/dms-endpoints"}, (), P),
    ({"kmsKeyArn": "[unknown]"}, (), U),
    ({"kmsKeyArn": "[unknown]"}, (KEY_DEP,), P),
])
def test_dms_endpoint_key(pack: PackProcess, inputs: dict[str, Any], deps: tuple[str, ...], expected: str) -> None:
    endpoint = res(ENDPOINT, "subject", deps, engineName="mysql", sslMode="require", **inputs)
    assert verdict(run(pack, stack_with([endpoint])), "dms-endpoint-cmk", "subject") == expected


def test_any_dependency_on_a_stack_key_proves_the_key_offline(pack: PackProcess) -> None:
    """The offline plan sends resource dependencies only, so any dependency on a stack key counts; under the
    engine AnalyzeStack also carries property dependencies, and the pack then reads the key property's own."""
    endpoint = res(ENDPOINT, "subject", (KEY_DEP,), engineName="mysql", sslMode="require", kmsKeyArn=KEY)
    assert verdict(run(pack, stack_with([endpoint])), "dms-endpoint-cmk", "subject") == P


# ----------------------------------------------------------------------- keys the resource policies judge by name

PROVENANCE = "kms-key-provenance"
SECRET_T, DMS_INSTANCE = "aws:secretsmanager/secret:Secret", "aws:dms/replicationInstance:ReplicationInstance"


@pytest.mark.parametrize(("type_token", "inputs", "deps", "expected"), [
    (SECRET_T, {"kmsKeyId": KEY}, (), U),
    (SECRET_T, {"kmsKeyId": STACK_KEY}, (KEY_DEP,), P),
    (SECRET_T, {"kmsKeyId": "alias/app-secrets"}, (), P),
    (SECRET_T, {"kmsKeyId": "alias/aws/secretsmanager"}, (), P),  # AWS managed: the secret's own policy says so
    (SECRET_T, {}, (), P),
    (DMS_INSTANCE, {"kmsKeyArn": KEY, "publiclyAccessible": False}, (), U),
    (DMS_INSTANCE, {"kmsKeyArn": STACK_KEY, "publiclyAccessible": False}, (KEY_DEP,), P),
    (TABLE, {"serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY}}, (), U),
    (TABLE, {"serverSideEncryption": {"enabled": True, "kmsKeyArn": STACK_KEY}, "replicas": [
        {"regionName": "eu-west-1", "kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/other"}]}, (KEY_DEP,), P),
    ("aws:dynamodb/tableReplica:TableReplica", {"kmsKeyArn": KEY}, (), U),
    (INSTANCE, {"engine": "mysql", "performanceInsightsEnabled": True, "performanceInsightsKmsKeyId": KEY}, (), U),
    (INSTANCE, {"engine": "mysql", "performanceInsightsEnabled": False, "performanceInsightsKmsKeyId": KEY}, (), P),
    (INSTANCE, {"engine": "mysql", "performanceInsightsEnabled": True, "performanceInsightsKmsKeyId": "[unknown]"},
     (), U),
])
def test_a_key_id_must_be_provably_customer_managed(pack: PackProcess, type_token: str, inputs: dict[str, Any],
                                                    deps: tuple[str, ...], expected: str) -> None:
    """A key id or ARN alone does not say which kind of key it is; a dependency on the stack's key does (any
    dependency, offline: the table's replica key above rides on the table's dependency on the stack key)."""
    subject = res(type_token, "subject", deps, **inputs)
    assert verdict(run(pack, stack_with([subject])), PROVENANCE, "subject") == expected


def test_key_provenance_is_mandatory_under_strict(pack: PackProcess) -> None:
    secret = res(SECRET_T, "subject", kmsKeyId=KEY)
    report = run(pack, stack_with([secret]), {PROVENANCE: {"strict": True}})
    assert verdict(report, PROVENANCE, "subject") == "undetermined:mandatory"
    # The resource policy still judges by the name alone: a key ARN is not an AWS managed alias.
    assert verdict(report, "secretsmanager-secret-encrypted-cmk", "subject") == P
