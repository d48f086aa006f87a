"""Resource groups several recipes build the same way: a customer-managed key, an admin
password, an encrypted MySQL instance. One definition each, so a fix lands everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

if TYPE_CHECKING:
    from components.naming import Namer

MYSQL_ENGINE = "mysql"
MYSQL_PORT = 3306
LAMBDA_VPC_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
# RDS MySQL master passwords are at most 41 characters.
ADMIN_PASSWORD_LENGTH = 41


def customer_key(
    name: str,
    given_arn: str | None,
    *,
    alias: str,
    description: str,
    ephemeral: bool,
    opts: pulumi.ResourceOptions,
    stack_key: pulumi.Input[str] | None = None,
) -> pulumi.Output[str]:
    """The key ARN of ``given_arn`` (any checked key reference, resolved), else ``stack_key`` (the
    stack's one customer-managed key), else of a new rotating KMS key (``<name>-key``) with
    ``alias``. Never an alias: see ``key_arn``."""
    if given_arn:
        return key_arn(given_arn, parent=opts.parent)
    if stack_key is not None:
        return pulumi.Output.from_input(stack_key)
    key = aws.kms.Key(
        f"{name}-key",
        description=description,
        enable_key_rotation=True,
        # The shortest window KMS allows for a throw-away stack; the longest for a durable one.
        deletion_window_in_days=7 if ephemeral else 30,
        opts=opts,
    )
    aws.kms.Alias(f"{name}-key-alias", name=alias, target_key_id=key.key_id, opts=opts)
    return key.arn


@dataclass(frozen=True)
class DatabaseRef:
    """A database of the stack that a recipe attaches to (rotation, proxy, DMS target) instead of
    creating one of its own: what the recipe needs to reach it, log in to it and decrypt its secret."""

    engine: str                         # mysql | aurora-postgresql
    identifier: pulumi.Input[str]       # instance or cluster identifier
    arn: pulumi.Input[str]
    resource_id: pulumi.Input[str]      # DbiResourceId / cluster resource id (rds-db:connect ARNs)
    address: pulumi.Input[str]
    port: int
    database_name: str | None
    master_username: str
    # The admin secret: RDS-managed (username and password only) or the stack's own JSON secret
    # (engine, host, port, username, password, dbname), which DMS and the rotation function read.
    secret_arn: pulumi.Input[str]
    managed_secret: bool
    kms_key_arn: pulumi.Input[str]
    # The database's security group; it admits the app tier, so app-tier members reach it.
    security_group_id: pulumi.Input[str]
    cluster: bool = False
    # What must exist before the database is used (instances, the secret's first value).
    ready: tuple[pulumi.Resource, ...] = ()


# --------------------------------------------------------------------------- KMS key references

# A key reference is stored (kms_key_id, kms_key_arn ...) and AWS reads every form back as
# the key ARN: an alias or a bare key id would plan a replacement on the next `up`. So only
# key ARNs are used as given; key ids, alias names and alias ARNs are resolved to the key
# ARN with the kms.getKey data source ("key_id: Key identifier ... alias name ... alias
# ARN", pulumi registry aws.kms.getKey; terraform-provider-aws data_source_key).
KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_ALIAS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:alias/[A-Za-z0-9/_-]+$")
_KEY_ID = re.compile(r"^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_ALIAS_NAME = re.compile(r"^alias/[A-Za-z0-9/_-]+$")


def check_kms_key_ref(value: str | None, field: str = "kms_key_arn") -> None:
    """A key ARN, key id, alias name or alias ARN (the last three are resolved to the key ARN)."""
    if value is None:
        return
    if not any(p.match(value) for p in (KEY_ARN, _ALIAS_ARN, _KEY_ID, _ALIAS_NAME)):
        raise ValueError(
            f"{field}: {value!r} is not a KMS key reference: give a key ARN "
            "(arn:aws:kms:<region>:<account>:key/<id>), a key id, or an alias (alias/<name> or its ARN), "
            "which is resolved to its key ARN"
        )


def key_arn(value: str, *, parent: pulumi.Resource | None) -> pulumi.Output[str]:
    """The key ARN of a checked key reference: as given, or resolved through kms.getKey."""
    if KEY_ARN.match(value):
        return pulumi.Output.from_input(value)
    return aws.kms.get_key_output(key_id=value, opts=pulumi.InvokeOutputOptions(parent=parent)).arn


# --------------------------------------------------------------------------- existing databases, Lambda roles

# What rds-proxy and secret-rotation need to attach to an existing database outside the stack.
# Engines of an existing target -> the proxy's engine family (RDS CreateDBProxy EngineFamily).
TARGET_ENGINES = {"mysql": "MYSQL", "mariadb": "MYSQL", "aurora-mysql": "MYSQL",
                  "postgres": "POSTGRESQL", "aurora-postgresql": "POSTGRESQL"}
# The proxy listens on its family's port.
FAMILY_PORTS = {"MYSQL": MYSQL_PORT, "POSTGRESQL": 5432}
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,62}")
_SECURITY_GROUP = re.compile(r"sg-[0-9a-f]{8,17}")


def check_rds_identifier(field: str, value: str) -> None:
    if not _IDENTIFIER.fullmatch(value) or value.endswith("-") or "--" in value:
        raise ValueError(f"{field}: {value!r} is not an RDS identifier (1-63 letters, digits and single hyphens, "
                         "letter first)")


def check_security_group_ids(groups: tuple[str, ...], member: str, *, required: bool,
                             field: str = "security_group_ids") -> None:
    """Groups an existing database admits on its port, which ``member`` joins to reach it."""
    if required and not groups:
        raise ValueError(f"{field}: name at least one group the database admits on its port ({member} joins it)")
    for group in groups:
        if not _SECURITY_GROUP.fullmatch(group):
            raise ValueError(f"{field}: {group!r} is not a security group id (sg-...)")


def check_target_alone(database: str) -> None:
    """An existing ``target`` is the recipe's database: ``database`` keeps its default."""
    if database != "stack":
        raise ValueError(f"target: an existing database replaces database: {database}; remove one of them")


def assume_role_policy(service: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


def lambda_role(
    name: str, role_name: str, description: str, opts: pulumi.ResourceOptions
) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
    """A Lambda execution role with VPC networking and logs (the AWS managed policy) and nothing else.

    The attachment is returned too: a VPC function must not be created before its role may
    create network interfaces, or Lambda refuses it.
    """
    role = aws.iam.Role(
        name,
        name=role_name,
        description=description,
        assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
        opts=opts,
    )
    attachment = aws.iam.RolePolicyAttachment(
        f"{name}-vpc-access", role=role.name, policy_arn=LAMBDA_VPC_POLICY, opts=opts
    )
    return role, attachment


# --------------------------------------------------------------------------- engines

MYSQL_MAJORS = ("8.0", "8.4")
MYSQL_DEFAULT_VERSION = "8.4"
EXTENDED_SUPPORT = "open-source-rds-extended-support"
EXTENDED_SUPPORT_DISABLED = "open-source-rds-extended-support-disabled"
LIFECYCLES = (EXTENDED_SUPPORT, EXTENDED_SUPPORT_DISABLED)
# Majors past the end of RDS standard support (describe-db-major-engine-versions,
# SupportedEngineLifecycles). With extended-support-disabled, "creating the DB instance
# will fail if the DB major version is past its end of standard support date"
# (CreateDBInstance EngineLifecycleSupport, RDS API reference).
MYSQL_PAST_STANDARD_SUPPORT = {"8.0": "2026-07-31"}


def mysql_major(version: str, field: str = "engine_version") -> str:
    major = next((m for m in MYSQL_MAJORS if version == m or version.startswith(m + ".")), None)
    if major is None:
        raise ValueError(
            f"{field}: RDS MySQL {' or '.join(MYSQL_MAJORS)} (e.g. '8.4' or '8.4.5'), got {version!r}"
        )
    return major


def check_lifecycle(choice: str | None, major: str, past_standard: Mapping[str, str],
                    field: str = "engine_lifecycle_support") -> str:
    """The lifecycle to request: extended support disabled wherever the major allows it."""
    if choice is not None and choice not in LIFECYCLES:
        raise ValueError(f"{field}: {choice!r} is not allowed (allowed: {', '.join(LIFECYCLES)})")
    ended = past_standard.get(major)
    if ended and choice == EXTENDED_SUPPORT_DISABLED:
        raise ValueError(
            f"{field}: {major} left standard support on {ended}, so RDS refuses to create it with "
            f"{EXTENDED_SUPPORT_DISABLED}; choose a current major or {EXTENDED_SUPPORT} (billed per vCPU-hour)"
        )
    if choice is not None:
        return choice
    return EXTENDED_SUPPORT if ended else EXTENDED_SUPPORT_DISABLED


def mysql_family(major: str) -> str:
    return f"mysql{major}"


# --------------------------------------------------------------------------- shared database settings

_WINDOW = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):[0-5]\d-(mon|tue|wed|thu|fri|sat|sun):"
                     r"([01]\d|2[0-3]):[0-5]\d$")
