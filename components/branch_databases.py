"""The stack's databases, created once and shared by the recipes that attach to them.

A stack has at most one Aurora PostgreSQL cluster (the aurora-serverless recipe's, config
``db-recipes:aurora-serverless``), one RDS MySQL instance (config ``db-recipes:mysql``) and one
customer-managed KMS key. ``iam-auth``, ``data-api`` and ``secret-rotation`` attach to the
cluster; ``rds-proxy``, the DMS target and (without a cluster) ``secret-rotation`` attach to the
MySQL instance. A recipe builds a database of its own only when its config says
``database: own`` (the layout stacks had before, kept for them), or when the recipe is about
creating one (encrypt-existing's restored copy, the unencrypted demonstration source).

Every way of creating these databases lives here: new, from a snapshot, or as a point-in-time
restore / fast clone (``restore``, ``components.parts.RestoreArgs``), or as a clone of the parent
stack's databases (``ParentDatabases``: a branch made with ``dbenv up --from staging``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.aurora_serverless import AuroraServerlessArgs, AuroraServerlessPostgres
from components.naming import Namer
from components.parts import (
    MYSQL_ENGINE,
    MYSQL_PORT,
    CloneSource,
    DatabaseRef,
    MySqlInstanceArgs,
    RestoreArgs,
    admin_password,
    admin_secret,
    customer_key,
    encrypted_mysql,
    managed_secret_arn,
)

# The stack key's logical name, and the one it had when the Aurora cluster owned it: the alias
# lets an existing stack keep that key (and the cluster encrypted with it) instead of replacing them.
STACK_KEY_NAME = "stack-key"
_FORMER_AURORA_KEY = ("aurora-key", "aws:kms/key:Key", "aurora", "db-recipes:aurora:ServerlessPostgres")
# The StackReference to the parent stack, and the outputs of the parent a clone reads.
PARENT_REFERENCE = "parent"
PARENT_OUTPUTS: dict[str, tuple[str, ...]] = {
    "aurora-serverless": ("cluster_identifier", "engine_version"),
    "mysql": ("identifier", "engine_version", "storage_kms_key_arn", "backup_retention_days"),
    "dynamodb-autoscaling": ("table_name", "point_in_time_recovery"),
}


class ParentDatabases:
    """The parent stack's databases, read through a StackReference, as the sources of this stack's clones.

    Aurora: a copy-on-write clone under this stack's key (RestoreDBClusterToPointInTime accepts a
    different KmsKeyId). RDS MySQL: a point-in-time restore, which keeps the parent's storage key
    (RestoreDBInstanceToPointInTime takes no KmsKeyId); its managed secret and Performance Insights
    still use this stack's key. DynamoDB: RestoreTableToPointInTime, under this stack's key
    (SSESpecificationOverride). ``dbenv up`` checks before the engine runs that the parent exists,
    has each database and runs the same engine major.
    """

    def __init__(self, stack_name: str, *, opts: pulumi.ResourceOptions) -> None:
        self.stack_name = stack_name
        self.reference = pulumi.StackReference(PARENT_REFERENCE, stack_name=stack_name,
                                               opts=pulumi.ResourceOptions(providers=opts.providers))

    def value(self, output: str, key: str) -> pulumi.Output[Any]:
        def pick(values: Any) -> Any:
            if not isinstance(values, dict) or key not in values:
                raise pulumi.RunError(f"parent stack {self.stack_name} has no output {output}.{key}: "
                                      f"run `dbenv up` on the parent first")
            return values[key]

        return self.reference.get_output(output).apply(pick)

    def aurora(self) -> CloneSource:
        return CloneSource(identifier=self.value("aurora-serverless", "cluster_identifier"),
                           engine_version=self.value("aurora-serverless", "engine_version"))

    def mysql(self) -> CloneSource:
        return CloneSource(identifier=self.value("mysql", "identifier"),
                           engine_version=self.value("mysql", "engine_version"),
                           storage_kms_key_arn=self.value("mysql", "storage_kms_key_arn"))

    def table_name(self) -> pulumi.Output[str]:
        return self.value("dynamodb-autoscaling", "table_name")


@dataclass(frozen=True)
class StackMySqlArgs(MySqlInstanceArgs):
    """The stack's RDS MySQL instance (config ``db-recipes:mysql``), created when a recipe uses it."""

    # managed: RDS keeps the master password in Secrets Manager; secret: a generated one in a JSON
    # secret of this stack (what DMS and secret-rotation's function read). None: secret when DMS
    # writes into the instance or the rotation function rotates it, else managed.
    credentials: Literal["managed", "secret"] | None = None
    # Security groups besides the app tier whose members may reach the instance.
    allowed_security_group_ids: tuple[str, ...] = ()
    # Create the instance from a snapshot or as a point-in-time restore of another instance.
    restore: RestoreArgs | None = None


