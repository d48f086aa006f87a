"""4.6 dynamodb-autoscaling: provisioned table, KMS SSE, PITR, target tracking on the table and every GSI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from automation.planning.plan import Plan, PlanError
from components.dynamodb_autoscaling import (
    TABLE_IGNORE_CHANGES,
    DynamoDbAutoscaling,
    DynamoDbAutoscalingArgs,
    GsiArgs,
)
from components.naming import Namer
from tests.conftest import make_plan

RECIPE = "dynamodb-autoscaling"
TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
CONFIG = {
    "table_name": "orders",
    "hash_key": "order_id",
    "range_key": "created_at",
    "range_key_type": "N",
    "global_secondary_indexes": [
        {"name": "by-customer", "hash_key": "customer_id", "range_key": "created_at", "range_key_type": "N"},
        {"name": "by_status", "hash_key": "status", "projection": "INCLUDE", "non_key_attributes": ["total"]},
    ],
    "read_min_capacity": 2,
    "read_max_capacity": 40,
    "read_target_utilization": 65,
    "write_min_capacity": 3,
    "write_max_capacity": 30,
    "write_target_utilization": 75.5,
    "scale_in_cooldown": 300,
    "scale_out_cooldown": 30,
}


@pytest.fixture(scope="module")
def durable() -> Plan:
    return make_plan(RECIPE, ephemeral=False, dynamodb_autoscaling=CONFIG)


@pytest.fixture(scope="module")
def ephemeral() -> Plan:
    return make_plan(RECIPE, ephemeral=True)


def test_table_is_provisioned_encrypted_with_the_cmk_and_recoverable(durable: Plan) -> None:
    table = durable.by_name("dynamodb-table")
    # The stack's one customer-managed key.
    key = durable.by_name("stack-key")
    alias = durable.by_name("stack-key-alias")
    inputs = table.inputs
    assert inputs["billingMode"] == "PROVISIONED"
    assert inputs["name"] == Namer.for_stack("test").dynamodb_table("orders")
    assert inputs["serverSideEncryption"]["enabled"] is True
    assert inputs["serverSideEncryption"]["kmsKeyArn"].endswith(f":key/{alias.inputs['targetKeyId']}")
    assert key.urn in table.dependencies
    assert key.inputs["enableKeyRotation"] is True
    assert inputs["pointInTimeRecovery"] == {"enabled": True}
    assert inputs["deletionProtectionEnabled"] is True
    assert (inputs["readCapacity"], inputs["writeCapacity"]) == (2, 3)
    assert "streamEnabled" not in inputs or inputs["streamEnabled"] is False


def test_keys_attributes_and_indexes(durable: Plan) -> None:
    inputs = durable.by_name("dynamodb-table").inputs
    assert (inputs["hashKey"], inputs["rangeKey"]) == ("order_id", "created_at")
    attributes = {a["name"]: a["type"] for a in inputs["attributes"]}
    assert attributes == {"order_id": "S", "created_at": "N", "customer_id": "S", "status": "S"}
    indexes = {i["name"]: i for i in inputs["globalSecondaryIndexes"]}
    assert set(indexes) == {"by-customer", "by_status"}
    assert indexes["by-customer"]["keySchemas"] == [
        {"attributeName": "customer_id", "keyType": "HASH"}, {"attributeName": "created_at", "keyType": "RANGE"}]
    assert indexes["by_status"]["projectionType"] == "INCLUDE"
    assert indexes["by_status"]["nonKeyAttributes"] == ["total"]
    for index in indexes.values():
        assert (index["readCapacity"], index["writeCapacity"]) == (2, 3)


def _expected_scalables(table_name: str) -> dict[tuple[str, str], dict[str, Any]]:
    expected = {}
    owners = [(f"table/{table_name}", "table")] + [
        (f"table/{table_name}/index/{gsi}", "index") for gsi in ("by-customer", "by_status")]
    for resource_id, level in owners:
        expected[(resource_id, f"dynamodb:{level}:ReadCapacityUnits")] = {
            "min": 2, "max": 40, "target": 65, "metric": "DynamoDBReadCapacityUtilization"}
        expected[(resource_id, f"dynamodb:{level}:WriteCapacityUnits")] = {
            "min": 3, "max": 30, "target": 75.5, "metric": "DynamoDBWriteCapacityUtilization"}
    return expected


def test_a_scaling_target_per_table_and_index_dimension(durable: Plan) -> None:
    expected = _expected_scalables(Namer.for_stack("test").dynamodb_table("orders"))
    targets = durable.of_type(TARGET)
    found = {(t.inputs["resourceId"], t.inputs["scalableDimension"]): t for t in targets}
    assert set(found) == set(expected)
    assert len(targets) == len(expected) == 6
    table_urn = durable.by_name("dynamodb-table").urn
    for key, target in found.items():
        assert target.inputs["serviceNamespace"] == "dynamodb"
        assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (expected[key]["min"], expected[key]["max"])
        assert table_urn in target.dependencies, key
        assert "roleArn" not in target.inputs  # the service-linked role


def test_a_target_tracking_policy_per_target(durable: Plan) -> None:
    expected = _expected_scalables(Namer.for_stack("test").dynamodb_table("orders"))
    targets = {(t.inputs["resourceId"], t.inputs["scalableDimension"]): t for t in durable.of_type(TARGET)}
    policies = durable.of_type(POLICY)
    assert len(policies) == len(expected)
    seen = set()
    for policy in policies:
        inputs = policy.inputs
        key = (inputs["resourceId"], inputs["scalableDimension"])
        seen.add(key)
        assert inputs["policyType"] == "TargetTrackingScaling"
        assert inputs["serviceNamespace"] == "dynamodb"
        assert targets[key].urn in policy.dependencies, key
        config = inputs["targetTrackingScalingPolicyConfiguration"]
        assert config["predefinedMetricSpecification"]["predefinedMetricType"] == expected[key]["metric"]
        assert config["targetValue"] == expected[key]["target"]
        assert (config["scaleInCooldown"], config["scaleOutCooldown"]) == (300, 30)
    assert seen == set(expected)
    assert len({p.inputs["name"] for p in policies}) == len(policies)


def test_defaults_are_cheap_and_ephemeral_tables_can_be_deleted(ephemeral: Plan) -> None:
    table = ephemeral.by_name("dynamodb-table").inputs
    assert table["deletionProtectionEnabled"] is False
    assert table["billingMode"] == "PROVISIONED"
    assert (table["readCapacity"], table["writeCapacity"]) == (1, 1)
    assert ephemeral.by_name("stack-key").inputs["deletionWindowInDays"] == 7
    defaults = DynamoDbAutoscalingArgs()
    assert len(ephemeral.of_type(TARGET)) == 2 * (1 + len(defaults.global_secondary_indexes))
    for target in ephemeral.of_type(TARGET):
        assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (1, 10)
    # No network: the recipe needs none.
    assert not ephemeral.of_type("aws:ec2/vpc:Vpc")


def test_given_kms_key_is_used_and_none_created() -> None:
    plan = make_plan(RECIPE, ephemeral=True, dynamodb_autoscaling={"kms_key_arn": KEY_ARN,
                                                                   "point_in_time_recovery": False})
    assert not plan.of_type("aws:kms/key:Key")
    table = plan.by_name("dynamodb-table").inputs
    assert table["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": KEY_ARN}
    assert table["pointInTimeRecovery"] == {"enabled": False}


def test_table_without_indexes_scales_only_the_table() -> None:
    plan = make_plan(RECIPE, ephemeral=True, dynamodb_autoscaling={"global_secondary_indexes": [], "range_key": None})
    table = plan.by_name("dynamodb-table").inputs
    assert "globalSecondaryIndexes" not in table or not table["globalSecondaryIndexes"]
    assert "rangeKey" not in table
    assert {t.inputs["scalableDimension"] for t in plan.of_type(TARGET)} == {
        "dynamodb:table:ReadCapacityUnits", "dynamodb:table:WriteCapacityUnits"}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"read_min_capacity": 5, "read_max_capacity": 4}, "read_max_capacity: must be at least read_min_capacity"),
        ({"write_min_capacity": 0}, "write_min_capacity: must be at least 1"),
        ({"read_target_utilization": 95}, "read_target_utilization: must be 20..90"),
        ({"write_target_utilization": 10}, "write_target_utilization: must be 20..90"),
        ({"hash_key_type": "X"}, "hash_key_type: 'X' is not allowed (allowed: S, N, B)"),
        ({"range_key": "pk"}, "range_key: must differ from hash_key"),
        ({"scale_in_cooldown": -1}, "scale_in_cooldown: must be 0..3600"),
        ({"table_name": "bad name!"}, "table_name: 'bad name!'"),
        ({"kms_key_arn": "mine"}, "kms_key_arn: 'mine' is not a KMS key reference"),
        ({"global_secondary_indexes": [{"name": "g1", "hash_key": "a"}]}, "global_secondary_indexes[0]: name"),
        ({"global_secondary_indexes": [{"name": "gsi", "hash_key": "a", "projection": "SOME"}]},
         "global_secondary_indexes[0]: projection: 'SOME' is not allowed (allowed: ALL, KEYS_ONLY, INCLUDE)"),
        ({"global_secondary_indexes": [{"name": "gsi", "hash_key": "a", "projection": "INCLUDE"}]},
         "non_key_attributes: projection INCLUDE needs"),
        ({"global_secondary_indexes": [{"name": "gsi", "hash_key": "a"}, {"name": "gsi", "hash_key": "b"}]},
         "index name 'gsi' is used twice"),
        ({"global_secondary_indexes": [{"name": "gsi", "hash_key": "pk", "hash_key_type": "N"}]},
         "attribute 'pk' is declared both as S and as N"),
        ({"global_secondary_indexes": [{"hash_key": "a"}]}, "global_secondary_indexes[0]"),
        ({"read_max": 3}, "unknown key 'read_max'"),
    ],
)
def test_bad_config_is_rejected_with_its_path(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(PlanError) as err:
        make_plan(RECIPE, dynamodb_autoscaling=config)
    assert "db-recipes:dynamodb-autoscaling" in str(err.value)
    assert expected in str(err.value)


def test_gsi_args_validate_on_their_own() -> None:
    with pytest.raises(ValueError, match="non_key_attributes: only allowed with projection INCLUDE"):
        GsiArgs(name="gsi", hash_key="a", non_key_attributes=("x",))
    assert GsiArgs(name="gsi", hash_key="a", range_key="b", range_key_type="B").key_attributes() == [
        ("a", "S"), ("b", "B")]


# ------------------------------------------------- resource options, as the engine receives them


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom:
            return None, {}
        return f"{args.name}-id", {**args.inputs, "arn": f"arn:aws:mock:::{args.name}"}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        return {}


class _OptionsMonitor(pulumi_mocks.MockMonitor):
    """Keeps each registration's ignoreChanges and inputs, straight from the RegisterResource request."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        self.registrations[request.name] = {
            "type": request.type,
            "ignore_changes": list(request.ignoreChanges),
            "inputs": rpc.deserialize_properties(request.object),
        }
        return response