_BACKUP_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)
# Performance Insights: 7 days are free; longer is 1..24 months (31-day steps) or 731.
PI_RETENTION = (7, *(31 * m for m in range(1, 24)), 731)
_PARAMETER = re.compile(r"^[A-Za-z0-9_.]{1,255}$")


@dataclass(frozen=True)
class ObservabilityArgs:
    """Performance Insights, enhanced monitoring and the backup/maintenance windows of a database."""

    # Encrypted with the stack's customer-managed key.
    performance_insights: bool = False
    performance_insights_retention_days: int = 7
    # Seconds between enhanced-monitoring samples; 0 turns it off (no role is created).
    monitoring_interval: int = 0
    # UTC "hh:mm-hh:mm"; None: RDS picks one.
    backup_window: str | None = None
    # UTC "ddd:hh:mm-ddd:hh:mm"; None: RDS picks one.
    maintenance_window: str | None = None

    def __post_init__(self) -> None:
        if self.performance_insights_retention_days not in PI_RETENTION:
            raise ValueError(
                "performance_insights_retention_days: 7, a multiple of 31 up to 713, or 731, "
                f"got {self.performance_insights_retention_days}"
            )
        if self.monitoring_interval not in MONITORING_INTERVALS:
            raise ValueError(f"monitoring_interval: one of {', '.join(map(str, MONITORING_INTERVALS))} seconds, "
                             f"got {self.monitoring_interval}")
        if self.backup_window is not None and not _BACKUP_WINDOW.match(self.backup_window):
            raise ValueError(f"backup_window: UTC 'hh:mm-hh:mm' like '03:00-04:00', got {self.backup_window!r}")
        if self.maintenance_window is not None and not _WINDOW.match(self.maintenance_window.lower()):
            raise ValueError(
                f"maintenance_window: UTC 'ddd:hh:mm-ddd:hh:mm' like 'sun:05:00-sun:06:00', got "
                f"{self.maintenance_window!r}"
            )