def stack_key(namer: Namer, *, ephemeral: bool, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The stack's one customer-managed key (rotating) and its alias; its ARN."""
    key_name, key_type, parent_name, parent_type = _FORMER_AURORA_KEY
    former = pulumi.create_urn(key_name, key_type, parent=pulumi.create_urn(parent_name, parent_type))
    key = aws.kms.Key(
        STACK_KEY_NAME,
        description="db-recipes stack key: database storage, secrets, snapshots, DMS, DynamoDB",
        enable_key_rotation=True,
        deletion_window_in_days=7 if ephemeral else 30,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=[former])),
    )
    aws.kms.Alias(f"{STACK_KEY_NAME}-alias", name=namer.kms_alias("stack"), target_key_id=key.key_id, opts=opts)
    return key.arn


class StackMySql(pulumi.ComponentResource):
    """The stack's private, encrypted, IAM-auth RDS MySQL instance, reachable from the app tier.

    Its security group carries standalone rules only, so recipes attaching to it (the RDS
    Proxy) add their own ingress rules beside the app tier's.
    """

    def __init__(
        self,
        name: str,
        args: StackMySqlArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Any],
        client_security_group_ids: list[pulumi.Input[str]],
        kms_key_arn: pulumi.Input[str] | None,
        log_retention_days: int,
        clone: CloneSource | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``clone``: create the instance as a point-in-time restore of the parent stack's instance."""
        super().__init__("db-recipes:databases:StackMySql", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identifier = namer.rds(name)
        self.kms_key_arn = customer_key(name, args.kms_key_arn, alias=namer.kms_alias(name), ephemeral=ephemeral,
                                        description=f"RDS MySQL {identifier}: storage and admin secret",
                                        opts=child, stack_key=kms_key_arn)
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets", name=namer.rds(name, "subnets"), description=f"Private subnets of {identifier}",
            subnet_ids=subnet_ids, opts=child)
        group = aws.ec2.SecurityGroup(
            f"{name}-sg", name=namer.security_group(name),
            description=f"MySQL {MYSQL_PORT} to {identifier} from named security groups only",
            vpc_id=vpc_id, egress=[], opts=child)
        for index, client in enumerate([*client_security_group_ids, *args.allowed_security_group_ids]):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-client-{index}", security_group_id=group.id, referenced_security_group_id=client,
                ip_protocol="tcp", from_port=MYSQL_PORT, to_port=MYSQL_PORT,
                description="MySQL from a client tier", opts=child)
        managed = args.credentials != "secret"
        password = None if managed else admin_password(f"{name}-master-password", opts=child)
        retention = args.backup_days(ephemeral)
        self.instance = encrypted_mysql(
            f"{name}-instance",
            identifier=identifier,
            final_snapshot_identifier=namer.rds(name, "final"),
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage,
            db_name=args.database_name,
            username=args.master_username,
            password=None if password is None else password.result,
            kms_key_arn=self.kms_key_arn,
            subnet_group_name=subnet_group.name,
            security_group_ids=[group.id],
            ephemeral=ephemeral,
            backup_retention_days=retention,
            parameter_group_name=namer.rds(name, "params"),
            monitoring_role_name=namer.iam_role(name, "monitoring"),
            options=args.options(log_retention_days, restore=args.restore, clone=clone),
            opts=child,
        )
        ready: list[pulumi.Resource] = [self.instance]
        if password is None:
            self.secret_arn: pulumi.Output[str] = self.instance.master_user_secrets.apply(managed_secret_arn)
        else:
            secret, version = admin_secret(
                name, secret_name=namer.secret(name, "admin"), description=f"Admin credentials of RDS MySQL {identifier}",
                kms_key_arn=self.kms_key_arn, ephemeral=ephemeral, engine=MYSQL_ENGINE, host=self.instance.address,
                port=MYSQL_PORT, username=args.master_username, password=password.result,
                dbname=args.database_name, parent=self)
            ready.append(version)
            self.secret_arn = secret.arn
        self.managed_secret = managed
        self.backup_retention_days = retention
        self.security_group_id = group.id
        self.database_name = args.database_name
        self.master_username = args.master_username
        self._ready = tuple(ready)
        self.register_outputs(self.outputs())

    def ref(self) -> DatabaseRef:
        return DatabaseRef(
            engine=MYSQL_ENGINE, identifier=self.instance.identifier, arn=self.instance.arn,
            resource_id=self.instance.resource_id, address=self.instance.address, port=MYSQL_PORT,
            database_name=self.database_name, master_username=self.master_username, secret_arn=self.secret_arn,
            managed_secret=self.managed_secret, kms_key_arn=self.kms_key_arn,
            security_group_id=self.security_group_id, ready=self._ready,
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "identifier": self.instance.identifier,
            "arn": self.instance.arn,
            "resource_id": self.instance.resource_id,
            "address": self.instance.address,
            "port": MYSQL_PORT,
            "database_name": self.database_name,
            "master_username": self.master_username,
            "secret_arn": self.secret_arn,
            "kms_key_arn": self.kms_key_arn,
            # The storage key: the parent's on a clone (a point-in-time restore keeps it).
            "storage_kms_key_arn": self.instance.kms_key_id,
            "security_group_id": self.security_group_id,
            # What a clone of this stack needs: the running version and automated backups.
            "engine_version": self.instance.engine_version_actual,
            "backup_retention_days": self.backup_retention_days,
        }


