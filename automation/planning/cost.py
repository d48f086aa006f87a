"""What a stack costs a month at list price, from its offline plan and the shipped price table.

Never talks to AWS. The price table (``prices.json`` beside this module) is data:
region -> billing dimension -> ``{"usd", "unit", "source"}``, dated, with the rules
AWS states on the same pages (RDS Proxy minimums, included DMS storage, ...);
``automation/planning/price_refresh.py`` rebuilds it from the AWS Price List API.

Every resource is priced in three scenarios:

- ``idle``: deployed and running all month with no traffic (the usage defaults);
- ``usage``: the usage file's profile (``dbenv-usage.yml``), idle where it says nothing;
- ``asleep``: after ``dbenv sleep``: stoppable instances and clusters stopped, the rest as idle.

A resource whose type, class or region the table does not know is reported under
``not_priced``: never silently zero. Types that carry no charge of their own (IAM,
security groups, subnets, aliases, ...) are listed in ``FREE_TYPES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from automation.planning.plan import Plan, PlannedResource

PRICES_FILE = Path(__file__).with_name("prices.json")
USAGE_FILE = "dbenv-usage.yml"
SCENARIOS = ("idle", "usage", "asleep")
UNKNOWN = "[unknown]"

# Types that AWS does not bill for themselves (their cost, if any, is on the resource they serve).
FREE_TYPES = frozenset({
    "pulumi:providers:aws", "random:index/randomPassword:RandomPassword",
    "aws:iam/role:Role", "aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/routeTable:RouteTable", "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/internetGateway:InternetGateway", "aws:ec2/eip:Eip",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:kms/alias:Alias", "aws:secretsmanager/secretVersion:SecretVersion",
    "aws:secretsmanager/secretRotation:SecretRotation", "aws:lambda/permission:Permission",
    "aws:appautoscaling/target:Target", "aws:rds/subnetGroup:SubnetGroup",
    "aws:rds/parameterGroup:ParameterGroup", "aws:rds/clusterParameterGroup:ClusterParameterGroup",
    "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup", "aws:rds/proxyTarget:ProxyTarget",
    "aws:dms/endpoint:Endpoint", "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup",
    "aws:dms/replicationTask:ReplicationTask",
    "time:index/sleep:Sleep",  # a wait inside the engine (IAM propagation): no AWS resource at all
})

# The top-level component of a recipe, by the middle part of its type token (db-recipes:<area>:<Name>).
RECIPE_AREAS = {
    "aurora": "aurora-serverless", "dataapi": "data-api", "iam": "iam-auth", "encryption": "encrypt-existing",
    "dms": "dms-migration", "dynamodb": "dynamodb-autoscaling", "proxy": "rds-proxy",
    "rotation": "secret-rotation", "network": "network",
}


class CostError(ValueError):
    """A price table or usage file that cannot be used: exit 2."""


# ------------------------------------------------------------------ the price table


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


@dataclass(frozen=True)
class PriceTable:
    currency: str
    as_of: str
    hours_per_month: float
    regions: Mapping[str, Mapping[str, Price]]
    rules: Mapping[str, Any]
    vcpus: Mapping[str, int]

    def price(self, region: str, key: str) -> Price | None:
        return self.regions.get(region, {}).get(key)

    def rule(self, name: str) -> Any:
        return self.rules[name]


def load_prices(path: Path | None = None) -> PriceTable:
    path = path or PRICES_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        regions = {region: {key: Price(float(e["usd"]), str(e["unit"]), str(e["source"])) for key, e in entries.items()}
                   for region, entries in doc["regions"].items()}
        return PriceTable(currency=doc["currency"], as_of=doc["prices_as_of"],
                          hours_per_month=float(doc["hours_per_month"]), regions=regions,
                          rules={k: v["value"] for k, v in doc["rules"].items()},
                          vcpus=dict(doc["instance_vcpus"]["value"]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CostError(f"price table {path} cannot be used: {err}") from None


# ------------------------------------------------------------------ the usage file

# key -> (default, meaning). The defaults describe an idle month: everything deployed and
# running, no traffic. Any key may also be set per resource under `resources: {<logical name>: {...}}`.
USAGE_KEYS: dict[str, tuple[float, str]] = {
    "hours_awake": (730, "hours a month the branch's RDS instances and clusters run (not asleep)"),
    "aurora_active_hours": (0, "hours a month an Aurora Serverless v2 instance is not paused"),
    "aurora_average_acu": (0.5, "average ACUs while active"),
    "aurora_storage_gb": (1, "GB an Aurora cluster stores"),
    "aurora_io_millions": (0, "million I/O requests a month (Aurora Standard)"),
    "backup_gb": (0, "GB of backups beyond the free allowance"),
    "proxy_average_acu": (0, "average ACUs of a Serverless target while a proxy serves it (min 8 billed)"),
    "dms_serverless_hours": (0, "hours a month a DMS Serverless replication runs or stays provisioned"),
    "dms_serverless_average_dcu": (1, "average DCUs while it runs"),
    "kms_requests": (0, "KMS API requests a month"),
    "secrets_api_calls": (0, "Secrets Manager API calls a month"),
    "endpoint_gb": (0, "GB through a VPC interface endpoint a month"),
    "nat_gb": (0, "GB through a NAT gateway a month"),
    "dynamodb_average_rcu": (0, "average provisioned read capacity (at least the autoscaling minimum)"),
    "dynamodb_average_wcu": (0, "average provisioned write capacity (at least the autoscaling minimum)"),
    "dynamodb_read_request_millions": (0, "million read request units a month (on-demand tables)"),
    "dynamodb_write_request_millions": (0, "million write request units a month (on-demand tables)"),
    "dynamodb_storage_gb": (0, "GB a table stores"),
    "lambda_requests": (0, "invocations a month"),
    "lambda_duration_ms": (0, "average duration of an invocation in milliseconds"),
    "log_ingested_gb": (0, "GB of logs a resource sends to CloudWatch Logs a month"),
    "log_stored_gb": (0, "GB of logs kept in CloudWatch Logs"),
}


@dataclass(frozen=True)
class Usage:
    """Usage figures: the file's top-level values, per-resource overrides, defaults for the rest."""

    values: Mapping[str, float] = field(default_factory=dict)
    resources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = "defaults (an idle month)"

    def get(self, resource: str, key: str) -> float:
        if key in self.resources.get(resource, {}):
            return self.resources[resource][key]
        return self.values.get(key, USAGE_KEYS[key][0])

    def given(self, resource: str, key: str) -> bool:
        return key in self.resources.get(resource, {}) or key in self.values


