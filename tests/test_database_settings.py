"""Settings shared by the databases of every recipe: TLS parameter groups, engine lifecycles, log
groups with retention, Performance Insights / monitoring, restores, KMS key references."""

from __future__ import annotations

import json
from typing import Any

import pytest

from automation.planning.plan import Plan, PlanError
from components.parts import EXTENDED_SUPPORT, EXTENDED_SUPPORT_DISABLED, RestoreArgs
from tests.conftest import make_plan

INSTANCE = "aws:rds/instance:Instance"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALIAS_ARN = "arn:aws:kms:us-east-1:123456789012:alias/team-key"


@pytest.fixture(scope="module")
def everything() -> Plan:
    return make_plan("all", ephemeral=True)


def _values(plan: Plan, name: str) -> dict[str, str]:
    return {p["name"]: p["value"] for p in plan.by_name(name).inputs["parameters"]}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_every_database_requires_tls_at_the_database(everything: Plan) -> None:
    assert _values(everything, "aurora-cluster-parameters")["rds.force_ssl"] == "1"
    # The stack's one MySQL instance (proxy, rotation and DMS attach to it) and the restored copy's source.
    for name in ("mysql-instance",):
        instance = everything.by_name(name).inputs
        group = everything.by_name(f"{name}-parameters").inputs
        assert instance["parameterGroupName"] == group["name"]
        assert group["family"] == "mysql8.4"
        assert _values(everything, f"{name}-parameters")["require_secure_transport"] == "ON"
    cluster = everything.by_name("aurora-cluster").inputs
    assert cluster["dbClusterParameterGroupName"] == everything.by_name("aurora-cluster-parameters").inputs["name"]


def test_parameter_overrides_merge_over_the_defaults() -> None:
    plan = make_plan(["rds-proxy"], mysql={"parameters": {"max_connections": "200"}})
    assert _values(plan, "mysql-instance-parameters") == {"max_connections": "200", "require_secure_transport": "ON"}
    plan = make_plan(["aurora-serverless"], aurora_serverless={"cluster_parameters": {"rds.force_ssl": "0"}})
    assert _values(plan, "aurora-cluster-parameters")["rds.force_ssl"] == "0"


def test_mysql_defaults_to_the_current_major_without_extended_support(everything: Plan) -> None:
    for resource in everything.of_type(INSTANCE):
        inputs = resource.inputs
        if inputs.get("replicateSourceDb") or inputs.get("snapshotIdentifier"):
            continue
        assert inputs["engineVersion"] == "8.4", resource.name
        assert inputs["engineLifecycleSupport"] == EXTENDED_SUPPORT_DISABLED, resource.name
    cluster = everything.by_name("aurora-cluster").inputs
    assert cluster["engineLifecycleSupport"] == EXTENDED_SUPPORT_DISABLED


def test_a_major_past_standard_support_is_enrolled_openly_or_refused() -> None:
    plan = make_plan(["rds-proxy"], mysql={"engine_version": "8.0"})
    assert plan.by_name("mysql-instance").inputs["engineLifecycleSupport"] == EXTENDED_SUPPORT
    with pytest.raises(PlanError, match=r"engine_lifecycle_support: 8\.0 left standard support on 2026-07-31"):
        make_plan(["rds-proxy"], mysql={"engine_version": "8.0",
                                            "engine_lifecycle_support": EXTENDED_SUPPORT_DISABLED})
    with pytest.raises(PlanError, match=r"engine_lifecycle_support: 'forever' is not allowed"):
        make_plan(["rds-proxy"], mysql={"engine_lifecycle_support": "forever"})


@pytest.mark.parametrize("version", ["13.15", "14.12", "15.7", "16.6", "17.4"])
def test_every_current_aurora_postgresql_major_is_accepted(version: str) -> None:
    plan = make_plan(["aurora-serverless"], aurora_serverless={"engine_version": version})
    family = plan.by_name("aurora-cluster-parameters").inputs["family"]
    assert family == f"aurora-postgresql{version.split('.')[0]}"