@dataclass
class BranchDatabases:
    """Creates the stack's key, Aurora cluster and MySQL instance once, on first request."""

    namer: Namer
    ephemeral: bool
    log_retention_days: int
    opts: pulumi.ResourceOptions
    placement: dict[str, Any]
    client_security_group_ids: list[pulumi.Input[str]]
    # The parent stack whose databases this stack's are cloned from (None: created fresh).
    parent: ParentDatabases | None = None
    _key: pulumi.Output[str] | None = None
    _aurora: AuroraServerlessPostgres | None = None
    _mysql: StackMySql | None = None

    def key(self) -> pulumi.Output[str]:
        if self._key is None:
            self._key = stack_key(self.namer, ephemeral=self.ephemeral, opts=self.opts)
        return self._key

    def aurora(self, args: AuroraServerlessArgs) -> AuroraServerlessPostgres:
        if self._aurora is None:
            self._aurora = AuroraServerlessPostgres(
                "aurora", args, **self.placement,
                client_security_group_ids=[*self.client_security_group_ids, *args.allowed_security_group_ids],
                log_retention_days=self.log_retention_days,
                stack_key=None if args.kms_key_arn else self.key(),
                clone=self.parent.aurora() if self.parent else None, opts=self.opts)
        return self._aurora

    def mysql(self, args: StackMySqlArgs) -> StackMySql:
        if self._mysql is None:
            self._mysql = StackMySql(
                "mysql", args, **self.placement, client_security_group_ids=self.client_security_group_ids,
                kms_key_arn=None if args.kms_key_arn else self.key(),
                log_retention_days=self.log_retention_days,
                clone=self.parent.mysql() if self.parent else None, opts=self.opts)
        return self._mysql

    @property
    def mysql_built(self) -> StackMySql | None:
        return self._mysql