def parse_usage(document: Any, label: str) -> Usage:
    if document is None:
        return Usage(source=label)
    if not isinstance(document, dict):
        raise CostError(f"{label}: expected a mapping of usage keys")
    allowed = ", ".join(USAGE_KEYS)

    def numbers(mapping: Mapping[str, Any], where: str) -> dict[str, float]:
        out = {}
        for key, value in mapping.items():
            if key not in USAGE_KEYS:
                raise CostError(f"{where}: unknown key {key!r} (valid keys: {allowed})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise CostError(f"{where}: {key} must be a number >= 0, got {value!r}")
            if key == "hours_awake" and value > 744:
                raise CostError(f"{where}: hours_awake is at most 744 (a 31-day month), got {value}")
            out[key] = float(value)
        return out

    top = {k: v for k, v in document.items() if k != "resources"}
    per_resource = document.get("resources") or {}
    if not isinstance(per_resource, dict) or not all(isinstance(v, dict) for v in per_resource.values()):
        raise CostError(f"{label}: resources: expected a mapping of logical resource names to usage keys")
    return Usage(values=numbers(top, label),
                 resources={str(name): numbers(values, f"{label}: resources.{name}")
                            for name, values in per_resource.items()},
                 source=label)


def project_usage(project_dir: Path, path: Path | None = None) -> Usage:
    """The usage file given, else the project's dbenv-usage.yml if there is one, else no usage."""
    if path is None:
        default = project_dir / USAGE_FILE
        if not default.is_file():
            return Usage()
        path = default
    return read_usage(path)


def read_usage(path: Path) -> Usage:
    from automation import inputs

    try:
        document = inputs.read_yaml(path, "usage file")
    except inputs.InputError as err:
        raise CostError(str(err)) from None
    return parse_usage(document, str(path))


# ------------------------------------------------------------------ results


@dataclass
class Component:
    name: str
    unit: str
    quantity: dict[str, float]
    price: Price | None

    def monthly(self, scenario: str) -> float:
        return 0.0 if self.price is None else self.quantity[scenario] * self.price.usd

    @property
    def missing(self) -> bool:
        return self.price is None and any(q > 0 for q in self.quantity.values())

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit,
                "quantity": {s: _round(self.quantity[s], 4) for s in ("idle", "usage")},
                "unit_price": self.price.usd if self.price else None,
                "monthly": {s: _round(self.monthly(s)) for s in ("idle", "usage")}}


@dataclass
class ResourceCost:
    resource: PlannedResource
    recipe: str
    components: list[Component]

    def monthly(self, scenario: str) -> float:
        return sum(c.monthly(scenario) for c in self.components)

    def to_json(self) -> dict[str, Any]:
        return {"urn": self.resource.urn, "type": self.resource.type,
                "monthly": {s: _round(self.monthly(s)) for s in ("idle", "usage")},
                "components": [c.to_json() for c in self.components]}


@dataclass
class Estimate:
    region: str
    prices_as_of: str
    currency: str
    resources: list[ResourceCost]
    not_priced: list[dict[str, str]]
    usage_source: str

    def total(self, scenario: str) -> float:
        return sum(r.monthly(scenario) for r in self.resources)

    def recipes(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for res in self.resources:
            bucket = out.setdefault(res.recipe, {s: 0.0 for s in SCENARIOS})
            for s in SCENARIOS:
                bucket[s] += res.monthly(s)
        return dict(sorted(out.items()))

    def drivers(self, scenario: str = "idle", limit: int = 5) -> list[tuple[str, str, float]]:
        """The biggest (resource name, component, monthly) lines."""
        lines = [(r.resource.name, c.name, c.monthly(scenario)) for r in self.resources for c in r.components]
        return sorted((line for line in lines if line[2] > 0), key=lambda line: -line[2])[:limit]

    def still_costing(self) -> list[tuple[str, str, float]]:
        """What keeps costing while asleep, biggest first."""
        return self.drivers("asleep", limit=1000)

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency, "region": self.region, "prices_as_of": self.prices_as_of,
            "resources": [r.to_json() for r in self.resources],
            "recipes": {name: {s: _round(v[s]) for s in ("idle", "usage")} for name, v in self.recipes().items()},
            "total": {s: _round(self.total(s)) for s in ("idle", "usage")},
            "not_priced": self.not_priced,
        }


