from __future__ import annotations

import pytest

from automation.planning.plan import PlanError
from components.aurora_serverless import AuroraServerlessArgs
from tests.conftest import make_plan

CLUSTER = "aws:rds/cluster:Cluster"


def test_serverless_v2_cluster_is_encrypted_iam_auth_and_pauses() -> None:
    plan = make_plan(["aurora-serverless"])
    cluster = plan.by_name("aurora-cluster").inputs
    assert cluster["engine"] == "aurora-postgresql"
    assert cluster["engineMode"] == "provisioned"
    assert cluster["serverlessv2ScalingConfiguration"] == {
        "minCapacity": 0, "maxCapacity": 4, "secondsUntilAutoPause": 300}
    assert cluster["storageEncrypted"] is True
    key_arn = cluster["kmsKeyId"]
    assert key_arn.startswith("arn:aws:kms:us-east-1:123456789012:key/")
    assert cluster["masterUserSecretKmsKeyId"] == key_arn
    assert cluster["iamDatabaseAuthenticationEnabled"] is True
    assert cluster["manageMasterUserPassword"] is True
    assert "masterPassword" not in cluster
    assert cluster["copyTagsToSnapshot"] is True
    assert cluster["enabledCloudwatchLogsExports"] == ["postgresql", "iam-db-auth-error"]
    assert cluster["enableHttpEndpoint"] is False
    instance = plan.by_name("aurora-instance-0").inputs
    assert instance["instanceClass"] == "db.serverless"
    assert instance["publiclyAccessible"] is False


def test_key_has_rotation_and_alias() -> None:
    plan = make_plan(["aurora-serverless"])
    key = plan.by_name("stack-key")
    assert key.inputs["enableKeyRotation"] is True
    alias = plan.by_name("stack-key-alias").inputs
    assert alias["name"] == "alias/test-9f86d0-stack"
    assert plan.by_name("aurora-cluster").inputs["kmsKeyId"].endswith(f":key/{alias['targetKeyId']}")


def test_given_key_is_used_and_none_created() -> None:
    arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    plan = make_plan(["aurora-serverless"], aurora_serverless={"kms_key_arn": arn})
    assert not plan.of_type("aws:kms/key:Key")
    assert plan.by_name("aurora-cluster").inputs["kmsKeyId"] == arn


def test_security_group_admits_only_named_groups_on_5432() -> None:
    plan = make_plan(["aurora-serverless"], aurora_serverless={"allowed_security_group_ids": ["sg-0123456789abcdef0"]})
    app_sg = plan.by_name("network-app-sg")
    ingress = plan.by_name("aurora-sg").inputs["ingress"]
    assert len(ingress) == 1
    rule = ingress[0]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 5432, 5432)
    assert "cidrBlocks" not in rule or not rule["cidrBlocks"]
    assert len(rule["securityGroups"]) == 2 and "sg-0123456789abcdef0" in rule["securityGroups"]
    assert app_sg.urn in plan.by_name("aurora-sg").dependencies


def test_ephemeral_and_durable_settings() -> None:
    durable = make_plan(["aurora-serverless"], ephemeral=False).by_name("aurora-cluster").inputs
    assert durable["deletionProtection"] is True
    assert durable["skipFinalSnapshot"] is False
    assert durable["finalSnapshotIdentifier"].endswith("-aurora-final")
    assert durable["backupRetentionPeriod"] >= 7
    ephemeral = make_plan(["aurora-serverless"], ephemeral=True).by_name("aurora-cluster").inputs
    assert ephemeral["deletionProtection"] is False
    assert ephemeral["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in ephemeral


def test_min_capacity_above_zero_has_no_auto_pause() -> None:
    cluster = make_plan(["aurora-serverless"], aurora_serverless={"min_capacity": 0.5}).by_name("aurora-cluster")
    assert cluster.inputs["serverlessv2ScalingConfiguration"] == {"minCapacity": 0.5, "maxCapacity": 4}


def test_children_are_parented_to_the_component() -> None:
    plan = make_plan(["aurora-serverless"])
    component = plan.by_name("aurora")
    assert component.type == "db-recipes:aurora:ServerlessPostgres"
    names = {r.name for r in plan.children(component.urn)}
    assert {"aurora-subnets", "aurora-sg", "aurora-cluster", "aurora-instance-0"} <= names


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"engine_mode": "serverless"}, "Serverless v1.*end of life"),
        ({"engine_version": "16.2"}, "min_capacity: 0 ACU.*16.3"),
        ({"engine_version": "13.14", "min_capacity": 0}, "cannot pause"),
        ({"min_capacity": 0.3}, "steps of 0.5"),
        ({"max_capacity": 0.5}, "max_capacity"),
        ({"seconds_until_auto_pause": 100}, "300..86400"),
        ({"log_exports": ["slowquery"]}, "log_exports"),
        ({"engine_version": "12.9", "min_capacity": 1}, "not supported"),
        ({"engine_version": "15.2", "min_capacity": 1, "enable_data_api": True}, "Data API"),
        ({"max_capacity": "lots"}, "expected a number"),
        ({"colour": "blue"}, "unknown key 'colour'"),
    ],
)
def test_bad_args_fail_before_any_resource(override: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message) as info:
        make_plan(["aurora-serverless"], aurora_serverless=override)
    assert "db-recipes:aurora-serverless" in str(info.value)


def test_old_engine_with_nonzero_minimum_is_fine() -> None:
    args = AuroraServerlessArgs(engine_version="13.14", min_capacity=0.5)
    assert args.min_capacity == 0.5