def check_parameters(parameters: Mapping[str, str], field: str = "parameters") -> None:
    for name, value in parameters.items():
        if not _PARAMETER.match(name):
            raise ValueError(f"{field}: {name!r} is not a parameter name (letters, digits, '_' and '.')")
        if not isinstance(value, str) or not value:
            raise ValueError(f"{field}.{name}: give the value as a non-empty string, got {value!r}")


@dataclass(frozen=True)
class RestoreArgs:
    """Create the database from a snapshot or as a point-in-time restore of another one.

    Creation-only inputs: the database ignores later changes to them, so removing or
    changing them never replaces a restored database.
    """

    # A DB snapshot (instance) or DB cluster snapshot (Aurora): identifier or ARN.
    snapshot_identifier: str | None = None
    # The source instance / cluster of a point-in-time restore.
    source_identifier: str | None = None
    # RFC 3339 UTC time to restore to; None with source_identifier: the latest restorable time.
    restore_time: str | None = None
    # Aurora only: copy-on-write (a fast clone) or full-copy.
    restore_type: str = "copy-on-write"

    def __post_init__(self) -> None:
        if (self.snapshot_identifier is None) == (self.source_identifier is None):
            raise ValueError("restore: give snapshot_identifier or source_identifier (point in time), not both")
        if self.restore_time is not None:
            if self.source_identifier is None:
                raise ValueError("restore.restore_time: only with source_identifier (a point-in-time restore)")
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", self.restore_time):
                raise ValueError(
                    f"restore.restore_time: UTC RFC 3339 like 2026-05-01T12:00:00Z, got {self.restore_time!r}"
                )
        if self.restore_type not in ("copy-on-write", "full-copy"):
            raise ValueError(f"restore.restore_type: copy-on-write or full-copy, got {self.restore_type!r}")
        for label in ("snapshot_identifier", "source_identifier"):
            value = getattr(self, label)
            if value is not None and not re.fullmatch(r"(arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:[a-z-]+:)?"
                                                       r"[A-Za-z][A-Za-z0-9-]{0,254}", value):
                raise ValueError(f"restore.{label}: an RDS identifier or ARN, got {value!r}")

    @property
    def point_in_time(self) -> bool:
        return self.source_identifier is not None