def test_log_groups_exist_in_the_stack_with_retention(everything: Plan) -> None:
    groups = {r.inputs["name"]: r for r in everything.of_type(LOG_GROUP)}
    assert all(g.inputs["retentionInDays"] == 14 for g in groups.values())
    functions = [r.inputs["name"] for r in everything.of_type("aws:lambda/function:Function")]
    for function in functions:
        assert f"/aws/lambda/{function}" in groups
    cluster = everything.by_name("aurora-cluster")
    for export in cluster.inputs["enabledCloudwatchLogsExports"]:
        group = groups[f"/aws/rds/cluster/{cluster.inputs['clusterIdentifier']}/{export}"]
        assert group.urn in cluster.dependencies  # created before RDS writes into it
    proxy_db = everything.by_name("mysql-instance")
    for export in proxy_db.inputs["enabledCloudwatchLogsExports"]:
        assert groups[f"/aws/rds/instance/{proxy_db.inputs['identifier']}/{export}"].urn in proxy_db.dependencies
    # A branch stack's DMS replication is serverless: its log group is named by its resource identifier.
    replication = everything.by_name("dms-replication")
    assert groups[f"dms-serverless-replication-{replication.inputs['resourceIdentifier']}"].urn \
        in replication.dependencies


def test_durable_stacks_keep_logs_longer_and_the_key_is_validated() -> None:
    plan = make_plan(["rds-proxy"])
    assert {g.inputs["retentionInDays"] for g in plan.of_type(LOG_GROUP)} == {365}
    plan = make_plan(["rds-proxy"], ephemeral=True, log_retention_days=30)
    assert {g.inputs["retentionInDays"] for g in plan.of_type(LOG_GROUP)} == {30}
    with pytest.raises(PlanError, match=r"db-recipes:log-retention-days: one of 1, 3, 5"):
        make_plan(["rds-proxy"], log_retention_days=10)


def test_insights_use_the_stack_key_and_monitoring_gets_its_role() -> None:
    observability = {"performance_insights": True, "monitoring_interval": 60,
                     "backup_window": "03:00-04:00", "maintenance_window": "Sun:05:00-Sun:06:00"}
    plan = make_plan(["rds-proxy", "aurora-serverless"], mysql={"observability": observability},
                     aurora_serverless={"observability": observability})
    db = plan.by_name("mysql-instance").inputs
    assert db["performanceInsightsEnabled"] is True
    assert db["performanceInsightsKmsKeyId"] == db["kmsKeyId"]
    assert db["monitoringInterval"] == 60 and db["monitoringRoleArn"].startswith("arn:aws:iam::")
    assert (db["backupWindow"], db["maintenanceWindow"]) == ("03:00-04:00", "sun:05:00-sun:06:00")
    cluster = plan.by_name("aurora-cluster").inputs
    assert cluster["preferredBackupWindow"] == "03:00-04:00"
    instance = plan.by_name("aurora-instance-0").inputs
    assert instance["performanceInsightsKmsKeyId"] == cluster["kmsKeyId"]
    roles = [r for r in plan.of_type("aws:iam/role:Role") if "monitoring" in r.name]
    assert len(roles) == 2
    trust = json.loads(roles[0].inputs["assumeRolePolicy"])["Statement"][0]["Principal"]
    assert trust == {"Service": "monitoring.rds.amazonaws.com"}


@pytest.mark.parametrize(("observability", "message"), [
    ({"monitoring_interval": 7}, r"monitoring_interval: one of 0, 1, 5"),
    ({"backup_window": "3-4"}, r"backup_window: UTC 'hh:mm-hh:mm'"),
    ({"performance_insights_retention_days": 30}, r"performance_insights_retention_days: 7, a multiple of 31"),
])
def test_bad_observability_names_the_key(observability: dict, message: str) -> None:
    with pytest.raises(PlanError, match=r"db-recipes:mysql\.observability: " + message):
        make_plan(["rds-proxy"], mysql={"observability": observability})


