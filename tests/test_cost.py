"""`dbenv cost`: every priced resource type against figures worked out by hand from the shipped table.

Expected values are computed here from the raw entries of ``automation/planning/prices.json`` with plain
arithmetic (quantity x unit price x hours), never with the estimator's own helpers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from automation.cli import app
from automation.planning import cost
from automation.planning.plan import Plan, PlannedResource
from tests.conftest import make_plan

TABLE = json.loads((Path(cost.__file__).with_name("prices.json")).read_text(encoding="utf-8"))
H = TABLE["hours_per_month"]
runner = CliRunner()


def usd(key: str, region: str = "us-east-1") -> float:
    return TABLE["regions"][region][key]["usd"]


def res(type_: str, logical: str, **inputs: Any) -> PlannedResource:
    return PlannedResource(urn=f"urn:pulumi:s::db-recipes::{type_}::{logical}", type=type_, name=logical,
                           parent=None, inputs=inputs, dependencies=[], custom=True)


def priced(*resources: PlannedResource, region: str = "us-east-1", usage: cost.Usage | None = None) -> cost.Estimate:
    return cost.estimate(Plan("db-recipes", "s", region, list(resources)), usage=usage)


def monthly(est: cost.Estimate, name: str, scenario: str = "idle") -> float:
    return next(r for r in est.resources if r.resource.name == name).monthly(scenario)


MYSQL = "aws:rds/instance:Instance"


def mysql(name: str = "db", **inputs: Any) -> PlannedResource:
    base = {"identifier": name, "engine": "mysql", "engineVersion": "8.4", "instanceClass": "db.t4g.micro",
            "allocatedStorage": 20, "storageType": "gp3"}
    return res(MYSQL, name, **{**base, **inputs})


# ----------------------------------------------------------------- the table itself


def test_table_is_dated_region_keyed_and_every_price_names_its_aws_page() -> None:
    assert TABLE["currency"] == "USD" and TABLE["prices_as_of"]
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"} <= set(TABLE["regions"])
    for entries in TABLE["regions"].values():
        for key, entry in entries.items():
            assert entry["usd"] > 0, key
            assert entry["source"].startswith(("https://aws.amazon.com/", "https://docs.aws.amazon.com/")), key


# ----------------------------------------------------------------- RDS instances


def test_rds_instance_single_az_gp3() -> None:
    est = priced(mysql())
    assert monthly(est, "db") == pytest.approx(0.016 * 730 + 0.115 * 20)
    assert usd("rds.instance.mysql.db.t4g.micro") == 0.016 and usd("rds.storage.gp3") == 0.115


def test_rds_instance_multi_az_io1_postgres_doubles_hours_storage_and_iops() -> None:
    est = priced(mysql(engine="postgres", engineVersion="16.4", instanceClass="db.t3.medium", multiAz=True,
                       storageType="io1", allocatedStorage=100, iops=3000))
    expected = 2 * usd("rds.instance.postgres.db.t3.medium") * H + 2 * usd("rds.storage.io1") * 100 \
        + 2 * usd("rds.storage.io1.iops") * 3000
    assert monthly(est, "db") == pytest.approx(expected)


def test_gp3_iops_above_the_included_3000_are_charged() -> None:
    est = priced(mysql(iops=5000))
    assert monthly(est, "db") == pytest.approx(0.016 * H + 0.115 * 20 + usd("rds.storage.gp3.iops") * 2000)


def test_mysql_80_pays_extended_support_per_vcpu_hour_while_running() -> None:
    est = priced(mysql(engineVersion="8.0"))
    extended = 2 * usd("rds.extended-support.mysql.8.0") * H  # db.t4g.micro has 2 vCPUs
    assert monthly(est, "db") == pytest.approx(0.016 * H + 0.115 * 20 + extended)
    assert monthly(est, "db", "asleep") == pytest.approx(0.115 * 20)  # stopped: storage only


def test_replica_inherits_engine_and_storage_and_neither_side_can_sleep() -> None:
    source = mysql("src")
    replica = res(MYSQL, "rep", identifier="rep", instanceClass="db.t4g.micro", replicateSourceDb="src")
    est = priced(source, replica)
    each = 0.016 * H + 0.115 * 20
    assert monthly(est, "rep") == pytest.approx(each)
    assert monthly(est, "src", "asleep") == pytest.approx(each)
    assert monthly(est, "rep", "asleep") == pytest.approx(each)


def test_rds_managed_master_secret_is_a_secret() -> None:
    est = priced(mysql(manageMasterUserPassword=True))
    assert monthly(est, "db") == pytest.approx(0.016 * H + 0.115 * 20 + usd("secretsmanager.secret"))


def test_hours_awake_from_the_usage_file() -> None:
    est = priced(mysql(), usage=cost.Usage(values={"hours_awake": 200}))
    assert monthly(est, "db", "usage") == pytest.approx(0.016 * 200 + 0.115 * 20)
    assert monthly(est, "db") == pytest.approx(0.016 * H + 0.115 * 20)


# ----------------------------------------------------------------- Aurora


def aurora(min_acu: float, **cluster_inputs: Any) -> list[PlannedResource]:
    cluster = res("aws:rds/cluster:Cluster", "cluster", clusterIdentifier="c1", engine="aurora-postgresql",
                  serverlessv2ScalingConfiguration={"minCapacity": min_acu, "maxCapacity": 4}, **cluster_inputs)
    instance = res("aws:rds/clusterInstance:ClusterInstance", "writer", clusterIdentifier="c1",
                   instanceClass="db.serverless", engine="aurora-postgresql")
    return [cluster, instance]


def test_aurora_serverless_that_pauses_costs_no_acu_when_idle() -> None:
    est = priced(*aurora(0))
    assert monthly(est, "writer") == 0
    assert monthly(est, "cluster") == pytest.approx(1 * usd("aurora.storage"))  # 1 GB by default


def test_aurora_serverless_min_acu_is_billed_every_hour() -> None:
    est = priced(*aurora(2))
    assert monthly(est, "writer") == pytest.approx(2 * H * usd("aurora.acu"))
    assert monthly(est, "writer", "asleep") == 0  # a stopped cluster bills no ACUs


def test_aurora_usage_profile_acu_hours_storage_and_io() -> None:
    usage = cost.Usage(values={"aurora_active_hours": 100, "aurora_average_acu": 2, "aurora_storage_gb": 50,
                               "aurora_io_millions": 10})
    est = priced(*aurora(0), usage=usage)
    assert monthly(est, "writer", "usage") == pytest.approx(2 * 100 * 0.12)
    assert monthly(est, "cluster", "usage") == pytest.approx(50 * 0.10 + 10 * 0.20)


def test_aurora_io_optimized_storage_and_acu() -> None:
    est = priced(*aurora(1, storageType="aurora-iopt1"))
    assert monthly(est, "writer") == pytest.approx(1 * H * usd("aurora.acu.io-optimized"))
    assert monthly(est, "cluster") == pytest.approx(1 * usd("aurora.storage.io-optimized"))


# ----------------------------------------------------------------- RDS Proxy


def proxy(target: dict[str, str]) -> list[PlannedResource]:
    return [res("aws:rds/proxy:Proxy", "proxy", name="p1"),
            res("aws:rds/proxyTarget:ProxyTarget", "target", dbProxyName="p1", targetGroupName="default", **target)]


def test_proxy_on_an_instance_bills_its_vcpus_with_a_two_vcpu_minimum() -> None:
    est = priced(mysql(), *proxy({"dbInstanceIdentifier": "db"}))
    assert monthly(est, "proxy") == pytest.approx(2 * H * 0.015)
    big = priced(mysql(instanceClass="db.m5.xlarge", engineVersion="8.4"), *proxy({"dbInstanceIdentifier": "db"}))
    assert monthly(big, "proxy") == pytest.approx(4 * H * usd("rds-proxy.vcpu"))


def test_proxy_on_aurora_serverless_bills_8_acu_and_keeps_the_cluster_awake() -> None:
    est = priced(*aurora(0), *proxy({"dbClusterIdentifier": "c1"}))
    assert monthly(est, "proxy") == pytest.approx(8 * H * usd("rds-proxy.acu"))
    # With a proxy attached the cluster cannot pause: it holds its 0.5 ACU floor.
    assert monthly(est, "writer") == pytest.approx(0.5 * H * 0.12)


# ----------------------------------------------------------------- DMS


def test_dms_replication_instance_class_storage_and_multi_az() -> None:
    small = priced(res("aws:dms/replicationInstance:ReplicationInstance", "rep",
                       replicationInstanceClass="dms.t3.micro", allocatedStorage=20))
    assert monthly(small, "rep") == pytest.approx(0.018 * H)  # 20 GB is within the 50 GB included
    assert monthly(small, "rep", "asleep") == pytest.approx(0.018 * H)  # cannot be stopped
    big = priced(res("aws:dms/replicationInstance:ReplicationInstance", "rep",
                     replicationInstanceClass="dms.c5.large", allocatedStorage=150, multiAz=True))
    assert monthly(big, "rep") == pytest.approx(2 * usd("dms.instance.dms.c5.large") * H + 2 * (150 - 100) * 0.115)


def test_dms_serverless_costs_nothing_idle_and_is_not_priced_when_it_runs() -> None:
    full_load = priced(res("aws:dms/replicationConfig:ReplicationConfig", "cfg", replicationType="full-load",
                           computeConfig={"maxCapacityUnits": 4}))
    assert monthly(full_load, "cfg") == 0 and full_load.not_priced == []
    continuous = priced(res("aws:dms/replicationConfig:ReplicationConfig", "cfg", replicationType="cdc",
                            startReplication=True, computeConfig={"minCapacityUnits": 2}))
    assert [n["reason"] for n in continuous.not_priced] == ["no DMS Serverless DCU-hour price for us-east-1 in the table"]


# ----------------------------------------------------------------- keys, secrets, network


def test_kms_key_and_requests() -> None:
    est = priced(res("aws:kms/key:Key", "key"), usage=cost.Usage(values={"kms_requests": 50000}))
    assert monthly(est, "key") == pytest.approx(1.00)
    assert monthly(est, "key", "usage") == pytest.approx(1.00 + 5 * 0.03)


def test_secret_and_api_calls() -> None:
    est = priced(res("aws:secretsmanager/secret:Secret", "secret"), usage=cost.Usage(values={"secrets_api_calls": 20000}))
    assert monthly(est, "secret") == pytest.approx(0.40)
    assert monthly(est, "secret", "usage") == pytest.approx(0.40 + 2 * 0.05)


def test_interface_endpoint_per_az_hour_and_gb_gateway_free() -> None:
    endpoint = res("aws:ec2/vpcEndpoint:VpcEndpoint", "vpce", vpcEndpointType="Interface", subnetIds=["a", "b"])
    gateway = res("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", vpcEndpointType="Gateway")
    est = priced(endpoint, gateway, usage=cost.Usage(values={"endpoint_gb": 100}))
    assert monthly(est, "vpce") == pytest.approx(2 * H * 0.01)
    assert monthly(est, "vpce", "usage") == pytest.approx(2 * H * 0.01 + 100 * 0.01)
    assert [r.resource.name for r in est.resources] == ["vpce"]


def test_nat_gateway_hours_and_data() -> None:
    est = priced(res("aws:ec2/natGateway:NatGateway", "nat"), usage=cost.Usage(values={"nat_gb": 10}))
    assert monthly(est, "nat") == pytest.approx(0.045 * H)
    assert monthly(est, "nat", "usage") == pytest.approx(0.045 * H + 10 * 0.045)


# ----------------------------------------------------------------- DynamoDB, alarms, Lambda


def test_dynamodb_provisioned_idles_at_the_autoscaling_minimum() -> None:
    table = res("aws:dynamodb/table:Table", "table", name="t", billingMode="PROVISIONED", readCapacity=5,
                writeCapacity=5, globalSecondaryIndexes=[{"name": "g", "readCapacity": 3, "writeCapacity": 3}])
    target = res("aws:appautoscaling/target:Target", "rt", resourceId="table/t",
                 scalableDimension="dynamodb:table:ReadCapacityUnits", minCapacity=1, maxCapacity=10)
    est = priced(table, target)
    # table reads at the scaler's minimum (1); table writes and the index as provisioned (5, 3, 3).
    expected = 1 * H * 0.00013 + 5 * H * 0.00065 + 3 * H * 0.00013 + 3 * H * 0.00065
    assert monthly(est, "table") == pytest.approx(expected)


def test_dynamodb_on_demand_requests_storage_and_pitr() -> None:
    table = res("aws:dynamodb/table:Table", "table", name="t", billingMode="PAY_PER_REQUEST",
                pointInTimeRecovery={"enabled": True})
    usage = cost.Usage(values={"dynamodb_read_request_millions": 4, "dynamodb_write_request_millions": 2,
                               "dynamodb_storage_gb": 10})
    est = priced(table, usage=usage)
    assert monthly(est, "table") == 0
    assert monthly(est, "table", "usage") == pytest.approx(4 * 0.125 + 2 * 0.625 + 10 * 0.25 + 10 * 0.20)


def test_target_tracking_policy_makes_four_alarms() -> None:
    est = priced(res("aws:appautoscaling/policy:Policy", "pol", policyType="TargetTrackingScaling"),
                 res("aws:appautoscaling/policy:Policy", "step", policyType="StepScaling"))
    assert monthly(est, "pol") == pytest.approx(4 * 0.10)
    assert [r.resource.name for r in est.resources] == ["pol"]


def test_lambda_requests_duration_and_logs() -> None:
    fn = res("aws:lambda/function:Function", "fn", memorySize=256, architectures=["x86_64"])
    usage = cost.Usage(values={"lambda_requests": 1_000_000, "lambda_duration_ms": 200, "log_ingested_gb": 2,
                               "log_stored_gb": 5})
    est = priced(fn, usage=usage)
    assert monthly(est, "fn") == 0
    expected = 1 * 0.20 + 1_000_000 * 0.2 * 0.25 * 0.0000166667 + 2 * 0.50 + 5 * 0.03
    assert monthly(est, "fn", "usage") == pytest.approx(expected)


# ----------------------------------------------------------------- backups and snapshots


def test_snapshots_beyond_the_free_allowance_are_backup_storage() -> None:
    snapshot = res("aws:rds/snapshot:Snapshot", "snap", dbInstanceIdentifier="db", dbSnapshotIdentifier="s1")
    copy = res("aws:rds/snapshotCopy:SnapshotCopy", "snapcopy", sourceDbSnapshotIdentifier="arn:aws:rds:::snapshot:s1",
               targetDbSnapshotIdentifier="s2")
    est = priced(mysql(allocatedStorage=30), snapshot, copy)
    # Free allowance = 30 GB of provisioned storage: the first 30 GB snapshot is free, the copy is not.
    billed = [monthly(est, "snap"), monthly(est, "snapcopy")]
    assert sorted(billed) == pytest.approx([0.0, 30 * usd("rds.backup")])
    usage = priced(mysql(), usage=cost.Usage(resources={"db": {"backup_gb": 40}}))
    assert monthly(usage, "db", "usage") - monthly(usage, "db") == pytest.approx(40 * 0.095)


# ----------------------------------------------------------------- never silently zero


def test_unknown_type_class_and_region_are_listed_not_priced() -> None:
    est = priced(res("aws:elasticache/cluster:Cluster", "cache"), mysql(instanceClass="db.x2g.16xlarge"))
    reasons = {n["urn"].rsplit("::", 1)[-1]: n["reason"] for n in est.not_priced}
    assert reasons["cache"] == "resource type not in the price table"
    assert "db.x2g.16xlarge" in reasons["db"]
    far = priced(mysql(), res("aws:kms/key:Key", "key"), region="ap-south-2")
    assert far.total("idle") == 0 and len(far.not_priced) == 2
    assert all("region ap-south-2 not in the price table" == n["reason"] for n in far.not_priced)


def test_regional_prices_are_used() -> None:
    est = priced(mysql(), region="eu-central-1")
    expected = usd("rds.instance.mysql.db.t4g.micro", "eu-central-1") * H + usd("rds.storage.gp3", "eu-central-1") * 20
    assert monthly(est, "db") == pytest.approx(expected)
    assert expected != pytest.approx(0.016 * H + 0.115 * 20)


# ----------------------------------------------------------------- the usage file


def test_usage_file_is_bounded_and_validated(tmp_path: Path) -> None:
    good = tmp_path / "dbenv-usage.yml"
    good.write_text("hours_awake: 100\nresources:\n  db: {backup_gb: 3}\n", encoding="utf-8")
    usage = cost.read_usage(good)
    assert usage.get("db", "hours_awake") == 100 and usage.get("db", "backup_gb") == 3
    assert usage.get("other", "backup_gb") == 0
    for text, message in [("colour: 1\n", "unknown key 'colour'"), ("hours_awake: -1\n", "must be a number >= 0"),
                          ("a: &x {b: 1}\nc: *x\n", "aliases"), ("hours_awake: 900\n", "at most 744")]:
        good.write_text(text, encoding="utf-8")
        with pytest.raises(cost.CostError, match=message):
            cost.read_usage(good)
    good.write_bytes(b"hours_awake: 1\n" + b"#" * 6_000_000)
    with pytest.raises(cost.CostError, match="limit"):
        cost.read_usage(good)
    good.write_bytes(b"\xff\xfe")
    with pytest.raises(cost.CostError, match="UTF-8"):
        cost.read_usage(good)


def test_usage_template_parses_to_the_idle_defaults() -> None:
    import yaml

    usage = cost.parse_usage(yaml.safe_load(cost.usage_template()), "template")
    for key, (default, _) in cost.USAGE_KEYS.items():
        assert usage.get("x", key) == default


# ----------------------------------------------------------------- whole plans and the CLI


def test_recipes_all_adds_up_and_names_every_recipe() -> None:
    plan = make_plan("all", stack="feature-x", ephemeral=True)
    est = cost.estimate(plan)
    doc = est.to_json()
    assert set(doc) == {"currency", "region", "prices_as_of", "resources", "recipes", "total", "not_priced"}
    for entry in doc["resources"]:
        assert set(entry) == {"urn", "type", "monthly", "components"}
        for part in entry["components"]:
            assert set(part) == {"name", "unit", "quantity", "unit_price", "monthly"}
    assert doc["total"]["idle"] == pytest.approx(sum(r["monthly"]["idle"] for r in doc["resources"]), abs=0.05)
    assert set(doc["recipes"]) >= {"aurora-serverless", "rds-proxy", "dms-migration", "dynamodb-autoscaling",
                                   "encrypt-existing", "secret-rotation"}
    proxy_line = next(r for r in est.resources if r.resource.type == "aws:rds/proxy:Proxy")
    assert proxy_line.monthly("idle") == pytest.approx(2 * H * 0.015)
    keys = [r for r in est.resources if r.resource.type == "aws:kms/key:Key"]
    assert sum(r.monthly("idle") for r in keys) == pytest.approx(len(keys) * 1.0)


def test_cost_cli_json_and_comparison(tmp_path: Path) -> None:
    result = runner.invoke(app, ["cost", "-b", "feature/x", "-r", "dynamodb-autoscaling", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["currency"] == "USD" and doc["region"] == "us-east-1" and doc["total"]["idle"] > 0
    base = tmp_path / "base.json"
    base.write_text(json.dumps({**doc, "total": {"idle": 1.0, "usage": 1.0}, "recipes": {}}), encoding="utf-8")
    text = runner.invoke(app, ["cost", "-b", "feature/x", "-r", "dynamodb-autoscaling", "--against", str(base)])
    assert text.exit_code == 0, text.output
    assert "| **total** | **$1.00** |" in text.stdout and f"+${doc['total']['idle'] - 1:,.2f}" in text.stdout


def test_cost_cli_bad_usage_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "u.yml"
    bad.write_text("colour: red\n", encoding="utf-8")
    result = runner.invoke(app, ["cost", "-b", "x", "-r", "dynamodb-autoscaling", "--usage", str(bad)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "unknown key 'colour'" in result.stderr


def test_plan_shows_a_cost_column_unless_no_cost() -> None:
    with_cost = runner.invoke(app, ["plan", "-b", "x", "-r", "dynamodb-autoscaling"])
    assert with_cost.exit_code == 0, with_cost.output
    assert "aws:kms/key:Key  stack-key  $1.00/mo" in with_cost.stdout and "total" in with_cost.stdout
    without = runner.invoke(app, ["plan", "-b", "x", "-r", "dynamodb-autoscaling", "--no-cost"])
    assert "$" not in without.stdout


# ----------------------------------------------------------------- the refresh script's parsing


def offer(usd: str, *, begin: str = "0") -> str:
    """A product in the Price List API's GetProducts shape (terms.OnDemand.<sku.term>.priceDimensions)."""
    return json.dumps({"product": {"sku": "ABC", "attributes": {"instanceType": "db.t4g.micro"}},
                       "terms": {"OnDemand": {"ABC.JRTCKXETXF": {"priceDimensions": {
                           "ABC.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "beginRange": begin, "endRange": "Inf",
                                                         "pricePerUnit": {"USD": usd}}}}}}})