@dataclass(frozen=True)
class CloneSource:
    """A database of the parent stack that a branch's database is created from, at its latest
    restorable time (Aurora: a copy-on-write clone; RDS: a point-in-time restore). The values
    come from the parent stack's outputs (a StackReference), so they are Outputs."""

    identifier: pulumi.Input[str]
    # The parent's running engine version: the clone starts on it, so nothing plans an upgrade.
    engine_version: pulumi.Input[str]
    # The key the restored storage must keep (RestoreDBInstanceToPointInTime takes no KmsKeyId);
    # None: the branch's own key, which RestoreDBClusterToPointInTime accepts (see cluster_restore).
    storage_kms_key_arn: pulumi.Input[str] | None = None


# Pulumi property paths of creation-only restore inputs.
RESTORE_IGNORE_CHANGES = ("snapshotIdentifier", "restoreToPointInTime")


def instance_restore(restore: RestoreArgs | None, clone: CloneSource | None = None) -> dict[str, Any]:
    """aws.rds.Instance arguments of a restore (RestoreDBInstanceFromDBSnapshot / ...ToPointInTime).

    A clone is a point-in-time restore of the parent instance at its latest restorable time; it
    needs automated backups on the parent (RDS User Guide, "Restoring a DB instance to a specified
    time"). RestoreDBInstanceToPointInTime has no KmsKeyId: the restored storage keeps the source's
    key (RDS API reference, RestoreDBInstanceToPointInTime parameters; terraform-provider-aws
    internal/service/rds/instance.go sends none on this path), hence ``storage_kms_key_arn``.
    """
    if clone is not None:
        return {"restore_to_point_in_time": aws.rds.InstanceRestoreToPointInTimeArgs(
            source_db_instance_identifier=clone.identifier, use_latest_restorable_time=True)}
    if restore is None:
        return {}
    if not restore.point_in_time:
        return {"snapshot_identifier": restore.snapshot_identifier}
    return {"restore_to_point_in_time": aws.rds.InstanceRestoreToPointInTimeArgs(
        source_db_instance_identifier=restore.source_identifier,
        restore_time=restore.restore_time,
        use_latest_restorable_time=True if restore.restore_time is None else None,
    )}


def cluster_restore(restore: RestoreArgs | None, clone: CloneSource | None = None) -> dict[str, Any]:
    """aws.rds.Cluster arguments of a restore (RestoreDBClusterFromSnapshot / ...ToPointInTime).

    A clone is Aurora fast cloning: RestoreDBClusterToPointInTime with RestoreType copy-on-write
    and UseLatestRestorableTime (Aurora User Guide, "Cloning a volume for an Amazon Aurora DB
    cluster"). It restores the cluster only; its instances are created after it. Its KmsKeyId may
    name a key other than the source's ("You can restore to a new DB cluster and encrypt the new DB
    cluster with a KMS key that is different from the KMS key used to encrypt the source DB
    cluster", RDS API reference, RestoreDBClusterToPointInTime KmsKeyId), and the provider passes
    ``kms_key_id`` on this path (terraform-provider-aws internal/service/rds/cluster.go).
    """
    if clone is not None:
        return {"restore_to_point_in_time": aws.rds.ClusterRestoreToPointInTimeArgs(
            source_cluster_identifier=clone.identifier, restore_type="copy-on-write",
            use_latest_restorable_time=True)}
    if restore is None:
        return {}
    if not restore.point_in_time:
        return {"snapshot_identifier": restore.snapshot_identifier}
    return {"restore_to_point_in_time": aws.rds.ClusterRestoreToPointInTimeArgs(
        source_cluster_identifier=restore.source_identifier,
        restore_type=restore.restore_type,
        restore_to_time=restore.restore_time,
        use_latest_restorable_time=True if restore.restore_time is None else None,
    )}


