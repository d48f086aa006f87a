"""4.7 AWS DMS: replication instance, SSL endpoints with Secrets Manager credentials, and a task.

The task's table mappings come from a typed builder (``TableMappings``) that
checks what DMS would reject before anything is deployed and serialises to
DMS's own JSON. The target is an encrypted, IAM-auth RDS MySQL instance made
here; the source is any MySQL/MariaDB/PostgreSQL database described by a
``DmsSource`` (the demo source of encrypt-existing, or an existing database
whose credentials are already in Secrets Manager).

AWS facts this follows (AWS-NOTES 4.7): the replication instance API defaults
to *publicly accessible*, so ``publicly_accessible=False`` is always passed;
the service roles ``dms-vpc-role`` and ``dms-cloudwatch-logs-role`` have fixed,
account-wide names, so they are created only on request (a ``shared`` stack
should own them) and never per branch.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.naming import Namer
from components.parts import (
    EPHEMERAL_LOG_DAYS,
    MYSQL_DEFAULT_VERSION,
    MYSQL_ENGINE,
    MYSQL_PAST_STANDARD_SUPPORT,
    MYSQL_PORT,
    DatabaseRef,
    MySqlOptions,
    admin_password,
    check_kms_key_ref,
    check_lifecycle,
    check_parameters,
    customer_key,
    encrypted_mysql,
    log_groups,
    mysql_major,
    propagation_wait,
)

# --------------------------------------------------------------------------- table mappings

WILDCARD = "%"
SELECTION_ACTIONS = ("include", "exclude", "explicit")
RULE_TARGETS = ("schema", "table", "column")
_NAMES = ("schema", "table", "column")
# rule-action -> the rule-targets DMS accepts it on. Tablespace targets exist only for
# Oracle targets and data-type/data-masking actions need more than names, so they are left out.
TRANSFORMATION_ACTIONS: dict[str, tuple[str, ...]] = {
    "rename": RULE_TARGETS,
    "convert-lowercase": RULE_TARGETS,
    "convert-uppercase": RULE_TARGETS,
    "add-prefix": RULE_TARGETS,
    "remove-prefix": RULE_TARGETS,
    "replace-prefix": RULE_TARGETS,
    "add-suffix": RULE_TARGETS,
    "remove-suffix": RULE_TARGETS,
    "replace-suffix": RULE_TARGETS,
    "remove-column": ("column",),
    "include-column": ("column",),
}
# Actions whose new name (or the prefix/suffix to strip) is given in ``value``.
VALUE_ACTIONS = frozenset(
    {"rename", "add-prefix", "remove-prefix", "replace-prefix", "add-suffix", "remove-suffix", "replace-suffix"}
)
# Actions that also need the text being replaced, in ``old-value``.
OLD_VALUE_ACTIONS = frozenset({"replace-prefix", "replace-suffix"})
# DMS cannot transform columns whose names contain these characters.
COLUMN_FORBIDDEN = "#\\/-"
_RULE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MAX_LOAD_ORDER = 2_147_483_647


def like(pattern: str, name: str) -> bool:
    """DMS object-locator matching: ``%`` is any run of characters, ``_`` any one; case-sensitive."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.DOTALL) is not None


def _normalise_rule_id(rule_id: str | int | None, where: str) -> str | None:
    if rule_id is None:
        return None
    text = str(rule_id).strip()
    if isinstance(rule_id, bool) or not text.isdigit() or int(text) < 1:
        raise ValueError(f"{where}.rule_id: must be a positive whole number like '1', got {rule_id!r}")
    return str(int(text))


def _check_rule_name(name: str | None, where: str) -> None:
    if name is not None and not _RULE_NAME.match(name):
        raise ValueError(f"{where}.name: 1-255 letters, digits, '_' or '-', got {name!r}")


@dataclass(frozen=True)
class SelectionRule:
    """Which tables DMS migrates: ``include``/``exclude`` take ``%``/``_`` wildcards, ``explicit`` does not."""

    schema: str
    table: str = WILDCARD
    action: Literal["include", "exclude", "explicit"] = "include"
    rule_id: str | int | None = None
    name: str | None = None
    # Tables with a higher load order are loaded first (include/explicit only).
    load_order: int | None = None

    def __post_init__(self) -> None:
        where = "selection rule"
        if self.action not in SELECTION_ACTIONS:
            raise ValueError(f"action: {self.action!r} is not allowed (allowed: {', '.join(SELECTION_ACTIONS)})")
        for label, value in (("schema", self.schema), ("table", self.table)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{label}: a schema/table name or pattern is required")
            if self.action == "explicit" and WILDCARD in value:
                raise ValueError(
                    f"{label}: 'explicit' selects exactly one table, so no '%' wildcard ({value!r}); "
                    "use action 'include' for patterns"
                )
        object.__setattr__(self, "rule_id", _normalise_rule_id(self.rule_id, where))
        _check_rule_name(self.name, where)
        if self.load_order is not None:
            if self.action == "exclude":
                raise ValueError("load_order: only include and explicit rules load tables")
            if not 0 <= self.load_order <= MAX_LOAD_ORDER:
                raise ValueError(f"load_order: must be 0..{MAX_LOAD_ORDER}, got {self.load_order}")

    def to_dms(self, rule_id: str, name: str) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "rule-type": "selection",
            "rule-id": rule_id,
            "rule-name": name,
            "object-locator": {"schema-name": self.schema, "table-name": self.table},
            "rule-action": self.action,
        }
        if self.load_order is not None:
            rule["load-order"] = str(self.load_order)
        return rule

    def selects(self, schema: str, table: str | None) -> bool:
        """Whether this rule's locator covers ``schema``.``table`` (``None``: some table of the schema)."""
        if self.action == "explicit":
            return self.schema == schema and (table is None or self.table == table)
        return like(self.schema, schema) and (table is None or like(self.table, table))