def test_refresh_takes_single_matches_and_reports_the_rest() -> None:
    from datetime import date

    from automation.planning import price_refresh

    asked: list[tuple[str, dict]] = []

    def fetch(service: str, filters: dict) -> list[str]:
        asked.append((service, filters))
        if filters.get("instanceType") == "db.t4g.micro" and filters["databaseEngine"] == "MySQL":
            return [offer("0.0170000000"), offer("0.0100000000", begin="100")]  # the second is a later tier
        if filters.get("productFamily") == "Encryption Key":
            return [offer("1.0000000000"), offer("2.0000000000")]  # ambiguous: kept
        return []

    table = {"prices_as_of": "2026-01-01", "regions": {"us-east-1": {
        "rds.instance.mysql.db.t4g.micro": {"usd": 0.016, "unit": "hour", "source": "s"},
        "kms.key": {"usd": 1.0, "unit": "key-month", "source": "s"},
        "logs.storage": {"usd": 0.03, "unit": "GB-month", "source": "s"}}}}
    updated, kept = price_refresh.refresh(table, fetch, today=date(2026, 12, 1))
    assert updated["regions"]["us-east-1"]["rds.instance.mysql.db.t4g.micro"]["usd"] == 0.017
    assert updated["regions"]["us-east-1"]["kms.key"]["usd"] == 1.0
    assert updated["prices_as_of"] == "2026-12-01" and table["prices_as_of"] == "2026-01-01"
    assert any("kms.key: 2 prices" in line for line in kept)
    assert any("logs.storage: no Price List query" in line for line in kept)
    assert ("AmazonRDS", {"instanceType": "db.t4g.micro", "databaseEngine": "MySQL", "deploymentOption": "Single-AZ",
                          "regionCode": "us-east-1"}) in asked


def test_the_example_usage_file_is_the_documented_template() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "dbenv-usage.yml"
    assert example.read_text(encoding="utf-8") == cost.usage_template()
    assert cost.read_usage(example).values["hours_awake"] == 730
