"""The stack policies (secretsmanager-rotation-enabled, ephemeral-teardown-safe) over the real protocol.

They see the whole stack in AnalyzeStack: dependencies between resources and
the stack tags sent by ConfigureStack (offline: the AWS provider's default tags).
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
STACK = "urn:pulumi:t::db-recipes::"


@pytest.fixture(scope="module")
def pack() -> Iterator[PackProcess]:
    with policy_check.running_pack(project="db-recipes", stack="policy-stack-tests") as running:
        yield running


def res(type_token: str, resource_name: str, *, deps: tuple[str, ...] = (), **inputs: Any) -> dict[str, Any]:
    return {"urn": f"{STACK}{type_token}::{resource_name}", "type": type_token, "name": resource_name,
            "inputs": inputs, "dependencies": [f"{STACK}{d}" for d in deps]}


def provider(ephemeral: str | None) -> dict[str, Any]:
    tags = {"project": "db-recipes", "stack": "t", "branch": "t", "managed-by": "pulumi"}
    if ephemeral is not None:
        tags["ephemeral"] = ephemeral
    return res("pulumi:providers:aws", "aws", region="us-east-1", defaultTags=json.dumps({"tags": tags}))


def run(pack: PackProcess, resources: list[dict[str, Any]], config: dict[str, Any] | None = None) -> Report:
    target = policy_check.target_from_document({"project": "db-recipes", "stack": "t", "resources": resources})
    return policy_check.analyze(pack, target, config or {})


def messages(report: Report, policy: str, name: str) -> list[str]:
    return [v.message.splitlines()[0] for v in report.violations if v.policy == policy and v.resource == name]


def notes(report: Report, policy: str) -> list[str]:
    return [f"{n.resource}: {n.reason}" for n in report.not_applicable if n.policy == policy]


# ----------------------------------------------------------------------- secretsmanager-rotation-enabled

SECRET_T = "aws:secretsmanager/secret:Secret"
ROTATION_T = "aws:secretsmanager/secretRotation:SecretRotation"
ROTATION = "secretsmanager-rotation-enabled"


def secret(resource_name: str, **inputs: Any) -> dict[str, Any]:
    return res(SECRET_T, resource_name, kmsKeyId=KEY_ARN, **inputs)


def rotation(name: str, secret_name: str, **rules: Any) -> dict[str, Any]:
    return res(ROTATION_T, name, deps=(f"{SECRET_T}::{secret_name}",), secretId="[unknown]",
               rotationLambdaArn="arn:aws:lambda:us-east-1:123456789012:function:rotate", rotationRules=rules)


def proxy_using(secret_name: str) -> dict[str, Any]:
    return res("aws:rds/proxy:Proxy", "proxy", deps=(f"{SECRET_T}::{secret_name}",), requireTls=True,
               auths=[{"authScheme": "SECRETS", "iamAuth": "REQUIRED", "secretArn": "[unknown]"}])


def test_db_secret_rotated_within_the_limit_passes(pack: PackProcess) -> None:
    report = run(pack, [secret("admin"), rotation("admin-rotation", "admin", automaticallyAfterDays=30)])
    assert messages(report, ROTATION, "admin") == []


def test_rotation_longer_than_the_limit_fails_and_the_limit_is_configurable(pack: PackProcess) -> None:
    resources = [secret("admin"), rotation("admin-rotation", "admin", automaticallyAfterDays=90)]
    assert messages(run(pack, resources), ROTATION, "admin") == ["rotates every 90 days, more than 30"]
    assert messages(run(pack, resources, {ROTATION: {"maxRotationDays": 120}}), ROTATION, "admin") == []


@pytest.mark.parametrize(("expression", "ok"), [
    ("rate(7 days)", True), ("rate(12 hours)", True), ("rate(45 days)", False),
    ("cron(0 4 ? * SUN *)", True), ("cron(0 4 1 * ? *)", False), ("cron(0 4 1 1 ? *)", False),
])
def test_schedule_expressions(pack: PackProcess, expression: str, ok: bool) -> None:
    report = run(pack, [secret("admin"), rotation("r", "admin", scheduleExpression=expression)])
    assert (messages(report, ROTATION, "admin") == []) is ok


def test_db_secret_without_rotation_is_found_through_its_users(pack: PackProcess) -> None:
    report = run(pack, [secret("proxy-creds"), proxy_using("proxy-creds"), secret("api-token")])
    assert messages(report, ROTATION, "proxy-creds") == ["database credentials secret without a SecretRotation"]
    assert messages(report, ROTATION, "api-token") == []  # not database credentials


def test_db_secret_found_by_a_version_holding_a_password_or_by_name(pack: PackProcess) -> None:
    version = res("aws:secretsmanager/secretVersion:SecretVersion", "v", deps=(f"{SECRET_T}::app-creds",),
                  secretId="[unknown]", secretString=json.dumps({"username": "app", "password": "x"}))
    report = run(pack, [secret("app-creds"), version, secret("reporting", name="orders-db-master")])
    assert messages(report, ROTATION, "app-creds") == ["database credentials secret without a SecretRotation"]
    assert messages(report, ROTATION, "reporting") == ["database credentials secret without a SecretRotation"]
    # The secret value itself never appears in a message.
    assert all('"x"' not in v.message for v in report.violations)


def test_rds_managed_secret_and_disabled_rotation(pack: PackProcess) -> None:
    report = run(pack, [
        secret("managed", name="rds!db-1234"), proxy_using("managed"),
    ])
    assert messages(report, ROTATION, "managed") == []
    disabled = run(pack, [secret("off"), {**rotation("r", "off", automaticallyAfterDays=7),
                                          "inputs": {**rotation("r", "off")["inputs"], "rotationEnabled": False}}])
    assert messages(disabled, ROTATION, "off") == ["SecretRotation r has rotationEnabled false"]


def test_unknown_schedule_is_undetermined_and_exemptions_are_reported(pack: PackProcess) -> None:
    unknown = {**rotation("r", "admin"), "inputs": {**rotation("r", "admin")["inputs"], "rotationRules": "[unknown]"}}
    report = run(pack, [secret("admin"), unknown, secret("legacy-db-creds"), proxy_using("legacy-db-creds")],
                 {ROTATION: {"exemptions": [{"resource": "legacy-db-creds", "reason": "rotated by the vendor"}]}})
    (undetermined,) = [v for v in report.violations if v.policy == ROTATION and v.resource == "admin"]
    assert undetermined.level == "advisory" and undetermined.undetermined
    assert undetermined.message.startswith("cannot verify during preview: ")
    assert [(n.resource, n.reason, n.type) for n in report.exempted] == [
        ("legacy-db-creds", "rotated by the vendor", SECRET_T)]
    assert messages(report, ROTATION, "legacy-db-creds") == []


# ----------------------------------------------------------------------- ephemeral-teardown-safe

TEARDOWN = "ephemeral-teardown-safe"
CLUSTER = "aws:rds/cluster:Cluster"
INSTANCE = "aws:rds/instance:Instance"
TABLE = "aws:dynamodb/table:Table"


def cluster(name: str, **inputs: Any) -> dict[str, Any]:
    return res(CLUSTER, name, engine="aurora-postgresql", storageEncrypted=True,
               iamDatabaseAuthenticationEnabled=True, **inputs)


def test_ephemeral_stack_must_be_destroyable(pack: PackProcess) -> None:
    good = cluster("good", deletionProtection=False, skipFinalSnapshot=True, backupRetentionPeriod=1)
    bad = cluster("bad", deletionProtection=True, backupRetentionPeriod=7)
    table = res(TABLE, "table", deletionProtectionEnabled=True)
    replica = res(INSTANCE, "replica", replicateSourceDb="source")
    report = run(pack, [provider("true"), good, bad, table, replica])
    assert messages(report, TEARDOWN, "good") == []
    assert messages(report, TEARDOWN, "bad") == [
        "deletionProtection is true, so the stack cannot be destroyed (stack is ephemeral)",
        "skipFinalSnapshot is not true (the API default is false), so destroy leaves or waits on a final snapshot "
        "(stack is ephemeral)",
    ]
    assert messages(report, TEARDOWN, "table") == [
        "deletionProtectionEnabled is true, so the stack cannot be destroyed (stack is ephemeral)"]
    assert messages(report, TEARDOWN, "replica") == []
    (violation,) = [v for v in report.violations if v.resource == "table" and v.policy == TEARDOWN]
    assert violation.urn == f"{STACK}{TABLE}::table" and violation.level == "advisory"
    # The durable-stack rules do not judge an ephemeral stack.
    assert messages(report, "rds-deletion-protection", "good") == []


def test_durable_stack_rules_are_their_own(pack: PackProcess) -> None:
    good = cluster("good", deletionProtection=True, backupRetentionPeriod=7, skipFinalSnapshot=False)
    bad = cluster("bad", skipFinalSnapshot=True)
    table = res(TABLE, "table", deletionProtectionEnabled=True, pointInTimeRecovery={"enabled": True})
    bare_table = res(TABLE, "bare")
    report = run(pack, [provider("false"), good, bad, table, bare_table])
    assert messages(report, TEARDOWN, "bad") == []  # the ephemeral rule does not judge a durable stack
    assert messages(report, "rds-deletion-protection", "good") == []
    assert messages(report, "rds-deletion-protection", "bad") == [
        "deletionProtection is not set (the API default is false): a delete call removes the database"]
    assert messages(report, "rds-backup-retention", "bad") == [
        "backupRetentionPeriod is not set: the API default is 1 day, below 7"]
    assert messages(report, "dynamodb-pitr-enabled", "table") == []
    assert messages(report, "dynamodb-pitr-enabled", "bare") == [
        "pointInTimeRecovery.enabled is not set (the API default is off)"]
    assert messages(report, "dynamodb-deletion-protection", "bare") == [
        "deletionProtectionEnabled is not set (the API default is false)"]
    stricter = run(pack, [provider("false"), good], {"rds-backup-retention": {"minBackupRetentionDays": 14}})
    assert messages(stricter, "rds-backup-retention", "good") == ["backupRetentionPeriod is 7 day(s), below 14"]
    as_string = run(pack, [provider("false"), cluster("s", backupRetentionPeriod="10")])
    assert messages(as_string, "rds-backup-retention", "s") == []


def test_teardown_needs_the_stack_tag_and_honours_exemptions(pack: PackProcess) -> None:
    bad = cluster("bad", deletionProtection=True)
    untagged = run(pack, [provider(None), bad])
    assert messages(untagged, TEARDOWN, "bad") == []
    assert notes(untagged, TEARDOWN) == [
        "bad: the stack has no 'ephemeral' tag: it is neither declared ephemeral nor durable"]
    exempt = run(pack, [provider("true"), bad, cluster("worse", deletionProtection=True)],
                 {TEARDOWN: {"exemptions": [{"resource": "bad", "reason": "shared fixture"}]}})
    assert messages(exempt, TEARDOWN, "bad") == []
    assert [(n.policy, n.resource, n.reason) for n in exempt.exempted] == [(TEARDOWN, "bad", "shared fixture")]
    assert messages(exempt, TEARDOWN, "worse") != []


def test_teardown_tag_name_is_configurable_and_unknowns_are_undetermined(pack: PackProcess) -> None:
    resources = [provider(None), cluster("c", deletionProtection="[unknown]", skipFinalSnapshot=True)]
    resources[0]["inputs"]["defaultTags"] = json.dumps({"tags": {"lifetime": "true"}})
    report = run(pack, resources, {TEARDOWN: {"tagName": "lifetime"}})
    (unknown,) = [v for v in report.violations if v.policy == TEARDOWN]
    assert unknown.message.startswith("cannot verify during preview: ") and unknown.level == "advisory"
    assert report.stack_tags["lifetime"] == "true"
