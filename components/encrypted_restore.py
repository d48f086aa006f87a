"""4.4 Encrypting an existing, unencrypted RDS MySQL instance.

Encryption at rest is fixed when an instance is created: an unencrypted
instance cannot be switched on, replicated encrypted, or restored encrypted
from its own snapshot. The supported path, modelled here as one chain of
resources whose dependencies enforce the order, is::

    source -> read replica -> snapshot of the replica
           -> copy of the snapshot with a customer-managed KMS key
           -> new instance restored from the encrypted copy

The replica takes the snapshot load off the primary and is where the binlog
position for a replication catch-up is read before cut-over (see
``CUTOVER_STEPS``). The source is either an existing instance, read with the
``aws.rds.getInstance`` data source, or a small unencrypted MySQL created by
``DemoMySqlSource`` for demonstration (and reused by the DMS recipe as its
migration source).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.naming import InvalidName, Namer, check_identifier
from components.parts import (
    MYSQL_DEFAULT_VERSION,
    MYSQL_PAST_STANDARD_SUPPORT,
    MYSQL_TLS_PARAMETERS,
    check_kms_key_ref,
    check_lifecycle,
    check_parameters,
    customer_key,
    mysql_family,
    mysql_major,
    parameter_group,
)

ENGINE = "mysql"
PORT = 3306
# The logical name of every demo source's aws.rds.Instance. It is deliberately
# unencrypted (it is what gets encrypted), so the policy pack exempts exactly
# this resource name from the storage-encryption rule.
DEMO_SOURCE_DB_RESOURCE_NAME = "encrypt-existing-source-db"
# The read replica inherits the source's (missing) encryption; its logical name
# is ``<component name>-replica``, i.e. ``encrypt-existing-replica`` in the stack.
REPLICA_SUFFIX = "replica"
PHASES = ("migrate", "cutover-done")
# What DMS needs of a MySQL source for CDC, and what a binlog catch-up replica needs: row-based
# binary logs with full row images and no checksums ("Using a MySQL-compatible database as a
# source for AWS DMS", DMS User Guide).
DMS_SOURCE_PARAMETERS = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_checksum": "NONE"}
# RDS MySQL master passwords: printable ASCII except '/', '"', '@', "'" and space.
PASSWORD_SPECIALS = "!#$%^&*()-_=+[]{}<>:?.,~"
PASSWORD_LENGTH = 32
EPHEMERAL_BACKUP_DAYS = 1
DURABLE_BACKUP_DAYS = 7
_INSTANCE_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")

CUTOVER_STEPS: tuple[str, ...] = (
    "1. On the read replica, CALL mysql.rds_stop_replication; then SHOW REPLICA STATUS and record "
    "Relay_Source_Log_File and Exec_Source_Log_Pos: the binlog position the snapshot corresponds to "
    "(take the snapshot while replication is stopped for an exact position).",
    "2. Keep binlogs on the source long enough for the catch-up: "
    "CALL mysql.rds_set_configuration('binlog retention hours', 24);",
    "3. On the restored encrypted instance, CALL mysql.rds_set_external_source(<source host>, 3306, "
    "<replication user>, <password>, <log file>, <log position>, 1); then CALL mysql.rds_start_replication;",
    "4. Wait until SHOW REPLICA STATUS on the restored instance reports Seconds_Behind_Source = 0.",
    "5. Stop writes to the source, wait for Seconds_Behind_Source = 0 again, then "
    "CALL mysql.rds_stop_replication and CALL mysql.rds_reset_external_source on the restored instance.",
    "6. Point clients at the restored endpoint (or rename the instances), then delete the replica, "
    "the snapshots you no longer need and finally the unencrypted source.",
)


def _check_instance_class(field_name: str, value: str) -> None:
    if not _INSTANCE_CLASS.match(value):
        raise ValueError(f"{field_name}: {value!r} is not an RDS instance class like 'db.t4g.micro'")


def _check_word(field_name: str, value: str, max_len: int) -> None:
    if not (value[:1].isalpha() and value.replace("_", "a").isalnum() and value.isascii()
            and len(value) <= max_len):
        raise ValueError(
            f"{field_name}: {value!r} must be 1-{max_len} ASCII letters, digits or '_', starting with a letter"
        )


@dataclass(frozen=True)
class DemoSourceArgs:
    """A small, deliberately unencrypted MySQL instance to demonstrate the encryption path on."""

    instance_class: str = "db.t4g.micro"
    engine_version: str = MYSQL_DEFAULT_VERSION
    # None: open-source-rds-extended-support-disabled where the major allows it.
    engine_lifecycle_support: str | None = None
    allocated_storage: int = 20
    db_name: str = "appdb"
    username: str = "admin"
    # DB parameter overrides on top of TLS required and row-based binlogs (binlog_format=ROW).
    parameters: dict[str, str] | None = None

    def __post_init__(self) -> None:
        _check_instance_class("instance_class", self.instance_class)
        check_lifecycle(self.engine_lifecycle_support, mysql_major(self.engine_version), MYSQL_PAST_STANDARD_SUPPORT)
        check_parameters(self.parameters or {})
        if not 20 <= self.allocated_storage <= 65536:
            raise ValueError(f"allocated_storage: must be 20..65536 GiB, got {self.allocated_storage}")
        _check_word("db_name", self.db_name, 64)
        _check_word("username", self.username, 16)
        if self.username.lower() in ("rdsadmin", "root"):
            raise ValueError(f"username: {self.username!r} is reserved by RDS MySQL")


@dataclass(frozen=True)
class EncryptExistingArgs:
    """Which instance to encrypt (existing ``source_identifier`` or a demo source) and how."""

    source_identifier: str | None = None
    create_demo_source: bool = True
    demo_source: DemoSourceArgs = field(default_factory=DemoSourceArgs)
    # An existing customer-managed KMS key (key or alias ARN); a key and alias are created when None.
    kms_key_arn: str | None = None
    # None: the source's instance class.
    restored_instance_class: str | None = None
    # False: snapshot the source directly (no replica). Needed when the source's master
    # password is RDS-managed, which rules out read replicas. None: a replica for existing
    # sources and on durable stacks; the demonstration source of an ephemeral (branch) stack is
    # snapshotted directly (a replica would double its cost and could not be stopped).
    snapshot_from_replica: bool | None = None
    # migrate: the whole chain. cutover-done (after CUTOVER_STEPS deleted the source, replica and
    # snapshots): only the encrypted instance stays; the source is never looked up again.
    phase: str = "migrate"

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase: {self.phase!r} is not allowed (allowed: {', '.join(PHASES)})")
        if self.phase == "cutover-done" and self.source_identifier is None:
            raise ValueError(
                "phase: cutover-done is for an existing source_identifier; the demo source belongs to this "
                "stack, so remove encrypt-existing from the recipes (or destroy the stack) instead"
            )
        if self.source_identifier is not None and self.create_demo_source:
            raise ValueError(
                "source_identifier and create_demo_source: give an existing source_identifier "
                "with create_demo_source: false, or leave source_identifier unset to create a demo source"
            )
        if self.source_identifier is None and not self.create_demo_source:
            raise ValueError(
                "source_identifier: required when create_demo_source is false "
                "(the identifier of the unencrypted RDS MySQL instance to encrypt)"
            )
        if self.source_identifier is not None:
            try:
                check_identifier(self.source_identifier.lower(), "rds")
            except InvalidName as err:
                raise ValueError(f"source_identifier: {err}") from None
        if self.restored_instance_class is not None:
            _check_instance_class("restored_instance_class", self.restored_instance_class)
        check_kms_key_ref(self.kms_key_arn)


def _lifecycle(ephemeral: bool, final_snapshot_identifier: str) -> dict[str, Any]:
    """Instance settings that differ between short-lived branch stacks and durable ones."""
    return {
        "deletion_protection": not ephemeral,
        "skip_final_snapshot": ephemeral,
        "final_snapshot_identifier": None if ephemeral else final_snapshot_identifier,
        "backup_retention_period": EPHEMERAL_BACKUP_DAYS if ephemeral else DURABLE_BACKUP_DAYS,
        "apply_immediately": ephemeral,
    }


class DemoMySqlSource(pulumi.ComponentResource):
    """An unencrypted, private, IAM-auth RDS MySQL with a random master password.

    Self-contained (own subnet group and security group) so other recipes can use it as a
    source too. Ingress is added as separate ``aws.vpc.SecurityGroupIngressRule`` resources,
    so a consumer may admit its own clients with more rules on ``security_group_id``
    without fighting inline rules.
    """

    def __init__(
        self,
        name: str,
        args: DemoSourceArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Any],
        client_security_group_ids: list[pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("db-recipes:encryption:DemoMySqlSource", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identifier = namer.rds(name)

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=namer.rds(name, "subnets"),
            description=f"Private subnets of {identifier}",
            subnet_ids=subnet_ids,
            opts=child,
        )
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            name=namer.security_group(name),
            description=f"MySQL {PORT} to {identifier} from named security groups only",
            vpc_id=vpc_id,
            opts=child,
        )
        self._admit(name, security_group, client_security_group_ids)
        password = random.RandomPassword(
            f"{name}-password",
            length=PASSWORD_LENGTH,
            special=True,
            override_special=PASSWORD_SPECIALS,
            min_lower=1,
            min_upper=1,
            min_numeric=1,
            opts=child,
        )
        major = mysql_major(args.engine_version)
        parameters = parameter_group(
            f"{name}-parameters", physical_name=namer.rds(name, "params"), family=mysql_family(major),
            defaults={**MYSQL_TLS_PARAMETERS, **DMS_SOURCE_PARAMETERS}, overrides=args.parameters or {},
            cluster=False, opts=child,
        )
        self.instance = aws.rds.Instance(
            DEMO_SOURCE_DB_RESOURCE_NAME,
            identifier=identifier,
            engine=ENGINE,
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage,
            storage_type="gp3",
            db_name=args.db_name,
            username=args.username,
            # A random password, not an RDS-managed one: RDS refuses read replicas of a
            # source whose master password it manages.
            password=password.result,
            port=PORT,
            parameter_group_name=parameters,
            engine_lifecycle_support=check_lifecycle(args.engine_lifecycle_support, major,
                                                     MYSQL_PAST_STANDARD_SUPPORT),
            # Deliberately unencrypted: this instance is what the recipe encrypts.
            storage_encrypted=False,
            iam_database_authentication_enabled=True,
            publicly_accessible=False,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[security_group.id],
            copy_tags_to_snapshot=True,
            **_lifecycle(ephemeral, namer.rds(name, "final-snapshot")),
            opts=child,
        )
        self.identifier = self.instance.identifier
        self.address = self.instance.address
        self.port = self.instance.port
        self.arn = self.instance.arn
        self.username = args.username
        self.password = pulumi.Output.secret(password.result)
        self.db_name = args.db_name
        self.instance_class = args.instance_class
        self.engine_version = args.engine_version
        self.allocated_storage = args.allocated_storage
        self.security_group_id = security_group.id
        self.subnet_group_name = subnet_group.name
        self.parameter_group_name = parameters
        self.register_outputs(self.outputs())

    def _admit(self, name: str, security_group: aws.ec2.SecurityGroup,
               client_security_group_ids: list[pulumi.Input[str]]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        for index, client in enumerate(client_security_group_ids):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-client-{index}",
                security_group_id=security_group.id,
                referenced_security_group_id=client,
                ip_protocol="tcp", from_port=PORT, to_port=PORT,
                description="MySQL from a client tier",
                opts=child,
            )
        # Members of this group (the source, its replica, the restored copy) reach each other
        # on 3306: the restored copy replicates from the source until cut-over.
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-self",
            security_group_id=security_group.id,
            referenced_security_group_id=security_group.id,
            ip_protocol="tcp", from_port=PORT, to_port=PORT,
            description="MySQL replication between members",
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-to-self",
            security_group_id=security_group.id,
            referenced_security_group_id=security_group.id,
            ip_protocol="tcp", from_port=PORT, to_port=PORT,
            description="MySQL replication between members",
            opts=child,
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "address": self.address,
            "port": self.port,
            "arn": self.arn,
            "username": self.username,
            "db_name": self.db_name,
            "security_group_id": self.security_group_id,
            "subnet_group_name": self.subnet_group_name,
        }


@dataclass(frozen=True)
class SourceSettings:
    """What the restored instance copies from its source (plain values or Outputs)."""

    identifier: pulumi.Input[str]
    instance_class: pulumi.Input[str]
    engine: pulumi.Input[str]
    allocated_storage: pulumi.Input[int]
    storage_type: pulumi.Input[str] | None
    port: pulumi.Input[int]
    subnet_group_name: pulumi.Input[str]
    security_group_ids: pulumi.Input[list[str]]
    parameter_group_name: pulumi.Input[str] | None
    multi_az: pulumi.Input[bool]
    log_exports: pulumi.Input[list[str]] | None


def check_existing_source(identifier: str, source: Any, *, needs_replica: bool) -> Any:
    """Fail the deployment early, with the reason, when an existing instance cannot be used."""
    if source.engine != ENGINE:
        raise ValueError(f"source_identifier: {identifier} runs {source.engine!r}; this recipe encrypts {ENGINE}")
    if source.storage_encrypted:
        raise ValueError(f"source_identifier: {identifier} is already encrypted; nothing to do")
    if needs_replica and source.master_user_secrets:
        raise ValueError(
            f"source_identifier: {identifier} has an RDS-managed master password, so it cannot have a "
            "read replica; set snapshot_from_replica: false to snapshot it directly"
        )
    # "Before a DB instance can serve as a source instance, you must enable automatic backups on the
    # source" (RDS User Guide, "Working with DB instance read replicas").
    if needs_replica and not (source.backup_retention_period or 0) > 0:
        raise ValueError(
            f"source_identifier: {identifier} has no automated backups (backup retention 0), and RDS "
            "refuses a read replica of such a source; enable them (aws rds modify-db-instance "
            f"--db-instance-identifier {identifier} --backup-retention-period 1 --apply-immediately) "
            "or set snapshot_from_replica: false"
        )
    return source


def _existing_settings(parent: pulumi.Resource, identifier: str, needs_replica: bool,
                       check: bool = True) -> SourceSettings:
    found = aws.rds.get_instance_output(
        db_instance_identifier=identifier, opts=pulumi.InvokeOutputOptions(parent=parent)
    )
    if check:
        found = found.apply(lambda s: check_existing_source(identifier, s, needs_replica=needs_replica))
    return SourceSettings(
        identifier=found.apply(lambda s: s.db_instance_identifier),
        instance_class=found.apply(lambda s: s.db_instance_class),
        engine=found.apply(lambda s: s.engine),
        allocated_storage=found.apply(lambda s: s.allocated_storage),
        storage_type=found.apply(lambda s: s.storage_type or None),
        port=found.apply(lambda s: s.port or s.db_instance_port or PORT),
        subnet_group_name=found.apply(lambda s: s.db_subnet_group),
        security_group_ids=found.apply(lambda s: list(s.vpc_security_groups or [])),
        # Only the first is usable: an RDS MySQL instance has one DB parameter group.
        parameter_group_name=found.apply(lambda s: (s.db_parameter_groups or [None])[0]),
        multi_az=found.apply(lambda s: bool(s.multi_az)),
        log_exports=found.apply(lambda s: list(s.enabled_cloudwatch_logs_exports or []) or None),
    )


def _demo_settings(source: DemoMySqlSource, args: DemoSourceArgs) -> SourceSettings:
    return SourceSettings(
        identifier=source.identifier,
        instance_class=args.instance_class,
        engine=ENGINE,
        allocated_storage=args.allocated_storage,
        storage_type="gp3",
        port=PORT,
        subnet_group_name=source.subnet_group_name,
        security_group_ids=[source.security_group_id],
        parameter_group_name=source.parameter_group_name,
        multi_az=False,
        log_exports=None,
    )


class EncryptedRestore(pulumi.ComponentResource):
    """Source -> replica -> snapshot -> KMS-encrypted copy -> encrypted, IAM-auth restored instance."""

    def __init__(
        self,
        name: str,
        args: EncryptExistingArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Any],
        client_security_group_ids: list[pulumi.Input[str]],
        stack_key: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``stack_key``: the stack's customer-managed key, unless ``args.kms_key_arn`` names one."""
        super().__init__("db-recipes:encryption:EncryptedRestore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.source: DemoMySqlSource | None = None
        self.kms_key_arn = customer_key(name, args.kms_key_arn, alias=namer.kms_alias(name), ephemeral=ephemeral,
                                        description="Encrypted snapshot copy and restored MySQL instance",
                                        opts=child, stack_key=stack_key)
        demo = args.source_identifier is None
        from_replica = args.snapshot_from_replica
        if from_replica is None:
            from_replica = not (ephemeral and demo)
        restored_id = namer.rds(name, "restored")
        copy_id = namer.rds(name, "encrypted-snapshot")
        self.replica: aws.rds.Instance | None = None
        self.snapshot: aws.rds.Snapshot | None = None
        self.snapshot_copy: aws.rds.SnapshotCopy | None = None
        snapshot_identifier: pulumi.Input[str]
        if args.phase == "cutover-done":
            # The source, replica and snapshots are gone: read the restored instance's own settings
            # so nothing about it changes, and never look the source up again.
            settings = _existing_settings(self, restored_id, needs_replica=False, check=False)
            snapshot_identifier = copy_id
        else:
            if args.source_identifier is None:
                self.source = DemoMySqlSource(
                    f"{name}-source", args.demo_source, namer=namer, ephemeral=ephemeral, vpc_id=vpc_id,
                    subnet_ids=subnet_ids, client_security_group_ids=client_security_group_ids, opts=child,
                )
                settings = _demo_settings(self.source, args.demo_source)
            else:
                settings = _existing_settings(self, args.source_identifier, from_replica)
            snapshot_identifier = self._chain(name, from_replica, namer, settings, copy_id)

        self.restored = aws.rds.Instance(
            f"{name}-restored",
            identifier=restored_id,
            snapshot_identifier=snapshot_identifier,
            instance_class=args.restored_instance_class or settings.instance_class,
            engine=settings.engine,
            allocated_storage=settings.allocated_storage,
            storage_type=settings.storage_type,
            port=settings.port,
            db_subnet_group_name=settings.subnet_group_name,
            vpc_security_group_ids=settings.security_group_ids,
            parameter_group_name=settings.parameter_group_name,
            multi_az=settings.multi_az,
            enabled_cloudwatch_logs_exports=settings.log_exports,
            storage_encrypted=True,
            kms_key_id=self.kms_key_arn,
            iam_database_authentication_enabled=True,
            publicly_accessible=False,
            copy_tags_to_snapshot=True,
            **_lifecycle(ephemeral, namer.rds(name, "restored", "final-snapshot")),
            # The snapshot a database was restored from is history: a later change of it (the
            # copy deleted at cut-over, a new copy name) must never replace the restored instance.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["snapshotIdentifier"]),
        )
        self.phase = args.phase
        self.source_identifier = None if args.phase == "cutover-done" else settings.identifier
        self.register_outputs(self.outputs())

    def _chain(self, name: str, from_replica: bool, namer: Namer, settings: SourceSettings,
               copy_id: str) -> pulumi.Output[str]:
        """Source (-> replica) -> snapshot -> KMS copy; the copy's identifier."""
        child = pulumi.ResourceOptions(parent=self)
        snapshot_of: pulumi.Input[str] = settings.identifier
        if from_replica:
            self.replica = aws.rds.Instance(
                f"{name}-{REPLICA_SUFFIX}",
                identifier=namer.rds(name, REPLICA_SUFFIX),
                replicate_source_db=settings.identifier,
                instance_class=settings.instance_class,
                # Same-region replicas take the source's subnet group; storage encryption is
                # inherited from the source and must not be set here.
                vpc_security_group_ids=settings.security_group_ids,
                parameter_group_name=settings.parameter_group_name,
                iam_database_authentication_enabled=True,
                publicly_accessible=False,
                # RDS refuses a final snapshot of a read replica.
                skip_final_snapshot=True,
                deletion_protection=False,
                apply_immediately=True,
                opts=child,
            )
            snapshot_of = self.replica.identifier
        self.snapshot = aws.rds.Snapshot(
            f"{name}-snapshot",
            db_instance_identifier=snapshot_of,
            db_snapshot_identifier=namer.rds(name, "unencrypted-snapshot"),
            opts=child,
        )
        self.snapshot_copy = aws.rds.SnapshotCopy(
            f"{name}-encrypted-copy",
            source_db_snapshot_identifier=self.snapshot.db_snapshot_arn,
            target_db_snapshot_identifier=copy_id,
            kms_key_id=self.kms_key_arn,
            copy_tags=True,
            opts=child,
        )
        return self.snapshot_copy.id

    def outputs(self) -> dict[str, Any]:
        restored = self.restored
        return {
            "endpoint": restored.endpoint,
            "address": restored.address,
            "port": restored.port,
            "arn": restored.arn,
            "identifier": restored.identifier,
            "resource_id": restored.resource_id,
            "kms_key_arn": self.kms_key_arn,
            "phase": self.phase,
            "snapshot_identifier": self.snapshot.db_snapshot_identifier if self.snapshot else None,
            "snapshot_arn": self.snapshot.db_snapshot_arn if self.snapshot else None,
            "encrypted_snapshot_identifier": (self.snapshot_copy.target_db_snapshot_identifier
                                              if self.snapshot_copy else None),
            "encrypted_snapshot_arn": self.snapshot_copy.db_snapshot_arn if self.snapshot_copy else None,
            "replica_identifier": self.replica.identifier if self.replica else None,
            "source_identifier": self.source_identifier,
            "demo_source": self.source is not None,
            "cutover_steps": list(CUTOVER_STEPS),
        }