def _round(value: float, digits: int = 2) -> float:
    return round(value + 0.0, digits)


# ------------------------------------------------------------------ pricing a plan


class _Context:
    """What pricing one resource may need to know about the rest of the plan."""

    def __init__(self, plan: Plan, table: PriceTable, usage: Usage) -> None:
        self.plan, self.table, self.usage, self.region = plan, table, usage, plan.region
        self.hours = table.hours_per_month
        self.by_urn = {r.urn: r for r in plan.resources}
        self.instances = {str(r.inputs.get("identifier")): r for r in plan.of_type("aws:rds/instance:Instance")}
        self.clusters = {str(r.inputs.get("clusterIdentifier")): r for r in plan.of_type("aws:rds/cluster:Cluster")}
        self.replica_sources = {str(r.inputs.get("replicateSourceDb")) for r in self.instances.values()
                                if r.inputs.get("replicateSourceDb")}
        self.proxy_targets = [r.inputs for r in plan.of_type("aws:rds/proxyTarget:ProxyTarget")]
        self.missing: list[tuple[PlannedResource, str]] = []

    def price(self, key: str) -> Price | None:
        return self.table.price(self.region, key)

    def component(self, name: str, unit: str, key: str, idle: float, usage: float | None = None,
                  asleep: float | None = None) -> Component:
        return Component(name, unit, {"idle": idle, "usage": idle if usage is None else usage,
                                      "asleep": idle if asleep is None else asleep}, self.price(key))

    def awake_hours(self, resource: PlannedResource) -> float:
        return min(self.usage.get(resource.name, "hours_awake"), self.hours)

    def stoppable(self, instance: PlannedResource) -> bool:
        """RDS cannot stop a read replica or an instance that has one."""
        ident = str(instance.inputs.get("identifier"))
        return not instance.inputs.get("replicateSourceDb") and ident not in self.replica_sources

    def instance_inputs(self, instance: PlannedResource, key: str) -> Any:
        """An input of an instance, followed to its replication or snapshot source when it inherits it."""
        seen = 0
        current: PlannedResource | None = instance
        while current is not None and seen < 5:
            value = current.inputs.get(key)
            if value not in (None, "", UNKNOWN):
                return value
            current = self._source_of(current)
            seen += 1
        return None

    def _source_of(self, instance: PlannedResource) -> PlannedResource | None:
        source = instance.inputs.get("replicateSourceDb")
        if source:
            return self.instances.get(str(source).rsplit(":", 1)[-1])
        snapshot = instance.inputs.get("snapshotIdentifier")
        for _ in range(3):
            if not snapshot:
                return None
            copy = next((r for r in self.plan.resources if r.inputs.get("targetDbSnapshotIdentifier") == snapshot), None)
            if copy is not None:
                snapshot = str(copy.inputs.get("sourceDbSnapshotIdentifier", "")).rsplit(":", 1)[-1]
                continue
            taken = next((r for r in self.plan.of_type("aws:rds/snapshot:Snapshot")
                          if r.inputs.get("dbSnapshotIdentifier") == snapshot), None)
            return self.instances.get(str(taken.inputs.get("dbInstanceIdentifier"))) if taken else None
        return None


Pricer = Callable[[_Context, PlannedResource], list[Component]]


def _engine_key(engine: str) -> str:
    return {"postgresql": "postgres"}.get(engine, engine)


def _extended_support(ctx: _Context, res: PlannedResource, engine: str, vcpus: int | None,
                      hours: dict[str, float]) -> list[Component]:
    """RDS Extended Support: per vCPU-hour while the instance runs, once its major is past standard support."""
    version = str(ctx.instance_inputs(res, "engineVersion") or "")
    if not version:
        return []
    parts = version.split(".")
    major = ".".join(parts[:2]) if engine in ("mysql", "mariadb") else parts[0]
    start = ctx.table.rule("extended_support_from").get(f"{engine}:{major}")
    if start is None or date.fromisoformat(start) > date.fromisoformat(ctx.table.as_of):
        return []
    key = f"rds.extended-support.{engine}.{major}"
    if vcpus is None:
        ctx.missing.append((res, f"vCPUs of {res.inputs.get('instanceClass')} (for Extended Support) not in the table"))
        return []
    return [ctx.component(f"Extended Support ({engine} {major}, {vcpus} vCPU)", "vCPU-hours", key,
                          vcpus * hours["idle"], vcpus * hours["usage"], vcpus * hours["asleep"])]


