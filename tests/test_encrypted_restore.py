"""4.4 encrypt-existing: the source -> replica -> snapshot -> KMS copy -> restore chain, under Pulumi mocks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pulumi
import pytest

from automation.planning.plan import SECRET_MARKER, Placeholders, Plan, PlanError
from components.encrypted_restore import (
    CUTOVER_STEPS,
    DEMO_SOURCE_DB_RESOURCE_NAME,
    DemoSourceArgs,
    EncryptedRestore,
    EncryptExistingArgs,
    check_existing_source,
)
from components.naming import Namer
from tests.conftest import make_plan

RECIPE = "encrypt-existing"
INSTANCE = "aws:rds/instance:Instance"
EXISTING = "legacy-orders-db"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def demo() -> Plan:
    # The whole chain, replica included, on request (a branch's demo source skips it by default).
    return make_plan(RECIPE, ephemeral=True, encrypt_existing={"snapshot_from_replica": True})


@pytest.fixture(scope="module")
def durable() -> Plan:
    return make_plan(RECIPE, ephemeral=False)


@pytest.fixture(scope="module")
def existing() -> Plan:
    return make_plan(
        RECIPE,
        ephemeral=True,
        # The demo instance class must not leak into the existing path.
        encrypt_existing={"source_identifier": EXISTING, "create_demo_source": False,
                          "demo_source": {"instance_class": "db.r6g.large"}},
    )


def _chain(plan: Plan) -> dict[str, Any]:
    return {
        "source": plan.by_name(DEMO_SOURCE_DB_RESOURCE_NAME),
        "replica": plan.by_name(f"{RECIPE}-replica"),
        "snapshot": plan.by_name(f"{RECIPE}-snapshot"),
        "copy": plan.by_name(f"{RECIPE}-encrypted-copy"),
        "restored": plan.by_name(f"{RECIPE}-restored"),
        # The stack's one customer-managed key.
        "key": plan.by_name("stack-key"),
        "alias": plan.by_name("stack-key-alias"),
    }


def test_chain_runs_in_order_through_dependencies(demo: Plan) -> None:
    c = _chain(demo)
    assert c["source"].urn in c["replica"].dependencies
    assert c["replica"].urn in c["snapshot"].dependencies
    assert c["snapshot"].urn in c["copy"].dependencies
    assert c["copy"].urn in c["restored"].dependencies
    # No shortcut: the snapshot is of the replica, never of the source itself.
    assert c["source"].urn not in c["snapshot"].dependencies
    assert c["replica"].inputs["replicateSourceDb"] == c["source"].inputs["identifier"]
    assert c["snapshot"].inputs["dbInstanceIdentifier"] == c["replica"].inputs["identifier"]
    assert c["restored"].inputs["snapshotIdentifier"] == c["copy"].inputs["targetDbSnapshotIdentifier"]


def test_copy_and_restore_are_encrypted_with_the_created_key(demo: Plan) -> None:
    c = _chain(demo)
    key_arn = c["copy"].inputs["kmsKeyId"]
    assert key_arn.startswith("arn:aws:kms:us-east-1:")
    assert key_arn.endswith(f":key/{c['alias'].inputs['targetKeyId']}")
    assert c["key"].urn in c["copy"].dependencies
    assert c["key"].inputs["enableKeyRotation"] is True
    assert c["restored"].inputs["kmsKeyId"] == key_arn
    assert c["restored"].inputs["storageEncrypted"] is True
    assert c["alias"].inputs["name"] == Namer.for_stack("test").kms_alias("stack")


def test_restored_instance_matches_source_and_is_private_with_iam_auth(demo: Plan) -> None:
    c = _chain(demo)
    source, restored = c["source"].inputs, c["restored"].inputs
    assert restored["iamDatabaseAuthenticationEnabled"] is True
    assert restored["publiclyAccessible"] is False
    for key in ("instanceClass", "engine", "allocatedStorage", "port", "dbSubnetGroupName", "vpcSecurityGroupIds"):
        assert restored[key] == source[key], key
    assert c["replica"].inputs["instanceClass"] == source["instanceClass"]
    # Replicas inherit the source's encryption state: setting it would be rejected.
    assert "storageEncrypted" not in c["replica"].inputs
    assert "kmsKeyId" not in c["replica"].inputs


def test_demo_source_is_unencrypted_private_and_has_a_random_password(demo: Plan) -> None:
    source = demo.by_name(DEMO_SOURCE_DB_RESOURCE_NAME)
    inputs = source.inputs
    assert inputs["storageEncrypted"] is False
    assert inputs["publiclyAccessible"] is False
    assert inputs["iamDatabaseAuthenticationEnabled"] is True
    assert inputs["backupRetentionPeriod"] >= 1
    assert not inputs.get("manageMasterUserPassword")
    assert inputs["password"] == SECRET_MARKER
    password = demo.by_name(f"{RECIPE}-source-password")
    assert password.urn in source.dependencies
    assert password.parent == source.parent
    specials = password.inputs["overrideSpecial"]
    assert not set(specials) & set("/@\"' ")
    component = demo.by_name(f"{RECIPE}-source")
    assert component.type == "db-recipes:encryption:DemoMySqlSource"
    assert source.parent == component.urn
    assert component.parent == demo.by_name(RECIPE).urn


def test_demo_source_security_group_admits_only_named_groups(demo: Plan) -> None:
    sg = demo.by_name(f"{RECIPE}-source-sg")
    assert "ingress" not in sg.inputs or not sg.inputs["ingress"]
    rules = demo.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rules, "no ingress rules"
    for rule in rules:
        assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (3306, 3306, "tcp")
        assert rule.inputs["referencedSecurityGroupId"].startswith("sg-")
        assert "cidrIpv4" not in rule.inputs
    app_sg = demo.by_name("network-app-sg")
    assert any(app_sg.urn in rule.dependencies for rule in rules)


def test_no_secret_reaches_any_recorded_input(demo: Plan) -> None:
    for resource in demo.resources:
        for key, value in resource.inputs.items():
            if "password" in key.lower() and key != "manageMasterUserPassword":
                assert value == SECRET_MARKER, (resource.name, key)


def test_existing_source_is_read_not_created(existing: Plan) -> None:
    names = {r.name for r in existing.resources}
    assert DEMO_SOURCE_DB_RESOURCE_NAME not in names
    assert not existing.of_type("db-recipes:encryption:DemoMySqlSource")
    assert not existing.of_type("random:index/randomPassword:RandomPassword")
    found = Placeholders("us-east-1").call("aws:rds/getInstance:getInstance", {"dbInstanceIdentifier": EXISTING})
    replica = existing.by_name(f"{RECIPE}-replica").inputs
    restored = existing.by_name(f"{RECIPE}-restored").inputs
    assert replica["replicateSourceDb"] == EXISTING
    assert replica["instanceClass"] == found["dbInstanceClass"]
    assert restored["instanceClass"] == found["dbInstanceClass"] != "db.r6g.large"
    assert restored["dbSubnetGroupName"] == found["dbSubnetGroup"]
    assert restored["vpcSecurityGroupIds"] == found["vpcSecurityGroups"]
    assert restored["parameterGroupName"] == found["dbParameterGroups"][0]
    assert restored["allocatedStorage"] == found["allocatedStorage"]
    assert restored["storageEncrypted"] is True


def test_restored_instance_class_can_be_overridden() -> None:
    plan = make_plan(RECIPE, ephemeral=True, encrypt_existing={
        "source_identifier": EXISTING, "create_demo_source": False, "restored_instance_class": "db.m6g.large"})
    assert plan.by_name(f"{RECIPE}-restored").inputs["instanceClass"] == "db.m6g.large"
    # The replica keeps the source's class: it only exists to take the snapshot.
    assert plan.by_name(f"{RECIPE}-replica").inputs["instanceClass"] == "db.t4g.micro"


def test_given_kms_key_is_used_and_none_created() -> None:
    plan = make_plan(RECIPE, ephemeral=True, encrypt_existing={"kms_key_arn": KEY_ARN})
    # Nothing else in the stack needs a key: neither a key of the recipe's own nor the stack's.
    assert not plan.of_type("aws:kms/key:Key")
    assert plan.by_name(f"{RECIPE}-encrypted-copy").inputs["kmsKeyId"] == KEY_ARN
    assert plan.by_name(f"{RECIPE}-restored").inputs["kmsKeyId"] == KEY_ARN


@pytest.mark.parametrize("config", [{}, {"snapshot_from_replica": False}])
def test_snapshot_directly_from_source_without_replica(config: dict[str, Any]) -> None:
    # {}: a branch stack's demo source is snapshotted directly by default (no replica to pay for).
    plan = make_plan(RECIPE, ephemeral=True, encrypt_existing=config)
    assert sorted(r.name for r in plan.of_type(INSTANCE)) == sorted([DEMO_SOURCE_DB_RESOURCE_NAME, f"{RECIPE}-restored"])
    snapshot = plan.by_name(f"{RECIPE}-snapshot")
    source = plan.by_name(DEMO_SOURCE_DB_RESOURCE_NAME)
    assert source.urn in snapshot.dependencies
    assert snapshot.inputs["dbInstanceIdentifier"] == source.inputs["identifier"]


def test_ephemeral_settings(demo: Plan) -> None:
    for name in (DEMO_SOURCE_DB_RESOURCE_NAME, f"{RECIPE}-restored"):
        inputs = demo.by_name(name).inputs
        assert inputs["deletionProtection"] is False, name
        assert inputs["skipFinalSnapshot"] is True, name
        assert "finalSnapshotIdentifier" not in inputs, name
        assert inputs["backupRetentionPeriod"] == 1, name
    assert demo.by_name("stack-key").inputs["deletionWindowInDays"] == 7


def test_durable_settings(durable: Plan) -> None:
    namer = Namer.for_stack("test")
    restored = durable.by_name(f"{RECIPE}-restored").inputs
    assert restored["deletionProtection"] is True
    assert restored["skipFinalSnapshot"] is False
    assert restored["finalSnapshotIdentifier"] == namer.rds(RECIPE, "restored", "final-snapshot")
    assert restored["backupRetentionPeriod"] >= 7
    source = durable.by_name(DEMO_SOURCE_DB_RESOURCE_NAME).inputs
    assert source["deletionProtection"] is True
    assert source["finalSnapshotIdentifier"] == namer.rds(f"{RECIPE}-source", "final-snapshot")
    # A replica can never have a final snapshot, durable or not.
    assert durable.by_name(f"{RECIPE}-replica").inputs["skipFinalSnapshot"] is True
    assert durable.by_name("stack-key").inputs["deletionWindowInDays"] == 30


def test_physical_names_come_from_the_namer(demo: Plan) -> None:
    namer = Namer.for_stack("test")
    assert demo.by_name(f"{RECIPE}-restored").inputs["identifier"] == namer.rds(RECIPE, "restored")
    assert demo.by_name(f"{RECIPE}-replica").inputs["identifier"] == namer.rds(RECIPE, "replica")
    assert demo.by_name(f"{RECIPE}-encrypted-copy").inputs["targetDbSnapshotIdentifier"] == \
        namer.rds(RECIPE, "encrypted-snapshot")
    assert demo.by_name(f"{RECIPE}-source-sg").inputs["name"] == namer.security_group(f"{RECIPE}-source")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"source_identifier": EXISTING}, "source_identifier and create_demo_source"),
        ({"create_demo_source": False}, "source_identifier: required"),
        ({"source_identifier": "bad--name", "create_demo_source": False}, "source_identifier: invalid rds"),
        ({"source_identifier": "9starts-with-digit", "create_demo_source": False}, "must start with a letter"),
        ({"demo_source": {"engine_version": "5.7"}}, "demo_source: engine_version: RDS MySQL 8.0 or 8.4"),
        ({"demo_source": {"instance_class": "t4g.micro"}}, "demo_source: instance_class"),
        ({"demo_source": {"allocated_storage": 5}}, "demo_source: allocated_storage: must be 20..65536"),
        ({"demo_source": {"username": "rdsadmin"}}, "demo_source: username: 'rdsadmin' is reserved"),
        ({"kms_key_arn": "my-key"}, "kms_key_arn: 'my-key' is not a KMS key"),
        ({"restored_instance_class": "large"}, "restored_instance_class: 'large'"),
        ({"create_demo_source": "maybe"}, "create_demo_source: expected true or false"),
        ({"keep_everything": True}, "unknown key 'keep_everything'"),
    ],
)
def test_bad_config_is_rejected_with_its_path(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(PlanError) as err:
        make_plan(RECIPE, encrypt_existing=config)
    assert "db-recipes:encrypt-existing" in str(err.value)
    assert expected in str(err.value)


def _instance(**overrides: Any) -> SimpleNamespace:
    values = {"engine": "mysql", "storage_encrypted": False, "master_user_secrets": [], "backup_retention_period": 1}
    return SimpleNamespace(**{**values, **overrides})


def test_existing_source_checks() -> None:
    ok = _instance()
    assert check_existing_source("db1", ok, needs_replica=True) is ok
    with pytest.raises(ValueError, match="already encrypted"):
        check_existing_source("db1", _instance(storage_encrypted=True), needs_replica=True)
    with pytest.raises(ValueError, match="runs 'postgres'"):
        check_existing_source("db1", _instance(engine="postgres"), needs_replica=True)
    managed = _instance(master_user_secrets=[{"secret_arn": "arn:aws:secretsmanager:x"}])
    with pytest.raises(ValueError, match="snapshot_from_replica: false"):
        check_existing_source("db1", managed, needs_replica=True)
    assert check_existing_source("db1", managed, needs_replica=False) is managed
    # RDS refuses a read replica of a source without automated backups: say so before the engine tries.
    no_backups = _instance(backup_retention_period=0)
    with pytest.raises(ValueError, match=r"db1 has no automated backups .*--backup-retention-period 1"):
        check_existing_source("db1", no_backups, needs_replica=True)
    assert check_existing_source("db1", no_backups, needs_replica=False) is no_backups


def test_args_defaults_are_a_demo_source() -> None:
    args = EncryptExistingArgs()
    assert args.create_demo_source and args.source_identifier is None
    assert args.demo_source == DemoSourceArgs()
    assert (args.demo_source.instance_class, args.demo_source.engine_version, args.demo_source.allocated_storage,
            args.demo_source.db_name, args.demo_source.username) == ("db.t4g.micro", "8.4", 20, "appdb", "admin")


# ------------------------------------------------------------- the component itself, under plain mocks


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom:
            return None, {}
        computed = {"arn": f"arn:aws:mock:::{args.name}", "address": f"{args.name}.example",
                    "endpoint": f"{args.name}.example:3306", "resourceId": f"db-{args.name}",
                    "dbSnapshotArn": f"arn:aws:rds:::snapshot:{args.name}"}
        return f"{args.name}-id", {**args.inputs, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        return {}


def _run_component(build: Callable[[], Any]) -> Any:
    """Build under mocks on a fresh thread and event loop; return what ``build`` made, resolved."""
    from pulumi.runtime import stack as runtime_stack
    from pulumi.runtime.sync_await import _sync_await

    result: dict[str, Any] = {}

    def work() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            pulumi.runtime.set_mocks(_Mocks(), project="db-recipes", stack="unit", preview=False)
            made: dict[str, Any] = {}
            _sync_await(runtime_stack.run_pulumi_func(lambda: made.update(value=build())))
            component = made["value"]
            outputs = _sync_await(pulumi.Output.from_input(component.outputs()).future())
            secret = _sync_await(component.source.password.is_secret()) if component.source else None
            result.update(component=component, outputs=outputs, password_secret=secret)
        except BaseException as err:  # noqa: BLE001 - re-raised on the test's thread
            result["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result


def _build_restore(args: EncryptExistingArgs) -> Callable[[], EncryptedRestore]:
    return lambda: EncryptedRestore(
        RECIPE, args, namer=Namer.for_stack("unit"), ephemeral=True, vpc_id="vpc-1",
        subnet_ids=["subnet-1", "subnet-2"], client_security_group_ids=["sg-app"],
    )


def test_outputs_hold_identifiers_and_cutover_notes_but_no_password() -> None:
    result = _run_component(_build_restore(EncryptExistingArgs(snapshot_from_replica=True)))
    outputs = result["outputs"]
    namer = Namer.for_stack("unit")
    assert result["password_secret"] is True
    assert result["component"].source is not None
    assert outputs["identifier"] == namer.rds(RECIPE, "restored")
    assert outputs["replica_identifier"] == namer.rds(RECIPE, "replica")
    assert outputs["source_identifier"] == namer.rds(f"{RECIPE}-source")
    assert outputs["encrypted_snapshot_identifier"] == namer.rds(RECIPE, "encrypted-snapshot")
    assert outputs["snapshot_identifier"] == namer.rds(RECIPE, "unencrypted-snapshot")
    for key in ("endpoint", "address", "port", "arn", "resource_id", "kms_key_arn", "snapshot_arn",
                "encrypted_snapshot_arn"):
        assert outputs[key], key
    assert outputs["cutover_steps"] == list(CUTOVER_STEPS)
    assert all(isinstance(step, str) for step in outputs["cutover_steps"])
    assert any("binlog" in step for step in outputs["cutover_steps"])
    assert not any("password" in key for key in outputs)


# ------------------------------------------------------------- after the cut-over


CUTOVER = {"source_identifier": EXISTING, "create_demo_source": False, "phase": "cutover-done"}


def test_cutover_done_keeps_only_the_encrypted_instance() -> None:
    plan = make_plan(RECIPE, ephemeral=False, encrypt_existing=CUTOVER)
    for gone in (f"{RECIPE}-replica", f"{RECIPE}-snapshot", f"{RECIPE}-encrypted-copy", DEMO_SOURCE_DB_RESOURCE_NAME):
        assert not [r for r in plan.resources if r.name == gone], gone
    restored = plan.by_name(f"{RECIPE}-restored").inputs
    migrate = make_plan(RECIPE, ephemeral=False, encrypt_existing={**CUTOVER, "phase": "migrate"})
    before = migrate.by_name(f"{RECIPE}-restored").inputs
    # Same identifier and snapshot identifier (by name, the copy is gone), encrypted with the same key.
    assert restored["identifier"] == before["identifier"]
    assert restored["snapshotIdentifier"] == migrate.by_name(f"{RECIPE}-encrypted-copy").inputs[
        "targetDbSnapshotIdentifier"]
    assert restored["storageEncrypted"] is True and restored["kmsKeyId"] == before["kmsKeyId"]


def test_cutover_done_never_looks_the_source_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from automation.planning import plan as planning

    looked_up: list[str] = []
    original = planning._CALL_PLACEHOLDERS["aws:rds/getInstance:getInstance"]

    def lookup(p: Placeholders, args: dict[str, Any]) -> dict[str, Any]:
        looked_up.append(args["dbInstanceIdentifier"])
        return original(p, args)

    monkeypatch.setitem(planning._CALL_PLACEHOLDERS, "aws:rds/getInstance:getInstance", lookup)
    make_plan(RECIPE, encrypt_existing=CUTOVER)
    assert EXISTING not in looked_up and looked_up  # only the restored instance itself is read


def test_restored_instance_ignores_its_snapshot_identifier() -> None:
    """A changed (or deleted) source snapshot never plans a replacement of the restored instance."""
    captured: list[pulumi.ResourceOptions] = []
    original = pulumi.CustomResource.__init__

    def spy(self: Any, t: str, name: str, props: Any = None, opts: Any = None, *args: Any, **kw: Any) -> None:
        if name == f"{RECIPE}-restored":
            captured.append(opts)
        original(self, t, name, props, opts, *args, **kw)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(pulumi.CustomResource, "__init__", spy)
        make_plan(RECIPE, encrypt_existing=CUTOVER)
    assert captured and "snapshotIdentifier" in (captured[0].ignore_changes or [])


def test_cutover_done_needs_an_existing_source() -> None:
    with pytest.raises(PlanError, match=r"phase: cutover-done is for an existing source_identifier"):
        make_plan(RECIPE, encrypt_existing={"phase": "cutover-done"})
    with pytest.raises(PlanError, match=r"phase: 'done' is not allowed \(allowed: migrate, cutover-done\)"):
        make_plan(RECIPE, encrypt_existing={"phase": "done"})


def test_alias_is_resolved_never_stored() -> None:
    alias = "arn:aws:kms:us-east-1:123456789012:alias/legacy"
    plan = make_plan(RECIPE, encrypt_existing={"kms_key_arn": alias})
    for name in (f"{RECIPE}-encrypted-copy", f"{RECIPE}-restored"):
        inputs = plan.by_name(name).inputs
        stored = inputs.get("kmsKeyId")
        assert stored.startswith("arn:aws:kms:us-east-1:123456789012:key/"), stored
    assert not plan.of_type("aws:kms/key:Key")


def test_demo_source_has_row_binlogs_and_tls() -> None:
    plan = make_plan(RECIPE)
    group = plan.by_name(f"{RECIPE}-source-parameters").inputs
    values = {p["name"]: p["value"] for p in group["parameters"]}
    assert values["binlog_format"] == "ROW" and values["require_secure_transport"] == "ON"
    assert group["family"] == "mysql8.4"
    assert plan.by_name(DEMO_SOURCE_DB_RESOURCE_NAME).inputs["parameterGroupName"] == group["name"]