def _register(build: Callable[[], Any]) -> dict[str, dict[str, Any]]:
    from pulumi.runtime import stack as runtime_stack
    from pulumi.runtime.sync_await import _sync_await

    result: dict[str, Any] = {}

    def work() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            mocks = _Mocks()
            monitor = _OptionsMonitor(mocks)
            pulumi.runtime.set_mocks(mocks, project="db-recipes", stack="unit", preview=False, monitor=monitor)
            _sync_await(runtime_stack.run_pulumi_func(build))
            result["registrations"] = monitor.registrations
        except BaseException as err:  # noqa: BLE001 - re-raised on the test's thread
            result["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["registrations"]


def _property_exists(inputs: dict[str, Any], path: str) -> bool:
    """Whether a Pulumi property path (``a``, ``a[*].b``) names inputs the program really sends."""
    head, _, rest = path.partition("[*].")
    if head not in inputs:
        return False
    if not rest:
        return True
    items = inputs[head]
    return bool(items) and all(rest in item for item in items)


def test_table_ignores_every_capacity_the_scaler_owns() -> None:
    args = DynamoDbAutoscalingArgs(
        global_secondary_indexes=(GsiArgs(name="gsi1", hash_key="g1"), GsiArgs(name="gsi2", hash_key="g2")))
    registrations = _register(lambda: DynamoDbAutoscaling(
        "dynamodb", args, namer=Namer.for_stack("unit"), ephemeral=True))
    table = registrations["dynamodb-table"]
    assert table["type"] == "aws:dynamodb/table:Table"
    assert set(table["ignore_changes"]) == {
        "readCapacity", "writeCapacity", "globalSecondaryIndexes[*].readCapacity",
        "globalSecondaryIndexes[*].writeCapacity"}
    assert tuple(table["ignore_changes"]) == TABLE_IGNORE_CHANGES
    # Each path must name an input the table really has, or the engine silently ignores nothing.
    for path in table["ignore_changes"]:
        assert _property_exists(table["inputs"], path), path
    # Only the capacities are ignored: keys, encryption and indexes themselves still update.
    for name, registration in registrations.items():
        if name != "dynamodb-table":
            assert registration["ignore_changes"] == [], name