def _price_instance(ctx: _Context, res: PlannedResource) -> list[Component]:
    inputs = res.inputs
    engine = _engine_key(str(ctx.instance_inputs(res, "engine") or ""))
    cls = str(inputs.get("instanceClass"))
    multi = bool(inputs.get("multiAz"))
    factor = ctx.table.rule("multi_az_factor") if multi else 1
    awake = ctx.awake_hours(res)
    hours = {"idle": ctx.hours, "usage": awake, "asleep": 0.0 if ctx.stoppable(res) else ctx.hours}
    deployment = "Multi-AZ" if multi else "Single-AZ"
    key = f"rds.instance.{engine}.{cls}"
    out = [ctx.component(f"instance ({engine} {cls}, {deployment})", "hours", key,
                         hours["idle"] * factor, hours["usage"] * factor, hours["asleep"] * factor)]
    if ctx.price(key) is None:
        ctx.missing.append((res, f"instance class {cls} ({engine}) has no price for {ctx.region}"))
    storage_type = str(ctx.instance_inputs(res, "storageType") or "gp2")
    gigabytes = float(ctx.instance_inputs(res, "allocatedStorage") or 0)
    skey = f"rds.storage.{storage_type}"
    out.append(ctx.component(f"storage ({storage_type}, {gigabytes:g} GB)", "GB-months", skey, gigabytes * factor))
    iops = float(inputs.get("iops") or 0)
    if storage_type in ("io1", "io2") and iops:
        out.append(ctx.component(f"provisioned IOPS ({storage_type})", "IOPS-months", f"{skey}.iops", iops * factor))
    elif storage_type == "gp3" and iops:
        # gp3 includes 3,000 IOPS below 400 GB (12,000 from 400 GB, for MySQL/PostgreSQL/MariaDB).
        baseline = 12000 if gigabytes >= 400 else 3000
        extra = max(0.0, iops - baseline)
        out.append(ctx.component("gp3 IOPS above baseline", "IOPS-months", "rds.storage.gp3.iops", extra * factor))
    out += _backup(ctx, res, "rds.backup")
    out += _extended_support(ctx, res, engine, ctx.table.vcpus.get(cls), {k: v * factor for k, v in hours.items()})
    out += _logs(ctx, res)
    return out


def _backup(ctx: _Context, res: PlannedResource, key: str) -> list[Component]:
    gigabytes = ctx.usage.get(res.name, "backup_gb")
    return [ctx.component("backup storage beyond the free allowance", "GB-months", key, 0.0, gigabytes, 0.0)]


def _logs(ctx: _Context, res: PlannedResource) -> list[Component]:
    ingested, stored = ctx.usage.get(res.name, "log_ingested_gb"), ctx.usage.get(res.name, "log_stored_gb")
    return [ctx.component("log ingestion (CloudWatch Logs)", "GB", "logs.ingestion", 0.0, ingested, 0.0),
            ctx.component("log storage (CloudWatch Logs)", "GB-months", "logs.storage", 0.0, stored, stored)]


def _managed_secret(ctx: _Context, res: PlannedResource) -> list[Component]:
    if not res.inputs.get("manageMasterUserPassword"):
        return []
    return [ctx.component("RDS-managed master secret (Secrets Manager)", "secret-months", "secretsmanager.secret", 1.0)]


def _price_rds_instance(ctx: _Context, res: PlannedResource) -> list[Component]:
    return _price_instance(ctx, res) + _managed_secret(ctx, res)


def _cluster_of(ctx: _Context, res: PlannedResource) -> PlannedResource | None:
    return ctx.clusters.get(str(res.inputs.get("clusterIdentifier")))


def _io_optimized(cluster: PlannedResource | None) -> bool:
    return cluster is not None and cluster.inputs.get("storageType") == "aurora-iopt1"


def _aurora_pausable(ctx: _Context, cluster: PlannedResource) -> bool:
    """Scale to zero needs min 0, no RDS Proxy and no provisioned instance in the cluster (AWS-NOTES 4.1)."""
    ident = str(cluster.inputs.get("clusterIdentifier"))
    scaling = cluster.inputs.get("serverlessv2ScalingConfiguration") or {}
    if float(scaling.get("minCapacity", 0.5) or 0) > 0:
        return False
    if any(t.get("dbClusterIdentifier") == ident for t in ctx.proxy_targets):
        return False
    members = [r for r in ctx.plan.of_type("aws:rds/clusterInstance:ClusterInstance")
               if r.inputs.get("clusterIdentifier") == ident]
    return all(m.inputs.get("instanceClass") == "db.serverless" for m in members)


def _serverless_floor(ctx: _Context, cluster: PlannedResource) -> float:
    """ACUs an instance holds with no traffic: 0 when it pauses, else its minimum (0.5 at least)."""
    if _aurora_pausable(ctx, cluster):
        return 0.0
    scaling = cluster.inputs.get("serverlessv2ScalingConfiguration") or {}
    return max(float(scaling.get("minCapacity", 0.5) or 0), ctx.table.rule("aurora_min_awake_acu"))


def _price_cluster_instance(ctx: _Context, res: PlannedResource) -> list[Component]:
    cluster = _cluster_of(ctx, res)
    cls = str(res.inputs.get("instanceClass"))
    if cls != "db.serverless":
        engine = str(res.inputs.get("engine"))
        key = f"aurora.instance.{engine}.{cls}"
        if ctx.price(key) is None:
            ctx.missing.append((res, f"Aurora instance class {cls} ({engine}) has no price for {ctx.region}"))
        return [ctx.component(f"instance ({engine} {cls})", "hours", key, ctx.hours, ctx.awake_hours(res), 0.0)]
    if cluster is None:
        ctx.missing.append((res, "its cluster is not in the plan, so its scaling range is unknown"))
        return []
    floor = _serverless_floor(ctx, cluster)
    active = min(ctx.usage.get(res.name, "aurora_active_hours"), ctx.awake_hours(res))
    average = max(ctx.usage.get(res.name, "aurora_average_acu"), floor)
    idle_hours = ctx.awake_hours(res) - active
    usage = average * active + floor * idle_hours
    key = "aurora.acu.io-optimized" if _io_optimized(cluster) else "aurora.acu"
    label = "Serverless v2 capacity" + (" (pauses at 0 ACU when idle)" if floor == 0 else f" (min {floor:g} ACU, cannot pause)")
    return [ctx.component(label, "ACU-hours", key, floor * ctx.hours, usage, 0.0)]


