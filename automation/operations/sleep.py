"""Sleep and wake a branch's databases: stop its RDS instances and Aurora clusters, start them again.

A stopped instance or cluster bills its storage and backups only, not its hours
(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_OnDemandDBInstances.html, "Stopped DB
instances"). AWS starts a stopped instance or cluster again after seven days
(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_StopInstance.html), so `dbenv reap`
puts branches marked asleep back to sleep, and sleeps branches idle longer than `sleep_after`.

What cannot be stopped is left running and reported: a read replica and an instance that has one
(USER_StopInstance.html, "Limitations"), an Aurora Serverless v2 cluster that already pauses at 0
ACU (nothing to gain, and a stopped cluster cannot resume on a connection), and the services that
have no stop at all (RDS Proxy, DMS replication instances, KMS keys, secrets, endpoints).

The branch's databases are found by the `stack` tag every resource carries (the provider's default
tags); the state is kept in the stack's own tags, beside the ones `dbenv up` writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from automation.operations import environments as envs
from automation.operations.engine import (
    ASLEEP,
    AWAKE,
    TAG_AWAKE_SINCE,
    TAG_COST_ASLEEP,
    TAG_COST_IDLE,
    TAG_SLEEP,
    TAG_SLEPT_AT,
)
from automation.operations.errors import NotFound, Refused, SleepError

WAKE_TIMEOUT = timedelta(minutes=30)
POLL_SECONDS = 15.0


@dataclass
class Database:
    kind: str  # instance | cluster
    identifier: str
    status: str
    reason: str = ""  # why it is left alone; empty when sleep/wake acts on it

    def label(self) -> str:
        return f"{self.kind} {self.identifier}"


@dataclass
class SleepReport:
    stack: str
    branch: str | None
    region: str
    acted: list[Database] = field(default_factory=list)
    left: list[Database] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    # What still bills while asleep, priced offline from the stack's config: (resource, component, USD a month).
    still_costing: list[tuple[str, str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "branch": self.branch, "region": self.region,
                "acted": [{"kind": d.kind, "id": d.identifier, "status": d.status} for d in self.acted],
                "left": [{"kind": d.kind, "id": d.identifier, "status": d.status, "reason": d.reason}
                         for d in self.left]}

    def still_costing_json(self) -> list[dict[str, Any]]:
        return [{"resource": name, "component": part, "monthly": round(value, 2)}
                for name, part, value in self.still_costing]


def rds_client_factory(service: envs.Environments) -> Callable[[str], Any]:
    """boto3 RDS clients: the moto server on the local target, the default credentials on aws."""
    import boto3

    settings = service.settings

    def make(region: str) -> Any:
        if settings.target == "local":
            from automation import local_aws

            status = service.local.status()
            if not status.running:
                raise NotFound("the local AWS endpoint is not running: there is nothing on it to sleep or wake")
            return boto3.client("rds", endpoint_url=status.endpoint, region_name=region,
                                aws_access_key_id=local_aws.ACCESS_KEY, aws_secret_access_key=local_aws.SECRET_KEY)
        return boto3.client("rds", region_name=region)

    return make


class Sleeper:
    """Sleep, wake and reap-sleep over the stacks of an ``Environments`` service."""

    def __init__(self, service: envs.Environments, rds: Callable[[str], Any] | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, wake_timeout: timedelta = WAKE_TIMEOUT,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.service = service
        self._rds = rds
        self.sleep_fn = sleep
        self.wake_timeout = wake_timeout
        self.poll_seconds = poll_seconds

    def rds(self, region: str) -> Any:
        if self._rds is None:
            self._rds = rds_client_factory(self.service)
        return self._rds(region)

    # -- stack tags

    def _stack(self, stack_name: str) -> Any:
        engine = self.service.engine
        try:
            return engine.stack(stack_name, None, create=False)
        except engine.auto.StackNotFoundError:
            raise NotFound(f"no environment {stack_name}: run `dbenv up` first") from None

    def _set_tags(self, stack: Any, tags: dict[str, str]) -> None:
        current = stack.list_tags()
        for key, value in tags.items():
            if current.get(key) != value:
                stack.set_tag(key, value)

    def mark_deployed(self, stack_name: str, figures: tuple[float, float] | None) -> None:
        """After `dbenv up`: awake since now, and the estimate for `dbenv ls`."""
        tags = {TAG_SLEEP: AWAKE, TAG_AWAKE_SINCE: envs.format_time(self.service.clock())}
        if figures is not None:
            tags[TAG_COST_IDLE], tags[TAG_COST_ASLEEP] = (f"{value:.2f}" for value in figures)
        self._set_tags(self._stack(stack_name), tags)

    def _region(self, config: dict[str, Any]) -> str:
        return str(config.get("aws:region") or self.service.settings.region)

    @staticmethod
    def _config(stack: Any) -> dict[str, Any]:
        return {key: getattr(value, "value", value) for key, value in stack.get_all_config().items()}

    # -- finding the branch's databases

    def databases(self, client: Any, stack_name: str) -> list[Database]:
        """Every RDS instance and cluster tagged with this stack, with what sleep may do to it."""
        clusters = [c for c in _pages(client, "describe_db_clusters", "DBClusters") if _tagged(c, stack_name)]
        instances = [i for i in _pages(client, "describe_db_instances", "DBInstances") if _tagged(i, stack_name)]
        proxied = _proxied_clusters(client)
        found = [Database("cluster", c["DBClusterIdentifier"], c.get("Status", ""), _cluster_reason(c, proxied))
                 for c in clusters]
        for inst in instances:
            if inst.get("DBClusterIdentifier"):
                continue  # an Aurora member: stopped and started with its cluster
            found.append(Database("instance", inst["DBInstanceIdentifier"], inst.get("DBInstanceStatus", ""),
                                  _instance_reason(inst)))
        return found

    # -- sleep and wake

    def sleep(self, stack_name: str, branch: str | None) -> SleepReport:
        stack = self._stack(stack_name)
        tags = stack.list_tags()
        if tags.get(envs.TAG_EPHEMERAL) != "true":
            raise Refused(f"stack {stack_name} is durable (not tagged ephemeral=true): dbenv sleeps branch "
                               "environments only")
        config = self._config(stack)
        report = SleepReport(stack_name, branch or tags.get(envs.TAG_BRANCH), self._region(config), config=config)
        client = self.rds(report.region)
        for db in self.databases(client, stack_name):
            if db.reason or db.status == "stopped":
                db.reason = db.reason or "already stopped"
                report.left.append(db)
                continue
            if db.status != "available":
                db.reason = f"status {db.status}: only an available database can be stopped"
                report.left.append(db)
                continue
            _call(client, "stop_db_cluster" if db.kind == "cluster" else "stop_db_instance", db)
            report.acted.append(db)
        self._set_tags(stack, {TAG_SLEEP: ASLEEP, TAG_SLEPT_AT: envs.format_time(self.service.clock())})
        return report

    def wake(self, stack_name: str, branch: str | None) -> SleepReport:
        stack = self._stack(stack_name)
        tags = stack.list_tags()
        config = self._config(stack)
        report = SleepReport(stack_name, branch or tags.get(envs.TAG_BRANCH), self._region(config), config=config)
        client = self.rds(report.region)
        for db in self.databases(client, stack_name):
            if db.status == "stopped":
                _call(client, "start_db_cluster" if db.kind == "cluster" else "start_db_instance", db)
                report.acted.append(db)
            elif db.status not in ("available", "starting"):
                db.reason = f"status {db.status}"
                report.left.append(db)
        self._wait_available(client, stack_name, [d for d in report.acted])
        self._set_tags(stack, {TAG_SLEEP: AWAKE, TAG_AWAKE_SINCE: envs.format_time(self.service.clock())})
        return report

    def _wait_available(self, client: Any, stack_name: str, started: Iterable[Database]) -> None:
        pending = {(d.kind, d.identifier) for d in started}
        waited = 0.0
        while pending:
            states = {(d.kind, d.identifier): d.status for d in self.databases(client, stack_name)}
            pending = {key for key in pending if states.get(key) != "available"}
            if not pending:
                return
            if waited >= self.wake_timeout.total_seconds():
                names = ", ".join(f"{kind} {ident} ({states.get((kind, ident), 'gone')})" for kind, ident in sorted(pending))
                raise SleepError(f"{stack_name}: not available after {waited:.0f}s: {names}")
            self.sleep_fn(self.poll_seconds)
            waited += self.poll_seconds

    # -- reap

    def reap(self, *, sleep_after: timedelta, dry_run: bool = False,
             skip: Iterable[str] = ()) -> list[envs.ReapResult]:
        """Re-sleep branches marked asleep that AWS started again; sleep branches idle past ``sleep_after``.

        Durable stacks and the shared stack are never touched.
        """
        skipped = set(skip)
        now = self.service.clock()
        results = []
        for env in self.service.list():
            if not env.ephemeral or env.stack == envs.SHARED_STACK or env.stack in skipped or env.locked:
                continue
            try:
                result = self._reap_one(env, now, sleep_after, dry_run)
            except (NotFound, Refused, SleepError) as err:
                result = envs.ReapResult(env.stack, env.branch, "failed", str(err))
            except Exception as err:  # noqa: BLE001 - one stack's surprise must not stop the others
                result = envs.ReapResult(env.stack, env.branch, "failed", f"{type(err).__name__}: {err}")
            if result is not None:
                results.append(result)
        return results

    def _reap_one(self, env: envs.EnvInfo, now: datetime, sleep_after: timedelta,
                  dry_run: bool) -> envs.ReapResult | None:
        tags = env.tags
        if tags.get(TAG_SLEEP) == ASLEEP:
            stack = self._stack(env.stack)
            client = self.rds(self._region(self._config(stack)))
            woken = [d for d in self.databases(client, env.stack) if not d.reason and d.status == "available"]
            if not woken:
                return None
            names = ", ".join(d.label() for d in woken)
            if dry_run:
                return envs.ReapResult(env.stack, env.branch, "would-sleep", f"marked asleep but running: {names}")
            self.sleep(env.stack, env.branch)
            return envs.ReapResult(env.stack, env.branch, "slept", f"AWS had started {names} again")
        since = envs.parse_time(tags.get(TAG_AWAKE_SINCE)) or env.last_update or env.created_at
        if since is None or now - since < sleep_after:
            return None
        from automation import workspace

        idle = f"awake {workspace.format_duration(now - since)} (sleep_after {workspace.format_duration(sleep_after)})"
        if dry_run:
            return envs.ReapResult(env.stack, env.branch, "would-sleep", idle)
        report = self.sleep(env.stack, env.branch)
        return envs.ReapResult(env.stack, env.branch, "slept", f"{idle}; stopped {len(report.acted)}")


# ------------------------------------------------------------------ AWS details


def _pages(client: Any, operation: str, key: str) -> list[dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return [item for page in client.get_paginator(operation).paginate() for item in page.get(key, [])]
    except (ClientError, BotoCoreError) as err:
        raise SleepError(f"{operation} failed: {err}") from None


def _tagged(resource: dict[str, Any], stack_name: str) -> bool:
    return any(t.get("Key") == "stack" and t.get("Value") == stack_name for t in resource.get("TagList") or [])


def _proxied_clusters(client: Any) -> set[str]:
    """Clusters some RDS Proxy targets: such a cluster never pauses by itself."""
    from botocore.exceptions import BotoCoreError, ClientError

    clusters: set[str] = set()
    try:
        for proxy in client.describe_db_proxies().get("DBProxies", []):
            targets = client.describe_db_proxy_targets(DBProxyName=proxy["DBProxyName"]).get("Targets", [])
            clusters.update(t["TrackedClusterId"] for t in targets if t.get("TrackedClusterId"))
            clusters.update(t["RdsResourceId"] for t in targets if t.get("Type") == "TRACKED_CLUSTER")
    except (ClientError, BotoCoreError, KeyError, NotImplementedError):
        return clusters
    return clusters


def _cluster_reason(cluster: dict[str, Any], proxied: set[str]) -> str:
    scaling = cluster.get("ServerlessV2ScalingConfiguration") or {}
    if scaling and float(scaling.get("MinCapacity", 0.5)) == 0 and cluster["DBClusterIdentifier"] not in proxied:
        return "Aurora Serverless v2 with 0 ACU minimum: it pauses by itself"
    return ""


def _instance_reason(instance: dict[str, Any]) -> str:
    if instance.get("ReadReplicaSourceDBInstanceIdentifier"):
        return "a read replica cannot be stopped"
    if instance.get("ReadReplicaDBInstanceIdentifiers"):
        return "an instance with a read replica cannot be stopped"
    return ""


def _call(client: Any, operation: str, db: Database) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    key = "DBClusterIdentifier" if db.kind == "cluster" else "DBInstanceIdentifier"
    try:
        getattr(client, operation)(**{key: db.identifier})
    except (ClientError, BotoCoreError) as err:
        raise SleepError(f"{operation} {db.identifier} failed: {err}") from None
