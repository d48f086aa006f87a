"""The stack's shared databases: one Aurora cluster, one MySQL instance and one KMS key that the
recipes attach to, DMS Serverless and no replica on branch stacks, and the own-database layout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from automation.planning.plan import Plan, PlanError
from components.naming import Namer
from tests.conftest import make_plan, policy_statements

INSTANCE = "aws:rds/instance:Instance"
CLUSTER = "aws:rds/cluster:Cluster"
KEY = "aws:kms/key:Key"
ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
APPLICATION = "aurora-serverless,iam-auth,data-api,dynamodb-autoscaling,secret-rotation"


@pytest.fixture(scope="module", params=[True, False], ids=["branch", "durable"])
def everything(request: pytest.FixtureRequest) -> Plan:
    return make_plan("all", ephemeral=request.param)


def _names(plan: Plan, type_token: str) -> list[str]:
    return sorted(r.name for r in plan.of_type(type_token))


def test_all_recipes_share_one_cluster_one_mysql_and_one_key(everything: Plan) -> None:
    assert _names(everything, CLUSTER) == ["aurora-cluster"]
    assert _names(everything, KEY) == ["stack-key"]
    mysql = [r for r in everything.of_type(INSTANCE) if r.inputs.get("storageEncrypted")
             and r.name != "encrypt-existing-restored"]
    assert [r.name for r in mysql] == ["mysql-instance"]
    key_id = everything.by_name("stack-key-alias").inputs["targetKeyId"]
    encrypted = [r for r in everything.resources if r.custom and any(
        k in r.inputs for k in ("kmsKeyId", "kmsKeyArn", "masterUserSecretKmsKeyId"))]
    for resource in encrypted:
        for k in ("kmsKeyId", "kmsKeyArn"):
            if isinstance(resource.inputs.get(k), str):
                assert resource.inputs[k].endswith(f":key/{key_id}"), resource.name


def test_the_only_unencrypted_database_is_the_shared_demo_source(everything: Plan) -> None:
    unencrypted = [r.name for r in everything.of_type(INSTANCE) if not r.inputs.get("storageEncrypted")]
    expected = ["encrypt-existing-source-db"]
    if not _is_branch(everything):
        expected.append("encrypt-existing-replica")  # durable stacks keep the replica step
    assert sorted(unencrypted) == sorted(expected)
    # DMS reads from the same demonstration source that encrypt-existing snapshots.
    assert everything.by_name("dms-source-endpoint") is not None
    assert not [r for r in everything.resources if r.name.startswith("dms-source") and r.type == INSTANCE]


def _is_branch(plan: Plan) -> bool:
    return plan.by_name("stack-key").inputs["deletionWindowInDays"] == 7


def test_proxy_fronts_the_stack_mysql_and_may_reach_it() -> None:
    plan = make_plan(["rds-proxy"])
    mysql = plan.by_name("mysql-instance").inputs
    assert plan.by_name("rds-proxy-proxy-target").inputs["dbInstanceIdentifier"] == mysql["identifier"]
    assert mysql["manageMasterUserPassword"] is True  # nothing needs a secret of the stack's own
    rule = plan.by_name("rds-proxy-db-from-proxy").inputs
    assert rule["securityGroupId"] == mysql["vpcSecurityGroupIds"][0]
    assert plan.by_name("rds-proxy-proxy-sg").urn in plan.by_name("rds-proxy-db-from-proxy").dependencies
    assert not [r for r in plan.of_type(INSTANCE) if r.name != "mysql-instance"]
    assert _names(plan, KEY) == ["stack-key"]


def test_rotation_rotates_the_aurora_admin_user_when_there_is_a_cluster() -> None:
    plan = make_plan(APPLICATION, ephemeral=True)
    assert not plan.of_type(INSTANCE)  # no MySQL at all in the application profile
    cluster = plan.by_name("aurora-cluster").inputs
    # The function needs a password it can change: the cluster's admin secret is the stack's own.
    assert "manageMasterUserPassword" not in cluster and cluster["masterPassword"]
    rotation_resource = plan.by_name("secret-rotation-rotation")
    rotation = rotation_resource.inputs
    assert rotation["secretId"].endswith(Namer.for_stack("test").secret("aurora", "admin") + "-"
                                         + rotation["secretId"].rsplit("-", 1)[-1])
    # Rotation starts once the cluster, its instance and the secret's first value exist.
    for name in ("aurora-cluster", "aurora-instance-0", "aurora-admin-secret-initial"):
        assert plan.by_name(name).urn in rotation_resource.dependencies
    assert rotation["rotationRules"]["automaticallyAfterDays"] == 30
    function = plan.by_name("secret-rotation-function")
    assert plan.by_name("network-app-sg").urn in function.dependencies  # joins the app tier the cluster admits
    egress = plan.by_name("secret-rotation-function-to-db").inputs
    assert egress["fromPort"] == 5432 and egress["referencedSecurityGroupId"] == cluster["vpcSecurityGroupIds"][0]
    # The Data API reads the same admin secret.
    policy = policy_statements(plan.by_name("data-api-policy").inputs["policy"])
    read = next(s for s in policy if s["Action"] == "secretsmanager:GetSecretValue")
    assert read["Resource"] == rotation["secretId"]


def test_rotation_falls_back_to_the_stack_mysql() -> None:
    plan = make_plan(["secret-rotation"])
    mysql = plan.by_name("mysql-instance").inputs
    assert "manageMasterUserPassword" not in mysql
    assert not plan.of_type(CLUSTER)
    egress = plan.by_name("secret-rotation-function-to-db").inputs
    assert egress["fromPort"] == 3306 and egress["referencedSecurityGroupId"] == mysql["vpcSecurityGroupIds"][0]
    assert plan.by_name("mysql-admin-secret").inputs["kmsKeyId"] == mysql["kmsKeyId"]


def test_managed_rotation_schedules_the_rds_managed_secret() -> None:
    plan = make_plan(APPLICATION, ephemeral=True, secret_rotation={"managed": True})
    assert plan.by_name("aurora-cluster").inputs["manageMasterUserPassword"] is True
    assert not plan.of_type("aws:lambda/function:Function")
    assert not plan.of_type("aws:secretsmanager/secret:Secret")
    assert plan.by_name("secret-rotation-rotation").inputs["rotationRules"]["automaticallyAfterDays"] == 30


def test_dms_is_serverless_and_never_started_on_a_branch() -> None:
    plan = make_plan(["dms-migration"], ephemeral=True)
    assert not plan.of_type("aws:dms/replicationInstance:ReplicationInstance")
    assert not plan.of_type("aws:dms/replicationTask:ReplicationTask")
    config = plan.by_name("dms-replication").inputs
    assert config["startReplication"] is False
    assert config["replicationType"] == "full-load"
    compute = config["computeConfig"]
    assert (compute["minCapacityUnits"], compute["maxCapacityUnits"]) == (1, 4)
    assert compute["kmsKeyId"].endswith(f":key/{plan.by_name('stack-key-alias').inputs['targetKeyId']}")
    assert json.loads(config["tableMappings"])["rules"][0]["object-locator"]["schema-name"] == "appdb"
    # The target is the stack's MySQL, read through its own JSON admin secret.
    target = plan.by_name("dms-target-endpoint").inputs
    mysql = plan.by_name("mysql-instance").inputs
    assert "manageMasterUserPassword" not in mysql
    assert target["secretsManagerArn"].endswith(Namer.for_stack("test").secret("mysql", "admin") + "-" +
                                                target["secretsManagerArn"].rsplit("-", 1)[-1])
    assert not [r for r in plan.of_type(INSTANCE) if r.name == "dms-target"]


def test_dms_is_a_replication_instance_on_durable_stacks() -> None:
    plan = make_plan(["dms-migration"])
    assert plan.of_type("aws:dms/replicationInstance:ReplicationInstance")
    assert not plan.of_type("aws:dms/replicationConfig:ReplicationConfig")
    serverless = make_plan(["dms-migration"], dms_migration={"compute": "serverless",
                                                             "start_replication_task": True})
    assert serverless.by_name("dms-replication").inputs["startReplication"] is True


def test_a_branch_never_pays_for_its_own_secrets_manager_endpoint() -> None:
    branch = make_plan("secret-rotation,dms-migration", ephemeral=True)
    assert not branch.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    durable = make_plan("secret-rotation,dms-migration")
    endpoints = durable.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert [e.name for e in endpoints] == ["network-secretsmanager-endpoint"]


def test_own_database_keeps_the_former_layout() -> None:
    plan = make_plan("rds-proxy,secret-rotation,dms-migration", ephemeral=True,
                     rds_proxy={"database": "own", "instance_class": "db.t4g.small"},
                     secret_rotation={"database": "own"},
                     dms_migration={"database": "own", "compute": "instance"})
    assert not plan.of_type("db-recipes:databases:StackMySql")
    assert plan.by_name("rds-proxy-mysql").inputs["instanceClass"] == "db.t4g.small"
    assert {"rds-proxy-mysql", "secret-rotation-mysql", "dms-target"} <= set(_names(plan, INSTANCE))
    assert {"rds-proxy-key", "secret-rotation-key", "dms-key"} == set(_names(plan, KEY))


@pytest.mark.parametrize(("config", "message"), [
    ({"rds_proxy": {"instance_class": "db.r6g.large"}},
     r"db-recipes:rds-proxy\.instance_class: configures a database of the recipe's own.*database: own"),
    ({"secret_rotation": {"engine_version": "8.0"}}, r"db-recipes:secret-rotation\.engine_version"),
    ({"dms_migration": {"target": {"instance_class": "db.t4g.small"}}}, r"db-recipes:dms-migration\.target"),
    ({"rds_proxy": {"database": "shared"}}, r"db-recipes:rds-proxy\.database: 'shared' is not allowed"),
    ({"mysql": {"instance_class": "m5.large"}}, r"db-recipes:mysql: instance_class"),
    ({"mysql": {"credentials": "managed"}}, r"db-recipes:mysql\.credentials: managed, but .*dms-migration \(DMS reads host and port"),
    ({"dms_migration": {"start_replication_task": True}},
     r"dms-migration\.start_replication_task: a branch stack never starts"),
    ({"dms_migration": {"max_capacity_units": 3}}, r"max_capacity_units: one of 1, 2, 4"),
])
def test_bad_database_config_names_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        make_plan("rds-proxy,secret-rotation,dms-migration", ephemeral=True, **config)


def test_managed_rotation_and_dms_cannot_share_the_mysql() -> None:
    with pytest.raises(PlanError, match=r"mysql\.credentials: the recipes disagree"):
        make_plan("secret-rotation,dms-migration", secret_rotation={"managed": True})


def test_the_stack_key_takes_over_the_former_aurora_key() -> None:
    """An existing stack's Aurora key (and the cluster encrypted with it) is kept, not replaced."""
    from automation.planning import plan as offline

    aliases: list[Any] = []

    def work() -> None:
        import pulumi
        from pulumi.runtime import stack as runtime_stack
        from pulumi.runtime.sync_await import _sync_await

        from components import branch_databases

        mocks, monitor = offline._mocks_and_monitor(offline.Placeholders("us-east-1"), [])
        pulumi.runtime.set_mocks(mocks, project="db-recipes", stack="test", preview=False, monitor=monitor)
        original = pulumi.ResourceOptions.merge

        def spy(a: Any, b: Any) -> Any:
            merged = original(a, b)
            for alias in merged.aliases or []:
                pulumi.Output.from_input(alias).apply(aliases.append)
            return merged

        def program() -> None:
            pulumi.ResourceOptions.merge = staticmethod(spy)  # type: ignore[method-assign]
            try:
                branch_databases.stack_key(Namer.for_stack("test"), ephemeral=True, opts=pulumi.ResourceOptions())
            finally:
                pulumi.ResourceOptions.merge = staticmethod(original)  # type: ignore[method-assign]

        _sync_await(runtime_stack.run_pulumi_func(program))

    offline._run_isolated(work)
    assert set(aliases) == {"urn:pulumi:test::db-recipes::db-recipes:aurora:ServerlessPostgres$aws:kms/key:Key::aurora-key"}