def _copy_on_write(res: PlannedResource) -> bool:
    restore = res.inputs.get("restoreToPointInTime")
    return isinstance(restore, Mapping) and restore.get("restoreType") == "copy-on-write"


def _price_cluster(ctx: _Context, res: PlannedResource) -> list[Component]:
    optimized = _io_optimized(res)
    storage = ctx.usage.get(res.name, "aurora_storage_gb")
    key = "aurora.storage.io-optimized" if optimized else "aurora.storage"
    label = "Aurora storage" + (" (I/O-Optimized)" if optimized else "")
    if _copy_on_write(res):
        # A clone's pages are the source's until either side writes them; the source's account pays
        # for the shared pages (Aurora User Guide, "How Aurora cloning works"). Idle, a fresh clone
        # adds none; in use, aurora_storage_gb is what the clone writes.
        out = [ctx.component(f"{label}, copy-on-write clone (shared with the source until written)", "GB-months",
                             key, 0.0, storage, 0.0)]
    else:
        out = [ctx.component(label, "GB-months", key, storage)]
    if not optimized:
        io = ctx.usage.get(res.name, "aurora_io_millions")
        out.append(ctx.component("Aurora I/O requests", "million requests", "aurora.io", 0.0, io, 0.0))
    out += _backup(ctx, res, "aurora.backup")
    out += _managed_secret(ctx, res)
    if res.inputs.get("enabledCloudwatchLogsExports"):
        out += _logs(ctx, res)
    return out


def _price_proxy(ctx: _Context, res: PlannedResource) -> list[Component]:
    name = res.inputs.get("name")
    targets = [t for t in ctx.proxy_targets if t.get("dbProxyName") == name]
    if not targets:
        min_vcpus = ctx.table.rule("rds_proxy_min_vcpus")
        return [ctx.component(f"proxy (no target in the plan: {min_vcpus} vCPU minimum)", "vCPU-hours",
                              "rds-proxy.vcpu", min_vcpus * ctx.hours)]
    return [part for target in targets for part in _proxy_target(ctx, res, target)]


def _proxy_target(ctx: _Context, res: PlannedResource, target: Mapping[str, Any]) -> list[Component]:
    cluster = ctx.clusters.get(str(target.get("dbClusterIdentifier")))
    if cluster is not None and cluster.inputs.get("serverlessv2ScalingConfiguration"):
        minimum = ctx.table.rule("rds_proxy_min_acus")
        used = max(ctx.usage.get(res.name, "proxy_average_acu"), minimum)
        return [ctx.component(f"proxy on Aurora Serverless v2 ({minimum} ACU minimum)", "ACU-hours", "rds-proxy.acu",
                              minimum * ctx.hours, used * ctx.hours)]
    minimum = ctx.table.rule("rds_proxy_min_vcpus")
    if cluster is not None:
        members = [r for r in ctx.plan.of_type("aws:rds/clusterInstance:ClusterInstance")
                   if r.inputs.get("clusterIdentifier") == cluster.inputs.get("clusterIdentifier")]
        classes = [str(m.inputs.get("instanceClass")) for m in members]
    else:
        instance = ctx.instances.get(str(target.get("dbInstanceIdentifier")))
        classes = [str(instance.inputs.get("instanceClass"))] if instance is not None else []
        if instance is None:
            # An existing target outside the stack: its class (or Serverless capacity) is not in the plan.
            outside = target.get("dbClusterIdentifier") or target.get("dbInstanceIdentifier")
            ctx.missing.append((res, f"its target {outside} is outside the plan: priced at the {minimum} vCPU "
                                     "minimum; a larger instance, or an Aurora Serverless v2 cluster "
                                     f"({ctx.table.rule('rds_proxy_min_acus')} ACU minimum), costs more"))
    known = [ctx.table.vcpus[c] for c in classes if c in ctx.table.vcpus]
    if len(known) != len(classes):
        ctx.missing.append((res, f"vCPUs of {', '.join(classes)} are not in the table"))
    vcpus = max(sum(known), minimum)
    return [ctx.component(f"proxy ({vcpus} vCPU of {', '.join(classes) or 'an instance outside the plan'}; "
                          f"{minimum} minimum)", "vCPU-hours", "rds-proxy.vcpu", vcpus * ctx.hours)]


def _price_dms_instance(ctx: _Context, res: PlannedResource) -> list[Component]:
    cls = str(res.inputs.get("replicationInstanceClass"))
    multi = bool(res.inputs.get("multiAz"))
    factor = ctx.table.rule("multi_az_factor") if multi else 1
    key = f"dms.instance.{cls}"
    if ctx.price(key) is None:
        ctx.missing.append((res, f"replication instance class {cls} has no price for {ctx.region}"))
    included_by_family = ctx.table.rule("dms_included_storage_gb")
    family = ".".join(cls.split(".")[:2])
    included = included_by_family.get(family, included_by_family["default"])
    storage = float(res.inputs.get("allocatedStorage") or 50)
    extra = max(0.0, storage - included)
    deployment = "Multi-AZ" if multi else "Single-AZ"
    # A replication instance cannot be stopped: it bills asleep too.
    return [ctx.component(f"replication instance ({cls}, {deployment})", "hours", key, ctx.hours * factor),
            ctx.component(f"storage beyond the {included} GB included", "GB-months", "dms.storage", extra * factor)]