@dataclass(frozen=True)
class TransformationRule:
    """Renames and case/prefix/suffix changes of a schema, table or column on the way to the target."""

    target: Literal["schema", "table", "column"]
    action: str
    schema: str
    table: str | None = None
    column: str | None = None
    value: str | None = None
    old_value: str | None = None
    rule_id: str | int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        self._check_target_and_action()
        self._check_locator()
        self._check_values()
        object.__setattr__(self, "rule_id", _normalise_rule_id(self.rule_id, "transformation rule"))
        _check_rule_name(self.name, "transformation rule")

    def _check_target_and_action(self) -> None:
        if self.target not in RULE_TARGETS:
            raise ValueError(f"target: {self.target!r} is not allowed (allowed: {', '.join(RULE_TARGETS)})")
        if self.action not in TRANSFORMATION_ACTIONS:
            raise ValueError(
                f"action: {self.action!r} is not allowed (allowed: {', '.join(TRANSFORMATION_ACTIONS)})"
            )
        targets = TRANSFORMATION_ACTIONS[self.action]
        if self.target not in targets:
            raise ValueError(
                f"action: {self.action!r} works on target {' or '.join(targets)} only, not {self.target!r}"
            )

    def _check_locator(self) -> None:
        # The object-locator names exactly the levels down to the rule target.
        depth = RULE_TARGETS.index(self.target)
        for level, label in enumerate(_NAMES):
            value = getattr(self, label)
            if level <= depth and (not isinstance(value, str) or not value):
                raise ValueError(f"{label}: a {self.target} rule needs a {label} name or pattern")
            if level > depth and value is not None:
                raise ValueError(f"{label}: a {self.target} rule names no {label}; remove it or use target {label}")
        if self.action == "rename" and WILDCARD in self.locator_name:
            # Renaming every match to one name would merge objects, which DMS does not support.
            raise ValueError(f"{self.target}: rename needs one exact {self.target} name, not the pattern "
                             f"{self.locator_name!r}")
        if self.column and WILDCARD not in self.column and any(c in self.column for c in COLUMN_FORBIDDEN):
            raise ValueError(f"column: DMS cannot transform columns whose names contain # \\ / - ({self.column!r})")

    def _check_values(self) -> None:
        if self.action in VALUE_ACTIONS:
            if not self.value:
                raise ValueError(f"value: {self.action} needs a value (the new name, prefix or suffix)")
            if WILDCARD in self.value:
                raise ValueError(f"value: a literal name is expected, not the pattern {self.value!r}")
        elif self.value is not None:
            raise ValueError(f"value: {self.action} takes no value")
        if self.action in OLD_VALUE_ACTIONS:
            if not self.old_value:
                raise ValueError(f"old_value: {self.action} needs old_value (the text to replace)")
        elif self.old_value is not None:
            raise ValueError(f"old_value: only replace-prefix and replace-suffix take old_value, not {self.action}")
        if self.target == "column" and self.value and any(c in self.value for c in COLUMN_FORBIDDEN):
            raise ValueError(f"value: column names with # \\ / - cannot be transformed by DMS ({self.value!r})")

    @property
    def locator_name(self) -> str:
        """The name (or pattern) at the rule's own level."""
        return str(getattr(self, self.target))

    @property
    def locator(self) -> tuple[str | None, ...]:
        return (self.target, self.schema, self.table, self.column)

    def to_dms(self, rule_id: str, name: str) -> dict[str, Any]:
        locator = {"schema-name": self.schema}
        if self.table is not None:
            locator["table-name"] = self.table
        if self.column is not None:
            locator["column-name"] = self.column
        rule: dict[str, Any] = {
            "rule-type": "transformation",
            "rule-id": rule_id,
            "rule-name": name,
            "rule-target": self.target,
            "object-locator": locator,
            "rule-action": self.action,
        }
        if self.value is not None:
            rule["value"] = self.value
        if self.old_value is not None:
            rule["old-value"] = self.old_value
        return rule