def parameter_group(
    name: str,
    *,
    physical_name: str,
    family: str,
    defaults: Mapping[str, str],
    overrides: Mapping[str, str],
    cluster: bool,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """A DB (or DB cluster) parameter group: ``defaults`` with ``overrides`` on top; its name.

    ``pending-reboot`` is accepted for static and dynamic parameters alike, and a new
    database starts with every value of its group anyway.
    """
    values = {**defaults, **overrides}
    kind = aws.rds.ClusterParameterGroup if cluster else aws.rds.ParameterGroup
    arg = aws.rds.ClusterParameterGroupParameterArgs if cluster else aws.rds.ParameterGroupParameterArgs
    group = kind(
        name,
        name=physical_name,
        family=family,
        description=f"{family} settings of {physical_name}",
        parameters=[arg(name=key, value=values[key], apply_method="pending-reboot") for key in sorted(values)],
        opts=opts,
    )
    return group.name


def log_retention_days(given: int | None, ephemeral: bool) -> int:
    return given if given is not None else (EPHEMERAL_LOG_DAYS if ephemeral else DURABLE_LOG_DAYS)


# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)
EPHEMERAL_LOG_DAYS = 14
DURABLE_LOG_DAYS = 365


def check_log_retention(value: int | None, field: str = "log_retention_days") -> None:
    if value is not None and value not in LOG_RETENTION_DAYS:
        raise ValueError(f"{field}: one of {', '.join(map(str, LOG_RETENTION_DAYS))}, got {value}")


def log_groups(name: str, group_names: Mapping[str, pulumi.Input[str]], *, retention_days: int,
               opts: pulumi.ResourceOptions) -> list[aws.cloudwatch.LogGroup]:
    """Log groups that AWS would otherwise create on first write and keep forever after ``down``.

    RDS log exports write to ``/aws/rds/instance|cluster/<id>/<log>`` and Lambda to
    ``/aws/lambda/<function>``; both use a group that already exists (RDS User Guide
    "Publishing database logs to Amazon CloudWatch Logs"; Lambda Developer Guide
    "Working with Amazon CloudWatch Logs"), so creating it first in the stack gives it a
    retention and lets ``down`` remove it. CloudWatch Logs encrypts them with its own key: a
    customer-managed key would need a key policy for the logs service principal.
    """
    return [
        aws.cloudwatch.LogGroup(
            f"{name}-log-{suffix}",
            name=group,
            retention_in_days=retention_days,
            opts=opts,
        )
        for suffix, group in group_names.items()
    ]


def rds_log_group_names(kind: str, identifier: str, exports: Sequence[str]) -> dict[str, str]:
    return {export: f"/aws/rds/{kind}/{identifier}/{export}" for export in exports}


def monitoring_role(name: str, role_name: str, *, opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """The enhanced-monitoring role RDS assumes to publish OS metrics (AmazonRDSEnhancedMonitoringRole)."""
    role = aws.iam.Role(
        f"{name}-monitoring-role",
        name=role_name,
        description="RDS enhanced monitoring publishes OS metrics to CloudWatch Logs",
        assume_role_policy=assume_role_policy("monitoring.rds.amazonaws.com"),
        opts=opts,
    )
    partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=opts.parent)).partition
    aws.iam.RolePolicyAttachment(
        f"{name}-monitoring-role-policy",
        role=role.name,
        policy_arn=partition.apply(lambda p: f"arn:{p}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"),
        opts=opts,
    )
    return role


def windows(settings: ObservabilityArgs, *, cluster: bool) -> dict[str, Any]:
    """The backup and maintenance windows: ``backup_window`` / ``maintenance_window`` on
    aws.rds.Instance, ``preferred_*`` on aws.rds.Cluster (pulumi-aws argument names)."""
    prefix = "preferred_" if cluster else ""
    maintenance = settings.maintenance_window.lower() if settings.maintenance_window else None
    return {f"{prefix}backup_window": settings.backup_window, f"{prefix}maintenance_window": maintenance}


def insights(name: str, settings: ObservabilityArgs, *, kms_key_arn: pulumi.Input[str],
             monitoring_role_name: str, opts: pulumi.ResourceOptions,
             role: aws.iam.Role | None = None) -> dict[str, Any]:
    """aws.rds.Instance / ClusterInstance arguments: Performance Insights (under the stack's key)
    and enhanced monitoring (with its role; pass ``role`` to share one between instances)."""
    args: dict[str, Any] = {"performance_insights_enabled": settings.performance_insights}
    if settings.performance_insights:
        args["performance_insights_kms_key_id"] = kms_key_arn
        args["performance_insights_retention_period"] = settings.performance_insights_retention_days
    if settings.monitoring_interval:
        role = role or monitoring_role(name, monitoring_role_name, opts=opts)
        args["monitoring_interval"] = settings.monitoring_interval
        args["monitoring_role_arn"] = role.arn
    return args


