"""4.1 Aurora Serverless v2 PostgreSQL (and the Data API switch of 4.8).

Serverless v1 (``engine_mode="serverless"``) reached end of life on 2025-03-31;
v2 is a ``provisioned`` cluster whose instances have class ``db.serverless``
and whose capacity is set by ``serverlessv2_scaling_configuration``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.naming import Namer
from components.parts import (
    EPHEMERAL_LOG_DAYS,
    RESTORE_IGNORE_CHANGES,
    CloneSource,
    DatabaseRef,
    ObservabilityArgs,
    RestoreArgs,
    admin_password,
    admin_secret,
    check_kms_key_ref,
    check_lifecycle,
    check_parameters,
    cluster_restore,
    customer_key,
    insights,
    log_groups,
    monitoring_role,
    parameter_group,
    rds_log_group_names,
    windows,
)

ENGINE = "aurora-postgresql"
PORT = 5432
# The first minor version of each major that can scale to 0 ACU and auto-pause.
SCALE_TO_ZERO_MINIMUM = {13: (13, 15), 14: (14, 12), 15: (15, 7), 16: (16, 3), 17: (17, 4)}
# The first minor version of each major on which the RDS Data API works.
DATA_API_MINIMUM = {13: (13, 11), 14: (14, 8), 15: (15, 3), 16: (16, 1), 17: (17, 4)}
ACU_STEP = 0.5
MAX_ACU = 256.0
PAUSE_RANGE = (300, 86400)
LOG_EXPORTS = ("postgresql", "iam-db-auth-error", "instance")
# Majors past Aurora standard support: creating one with extended support disabled fails
# (CreateDBCluster EngineLifecycleSupport). Check describe-db-major-engine-versions.
PAST_STANDARD_SUPPORT = {"13": "2026-02-28"}
# TLS at the database: rds.force_ssl=1 refuses unencrypted connections (Aurora User Guide,
# "Securing Aurora PostgreSQL data with SSL/TLS").
CLUSTER_TLS_PARAMETERS = {"rds.force_ssl": "1"}


def parse_version(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"engine_version: {version!r} is not a version like '16.6'") from None


def supports(version: str, table: dict[int, tuple[int, int]]) -> bool:
    major, minor = parse_version(version)
    floor = table.get(major)
    return floor is not None and (major, minor) >= floor


def _versions(table: dict[int, tuple[int, int]]) -> str:
    return ", ".join(f"{a}.{b}+" for a, b in table.values())


@dataclass(frozen=True)
class AuroraServerlessArgs:
    engine_version: str = "16.6"
    engine_mode: str = "provisioned"
    min_capacity: float = 0.0
    max_capacity: float = 4.0
    seconds_until_auto_pause: int = 300
    database_name: str = "app"
    master_username: str = "dbadmin"
    # An existing customer-managed KMS key; a new one is created when None.
    kms_key_arn: str | None = None
    # Security groups (besides the stack's app tier) whose members may reach the DB port.
    allowed_security_group_ids: tuple[str, ...] = ()
    log_exports: tuple[str, ...] = ("postgresql", "iam-db-auth-error")
    instance_count: int = 1
    enable_data_api: bool = False
    # None: 1 day for ephemeral stacks, 7 for durable ones.
    backup_retention_days: int | None = None
    # None: open-source-rds-extended-support-disabled where the major allows it.
    engine_lifecycle_support: str | None = None
    # DB cluster parameter overrides on top of rds.force_ssl=1, and DB (instance) parameter overrides.
    cluster_parameters: dict[str, str] | None = None
    instance_parameters: dict[str, str] | None = None
    observability: ObservabilityArgs = field(default_factory=ObservabilityArgs)
    # Create the cluster from a DB cluster snapshot or as a point-in-time restore / fast clone.
    restore: RestoreArgs | None = None
    # The admin password: managed (RDS keeps and rotates it in Secrets Manager) or secret (a
    # generated one in a secret of this stack, for secret-rotation's function). None: managed,
    # unless secret-rotation's function rotates this cluster's admin user.
    credentials: Literal["managed", "secret"] | None = None

    def __post_init__(self) -> None:
        if self.engine_mode == "serverless":
            raise ValueError(
                "engine_mode: 'serverless' (Aurora Serverless v1) reached end of life on 2025-03-31; "
                "use 'provisioned', which with db.serverless instances is Serverless v2"
            )
        if self.engine_mode != "provisioned":
            raise ValueError(f"engine_mode: must be 'provisioned' (Serverless v2), got {self.engine_mode!r}")
        major, _ = parse_version(self.engine_version)
        if major not in SCALE_TO_ZERO_MINIMUM:
            raise ValueError(
                f"engine_version: aurora-postgresql {self.engine_version} is not supported "
                f"(majors: {', '.join(map(str, SCALE_TO_ZERO_MINIMUM))})"
            )
        for label, value in (("min_capacity", self.min_capacity), ("max_capacity", self.max_capacity)):
            if not 0 <= value <= MAX_ACU or (value / ACU_STEP) != int(value / ACU_STEP):
                raise ValueError(f"{label}: must be 0..{MAX_ACU:g} ACU in steps of {ACU_STEP}, got {value:g}")
        if self.max_capacity < max(self.min_capacity, 1.0):
            raise ValueError(
                f"max_capacity: must be at least 1 ACU and at least min_capacity ({self.min_capacity:g}), "
                f"got {self.max_capacity:g}"
            )
        if self.min_capacity == 0 and not supports(self.engine_version, SCALE_TO_ZERO_MINIMUM):
            raise ValueError(
                f"min_capacity: 0 ACU (scale to zero, auto-pause) needs aurora-postgresql "
                f"{_versions(SCALE_TO_ZERO_MINIMUM)}; {self.engine_version} cannot pause: "
                "raise engine_version or set min_capacity to 0.5 or more"
            )
        lo, hi = PAUSE_RANGE
        if not lo <= self.seconds_until_auto_pause <= hi:
            raise ValueError(f"seconds_until_auto_pause: must be {lo}..{hi}, got {self.seconds_until_auto_pause}")
        bad_logs = sorted(set(self.log_exports) - set(LOG_EXPORTS))
        if bad_logs:
            raise ValueError(f"log_exports: unknown log {bad_logs[0]!r} (allowed: {', '.join(LOG_EXPORTS)})")
        if not 1 <= self.instance_count <= 15:
            raise ValueError(f"instance_count: must be 1..15, got {self.instance_count}")
        if self.enable_data_api and not supports(self.engine_version, DATA_API_MINIMUM):
            raise ValueError(
                f"enable_data_api: the Data API needs aurora-postgresql {_versions(DATA_API_MINIMUM)}, "
                f"not {self.engine_version}"
            )
        if self.backup_retention_days is not None and not 1 <= self.backup_retention_days <= 35:
            raise ValueError(f"backup_retention_days: must be 1..35, got {self.backup_retention_days}")
        check_kms_key_ref(self.kms_key_arn)
        check_lifecycle(self.engine_lifecycle_support, str(major), PAST_STANDARD_SUPPORT)
        check_parameters(self.cluster_parameters or {}, "cluster_parameters")
        check_parameters(self.instance_parameters or {}, "instance_parameters")
        if not self.database_name.isidentifier() or not self.master_username.isidentifier():
            raise ValueError("database_name and master_username: letters, digits and '_', letter first")


class AuroraServerlessPostgres(pulumi.ComponentResource):
    """An encrypted, IAM-auth Aurora PostgreSQL Serverless v2 cluster that can pause at 0 ACU."""

    def __init__(
        self,
        name: str,
        args: AuroraServerlessArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Any],
        client_security_group_ids: list[pulumi.Input[str]],
        log_retention_days: int = EPHEMERAL_LOG_DAYS,
        stack_key: pulumi.Input[str] | None = None,
        clone: CloneSource | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``stack_key``: the stack's customer-managed key, used unless ``args.kms_key_arn`` names one.
        ``clone``: create the cluster as a copy-on-write clone of the parent stack's cluster."""
        super().__init__("db-recipes:aurora:ServerlessPostgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_id = namer.rds("aurora")

        kms_key_arn = customer_key(
            name, args.kms_key_arn, alias=namer.kms_alias("aurora"), ephemeral=ephemeral,
            description=f"Aurora cluster {cluster_id}: storage and master secret", opts=child,
            stack_key=stack_key)
        managed = args.credentials != "secret"
        password = None if managed else admin_password(f"{name}-master-password", opts=child)

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=namer.rds("aurora", "subnets"),
            description=f"Private subnets of {cluster_id}",
            subnet_ids=subnet_ids,
            opts=child,
        )
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            name=namer.security_group("aurora"),
            description=f"PostgreSQL {PORT} to {cluster_id} from named security groups only",
            vpc_id=vpc_id,
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp", from_port=PORT, to_port=PORT,
                    security_groups=client_security_group_ids,
                    description="PostgreSQL from client tiers",
                )
            ],
            opts=child,
        )
        retention = args.backup_retention_days or (1 if ephemeral else 7)
        major = str(parse_version(args.engine_version)[0])
        family = f"{ENGINE}{major}"
        cluster_group = parameter_group(
            f"{name}-cluster-parameters", physical_name=namer.rds("aurora", "cluster", "params"), family=family,
            defaults=CLUSTER_TLS_PARAMETERS, overrides=args.cluster_parameters or {}, cluster=True, opts=child)
        instance_group = parameter_group(
            f"{name}-instance-parameters", physical_name=namer.rds("aurora", "instance", "params"), family=family,
            defaults={}, overrides=args.instance_parameters or {}, cluster=False, opts=child)
        logs = log_groups(name, rds_log_group_names("cluster", cluster_id, args.log_exports),
                          retention_days=log_retention_days, opts=child)
        restored = args.restore is not None or clone is not None
        self.cluster = aws.rds.Cluster(
            f"{name}-cluster",
            cluster_identifier=cluster_id,
            engine=ENGINE,
            engine_mode=args.engine_mode,
            # A clone starts on its parent's version (same major, checked before `up`).
            engine_version=clone.engine_version if clone is not None else args.engine_version,
            # A restore takes its database and master user from the snapshot / source cluster.
            database_name=None if restored else args.database_name,
            master_username=None if restored else args.master_username,
            manage_master_user_password=True if managed else None,
            master_user_secret_kms_key_id=kms_key_arn if managed else None,
            master_password=None if password is None else password.result,
            storage_encrypted=True,
            kms_key_id=kms_key_arn,
            iam_database_authentication_enabled=True,
            enable_http_endpoint=args.enable_data_api,
            serverlessv2_scaling_configuration=aws.rds.ClusterServerlessv2ScalingConfigurationArgs(
                min_capacity=args.min_capacity,
                max_capacity=args.max_capacity,
                # Only meaningful (and only accepted) when the cluster may pause at 0 ACU.
                seconds_until_auto_pause=args.seconds_until_auto_pause if args.min_capacity == 0 else None,
            ),
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[security_group.id],
            enabled_cloudwatch_logs_exports=list(args.log_exports),
            copy_tags_to_snapshot=True,
            backup_retention_period=retention,
            deletion_protection=not ephemeral,
            skip_final_snapshot=ephemeral,
            final_snapshot_identifier=None if ephemeral else namer.rds("aurora", "final"),
            apply_immediately=ephemeral,
            db_cluster_parameter_group_name=cluster_group,
            engine_lifecycle_support=check_lifecycle(args.engine_lifecycle_support, major, PAST_STANDARD_SUPPORT),
            **windows(args.observability, cluster=True),
            **cluster_restore(args.restore, clone),
            # RDS writes the exported logs into the stack's groups (with their retention).
            opts=pulumi.ResourceOptions(parent=self, depends_on=logs,
                                        ignore_changes=list(RESTORE_IGNORE_CHANGES) if restored else None),
        )
        role = monitoring_role(name, namer.iam_role("aurora", "monitoring"), opts=child) \
            if args.observability.monitoring_interval else None
        # The instances name the cluster by its id, so they depend on it: a restore or clone makes the
        # cluster only, and RDS accepts instances once it is available (CreateDBInstance after
        # RestoreDBClusterToPointInTime, Aurora User Guide "Creating an Amazon Aurora clone").
        self.instances = [
            aws.rds.ClusterInstance(
                f"{name}-instance-{index}",
                identifier=namer.rds("aurora", str(index)),
                cluster_identifier=self.cluster.id,
                instance_class="db.serverless",
                engine=ENGINE,
                engine_version=self.cluster.engine_version,
                db_subnet_group_name=subnet_group.name,
                publicly_accessible=False,
                promotion_tier=index,
                db_parameter_group_name=instance_group,
                **insights(name, args.observability, kms_key_arn=kms_key_arn, monitoring_role_name="",
                           opts=child, role=role),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
            )
            for index in range(args.instance_count)
        ]

        self.cluster_arn = self.cluster.arn
        self.cluster_identifier = self.cluster.cluster_identifier
        self.cluster_resource_id = self.cluster.cluster_resource_id
        self.endpoint = self.cluster.endpoint
        self.reader_endpoint = self.cluster.reader_endpoint
        self.port = self.cluster.port
        self.database_name = args.database_name
        self.master_username = args.master_username
        # What runs (after minor upgrades, or a clone's parent version): what a clone of this stack starts on.
        self.engine_version = self.cluster.engine_version_actual
        self.admin_secret_version: aws.secretsmanager.SecretVersion | None = None
        if password is None:
            self.master_user_secret_arn = self.cluster.master_user_secrets.apply(
                lambda secrets: secrets[0]["secret_arn"] if secrets else None
            )
        else:
            self.master_user_secret_arn = self._admin_secret(name, args, namer, ephemeral, kms_key_arn, password)
        self.managed_secret = managed
        self.kms_key_arn = kms_key_arn
        self.security_group_id = security_group.id
        self.data_api_enabled = args.enable_data_api
        self.backup_retention_days = retention
        self.register_outputs(self.outputs())

    def _admin_secret(self, name: str, args: AuroraServerlessArgs, namer: Namer, ephemeral: bool,
                      kms_key_arn: pulumi.Output[str], password: Any) -> pulumi.Output[str]:
        """The admin credentials in the JSON shape the rotation function and the Data API read."""
        secret, self.admin_secret_version = admin_secret(
            name, secret_name=namer.secret("aurora", "admin"),
            description=f"Admin credentials of Aurora cluster {namer.rds('aurora')}", kms_key_arn=kms_key_arn,
            ephemeral=ephemeral, engine=ENGINE, host=self.cluster.endpoint, port=PORT,
            username=args.master_username, password=password.result, dbname=args.database_name, parent=self)
        return secret.arn

    def ref(self) -> DatabaseRef:
        """The cluster as a database other recipes attach to."""
        ready: list[pulumi.Resource] = [self.cluster, *self.instances]
        if self.admin_secret_version is not None:
            ready.append(self.admin_secret_version)
        return DatabaseRef(
            engine=ENGINE, identifier=self.cluster_identifier, arn=self.cluster_arn,
            resource_id=self.cluster_resource_id, address=self.endpoint, port=PORT,
            database_name=self.database_name, master_username=self.master_username,
            secret_arn=self.master_user_secret_arn, managed_secret=self.managed_secret,
            kms_key_arn=self.kms_key_arn, security_group_id=self.security_group_id, cluster=True,
            ready=tuple(ready),
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "cluster_arn": self.cluster_arn,
            "cluster_identifier": self.cluster_identifier,
            "cluster_resource_id": self.cluster_resource_id,
            "endpoint": self.endpoint,
            "reader_endpoint": self.reader_endpoint,
            "port": self.port,
            "database_name": self.database_name,
            "master_username": self.master_username,
            "master_user_secret_arn": self.master_user_secret_arn,
            "kms_key_arn": self.kms_key_arn,
            "security_group_id": self.security_group_id,
            "data_api_enabled": self.data_api_enabled,
            "engine_version": self.engine_version,
            "backup_retention_days": self.backup_retention_days,
        }