@dataclass(frozen=True)
class TableMappings:
    """DMS table mappings: selection rules first, then transformations, with unique numeric ids.

    Rules without ``rule_id`` get the smallest unused ids in order; a rule's
    name defaults to its id, as the DMS console does.
    """

    selection: tuple[SelectionRule, ...] = ()
    transformation: tuple[TransformationRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "selection", tuple(self.selection))
        object.__setattr__(self, "transformation", tuple(self.transformation))
        if not any(rule.action != "exclude" for rule in self.selection):
            raise ValueError(
                "selection: at least one include or explicit rule is required, "
                "e.g. {schema: appdb, table: '%'} (exclude rules alone select nothing)"
            )
        labelled = self._labelled()
        self._check_unique("rule_id", [(where, rule_id) for where, rule_id, _, _ in labelled])
        self._check_unique("name", [(where, name) for where, _, name, _ in labelled])
        for index, rule in enumerate(self.transformation):
            self._check_transformation(f"transformation[{index}]", rule)
        self._check_one_rule_per_object()

    @classmethod
    def include_all(cls, schema: str) -> TableMappings:
        """Every table of one schema (a MySQL database), unchanged."""
        return cls(selection=(SelectionRule(schema=schema, table=WILDCARD),))

    def _rules(self) -> list[tuple[str, SelectionRule | TransformationRule]]:
        return [(f"selection[{i}]", r) for i, r in enumerate(self.selection)] + [
            (f"transformation[{i}]", r) for i, r in enumerate(self.transformation)
        ]

    def _labelled(self) -> list[tuple[str, str, str, SelectionRule | TransformationRule]]:
        """(config position, rule id, rule name, rule) for every rule, ids assigned."""
        rules = self._rules()
        taken = {r.rule_id for _, r in rules if r.rule_id is not None}
        next_id = 1
        labelled = []
        for where, rule in rules:
            rule_id = rule.rule_id
            if rule_id is None:
                while str(next_id) in taken:
                    next_id += 1
                rule_id = str(next_id)
                taken.add(rule_id)
            labelled.append((where, str(rule_id), rule.name or str(rule_id), rule))
        return labelled

    @staticmethod
    def _check_unique(label: str, values: list[tuple[str, str]]) -> None:
        seen: dict[str, str] = {}
        for where, value in values:
            if value in seen:
                raise ValueError(f"{where}.{label}: {value!r} is already used by {seen[value]}; rule {label}s are unique")
            seen[value] = where

    def _check_transformation(self, where: str, rule: TransformationRule) -> None:
        table = rule.table if rule.target != "schema" else None
        for index, selection in enumerate(self.selection):
            if selection.action == "exclude" and self._excludes(selection, rule.schema, table):
                raise ValueError(
                    f"{where}: transforms {_object(rule.schema, table)}, which selection[{index}] excludes"
                )
        literal = WILDCARD not in rule.schema and (table is None or WILDCARD not in table)
        if literal and not any(s.action != "exclude" and s.selects(rule.schema, table) for s in self.selection):
            raise ValueError(
                f"{where}: transforms {_object(rule.schema, table)}, which no include or explicit rule selects"
            )

    @staticmethod
    def _excludes(selection: SelectionRule, schema: str, table: str | None) -> bool:
        if table is None:
            # A schema is excluded only when all of its tables are.
            return selection.table == WILDCARD and (selection.schema == schema or like(selection.schema, schema))
        if WILDCARD in schema or WILDCARD in table:
            return (selection.schema, selection.table) == (schema, table)
        return like(selection.schema, schema) and like(selection.table, table)

    def _check_one_rule_per_object(self) -> None:
        # DMS applies at most one transformation action to the same object.
        seen: dict[tuple[str | None, ...], int] = {}
        for index, rule in enumerate(self.transformation):
            if rule.locator in seen:
                raise ValueError(
                    f"transformation[{index}]: {rule.target} {_object(rule.schema, rule.table, rule.column)} "
                    f"already has a transformation (transformation[{seen[rule.locator]}]); "
                    "DMS applies one action per object"
                )
            seen[rule.locator] = index

    def rules(self) -> list[dict[str, Any]]:
        return [rule.to_dms(rule_id, name) for _, rule_id, name, rule in self._labelled()]

    def to_dms_json(self) -> str:
        """The ``TableMappings`` document DMS expects: ``{"rules": [...]}``."""
        return json.dumps({"rules": self.rules()})


def _object(*parts: str | None) -> str:
    return ".".join(p for p in parts if p is not None)


# --------------------------------------------------------------------------- sources and args