def _price_dms_serverless(ctx: _Context, res: PlannedResource) -> list[Component]:
    """DMS Serverless bills DCU-hours only while a replication runs (and while a stopped one stays provisioned).

    A continuous (cdc) replication that is started runs all month at its minimum DCUs.
    """
    compute = res.inputs.get("computeConfig") or {}
    minimum = float(compute.get("minCapacityUnits") or 1)
    factor = ctx.table.rule("multi_az_factor") if compute.get("multiAz") else 1
    continuous = "cdc" in str(res.inputs.get("replicationType", "")) and bool(res.inputs.get("startReplication"))
    idle = minimum * ctx.hours if continuous else 0.0
    hours = ctx.usage.get(res.name, "dms_serverless_hours")
    average = max(ctx.usage.get(res.name, "dms_serverless_average_dcu"), minimum)
    usage = max(idle, average * hours)
    part = ctx.component("DMS Serverless capacity" + (" (continuous replication)" if continuous else ""),
                         "DCU-hours", "dms.serverless.dcu", idle * factor, usage * factor)
    if part.missing:
        ctx.missing.append((res, f"no DMS Serverless DCU-hour price for {ctx.region} in the table"))
    return [part]


def _price_kms_key(ctx: _Context, res: PlannedResource) -> list[Component]:
    requests = ctx.usage.get(res.name, "kms_requests") / 10000
    return [ctx.component("customer-managed key", "key-months", "kms.key", 1.0),
            ctx.component("requests", "10K requests", "kms.requests", 0.0, requests, 0.0)]


def _price_secret(ctx: _Context, res: PlannedResource) -> list[Component]:
    calls = ctx.usage.get(res.name, "secrets_api_calls") / 10000
    return [ctx.component("secret", "secret-months", "secretsmanager.secret", 1.0),
            ctx.component("API calls", "10K calls", "secretsmanager.api", 0.0, calls, 0.0)]


def _price_endpoint(ctx: _Context, res: PlannedResource) -> list[Component]:
    if str(res.inputs.get("vpcEndpointType", "Gateway")) != "Interface":
        return []  # gateway endpoints carry no charge
    zones = max(1, len(res.inputs.get("subnetIds") or []))
    gigabytes = ctx.usage.get(res.name, "endpoint_gb")
    return [ctx.component(f"interface endpoint ({zones} AZ)", "AZ-hours", "vpc.interface-endpoint", zones * ctx.hours),
            ctx.component("data processed", "GB", "vpc.interface-endpoint.data", 0.0, gigabytes, 0.0)]


def _price_nat(ctx: _Context, res: PlannedResource) -> list[Component]:
    gigabytes = ctx.usage.get(res.name, "nat_gb")
    return [ctx.component("NAT gateway", "hours", "vpc.nat-gateway", ctx.hours),
            ctx.component("data processed", "GB", "vpc.nat-gateway.data", 0.0, gigabytes, 0.0)]


def _scaling_minimum(ctx: _Context, resource_id: str, dimension: str) -> float | None:
    for target in ctx.plan.of_type("aws:appautoscaling/target:Target"):
        if target.inputs.get("resourceId") == resource_id and target.inputs.get("scalableDimension") == dimension:
            return float(target.inputs.get("minCapacity") or 0)
    return None


def _price_table(ctx: _Context, res: PlannedResource) -> list[Component]:
    inputs = res.inputs
    name = str(inputs.get("name"))
    storage = ctx.usage.get(res.name, "dynamodb_storage_gb")
    out: list[Component] = []
    if str(inputs.get("billingMode", "PROVISIONED")) == "PAY_PER_REQUEST":
        reads = ctx.usage.get(res.name, "dynamodb_read_request_millions")
        writes = ctx.usage.get(res.name, "dynamodb_write_request_millions")
        out += [ctx.component("read request units (on-demand)", "million RRU", "dynamodb.rru", 0.0, reads, 0.0),
                ctx.component("write request units (on-demand)", "million WRU", "dynamodb.wru", 0.0, writes, 0.0)]
    else:
        parts = [("table", f"table/{name}", "table", inputs)]
        parts += [(f"index {g.get('name')}", f"table/{name}/index/{g.get('name')}", "index", g)
                  for g in inputs.get("globalSecondaryIndexes") or []]
        for label, resource_id, kind, spec in parts:
            for unit, field_name, key, usage_key in (("RCU", "readCapacity", "dynamodb.rcu", "dynamodb_average_rcu"),
                                                     ("WCU", "writeCapacity", "dynamodb.wcu", "dynamodb_average_wcu")):
                dimension = f"dynamodb:{kind}:{'Read' if unit == 'RCU' else 'Write'}CapacityUnits"
                minimum = _scaling_minimum(ctx, resource_id, dimension)
                capacity = minimum if minimum is not None else float(spec.get(field_name) or 0)
                used = max(ctx.usage.get(res.name, usage_key), capacity)
                note = " (autoscaling minimum)" if minimum is not None else ""
                out.append(ctx.component(f"{label} provisioned {unit}{note}", f"{unit}-hours", key,
                                         capacity * ctx.hours, used * ctx.hours))
    out.append(ctx.component("storage", "GB-months", "dynamodb.storage", 0.0, storage, 0.0))
    if (inputs.get("pointInTimeRecovery") or {}).get("enabled"):
        out.append(ctx.component("point-in-time recovery", "GB-months", "dynamodb.pitr", 0.0, storage, 0.0))
    return out