def admin_secret(name: str, *, secret_name: str, description: str, kms_key_arn: pulumi.Input[str],
                 ephemeral: bool, engine: str, host: pulumi.Input[str], port: int, username: str,
                 password: pulumi.Input[str], dbname: str | None, parent: pulumi.Resource,
                 ) -> tuple[aws.secretsmanager.Secret, aws.secretsmanager.SecretVersion]:
    """A database's admin credentials in the JSON shape the rotation function, DMS and the Data API
    read (engine, host, port, username, password, dbname), under the stack's key; its first version."""
    secret = aws.secretsmanager.Secret(
        f"{name}-admin-secret",
        name=secret_name,
        description=description,
        kms_key_id=kms_key_arn,
        recovery_window_in_days=0 if ephemeral else 30,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    version = aws.secretsmanager.SecretVersion(
        f"{name}-admin-secret-initial",
        secret_id=secret.id,
        secret_string=pulumi.Output.secret(pulumi.Output.json_dumps({
            "engine": engine, "host": host, "port": port, "username": username, "password": password,
            "dbname": dbname,
        })),
        # After a rotation this version is no longer AWSCURRENT; without this, the next
        # `pulumi up` after a refresh would move AWSCURRENT back to the retired password.
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["version_stages"]),
    )
    return secret, version


def admin_password(name: str, *, opts: pulumi.ResourceOptions,
                   length: int = ADMIN_PASSWORD_LENGTH) -> random.RandomPassword:
    """Letters and digits of every kind, no punctuation: safe in URLs, shells, DSNs and SQL literals."""
    return random.RandomPassword(
        name,
        length=length,
        special=False,
        upper=True, lower=True, numeric=True,
        min_upper=1, min_lower=1, min_numeric=1,
        opts=opts,
    )


@dataclass(frozen=True)
class MySqlOptions:
    """What an RDS MySQL instance of this project may be given besides its identity."""

    # None: extended support disabled wherever the major allows it (see check_lifecycle).
    engine_lifecycle_support: str | None = None
    parameters: Mapping[str, str] | None = None
    log_exports: Sequence[str] = ()
    log_retention_days: int = EPHEMERAL_LOG_DAYS
    observability: ObservabilityArgs | None = None
    restore: RestoreArgs | None = None
    # Parameters under the user's overrides (e.g. binlog_format=ROW for a DMS source).
    parameter_defaults: Mapping[str, str] | None = None
    # Create the instance as a point-in-time restore of the parent stack's instance.
    clone: CloneSource | None = None


# TLS at the database: connections without it are refused (RDS for MySQL User Guide, "Requiring
# SSL/TLS for all connections to a MySQL DB instance": require_secure_transport).
MYSQL_TLS_PARAMETERS = {"require_secure_transport": "ON"}
MYSQL_LOG_EXPORTS = ("audit", "error", "general", "slowquery", "iam-db-auth-error")
DEFAULT_MYSQL_LOG_EXPORTS = ("error", "iam-db-auth-error")


@dataclass(frozen=True)
class MySqlInstanceArgs:
    """The settings every RDS MySQL instance config of the project shares: the stack's MySQL
    (``StackMySqlArgs``) and the instances of ``database: own`` in rds-proxy and secret-rotation."""

    engine_version: str = MYSQL_DEFAULT_VERSION
    # None: open-source-rds-extended-support-disabled where the major allows it.
    engine_lifecycle_support: str | None = None
    instance_class: str = "db.t4g.micro"
    allocated_storage: int = 20
    database_name: str = "app"
    master_username: str = "dbadmin"
    # An existing customer-managed KMS key; None: the stack's key, or a new one of the recipe's own.
    kms_key_arn: str | None = None
    # None: 1 day for ephemeral stacks, 7 for durable ones.
    backup_retention_days: int | None = None
    # DB parameter overrides on top of require_secure_transport=ON.
    parameters: dict[str, str] | None = None
    log_exports: tuple[str, ...] = DEFAULT_MYSQL_LOG_EXPORTS
    observability: ObservabilityArgs = field(default_factory=ObservabilityArgs)

    def __post_init__(self) -> None:
        check_lifecycle(self.engine_lifecycle_support, mysql_major(self.engine_version), MYSQL_PAST_STANDARD_SUPPORT)
        check_parameters(self.parameters or {})
        bad = sorted(set(self.log_exports) - set(MYSQL_LOG_EXPORTS))
        if bad:
            raise ValueError(f"log_exports: unknown log {bad[0]!r} (allowed: {', '.join(MYSQL_LOG_EXPORTS)})")
        if not self.instance_class.startswith("db."):
            raise ValueError(f"instance_class: an RDS class like 'db.t4g.micro', got {self.instance_class!r}")
        check_range("allocated_storage", self.allocated_storage, 20, 65536, "GiB")
        if self.backup_retention_days is not None:
            check_range("backup_retention_days", self.backup_retention_days, 1, 35)
        check_sql_identifier("database_name", self.database_name, 64)
        check_sql_identifier("master_username", self.master_username, 16)
        check_kms_key_ref(self.kms_key_arn)

    def backup_days(self, ephemeral: bool) -> int:
        return self.backup_retention_days or (1 if ephemeral else 7)

    def options(self, log_retention_days: int, *, restore: RestoreArgs | None = None,
                clone: CloneSource | None = None) -> MySqlOptions:
        return MySqlOptions(
            engine_lifecycle_support=self.engine_lifecycle_support, parameters=self.parameters,
            log_exports=self.log_exports, log_retention_days=log_retention_days,
            observability=self.observability, restore=restore, clone=clone,
        )