def test_restore_from_a_snapshot_or_a_point_in_time() -> None:
    plan = make_plan(["aurora-serverless", "rds-proxy"],
                     aurora_serverless={"restore": {"source_identifier": "parent-cluster"}},
                     mysql={"restore": {"snapshot_identifier": "nightly-2026-05-01"}})
    cluster = plan.by_name("aurora-cluster").inputs
    assert cluster["restoreToPointInTime"] == {"sourceClusterIdentifier": "parent-cluster",
                                               "restoreType": "copy-on-write", "useLatestRestorableTime": True}
    assert "masterUsername" not in cluster and "databaseName" not in cluster
    instance = plan.by_name("mysql-instance").inputs
    assert instance["snapshotIdentifier"] == "nightly-2026-05-01"
    assert instance["storageEncrypted"] is True
    timed = make_plan(["rds-proxy"], mysql={"restore": {"source_identifier": "parent-db",
                                                        "restore_time": "2026-05-01T12:00:00Z"}})
    assert timed.by_name("mysql-instance").inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "parent-db", "restoreTime": "2026-05-01T12:00:00Z"}


@pytest.mark.parametrize(("restore", "message"), [
    ({}, r"give snapshot_identifier or source_identifier"),
    ({"snapshot_identifier": "a", "source_identifier": "b"}, r"not both"),
    ({"snapshot_identifier": "a", "restore_time": "2026-05-01T12:00:00Z"}, r"only with source_identifier"),
    ({"source_identifier": "b", "restore_time": "yesterday"}, r"restore_time: UTC RFC 3339"),
])
def test_bad_restore_names_the_key(restore: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestoreArgs(**restore)
    with pytest.raises(PlanError, match=r"db-recipes:aurora-serverless\.restore"):
        make_plan(["aurora-serverless"], aurora_serverless={"restore": restore})


def test_kms_aliases_are_resolved_and_never_stored() -> None:
    """Every recipe given an alias stores the key ARN: AWS reads an alias back as the key ARN,
    so a stored alias would plan a replacement on the next up."""
    keyed = {name: {"kms_key_arn": ALIAS_ARN} for name in (
        "aurora_serverless", "encrypt_existing", "dms_migration", "dynamodb_autoscaling", "mysql")}
    plan = make_plan("all", **keyed)
    assert not plan.of_type("aws:kms/key:Key")
    for resource in plan.resources:
        assert not [s for s in _strings(resource.inputs) if ":alias/" in s], resource.name
    table = plan.by_name("dynamodb-table").inputs
    assert table["serverSideEncryption"]["kmsKeyArn"].startswith("arn:aws:kms:us-east-1:123456789012:key/")


def test_key_ids_are_resolved_too() -> None:
    plan = make_plan(["rds-proxy"], mysql={"kms_key_arn": "1234abcd-12ab-34cd-56ef-1234567890ab"})
    assert plan.by_name("mysql-instance").inputs["kmsKeyId"].startswith("arn:aws:kms:")


def test_dms_task_logs_cdc_and_endpoint_settings() -> None:
    plan = make_plan(["dms-migration"], dms_migration={
        "migration_type": "full-load-and-cdc", "cdc_start_position": "mysql-bin.000024:373",
        "replication_task_settings": {"Logging": {"LogComponents": []}, "FullLoadSettings": {"MaxFullLoadSubTasks": 4}},
        "source_endpoint_settings": {"events_poll_interval": 5},
        "target_endpoint_settings": {"parallel_load_threads": 2},
    })
    task = plan.by_name("dms-task").inputs
    settings = json.loads(task["replicationTaskSettings"])
    assert settings["Logging"] == {"EnableLogging": True, "LogComponents": []}
    assert settings["FullLoadSettings"] == {"MaxFullLoadSubTasks": 4}
    assert task["cdcStartPosition"] == "mysql-bin.000024:373"
    assert plan.by_name("dms-source-endpoint").inputs["mysqlSettings"] == {"eventsPollInterval": 5}
    assert plan.by_name("dms-target-endpoint").inputs["mysqlSettings"] == {"parallelLoadThreads": 2}
    default = json.loads(make_plan(["dms-migration"]).by_name("dms-task").inputs["replicationTaskSettings"])
    assert default == {"Logging": {"EnableLogging": True}}


@pytest.mark.parametrize(("config", "message"), [
    ({"cdc_start_position": "x"}, r"cdc_start_position/cdc_start_time: only with migration_type cdc"),
    ({"migration_type": "cdc", "cdc_start_position": "x", "cdc_start_time": "2026-05-01T12:00:00Z"},
     r"give one of them"),
    ({"source_endpoint_settings": {"slot_name": "x"}}, r"source_endpoint_settings: 'slot_name' is not a mysql_settings"),
    ({"replication_task_settings": {"logging": {}}}, r"'logging' is not a DMS task settings section"),
    ({"iam_propagation_seconds": 900}, r"iam_propagation_seconds: must be 0\.\.300"),
])
def test_bad_dms_settings_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        make_plan(["dms-migration"], dms_migration=config)


def test_proxy_users_auth_scheme_and_pool_settings() -> None:
    plan = make_plan(["rds-proxy"], rds_proxy={
        "users": [{"username": "app_reader"}], "session_pinning_filters": ["EXCLUDE_VARIABLE_SETS"],
        "init_query": "SET time_zone = '+00:00'"})
    proxy = plan.by_name("rds-proxy-proxy").inputs
    assert [a["description"].split(":")[0] for a in proxy["auths"]] == ["dbadmin", "app_reader"]
    assert proxy["defaultAuthScheme"] == "NONE"
    pool = plan.by_name("rds-proxy-proxy-target-group").inputs["connectionPoolConfig"]
    assert pool["sessionPinningFilters"] == ["EXCLUDE_VARIABLE_SETS"]
    assert pool["initQuery"] == "SET time_zone = '+00:00'"
    policy = json.loads(plan.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert len(policy["Statement"][0]["Resource"]) == 2
    iam = make_plan(["rds-proxy"], rds_proxy={"users": [{"username": "app_iam"}], "default_auth_scheme": "IAM_AUTH"})
    proxy = iam.by_name("rds-proxy-proxy").inputs
    assert proxy["defaultAuthScheme"] == "IAM_AUTH" and not proxy.get("auths")
    statements = json.loads(iam.by_name("rds-proxy-proxy-role-policy").inputs["policy"])["Statement"]
    assert [s["Action"] for s in statements] == ["rds-db:connect"]
    assert statements[0]["Resource"][0].endswith("/app_iam")
    with pytest.raises(PlanError, match=r"default_auth_scheme: IAM_AUTH needs at least one entry in users"):
        make_plan(["rds-proxy"], rds_proxy={"default_auth_scheme": "IAM_AUTH"})


def test_dynamodb_on_demand_ttl_streams_and_index_limits() -> None:
    plan = make_plan(["dynamodb-autoscaling"], ephemeral=True, dynamodb_autoscaling={
        "billing_mode": "PAY_PER_REQUEST", "max_read_request_units": 100, "max_write_request_units": 50,
        "ttl_attribute": "expires_at", "stream_view_type": "NEW_AND_OLD_IMAGES"})
    table = plan.by_name("dynamodb-table").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST" and "readCapacity" not in table
    assert table["onDemandThroughput"] == {"maxReadRequestUnits": 100, "maxWriteRequestUnits": 50}
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert (table["streamEnabled"], table["streamViewType"]) == (True, "NEW_AND_OLD_IMAGES")
    assert table["pointInTimeRecovery"]["enabled"] is False  # ephemeral default
    assert not plan.of_type("aws:appautoscaling/target:Target")
    durable = make_plan(["dynamodb-autoscaling"], dynamodb_autoscaling={"global_secondary_indexes": [
        {"name": "gsi1", "hash_key": "g", "read_max_capacity": 40}]})
    assert durable.by_name("dynamodb-table").inputs["pointInTimeRecovery"]["enabled"] is True
    index_read = durable.by_name("dynamodb-index-gsi1-read-target").inputs
    assert (index_read["minCapacity"], index_read["maxCapacity"]) == (1, 40)
    assert durable.by_name("dynamodb-table-read-target").inputs["maxCapacity"] == 10
    with pytest.raises(PlanError, match=r"max_read_request_units: only with billing_mode PAY_PER_REQUEST"):
        make_plan(["dynamodb-autoscaling"], dynamodb_autoscaling={"max_read_request_units": 5})