def _price_scaling_policy(ctx: _Context, res: PlannedResource) -> list[Component]:
    if res.inputs.get("policyType") != "TargetTrackingScaling":
        return []
    alarms = ctx.table.rule("alarms_per_target_tracking_policy")
    return [ctx.component(f"CloudWatch alarms made by target tracking ({alarms})", "alarm-months",
                          "cloudwatch.alarm", float(alarms))]


def _price_lambda(ctx: _Context, res: PlannedResource) -> list[Component]:
    requests = ctx.usage.get(res.name, "lambda_requests")
    seconds = requests * ctx.usage.get(res.name, "lambda_duration_ms") / 1000
    memory_gb = float(res.inputs.get("memorySize") or 128) / 1024
    arch = (res.inputs.get("architectures") or ["x86_64"])[0]
    return [ctx.component("requests", "million requests", "lambda.requests", 0.0, requests / 1e6, 0.0),
            ctx.component(f"duration ({arch}, {memory_gb * 1024:g} MB)", "GB-seconds", f"lambda.duration.{arch}",
                          0.0, seconds * memory_gb, 0.0)] + _logs(ctx, res)


def _price_log_group(ctx: _Context, res: PlannedResource) -> list[Component]:
    return _logs(ctx, res)


def _price_snapshot(ctx: _Context, res: PlannedResource) -> list[Component]:
    """A manual snapshot counts as backup storage, billed beyond the free allowance (the stack's provisioned storage)."""
    size = _snapshot_size(ctx, res)
    allowance = sum(float(r.inputs.get("allocatedStorage") or 0) for r in ctx.instances.values())
    earlier = [r for r in ctx.plan.resources if r.type in _SNAPSHOT_TYPES and r.urn < res.urn]
    used = sum(_snapshot_size(ctx, r) for r in earlier)
    billed = max(0.0, size - max(0.0, allowance - used))
    return [ctx.component(f"snapshot ({size:g} GB; beyond the free allowance: {billed:g} GB)", "GB-months",
                          "rds.backup", billed)]


_SNAPSHOT_TYPES = ("aws:rds/snapshot:Snapshot", "aws:rds/snapshotCopy:SnapshotCopy")


def _snapshot_size(ctx: _Context, res: PlannedResource) -> float:
    ident = res.inputs.get("dbInstanceIdentifier")
    if ident is None:
        source = str(res.inputs.get("sourceDbSnapshotIdentifier", "")).rsplit(":", 1)[-1]
        taken = next((r for r in ctx.plan.of_type("aws:rds/snapshot:Snapshot")
                      if r.inputs.get("dbSnapshotIdentifier") == source), None)
        ident = taken.inputs.get("dbInstanceIdentifier") if taken else None
    instance = ctx.instances.get(str(ident))
    return float(ctx.instance_inputs(instance, "allocatedStorage") or 0) if instance else 0.0


PRICERS: dict[str, Pricer] = {
    "aws:rds/instance:Instance": _price_rds_instance,
    "aws:rds/cluster:Cluster": _price_cluster,
    "aws:rds/clusterInstance:ClusterInstance": _price_cluster_instance,
    "aws:rds/proxy:Proxy": _price_proxy,
    "aws:rds/snapshot:Snapshot": _price_snapshot,
    "aws:rds/snapshotCopy:SnapshotCopy": _price_snapshot,
    "aws:dms/replicationInstance:ReplicationInstance": _price_dms_instance,
    "aws:dms/replicationConfig:ReplicationConfig": _price_dms_serverless,
    "aws:kms/key:Key": _price_kms_key,
    "aws:secretsmanager/secret:Secret": _price_secret,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _price_endpoint,
    "aws:ec2/natGateway:NatGateway": _price_nat,
    "aws:dynamodb/table:Table": _price_table,
    "aws:appautoscaling/policy:Policy": _price_scaling_policy,
    "aws:lambda/function:Function": _price_lambda,
    "aws:cloudwatch/logGroup:LogGroup": _price_log_group,
}


def recipe_of(plan: Plan, resource: PlannedResource, by_urn: Mapping[str, PlannedResource]) -> str:
    """The recipe a resource belongs to: its top-level component's area, else 'stack'."""
    top: PlannedResource | None = None
    current: PlannedResource | None = resource
    while current is not None:
        top = current
        current = by_urn.get(current.parent) if current.parent else None
    if top is None or (top is resource and resource.custom):
        return "stack"
    parts = top.type.split(":")
    return RECIPE_AREAS.get(parts[1], top.name) if len(parts) == 3 and parts[0] == "db-recipes" else top.name


def estimate(plan: Plan, table: PriceTable | None = None, usage: Usage | None = None) -> Estimate:
    """Price every resource of ``plan``."""
    table = table or load_prices()
    usage = usage or Usage()
    ctx = _Context(plan, table, usage)
    priced: list[ResourceCost] = []
    not_priced: list[dict[str, str]] = []
    region_known = plan.region in table.regions
    for res in plan.resources:
        if not res.custom or res.type in FREE_TYPES:
            continue
        pricer = PRICERS.get(res.type)
        if pricer is None:
            not_priced.append({"urn": res.urn, "type": res.type, "reason": "resource type not in the price table"})
            continue
        if not region_known:
            not_priced.append({"urn": res.urn, "type": res.type, "reason": f"region {plan.region} not in the price table"})
            continue
        before = len(ctx.missing)
        components = pricer(ctx, res)
        for _, reason in ctx.missing[before:]:
            not_priced.append({"urn": res.urn, "type": res.type, "reason": reason})
        if components:
            priced.append(ResourceCost(res, recipe_of(plan, res, ctx.by_urn), components))
    return Estimate(region=plan.region, prices_as_of=table.as_of, currency=table.currency, resources=priced,
                    not_priced=not_priced, usage_source=usage.source)