MYSQL_ENGINES = ("mysql", "mariadb", "aurora")
POSTGRES_ENGINES = ("postgres", "aurora-postgresql")
SOURCE_ENGINES = (*MYSQL_ENGINES, *POSTGRES_ENGINES)
SSL_MODES = ("require", "verify-ca", "verify-full")
MIGRATION_TYPES = ("full-load", "cdc", "full-load-and-cdc")
# DMS Serverless capacity units it accepts (ComputeConfig MinCapacityUnits / MaxCapacityUnits,
# DMS API reference).
DCU_VALUES = (1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _check_engine(engine_name: str) -> None:
    if engine_name not in SOURCE_ENGINES:
        raise ValueError(f"engine_name: {engine_name!r} is not supported (allowed: {', '.join(SOURCE_ENGINES)})")


@dataclass(frozen=True)
class DmsSource:
    """The database DMS reads from: credentials as username/password (a secret is made) or a secret ARN."""

    engine_name: str
    server_name: pulumi.Input[str]
    port: pulumi.Input[int]
    database_name: str
    username: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None
    # An existing Secrets Manager secret with username, password, host and port.
    secret_arn: pulumi.Input[str] | None = None
    # The customer-managed key of that secret, if any: the access role must decrypt with it.
    secret_kms_key_arn: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        _check_engine(self.engine_name)
        if not self.database_name:
            raise ValueError("database_name: the source database (MySQL) or its schema to migrate is required")
        given = self.username is not None or self.password is not None
        if given == (self.secret_arn is not None):
            raise ValueError("source credentials: give either username and password, or secret_arn (not both)")
        if given and (self.username is None or self.password is None):
            raise ValueError("source credentials: username and password go together")

    @property
    def default_schema(self) -> str:
        """What "every table of the source database" selects: a MySQL database is a schema;
        a PostgreSQL endpoint is connected to ``database_name`` and its tables live in schemas."""
        return WILDCARD if self.engine_name in POSTGRES_ENGINES else self.database_name

    @property
    def has_secret(self) -> bool:
        return self.secret_arn is not None


@dataclass(frozen=True)
class ExistingSource:
    """An existing source database from config; DMS reads its credentials from ``secret_arn``."""

    engine_name: str
    server_name: str
    port: int
    database_name: str
    secret_arn: str
    secret_kms_key_arn: str | None = None
    # The source's security group: when given, it admits the DMS security group on ``port``.
    security_group_id: str | None = None

    def __post_init__(self) -> None:
        _check_engine(self.engine_name)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port: must be 1..65535, got {self.port}")
        if not self.secret_arn.startswith("arn:") or ":secretsmanager:" not in self.secret_arn:
            raise ValueError(f"secret_arn: expected a Secrets Manager secret ARN, got {self.secret_arn!r}")
        if not self.server_name or not self.database_name:
            raise ValueError("server_name and database_name: both are required")

    def to_source(self) -> DmsSource:
        return DmsSource(
            engine_name=self.engine_name,
            server_name=self.server_name,
            port=self.port,
            database_name=self.database_name,
            secret_arn=self.secret_arn,
            secret_kms_key_arn=self.secret_kms_key_arn,
        )


@dataclass(frozen=True)
class DmsTargetArgs:
    """The RDS MySQL instance DMS writes into."""

    instance_class: str = "db.t4g.micro"
    engine_version: str = MYSQL_DEFAULT_VERSION
    # None: open-source-rds-extended-support-disabled where the major allows it.
    engine_lifecycle_support: str | None = None
    # DB parameter overrides on top of require_secure_transport=ON.
    parameters: dict[str, str] | None = None
    allocated_storage: int = 20
    # An empty database created with the instance; DMS itself creates one database per
    # (transformed) source schema on a MySQL target.
    db_name: str | None = None
    master_username: str = "dbadmin"
    # None: 1 day for ephemeral stacks, 7 for durable ones (durable never below 7).
    backup_retention_days: int | None = None

    def __post_init__(self) -> None:
        if not self.instance_class.startswith("db."):
            raise ValueError(f"target.instance_class: an RDS class like db.t4g.micro, got {self.instance_class!r}")
        check_lifecycle(self.engine_lifecycle_support, mysql_major(self.engine_version, "target.engine_version"),
                        MYSQL_PAST_STANDARD_SUPPORT, "target.engine_lifecycle_support")
        check_parameters(self.parameters or {}, "target.parameters")
        if not 20 <= self.allocated_storage <= 65536:
            raise ValueError(f"target.allocated_storage: must be 20..65536 GiB, got {self.allocated_storage}")
        for label, value in (("db_name", self.db_name), ("master_username", self.master_username)):
            if value is not None and not _IDENTIFIER.match(value):
                raise ValueError(f"target.{label}: letters, digits and '_', letter first, at most 64, got {value!r}")
        if len(self.master_username) > 16:
            raise ValueError(f"target.master_username: MySQL user names have at most 16 characters, "
                             f"got {self.master_username!r}")
        if self.master_username.lower() in ("root", "rdsadmin", "rdsrepladmin", "rdsproxyadmin"):
            raise ValueError(f"target.master_username: {self.master_username!r} is reserved by RDS MySQL")
        if self.backup_retention_days is not None and not 1 <= self.backup_retention_days <= 35:
            raise ValueError(f"target.backup_retention_days: must be 1..35, got {self.backup_retention_days}")


@dataclass(frozen=True)
class DmsMigrationArgs:
    # An existing source database; None: the stack's demo MySQL source.
    source: ExistingSource | None = None
    # stack: migrate into the stack's MySQL instance (db-recipes:mysql). own: into an RDS MySQL
    # instance of this recipe, configured by ``target``.
    database: Literal["stack", "own"] = "stack"
    target: DmsTargetArgs = field(default_factory=DmsTargetArgs)
    # serverless: a DMS Serverless replication (billed only while it runs), never started on a
    # branch stack; instance: a provisioned replication instance and task. None: serverless on
    # ephemeral stacks, instance on durable ones.
    compute: Literal["serverless", "instance"] | None = None
    # DMS Serverless capacity range in DCUs (serverless only).
    min_capacity_units: int = 1
    max_capacity_units: int = 4
    replication_instance_class: str = "dms.t3.micro"
    allocated_storage: int = 20
    # None: the current default DMS engine version.
    engine_version: str | None = None
    multi_az: bool = False
    migration_type: Literal["full-load", "cdc", "full-load-and-cdc"] = "full-load"
    start_replication_task: bool = False
    # None: every table of the source database, unchanged.
    table_mappings: TableMappings | None = None
    # The account-wide dms-vpc-role and dms-cloudwatch-logs-role (fixed names): create them
    # only in the one stack that owns them.
    create_service_roles: bool = False
    # An existing customer-managed KMS key; a new one is created when None.
    kms_key_arn: str | None = None
    ssl_mode: str = "require"
    # A DMS certificate (the RDS CA bundle) for verify-ca / verify-full.
    certificate_arn: str | None = None
    # DMS task settings (its JSON document as a map), merged over CloudWatch logging on.
    replication_task_settings: dict[str, Any] | None = None
    # Where CDC starts (cdc or full-load-and-cdc only): a native position (MySQL "mysql-bin.000024:373",
    # a PostgreSQL LSN, or a checkpoint) or an RFC 3339 UTC time. None: when the task starts.
    cdc_start_position: str | None = None
    cdc_start_time: str | None = None
    # Endpoint settings maps: the pulumi-aws mysql_settings / postgres_settings block of the
    # endpoint's engine, snake_case keys (e.g. {events_poll_interval: 5}).
    source_endpoint_settings: dict[str, Any] | None = None
    target_endpoint_settings: dict[str, Any] | None = None
    # Seconds to wait after this stack creates IAM roles DMS assumes (IAM propagation); 0: no wait.
    iam_propagation_seconds: int = 30

    def __post_init__(self) -> None:
        if self.ssl_mode == "none":
            raise ValueError(
                "ssl_mode: 'none' would send credentials and data unencrypted; "
                f"use {', '.join(SSL_MODES)} (default require)"
            )
        if self.ssl_mode not in SSL_MODES:
            raise ValueError(f"ssl_mode: {self.ssl_mode!r} is not allowed (allowed: {', '.join(SSL_MODES)})")
        if self.ssl_mode.startswith("verify-") and not self.certificate_arn:
            raise ValueError(f"certificate_arn: ssl_mode {self.ssl_mode} needs the ARN of a DMS certificate (CA bundle)")
        if self.migration_type not in MIGRATION_TYPES:
            raise ValueError(
                f"migration_type: {self.migration_type!r} is not allowed (allowed: {', '.join(MIGRATION_TYPES)})"
            )
        if not re.fullmatch(r"dms\.[a-z0-9]+\.[a-z0-9]+", self.replication_instance_class):
            raise ValueError(
                f"replication_instance_class: a DMS class like dms.t3.micro, got {self.replication_instance_class!r}"
            )
        if not 5 <= self.allocated_storage <= 6144:
            raise ValueError(f"allocated_storage: must be 5..6144 GiB, got {self.allocated_storage}")
        check_kms_key_ref(self.kms_key_arn)
        if (self.cdc_start_position or self.cdc_start_time) and self.migration_type == "full-load":
            raise ValueError("cdc_start_position/cdc_start_time: only with migration_type cdc or full-load-and-cdc")
        if self.cdc_start_position and self.cdc_start_time:
            raise ValueError("cdc_start_position and cdc_start_time: give one of them")
        if self.cdc_start_time is not None and not re.fullmatch(
                r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", self.cdc_start_time):
            raise ValueError(f"cdc_start_time: UTC RFC 3339 like 2026-05-01T12:00:00Z, got {self.cdc_start_time!r}")
        self._check_compute()
        if not 0 <= self.iam_propagation_seconds <= 300:
            raise ValueError(f"iam_propagation_seconds: must be 0..300, got {self.iam_propagation_seconds}")
        for label in ("source_endpoint_settings", "target_endpoint_settings"):
            value = getattr(self, label)
            if value:
                engine = TARGET_ENGINE if label.startswith("target") else (
                    self.source.engine_name if self.source else TARGET_ENGINE)
                endpoint_settings(engine, value, label)
        task_settings(self.replication_task_settings)


    def _check_compute(self) -> None:
        for label in ("min_capacity_units", "max_capacity_units"):
            if getattr(self, label) not in DCU_VALUES:
                raise ValueError(f"{label}: one of {', '.join(map(str, DCU_VALUES))} DCUs, got {getattr(self, label)}")
        if self.min_capacity_units > self.max_capacity_units:
            raise ValueError(f"min_capacity_units: at most max_capacity_units ({self.max_capacity_units}), "
                             f"got {self.min_capacity_units}")
        if self.compute == "serverless" and (self.cdc_start_position or self.cdc_start_time):
            raise ValueError("cdc_start_position/cdc_start_time: a serverless replication takes its CDC start "
                             "when it is started (aws dms start-replication), not in its configuration")


# --------------------------------------------------------------------------- task and endpoint settings

# CloudWatch logging on: without it a failing task says nothing ("Logging task settings", DMS User
# Guide); its log group dms-tasks-<replication instance id> is created by the stack (retention).
DEFAULT_TASK_SETTINGS: dict[str, Any] = {"Logging": {"EnableLogging": True}}


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def task_settings(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The task settings document: logging on, with the user's map merged over it."""
    for key, value in (overrides or {}).items():
        if not key[:1].isupper():
            raise ValueError(f"replication_task_settings: {key!r} is not a DMS task settings section "
                             "(e.g. Logging, TargetMetadata, FullLoadSettings, ErrorBehavior)")
        if key == "Logging" and not isinstance(value, Mapping):
            raise ValueError("replication_task_settings.Logging: expected an object")
    return _deep_merge(DEFAULT_TASK_SETTINGS, overrides or {})


def endpoint_settings(engine: str, settings: Mapping[str, Any], field: str = "endpoint_settings") -> dict[str, Any]:
    """``{mysql_settings|postgres_settings: args}`` for aws.dms.Endpoint; keys checked against pulumi-aws."""
    if engine in POSTGRES_ENGINES:
        arg, kind = "postgres_settings", aws.dms.EndpointPostgresSettingsArgs
    else:
        arg, kind = "mysql_settings", aws.dms.EndpointMysqlSettingsArgs
    allowed = [p for p in inspect.signature(kind.__init__).parameters if p != "self"]
    for key in settings:
        if key not in allowed:
            raise ValueError(f"{field}: {key!r} is not a {arg} key of a {engine} endpoint "
                             f"(allowed: {', '.join(allowed)})")
    return {arg: kind(**settings)}


# --------------------------------------------------------------------------- the component

SERVICE_ROLES = {
    "dms-vpc-role": "AmazonDMSVPCManagementRole",
    "dms-cloudwatch-logs-role": "AmazonDMSCloudWatchLogsRole",
}
TARGET_ENGINE = MYSQL_ENGINE


def _assume_role(*services: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": list(services)}, "Action": "sts:AssumeRole"}],
    })


class DmsServiceRoles(pulumi.ComponentResource):
    """The account-wide ``dms-vpc-role`` and ``dms-cloudwatch-logs-role``.

    DMS looks them up by these exact names, so exactly one stack per account may
    own them: the shared stack, or a DmsMigration with ``create_service_roles``.
    """

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None, *,
                 propagation_seconds: int = 30) -> None:
        super().__init__("db-recipes:dms:ServiceRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        self.attachments: list[pulumi.Resource] = []
        self.role_arns: dict[str, pulumi.Output[str]] = {}
        for role_name, policy in SERVICE_ROLES.items():
            role = aws.iam.Role(
                f"{name}-{role_name}",
                name=role_name,
                description="AWS DMS service role (account-wide; owned by one stack only)",
                assume_role_policy=_assume_role("dms.amazonaws.com"),
                opts=child,
            )
            self.role_arns[role_name] = role.arn
            self.attachments.append(aws.iam.RolePolicyAttachment(
                f"{name}-{role_name}-policy",
                role=role.name,
                policy_arn=partition.apply(lambda p, n=policy: f"arn:{p}:iam::aws:policy/service-role/{n}"),
                opts=child,
            ))
        # What DMS resources depend on: the attachments, and the wait for IAM to propagate them.
        self.ready = propagation_wait(name, after=self.attachments, triggers=self.role_arns,
                                      seconds=propagation_seconds, opts=child)
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, Any]:
        return {"role_arns": self.role_arns}


def secrets_access_policy(secret_arns: list[str], key_arns: list[str], region: str) -> str:
    """Read exactly these secrets, and decrypt with their keys only through Secrets Manager."""
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadEndpointSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": sorted(set(secret_arns))},
    ]
    if key_arns:
        statements.append({
            "Sid": "DecryptThroughSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt",
            "Resource": sorted(set(key_arns)),
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        })
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _dms_egress(source_port: int) -> list[aws.ec2.SecurityGroupEgressArgs]:
    """The target's port, the source's port and HTTPS; the destination groups decide who gets in."""
    rules = [
        aws.ec2.SecurityGroupEgressArgs(
            protocol="tcp", from_port=port, to_port=port, cidr_blocks=["0.0.0.0/0"],
            description="Database port of a DMS endpoint",
        )
        for port in sorted({MYSQL_PORT, int(source_port)})
    ]
    rules.append(aws.ec2.SecurityGroupEgressArgs(
        protocol="tcp", from_port=443, to_port=443, cidr_blocks=["0.0.0.0/0"],
        description="HTTPS to AWS APIs (Secrets Manager, KMS) through VPC endpoints",
    ))
    return rules