def check_range(field: str, value: int, low: int, high: int, note: str = "") -> None:
    if not low <= value <= high:
        extra = f" ({note})" if note else ""
        raise ValueError(f"{field}: must be {low}..{high}{extra}, got {value}")


def check_sql_identifier(field: str, value: str, max_len: int) -> None:
    # MySQL allows more, but these names end up unquoted in SQL, connection strings and IAM ARNs.
    if not (value.isascii() and value.isidentifier() and value[0].isalpha() and len(value) <= max_len):
        raise ValueError(f"{field}: 1-{max_len} ASCII letters, digits and '_', letter first, got {value!r}")
    if value.lower() == "rdsadmin":
        raise ValueError(f"{field}: 'rdsadmin' is reserved by RDS; choose another name")


def managed_secret_arn(secrets: Any) -> str:
    """The ARN of an instance's RDS-managed master secret (its ``master_user_secrets`` output)."""
    if not secrets:
        raise ValueError("the instance reports no RDS-managed master secret")
    first = secrets[0]
    return first["secret_arn"] if isinstance(first, dict) else first.secret_arn


def mysql_settings(name: str, *, identifier: str, engine_version: str, options: MySqlOptions,
                   kms_key_arn: pulumi.Input[str], parameter_group_name: str, monitoring_role_name: str,
                   opts: pulumi.ResourceOptions) -> tuple[dict[str, Any], list[pulumi.Resource]]:
    """aws.rds.Instance arguments shared by every RDS MySQL of the project, and what the instance
    must wait for (its log groups): parameter group, lifecycle, log exports, insights, restore."""
    major = mysql_major(engine_version)
    group = parameter_group(
        f"{name}-parameters", physical_name=parameter_group_name, family=mysql_family(major),
        defaults={**MYSQL_TLS_PARAMETERS, **(options.parameter_defaults or {})},
        overrides=options.parameters or {}, cluster=False, opts=opts,
    )
    groups = log_groups(name, rds_log_group_names("instance", identifier, options.log_exports),
                        retention_days=options.log_retention_days, opts=opts)
    settings = options.observability or ObservabilityArgs()
    args = {
        "parameter_group_name": group,
        "engine_lifecycle_support": check_lifecycle(options.engine_lifecycle_support, major,
                                                    MYSQL_PAST_STANDARD_SUPPORT),
        "enabled_cloudwatch_logs_exports": list(options.log_exports) or None,
        **windows(settings, cluster=False),
        **insights(name, settings, kms_key_arn=kms_key_arn, monitoring_role_name=monitoring_role_name, opts=opts),
        **instance_restore(options.restore, options.clone),
    }
    return args, list(groups)


