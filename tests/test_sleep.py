"""Sleep, wake and reap-sleep against a real moto server, over the pulumi.automation stand-in."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pulumi.automation as auto
import pytest
from moto.server import ThreadedMotoServer

from automation import local_aws
from automation.local_aws import free_port
from automation.operations.errors import Refused
from automation.operations.sleep import Sleeper
from components import naming
from tests.test_environments import NOW, make_service

pytestmark = pytest.mark.aws

BRANCH = "feature/sleepy"
STACK = naming.stack_name(BRANCH)
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    yield f"http://127.0.0.1:{port}"
    moto.stop()


@pytest.fixture
def endpoint(server: str) -> str:
    # moto keeps its state per process: start every test from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"{server}/moto-api/reset", method="POST"), timeout=10).close()
    return server


def client(endpoint: str) -> Any:
    return boto3.client("rds", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=local_aws.ACCESS_KEY,
                        aws_secret_access_key=local_aws.SECRET_KEY)


def databases(rds: Any, stack: str = STACK, prefix: str = "b") -> None:
    """What a branch with rds-proxy, encrypt-existing and two Aurora clusters leaves in RDS."""
    tags = [{"Key": "stack", "Value": stack}]
    common = {"DBInstanceClass": "db.t4g.micro", "Engine": "mysql", "AllocatedStorage": 20, "MasterUsername": "u",
              "MasterUserPassword": "password123", "Tags": tags}
    rds.create_db_instance(DBInstanceIdentifier=f"{prefix}-mysql", **common)
    rds.create_db_instance(DBInstanceIdentifier=f"{prefix}-source", **common)
    rds.create_db_instance_read_replica(DBInstanceIdentifier=f"{prefix}-replica",
                                        SourceDBInstanceIdentifier=f"{prefix}-source", Tags=tags)
    cluster = {"Engine": "aurora-postgresql", "MasterUsername": "u", "MasterUserPassword": "password123", "Tags": tags}
    rds.create_db_cluster(DBClusterIdentifier=f"{prefix}-pausing",
                          ServerlessV2ScalingConfiguration={"MinCapacity": 0, "MaxCapacity": 4}, **cluster)
    rds.create_db_cluster(DBClusterIdentifier=f"{prefix}-always-on",
                          ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 4}, **cluster)


def statuses(rds: Any) -> dict[str, str]:
    found = {i["DBInstanceIdentifier"]: i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]}
    found.update({c["DBClusterIdentifier"]: c["Status"] for c in rds.describe_db_clusters()["DBClusters"]})
    return found


def branch_tags(branch: str, **extra: str) -> dict[str, str]:
    return {"branch": branch, "ephemeral": "true", "created-at": "2026-11-27T00:00:00Z",
            "expires-at": "2026-12-30T00:00:00Z", **extra}


def setup(tmp_path: Path, endpoint: str, *, now: Any = NOW) -> tuple[Sleeper, Any, Any]:
    service, fake = make_service(tmp_path, now=now)
    state = fake.backend.add_stack(STACK, branch_tags(BRANCH))
    state.config["aws:region"] = auto.ConfigValue(value=REGION)
    waits: list[float] = []
    sleeper = Sleeper(service, lambda region: client(endpoint) if region == REGION else None, sleep=waits.append,
                      wake_timeout=timedelta(minutes=1), poll_seconds=5)
    sleeper.waits = waits  # type: ignore[attr-defined]
    return sleeper, fake, state


def test_sleep_stops_what_it_can_and_records_it(tmp_path: Path, endpoint: str) -> None:
    rds = client(endpoint)
    databases(rds)
    databases(rds, stack="someone-else", prefix="other")
    sleeper, fake, state = setup(tmp_path, endpoint)

    report = sleeper.sleep(STACK, BRANCH)

    now = statuses(rds)
    assert now["b-mysql"] == "stopped" and now["b-always-on"] == "stopped"
    assert now["b-pausing"] == "available"  # pauses at 0 ACU by itself
    assert now["b-source"] == "available" and now["b-replica"] == "available"  # RDS cannot stop these
    assert all(now[f"other-{n}"] == "available" for n in ("mysql", "source", "replica", "pausing", "always-on"))
    assert sorted(d.identifier for d in report.acted) == ["b-always-on", "b-mysql"]
    reasons = {d.identifier: d.reason for d in report.left}
    assert "pauses by itself" in reasons["b-pausing"] and "read replica" in reasons["b-replica"]
    assert "has a read replica" in reasons["b-source"] or "with a read replica" in reasons["b-source"]
    assert state.tags["sleep-state"] == "asleep" and state.tags["slept-at"] == "2026-11-27T12:00:00Z"


def test_wake_starts_and_waits_until_available(tmp_path: Path, endpoint: str) -> None:
    rds = client(endpoint)
    databases(rds)
    sleeper, _, state = setup(tmp_path, endpoint)
    sleeper.sleep(STACK, BRANCH)

    report = sleeper.wake(STACK, BRANCH)

    assert sorted(d.identifier for d in report.acted) == ["b-always-on", "b-mysql"]
    assert {k: v for k, v in statuses(rds).items() if k.startswith("b-")} == dict.fromkeys(
        ["b-mysql", "b-source", "b-replica", "b-pausing", "b-always-on"], "available")
    assert state.tags["sleep-state"] == "awake" and state.tags["awake-since"] == "2026-11-27T12:00:00Z"


def test_wake_gives_up_after_its_timeout(tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from automation.operations import sleep as sleep_mod

    rds = client(endpoint)
    databases(rds)
    sleeper, _, _ = setup(tmp_path, endpoint)
    sleeper.sleep(STACK, BRANCH)
    real = Sleeper.databases
    calls: list[int] = []

    def stuck(self: Sleeper, c: Any, stack: str) -> list[Any]:
        found = real(self, c, stack)
        calls.append(1)
        for db in found:
            if db.identifier == "b-mysql" and len(calls) > 1:  # started, but never becomes available
                db.status = "starting"
        return found

    monkeypatch.setattr(Sleeper, "databases", stuck)
    with pytest.raises(sleep_mod.SleepError, match="b-mysql"):
        sleeper.wake(STACK, BRANCH)
    assert sum(sleeper.waits) >= 60  # type: ignore[attr-defined]


def test_sleep_refuses_durable_stacks(tmp_path: Path, endpoint: str) -> None:
    sleeper, _, state = setup(tmp_path, endpoint)
    state.tags["ephemeral"] = "false"
    with pytest.raises(Refused, match="durable"):
        sleeper.sleep(STACK, BRANCH)
    assert "sleep-state" not in state.tags


def test_reap_resleeps_what_aws_woke_and_sleeps_idle_branches(tmp_path: Path, endpoint: str) -> None:
    rds = client(endpoint)
    databases(rds)
    sleeper, fake, state = setup(tmp_path, endpoint)
    sleeper.sleep(STACK, BRANCH)
    rds.start_db_instance(DBInstanceIdentifier="b-mysql")  # what AWS does after 7 days stopped

    idle_stack = naming.stack_name("feature/idle")
    fresh_stack = naming.stack_name("feature/fresh")
    durable_stack = naming.stack_name("main")
    for stack, branch, awake in ((idle_stack, "feature/idle", "2026-11-26T23:00:00Z"),
                                 (fresh_stack, "feature/fresh", "2026-11-27T11:00:00Z")):
        databases(rds, stack=stack, prefix=branch.split("/")[1])
        extra = fake.backend.add_stack(stack, branch_tags(branch, **{"awake-since": awake}))
        extra.config["aws:region"] = state.config["aws:region"]
    fake.backend.add_stack(durable_stack, {"ephemeral": "false", "awake-since": "2026-01-01T00:00:00Z"})

    planned = sleeper.reap(sleep_after=timedelta(hours=12), dry_run=True)
    assert {(r.stack, r.status) for r in planned} == {(STACK, "would-sleep"), (idle_stack, "would-sleep")}
    assert statuses(rds)["b-mysql"] == "available"

    done = sleeper.reap(sleep_after=timedelta(hours=12))
    assert {(r.stack, r.status) for r in done} == {(STACK, "slept"), (idle_stack, "slept")}
    assert "AWS had started instance b-mysql" in next(r.detail for r in done if r.stack == STACK)
    now = statuses(rds)
    assert now["b-mysql"] == "stopped" and now["idle-mysql"] == "stopped" and now["fresh-mysql"] == "available"
    assert fake.backend.stacks[durable_stack].tags.get("sleep-state") is None
    assert sleeper.reap(sleep_after=timedelta(hours=12)) == []  # everything idle is asleep now


def test_sleep_and_wake_commands_print_what_keeps_costing(tmp_path: Path, endpoint: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from automation import cli
    from automation.commands import common
    from automation.operations import lifecycle

    rds = client(endpoint)
    databases(rds)
    sleeper, _, state = setup(tmp_path, endpoint)
    state.config["db-recipes:recipes"] = auto.ConfigValue(value="aurora-serverless,dynamodb-autoscaling")
    state.config["db-recipes:ephemeral"] = auto.ConfigValue(value="true")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "environments", lambda settings: sleeper.service)
    monkeypatch.setattr(lifecycle, "sleeper", lambda service: sleeper)
    runner = CliRunner()

    asleep = runner.invoke(cli.app, ["sleep", "-b", BRANCH])
    assert asleep.exit_code == 0, asleep.output
    assert "is asleep: stopped 2" in asleep.stdout and "stopped  instance b-mysql" in asleep.stdout
    assert "still costing while asleep:" in asleep.stdout and "customer-managed key" in asleep.stdout
    awake = runner.invoke(cli.app, ["wake", "-b", BRANCH, "--json"])
    assert awake.exit_code == 0, awake.output
    assert sorted(a["id"] for a in json.loads(awake.stdout)["acted"]) == ["b-always-on", "b-mysql"]
    missing = runner.invoke(cli.app, ["sleep", "-b", "feature/none"])
    assert missing.exit_code == 1 and "run `dbenv up` first" in missing.stderr