class DmsMigration(pulumi.ComponentResource):
    """A private, encrypted DMS replication instance migrating ``source`` into a new RDS MySQL target."""

    def __init__(
        self,
        name: str,
        args: DmsMigrationArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Any],
        client_security_group_ids: list[pulumi.Input[str]],
        source: DmsSource,
        member_security_group_ids: list[pulumi.Input[str]] | None = None,
        log_retention_days: int = EPHEMERAL_LOG_DAYS,
        target: DatabaseRef | None = None,
        stack_key: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``member_security_group_ids``: groups the replication instance joins besides its own,
        e.g. the tier that the VPC interface endpoints (Secrets Manager) admit and the stack's
        databases admit. ``target``: the stack's MySQL instance (its admin secret must be the
        stack's JSON secret, with host and port); None: a target instance of this recipe's own.
        ``stack_key``: the stack's customer-managed key, unless ``args.kms_key_arn`` names one."""
        super().__init__("db-recipes:dms:Migration", name, None, opts)
        self._name = name
        self._namer = namer
        self._ephemeral = ephemeral
        self._args = args
        self._log_days = log_retention_days
        self._child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.table_mappings = args.table_mappings or TableMappings.include_all(source.default_schema)
        self.table_mappings_json = self.table_mappings.to_dms_json()

        self.kms_key_arn = customer_key(
            name, args.kms_key_arn, alias=namer.kms_alias("dms"), ephemeral=ephemeral,
            description=f"DMS {namer.dms('rep')}: replication storage, endpoints, target and secrets",
            opts=self._child, stack_key=stack_key)
        self.service_role_names = list(SERVICE_ROLES) if args.create_service_roles else []
        service_role_deps = self._service_roles(args) if args.create_service_roles else []
        self.security_group_id = self._dms_security_group(vpc_id, source)
        if target is None:
            target = self._target(args.target, vpc_id, subnet_ids, client_security_group_ids)
            target_keys: list[pulumi.Input[str]] = []
        else:
            if target.managed_secret or target.engine != TARGET_ENGINE:
                raise ValueError("dms-migration: the target must be a MySQL instance whose admin secret holds "
                                 "host and port (credentials: secret)")
            self.target_secret_arn = pulumi.Output.from_input(target.secret_arn)
            self.target_security_group_id = pulumi.Output.from_input(target.security_group_id)
            target_keys = [target.kms_key_arn]

        if source.has_secret:
            self.source_secret_arn: pulumi.Output[str] = pulumi.Output.from_input(source.secret_arn)
            source_keys = [source.secret_kms_key_arn] if source.secret_kms_key_arn else []
        else:
            self.source_secret_arn = self._credentials_secret(
                "source", source.engine_name, source.username, source.password,
                source.server_name, source.port, source.database_name,
            )
            source_keys = []
        role = self._secrets_role([self.source_secret_arn, self.target_secret_arn],
                                  [self.kms_key_arn, *source_keys, *target_keys], region)

        subnet_group = aws.dms.ReplicationSubnetGroup(
            f"{name}-subnets",
            replication_subnet_group_id=namer.dms("subnets"),
            replication_subnet_group_description=f"Private subnets of {namer.dms('rep')}",
            subnet_ids=subnet_ids,
            # DMS creates the group's network interfaces through dms-vpc-role.
            opts=pulumi.ResourceOptions(parent=self, depends_on=service_role_deps),
        )
        self.source_endpoint = self._endpoint("source", source.engine_name, source.database_name,
                                              self.source_secret_arn, role, args.source_endpoint_settings)
        self.target_endpoint = self._endpoint("target", TARGET_ENGINE, None, self.target_secret_arn, role,
                                              args.target_endpoint_settings)
        settings = json.dumps(task_settings(args.replication_task_settings), sort_keys=True)
        # The target must be up (and its secret hold a value) before anything replicates into it.
        target_ready = list(target.ready) if isinstance(target, DatabaseRef) else [target]
        serverless = args.compute == "serverless" or (args.compute is None and ephemeral)
        self.serverless = serverless
        self.replication_instance: aws.dms.ReplicationInstance | None = None
        self.replication_task: aws.dms.ReplicationTask | None = None
        self.replication_config: aws.dms.ReplicationConfig | None = None
        members = [self.security_group_id, *(member_security_group_ids or [])]
        if serverless:
            self._serverless(args, subnet_group, members, settings, target_ready)
        else:
            self._provisioned(args, subnet_group, members, settings, target_ready)
        if isinstance(target, DatabaseRef):
            self.target_address = pulumi.Output.from_input(target.address)
            self.target_port = pulumi.Output.from_input(target.port)
            self.target_identifier = pulumi.Output.from_input(target.identifier)
            self.target_arn = pulumi.Output.from_input(target.arn)
        else:
            self.target_address = target.address
            self.target_port = target.port
            self.target_identifier = target.identifier
            self.target_arn = target.arn
        self.replication_instance_arn = (self.replication_instance.replication_instance_arn
                                         if self.replication_instance else None)
        self.replication_task_arn = self.replication_task.replication_task_arn if self.replication_task else None
        self.replication_config_arn = self.replication_config.arn if self.replication_config else None
        self.source_endpoint_arn = self.source_endpoint.endpoint_arn
        self.target_endpoint_arn = self.target_endpoint.endpoint_arn
        self.secrets_access_role_arn = role.arn
        self.source_engine = source.engine_name
        self.source_server_name = pulumi.Output.from_input(source.server_name)
        self.source_port = pulumi.Output.from_input(source.port)
        self.source_database_name = source.database_name
        self.register_outputs(self.outputs())

    # ------------------------------------------------------------------ pieces

    def _provisioned(self, args: DmsMigrationArgs, subnet_group: aws.dms.ReplicationSubnetGroup,
                     members: list[pulumi.Input[str]], settings: str, target_ready: list[pulumi.Resource]) -> None:
        """A replication instance (billed every hour it exists) and a task on it."""
        namer = self._namer
        task_logs = log_groups(self._name, {"tasks": f"dms-tasks-{namer.dms('rep')}"},
                               retention_days=self._log_days, opts=self._child)
        self.replication_instance = aws.dms.ReplicationInstance(
            f"{self._name}-instance",
            replication_instance_id=namer.dms("rep"),
            replication_instance_class=args.replication_instance_class,
            allocated_storage=args.allocated_storage,
            engine_version=args.engine_version,
            # The API default is public: say so explicitly.
            publicly_accessible=False,
            kms_key_arn=self.kms_key_arn,
            multi_az=args.multi_az,
            replication_subnet_group_id=subnet_group.replication_subnet_group_id,
            vpc_security_group_ids=members,
            apply_immediately=self._ephemeral,
            auto_minor_version_upgrade=True,
            opts=self._child,
        )
        self.replication_task = aws.dms.ReplicationTask(
            f"{self._name}-task",
            replication_task_id=namer.dms("task"),
            migration_type=args.migration_type,
            table_mappings=self.table_mappings_json,
            replication_task_settings=settings,
            cdc_start_position=args.cdc_start_position,
            cdc_start_time=args.cdc_start_time,
            replication_instance_arn=self.replication_instance.replication_instance_arn,
            source_endpoint_arn=self.source_endpoint.endpoint_arn,
            target_endpoint_arn=self.target_endpoint.endpoint_arn,
            start_replication_task=args.start_replication_task,
            # The task writes its logs into the stack's log group.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*target_ready, *task_logs]),
        )

    def _serverless(self, args: DmsMigrationArgs, subnet_group: aws.dms.ReplicationSubnetGroup,
                    members: list[pulumi.Input[str]], settings: str, target_ready: list[pulumi.Resource]) -> None:
        """A DMS Serverless replication config: no capacity until the replication is started.

        DMS provisions capacity when a replication starts (StartReplication, DMS API reference)
        and bills DCU-hours from then on; after a stop the capacity stays provisioned, and
        billed, for 48 hours before DMS deprovisions it ("AWS DMS Serverless components", DMS
        User Guide; https://aws.amazon.com/dms/pricing/). A configuration that was never started
        costs nothing. Argument names: pulumi-aws dms.ReplicationConfig (compute_config,
        replication_type, table_mappings, replication_settings, start_replication).
        """
        identifier = self._namer.dms("replication")
        logs = log_groups(self._name, {"replication": f"dms-serverless-replication-{identifier}"},
                          retention_days=self._log_days, opts=self._child)
        self.replication_config = aws.dms.ReplicationConfig(
            f"{self._name}-replication",
            replication_config_identifier=identifier,
            # Also names the replication's log group: "AWS DMS uploads serverless-linked logs to a dedicated
            # log group with the prefix dms-serverless-replication-<your replication config resource ID>"
            # (DMS User Guide, monitoring DMS Serverless replications).
            resource_identifier=identifier,
            replication_type=args.migration_type,
            source_endpoint_arn=self.source_endpoint.endpoint_arn,
            target_endpoint_arn=self.target_endpoint.endpoint_arn,
            table_mappings=self.table_mappings_json,
            replication_settings=settings,
            start_replication=args.start_replication_task,
            compute_config=aws.dms.ReplicationConfigComputeConfigArgs(
                replication_subnet_group_id=subnet_group.replication_subnet_group_id,
                vpc_security_group_ids=members,
                kms_key_id=self.kms_key_arn,
                min_capacity_units=args.min_capacity_units,
                max_capacity_units=args.max_capacity_units,
                multi_az=args.multi_az,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*target_ready, *logs]),
        )

    def _service_roles(self, args: DmsMigrationArgs) -> list[pulumi.Resource]:
        return DmsServiceRoles(self._name, opts=self._child, propagation_seconds=args.iam_propagation_seconds).ready

    def _dms_security_group(self, vpc_id: pulumi.Input[str], source: DmsSource) -> pulumi.Output[str]:
        group = aws.ec2.SecurityGroup(
            f"{self._name}-sg",
            name=self._namer.security_group("dms"),
            description="DMS replication instance: no inbound, outbound to databases and AWS APIs",
            vpc_id=vpc_id,
            egress=pulumi.Output.from_input(source.port).apply(_dms_egress),
            opts=self._child,
        )
        return group.id

    def _target(self, args: DmsTargetArgs, vpc_id: pulumi.Input[str], subnet_ids: pulumi.Input[Any],
                client_security_group_ids: list[pulumi.Input[str]]) -> aws.rds.Instance:
        name, namer, ephemeral = self._name, self._namer, self._ephemeral
        identifier = namer.rds("dms-target")
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-target-subnets",
            name=namer.rds("dms-target", "subnets"),
            description=f"Private subnets of {identifier}",
            subnet_ids=subnet_ids,
            opts=self._child,
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-target-sg",
            name=namer.security_group("dms-target"),
            description=f"MySQL {MYSQL_PORT} to {identifier} from DMS and the app tier only",
            vpc_id=vpc_id,
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=MYSQL_PORT, to_port=MYSQL_PORT,
                security_groups=[self.security_group_id, *client_security_group_ids],
                description="MySQL from the DMS replication instance and client tiers",
            )],
            opts=self._child,
        )
        password = admin_password(f"{name}-target-password", opts=self._child)
        retention = args.backup_retention_days or (1 if ephemeral else 7)
        if not ephemeral:
            retention = max(retention, 7)
        instance = encrypted_mysql(
            f"{name}-target",
            identifier=identifier,
            final_snapshot_identifier=namer.rds("dms-target", "final"),
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage,
            db_name=args.db_name,
            username=args.master_username,
            password=password.result,
            kms_key_arn=self.kms_key_arn,
            subnet_group_name=subnet_group.name,
            security_group_ids=[group.id],
            ephemeral=ephemeral,
            backup_retention_days=retention,
            parameter_group_name=namer.rds("dms-target", "params"),
            monitoring_role_name=namer.iam_role("dms-target", "monitoring"),
            options=MySqlOptions(engine_lifecycle_support=args.engine_lifecycle_support, parameters=args.parameters,
                                 log_retention_days=self._log_days),
            multi_az=False,
            auto_minor_version_upgrade=True,
            opts=self._child,
        )
        self.target_security_group_id = group.id
        self.target_secret_arn = self._credentials_secret(
            "target", TARGET_ENGINE, args.master_username, password.result,
            instance.address, instance.port, args.db_name,
        )
        return instance

    def _credentials_secret(self, role: str, engine: str, username: pulumi.Input[str] | None,
                            password: pulumi.Input[str] | None, host: pulumi.Input[str],
                            port: pulumi.Input[int], dbname: str | None) -> pulumi.Output[str]:
        """A CMK-encrypted secret in the JSON shape DMS reads: username, password, host, port."""
        secret = aws.secretsmanager.Secret(
            f"{self._name}-{role}-secret",
            name=self._namer.secret("dms", role),
            description=f"DMS {role} endpoint credentials",
            kms_key_id=self.kms_key_arn,
            # Ephemeral stacks are torn down and rebuilt under the same name.
            recovery_window_in_days=0 if self._ephemeral else None,
            opts=self._child,
        )
        document = {"username": username, "password": password, "host": host, "port": port, "engine": engine}
        if dbname:
            document["dbname"] = dbname
        aws.secretsmanager.SecretVersion(
            f"{self._name}-{role}-secret-value",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.json_dumps(document)),
            opts=self._child,
        )
        return secret.arn

    def _secrets_role(self, secret_arns: list[pulumi.Input[str]], key_arns: list[pulumi.Input[str]],
                      region: pulumi.Output[str]) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{self._name}-secrets-role",
            name=self._namer.iam_role("dms-secrets"),
            description="DMS endpoints read their credentials from Secrets Manager",
            assume_role_policy=region.apply(lambda r: _assume_role(f"dms.{r}.amazonaws.com", "dms.amazonaws.com")),
            opts=self._child,
        )
        policy = pulumi.Output.all(
            pulumi.Output.all(*secret_arns), pulumi.Output.all(*key_arns), region
        ).apply(lambda v: secrets_access_policy(list(v[0]), list(v[1]), v[2]))
        policy_resource = aws.iam.RolePolicy(
            f"{self._name}-secrets-policy",
            role=role.id,
            policy=policy,
            opts=self._child,
        )
        # DMS assumes this new role when each endpoint is created: wait for IAM to propagate it.
        self._secrets_ready = propagation_wait(
            f"{self._name}-secrets-role", after=[policy_resource], triggers={"role": role.arn},
            seconds=self._args.iam_propagation_seconds, opts=self._child)
        return role

    def _endpoint(self, kind: str, engine: str, database_name: str | None, secret_arn: pulumi.Input[str],
                  role: aws.iam.Role, settings: Mapping[str, Any] | None) -> aws.dms.Endpoint:
        args = self._args
        return aws.dms.Endpoint(
            f"{self._name}-{kind}-endpoint",
            endpoint_id=self._namer.dms(kind),
            endpoint_type=kind,
            engine_name=engine,
            # MySQL endpoints address schemas through the table mappings; PostgreSQL connects to one database.
            database_name=database_name if engine in POSTGRES_ENGINES else None,
            secrets_manager_arn=secret_arn,
            secrets_manager_access_role_arn=role.arn,
            ssl_mode=args.ssl_mode,
            certificate_arn=args.certificate_arn,
            kms_key_arn=self.kms_key_arn,
            **(endpoint_settings(engine, settings) if settings else {}),
            # DMS checks the role when the endpoint is created: the grant must exist and have propagated.
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._secrets_ready),
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "replication_instance_arn": self.replication_instance_arn,
            "source_endpoint_arn": self.source_endpoint_arn,
            "target_endpoint_arn": self.target_endpoint_arn,
            "replication_task_arn": self.replication_task_arn,
            "replication_config_arn": self.replication_config_arn,
            "serverless": self.serverless,
            "target_address": self.target_address,
            "target_port": self.target_port,
            "target_identifier": self.target_identifier,
            "target_arn": self.target_arn,
            "source_engine": self.source_engine,
            "source_server_name": self.source_server_name,
            "source_port": self.source_port,
            "source_database_name": self.source_database_name,
            "source_secret_arn": self.source_secret_arn,
            "target_secret_arn": self.target_secret_arn,
            "secrets_access_role_arn": self.secrets_access_role_arn,
            "security_group_id": self.security_group_id,
            "target_security_group_id": self.target_security_group_id,
            "kms_key_arn": self.kms_key_arn,
            "service_roles": self.service_role_names,
            "table_mappings": self.table_mappings_json,
        }