def estimate_stack(config: Mapping[str, Any], stack: str, usage: Usage | None = None,
                   table: PriceTable | None = None) -> Estimate:
    """Plan ``config`` offline and price it. A network read from the shared stack is the shared
    stack's cost (paid once per account), so it is left out of a branch's figure."""
    from automation.planning import plan as planning

    config = dict(config)
    network_key = f"{planning.PROJECT}:network"
    network = config.get(network_key)
    network = json.loads(network) if isinstance(network, str) else network
    shared = isinstance(network, Mapping) and network.get("shared_stack")
    if shared:
        # The offline plan cannot read another stack: plan an own network, then drop it.
        config[network_key] = {k: v for k, v in network.items() if k != "shared_stack"}
    result = estimate(planning.build_plan(config, stack=stack), table, usage)
    if shared:
        result.resources = [r for r in result.resources if r.recipe != "network"]
        result.not_priced = [n for n in result.not_priced if "db-recipes:network:Network" not in n["urn"]]
    return result


# ------------------------------------------------------------------ rendering


def money(value: float) -> str:
    return f"${value:,.2f}"


def render(est: Estimate, *, top: int = 5) -> str:
    """Per recipe, the total and the biggest lines, as text."""
    lines = [f"monthly cost at {est.currency} list prices ({est.region}, prices as of {est.prices_as_of}; "
             f"usage: {est.usage_source})", f"  {'RECIPE':<22}{'IDLE':>12}{'USAGE':>12}{'ASLEEP':>12}"]
    for name, figures in est.recipes().items():
        lines.append(f"  {name:<22}{money(figures['idle']):>12}{money(figures['usage']):>12}{money(figures['asleep']):>12}")
    lines.append(f"  {'total':<22}{money(est.total('idle')):>12}{money(est.total('usage')):>12}"
                 f"{money(est.total('asleep')):>12}")
    drivers = est.drivers("idle", top)
    if drivers:
        lines.append("top cost drivers (idle):")
        lines += [f"  {money(value):>10}  {name}: {part}" for name, part, value in drivers]
    if est.not_priced:
        lines.append(f"not priced ({len(est.not_priced)}): " + "; ".join(
            f"{entry['urn'].rsplit('::', 1)[-1]} ({entry['reason']})" for entry in est.not_priced))
    return "\n".join(lines)


def resource_suffix(est: Estimate) -> Callable[[PlannedResource], str]:
    """For the plan tree: each priced resource's idle monthly figure."""
    by_urn = {r.resource.urn: r for r in est.resources}
    missing = {entry["urn"] for entry in est.not_priced}

    def suffix(res: PlannedResource) -> str:
        if res.urn in missing:
            return "  [not priced]"
        cost = by_urn.get(res.urn)
        return f"  {money(cost.monthly('idle'))}/mo" if cost is not None and cost.monthly("idle") else ""

    return suffix


def compare(current: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    """Markdown comparing two ``--json`` estimates (this branch against its base), for a job summary."""
    def total(doc: Mapping[str, Any], scenario: str) -> float:
        return float(doc.get("total", {}).get(scenario, 0.0))

    names = sorted(set(current.get("recipes", {})) | set(base.get("recipes", {})))
    rows = ["| recipe | base (idle) | this branch (idle) | difference |", "|---|---:|---:|---:|"]
    for name in names:
        before = float(base.get("recipes", {}).get(name, {}).get("idle", 0.0))
        after = float(current.get("recipes", {}).get(name, {}).get("idle", 0.0))
        rows.append(f"| {name} | {money(before)} | {money(after)} | {_signed(after - before)} |")
    rows.append(f"| **total** | **{money(total(base, 'idle'))}** | **{money(total(current, 'idle'))}** | "
                f"**{_signed(total(current, 'idle') - total(base, 'idle'))}** |")
    head = (f"### Estimated monthly cost ({current.get('region')}, list prices as of {current.get('prices_as_of')})\n\n"
            f"Idle: **{money(total(current, 'idle'))}**, with the usage profile: **{money(total(current, 'usage'))}**.\n")
    missing = list(current.get("not_priced", []))
    tail = f"\nNot priced: {', '.join(str(m.get('urn', '')).rsplit('::', 1)[-1] for m in missing)}\n" if missing else ""
    return head + "\n" + "\n".join(rows) + "\n" + tail


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + money(abs(value))


def usage_template() -> str:
    """A documented usage file with every key at its default (an idle month)."""
    lines = ["# dbenv-usage.yml: how much the stack is used in a month. Every key is optional; the defaults",
             "# describe an idle month (deployed, running, no traffic). Per-resource values go under",
             "# `resources:`, keyed by the logical resource name `dbenv plan` shows.", ""]
    for key, (default, meaning) in USAGE_KEYS.items():
        lines.append(f"# {meaning}")
        lines.append(f"{key}: {default:g}")
    lines += ["", "# resources:", "#   aurora-instance-0: {aurora_active_hours: 160, aurora_average_acu: 1.5}"]
    return "\n".join(lines) + "\n"