def encrypted_mysql(
    name: str,
    *,
    identifier: str,
    final_snapshot_identifier: str,
    engine_version: str,
    instance_class: str,
    allocated_storage: int,
    db_name: str | None,
    username: str,
    password: pulumi.Input[str] | None,
    kms_key_arn: pulumi.Input[str],
    subnet_group_name: pulumi.Input[str],
    security_group_ids: list[pulumi.Input[str]],
    ephemeral: bool,
    backup_retention_days: int,
    opts: pulumi.ResourceOptions,
    parameter_group_name: str,
    monitoring_role_name: str,
    options: MySqlOptions | None = None,
    **extra: Any,
) -> aws.rds.Instance:
    """A private, KMS-encrypted, IAM-auth RDS MySQL instance.

    ``password=None`` lets RDS manage the master password in Secrets Manager (under the
    same key). Ephemeral instances are destroyable at once; durable ones keep deletion
    protection and a final snapshot.
    """
    managed = password is None
    options = options or MySqlOptions()
    settings, waits_for = mysql_settings(
        name, identifier=identifier, engine_version=engine_version, options=options, kms_key_arn=kms_key_arn,
        parameter_group_name=parameter_group_name, monitoring_role_name=monitoring_role_name, opts=opts)
    clone = options.clone
    restored = options.restore is not None or clone is not None
    return aws.rds.Instance(
        name,
        identifier=identifier,
        engine=MYSQL_ENGINE,
        engine_version=clone.engine_version if clone is not None else engine_version,
        instance_class=instance_class,
        allocated_storage=allocated_storage,
        storage_type="gp3",
        # A restore takes the database and user from its snapshot / source.
        db_name=None if restored else db_name,
        username=None if restored else username,
        manage_master_user_password=True if managed else None,
        master_user_secret_kms_key_id=kms_key_arn if managed else None,
        password=password,
        port=MYSQL_PORT,
        storage_encrypted=True,
        kms_key_id=clone.storage_kms_key_arn if clone is not None and clone.storage_kms_key_arn else kms_key_arn,
        iam_database_authentication_enabled=True,
        db_subnet_group_name=subnet_group_name,
        vpc_security_group_ids=security_group_ids,
        publicly_accessible=False,
        copy_tags_to_snapshot=True,
        backup_retention_period=backup_retention_days,
        deletion_protection=not ephemeral,
        skip_final_snapshot=ephemeral,
        final_snapshot_identifier=None if ephemeral else final_snapshot_identifier,
        apply_immediately=ephemeral,
        **settings,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            depends_on=waits_for, ignore_changes=list(RESTORE_IGNORE_CHANGES) if restored else None)),
        **extra,
    )


def own_mysql(
    name: str,
    component: str,
    args: MySqlInstanceArgs,
    *,
    namer: Namer,
    identifier: str,
    password: random.RandomPassword | None,
    kms_key_arn: pulumi.Input[str],
    subnet_ids: pulumi.Input[Any],
    security_group_id: pulumi.Input[str],
    ephemeral: bool,
    log_retention_days: int,
    restore: RestoreArgs | None = None,
    opts: pulumi.ResourceOptions,
) -> aws.rds.Instance:
    """A recipe's own RDS MySQL instance (``database: own``) in its own subnet group, named after
    ``component`` (the recipe's prefix: proxy, rotation)."""
    subnet_group = aws.rds.SubnetGroup(
        f"{name}-subnets",
        name=namer.rds(component, "subnets"),
        description=f"Private subnets of {identifier}",
        subnet_ids=subnet_ids,
        opts=opts,
    )
    return encrypted_mysql(
        f"{name}-mysql",
        identifier=identifier,
        final_snapshot_identifier=namer.rds(component, "mysql", "final"),
        engine_version=args.engine_version,
        instance_class=args.instance_class,
        allocated_storage=args.allocated_storage,
        db_name=args.database_name,
        username=args.master_username,
        password=None if password is None else password.result,
        kms_key_arn=kms_key_arn,
        subnet_group_name=subnet_group.name,
        security_group_ids=[security_group_id],
        ephemeral=ephemeral,
        backup_retention_days=args.backup_days(ephemeral),
        parameter_group_name=namer.rds(component, "mysql", "params"),
        monitoring_role_name=namer.iam_role(component, "monitoring"),
        options=args.options(log_retention_days, restore=restore),
        opts=opts,
    )


def propagation_wait(name: str, *, after: Sequence[pulumi.Resource], triggers: Mapping[str, pulumi.Input[str]],
                     seconds: int, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """A pause after new IAM roles/policies, before a service that assumes them is asked to.

    IAM is eventually consistent, and ``depends_on`` only orders API calls: DMS refuses a subnet
    group or endpoint whose role it cannot assume yet ("dms-vpc-role is not configured properly",
    hashicorp/terraform-provider-aws#11025 and #32824). A ``time.Sleep`` resource waits on the engine
    at creation (and again when ``triggers`` change), as terraform-aws-modules/dms does with
    ``time_sleep.wait_for_dependency_resources``. Returns what dependants should depend on.
    """
    if seconds <= 0:
        return list(after)
    import pulumiverse_time as time

    return [time.Sleep(f"{name}-iam-propagation", create_duration=f"{seconds}s", triggers=triggers,
                       opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(after))))]
