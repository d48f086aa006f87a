"""RDS and Aurora: storage and snapshot encryption, TLS, IAM authentication, RDS Proxy, durability, logs.

AWS behaviour each rule relies on (API reference unless noted):
- A read replica has its source's encryption; an encrypted replica of an unencrypted source cannot be
  created (CreateDBInstanceReadReplica, KmsKeyId). Its IAM-auth flag is its own
  (EnableIAMDatabaseAuthentication is a CreateDBInstanceReadReplica parameter).
- A cluster restored from a snapshot is encrypted with ``KmsKeyId`` when one is given, even from an unencrypted
  snapshot (Aurora User Guide, "Limitations of Amazon Aurora encrypted DB clusters"), otherwise with the
  snapshot's key or not at all (RestoreDBClusterFromSnapshot, KmsKeyId). A point-in-time restore (or clone) of
  an unencrypted cluster with KmsKeyId is rejected (RestoreDBClusterToPointInTime, KmsKeyId). An instance
  restore takes the snapshot's or source instance's encryption.
- CopyDBSnapshot with KmsKeyId encrypts the copy, even of an unencrypted snapshot; without it "the copy of the DB
  snapshot is encrypted with the same KMS key as the source DB snapshot" (CopyDBSnapshot, KmsKeyId). A DB
  *cluster* snapshot cannot be encrypted by copying: KmsKeyId on an unencrypted one is an error
  (CopyDBClusterSnapshot, KmsKeyId). So a copy is judged from its source whenever it names no key
  (checkov CKV_AWS_266 asks every aws_db_snapshot_copy for a key; this pack credits a source's CMK).
- StorageEncrypted defaults to false; with it and no KmsKeyId RDS uses the AWS managed key aws/rds
  (CreateDBInstance / CreateDBCluster, KmsKeyId). Performance Insights without a key uses aws/rds too.
- rds.force_ssl defaults to 1 for RDS for PostgreSQL 15 and later, 0 before (docs.aws.amazon.com,
  AmazonRDS/latest/UserGuide/ssl-certificate-rotation-postgresql.html) and 0 on Aurora PostgreSQL
  (repost.aws knowledge-center/aurora-postgresql-ssl-certificates); require_secure_transport defaults to
  OFF on MySQL, MariaDB and Aurora MySQL.
- IAM database authentication: MySQL, MariaDB, PostgreSQL instances, Aurora MySQL/PostgreSQL clusters and
  Multi-AZ DB clusters (engine mysql/postgres on a DB cluster).
- BackupRetentionPeriod defaults to 1 day, AutoMinorVersionUpgrade to true, CopyTagsToSnapshot, MultiAZ
  and DeletionProtection to false.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, Severity

from .inputs import (
    MISSING,
    UNKNOWN,
    as_list,
    as_number,
    boolean,
    engine_name,
    is_aws_managed_key,
    is_set,
    known,
    lookup,
    major_version,
    shown,
)
from .keys import customer_managed
from .rules import (
    DURABLE,
    EPHEMERAL,
    Anchor,
    NotApplicable,
    ResourceRule,
    StackCheck,
    StackFindings,
    StackIndex,
    StackReport,
    StackRule,
    Undetermined,
    judge_each,
    must_be_true,
)
from .tokens import (
    DYNAMODB_TABLE,
    RDS_CLUSTER,
    RDS_CLUSTER_INSTANCE,
    RDS_CLUSTER_PARAMETER_GROUP,
    RDS_CLUSTER_SNAPSHOT,
    RDS_CLUSTER_SNAPSHOT_COPY,
    RDS_INSTANCE,
    RDS_PARAMETER_GROUP,
    RDS_PROXY,
    RDS_SNAPSHOT,
    RDS_SNAPSHOT_COPY,
)

IAM_AUTH_INSTANCE_ENGINES = ("mysql", "mariadb", "postgres")
# Aurora clusters and Multi-AZ DB clusters (engine mysql/postgres on a DB cluster) both support IAM auth.
IAM_AUTH_CLUSTER_ENGINES = ("aurora-mysql", "aurora-postgresql", "mysql", "postgres")
SNAPSHOT_TYPES = (RDS_SNAPSHOT, RDS_SNAPSHOT_COPY, RDS_CLUSTER_SNAPSHOT, RDS_CLUSTER_SNAPSHOT_COPY)
DEFAULT_MIN_BACKUP_RETENTION_DAYS = 7
DEFAULT_LOG_TYPES: dict[str, list[str]] = {
    # Security Hub RDS.9 / AWS Config rds-logging-enabled: the log types each engine should publish.
    "postgres": ["postgresql", "upgrade"],
    "aurora-postgresql": ["postgresql"],
    "mysql": ["audit", "error", "general", "slowquery"],
    "mariadb": ["audit", "error", "general", "slowquery"],
    "aurora-mysql": ["audit", "error", "general", "slowquery"],
}


def is_replica(props: Mapping[str, Any]) -> bool:
    return is_set(lookup(props, "replicateSourceDb"))


# --------------------------------------------------------------------------- encryption, as AWS resolves it


@dataclass(frozen=True)
class Encryption:
    encrypted: bool
    key: Any  # the KMS key when encrypted: a key id/ARN/alias, MISSING (aws/rds) or UNKNOWN (inherited)
    why: str
    holder: PolicyResource | None = None  # the resource whose kmsKeyId names ``key``


def _own_storage(resource: PolicyResource) -> Encryption:
    value = boolean(resource.props, "storageEncrypted")
    if value is True:
        return Encryption(True, lookup(resource.props, "kmsKeyId"), "storageEncrypted is true", resource)
    if value is MISSING:
        return Encryption(False, MISSING, "storageEncrypted is not set (the RDS API default is unencrypted storage)")
    return Encryption(False, MISSING, "storageEncrypted is false")


class EncryptionResolver:
    """What encryption AWS gives each database and snapshot of the stack, following restores, replicas, copies."""

    def __init__(self, index: StackIndex) -> None:
        self.index = index
        self.memo: dict[str, Encryption] = {}

    def of(self, resource: PolicyResource, depth: int = 0) -> Encryption:
        """How AWS will encrypt ``resource``; ``Undetermined`` when that depends on something outside the plan."""
        if resource.urn not in self.memo:
            if depth > 20:
                raise Undetermined("the chain of sources is too long to follow", "storageEncrypted and kmsKeyId")
            self.memo[resource.urn] = self._resolve(resource, depth)
        return self.memo[resource.urn]

    def _source(self, resource: PolicyResource, types: tuple[str, ...], prop: str, source_prop: str, what: str,
                inherit: str, depth: int, key: Any = MISSING, prove: str = "kmsKeyId",
                key_encrypts: bool = False) -> Encryption:
        """The encryption ``resource`` takes from its source (named by its ``source_prop``), or from ``key``.

        ``key`` re-keys an encrypted source; with ``key_encrypts`` it also encrypts an unencrypted one.
        """
        identifier = lookup(resource.props, *source_prop.split("."))
        if identifier is UNKNOWN or identifier is MISSING:
            if key is not MISSING:
                return Encryption(True, key, f"{what} a source given by {source_prop}, with kmsKeyId", resource)
            if identifier is UNKNOWN:
                raise Undetermined(f"{source_prop} is not known yet, and {inherit}", preview=True)
            raise Undetermined(f"{source_prop} is not set, and {inherit}", prove)
        found = self.index.find(types, prop, identifier)
        if len(found) != 1:
            if key is not MISSING:
                return Encryption(True, key, f"{what} {identifier} with kmsKeyId", resource)
            raise Undetermined(f"{what} {identifier}, which is not in this stack, and {inherit}", prove)
        source = self.of(found[0], depth + 1)
        if key is not MISSING and (source.encrypted or key_encrypts):
            return Encryption(True, key, f"{what} {found[0].name} with kmsKeyId", resource)
        return Encryption(source.encrypted, source.key, f"{what} {found[0].name}, and {source.why}", source.holder)

    def _resolve(self, resource: PolicyResource, depth: int) -> Encryption:  # noqa: C901 - one branch per source kind
        props, kind = resource.props, resource.resource_type
        key = lookup(props, "kmsKeyId")
        if kind == RDS_INSTANCE:
            inherit = "RDS gives it the source's encryption"
            if is_set(lookup(props, "replicateSourceDb")):
                return self._source(resource, (RDS_INSTANCE,), "identifier", "replicateSourceDb", "read replica of",
                                    "a replica has its source's encryption", depth,
                                    prove="kmsKeyId with the source in this stack")
            if is_set(lookup(props, "snapshotIdentifier")):
                return self._source(resource, (RDS_SNAPSHOT, RDS_SNAPSHOT_COPY), "_snapshotId", "snapshotIdentifier",
                                    "restored from snapshot", inherit, depth,
                                    prove="snapshotIdentifier to a snapshot (or encrypted copy) of this stack")
            if is_set(lookup(props, "restoreToPointInTime")):
                return self._source(resource, (RDS_INSTANCE,), "identifier",
                                    "restoreToPointInTime.sourceDbInstanceIdentifier", "point-in-time restore of",
                                    inherit, depth, prove="the source instance in this stack")
            return _own_storage(resource)
        if kind == RDS_CLUSTER:
            inherit = "without kmsKeyId RDS gives it the source's encryption"
            if known(props, "engineMode") == "serverless":
                return Encryption(True, key, "Aurora Serverless v1 storage is always encrypted", resource)
            if is_set(lookup(props, "snapshotIdentifier")):
                return self._source(resource, (RDS_CLUSTER_SNAPSHOT, RDS_CLUSTER_SNAPSHOT_COPY, RDS_SNAPSHOT,
                                               RDS_SNAPSHOT_COPY), "_snapshotId", "snapshotIdentifier",
                                    "restored from snapshot", inherit, depth, key, key_encrypts=True)
            if is_set(lookup(props, "restoreToPointInTime")):
                return self._source(resource, (RDS_CLUSTER,), "clusterIdentifier",
                                    "restoreToPointInTime.sourceClusterIdentifier",
                                    "point-in-time restore (or clone) of", inherit, depth, key)
            if is_set(lookup(props, "replicationSourceIdentifier")):
                return self._source(resource, (RDS_CLUSTER,), "clusterIdentifier", "replicationSourceIdentifier",
                                    "cross-region replica of", inherit, depth, key)
            return _own_storage(resource)
        if kind == RDS_SNAPSHOT:
            return self._source(resource, (RDS_INSTANCE,), "identifier", "dbInstanceIdentifier", "snapshot of",
                                "a snapshot has its instance's encryption", depth,
                                prove="dbInstanceIdentifier to an instance of this stack")
        if kind == RDS_CLUSTER_SNAPSHOT:
            return self._source(resource, (RDS_CLUSTER,), "clusterIdentifier", "dbClusterIdentifier", "snapshot of",
                                "a snapshot has its cluster's encryption", depth,
                                prove="dbClusterIdentifier to a cluster of this stack")
        if kind == RDS_SNAPSHOT_COPY:
            if is_set(key):
                return Encryption(True, key, "the copy is encrypted with its kmsKeyId", resource)
            return self._source(resource, (RDS_SNAPSHOT, RDS_SNAPSHOT_COPY), "_snapshotId",
                                "sourceDbSnapshotIdentifier", "copy of",
                                "without kmsKeyId a copy keeps its source's encryption", depth)
        if kind == RDS_CLUSTER_SNAPSHOT_COPY:
            # A cluster snapshot cannot be encrypted by copying: with kmsKeyId, copying an unencrypted one is
            # an error, so a copy with kmsKeyId of an outside source is encrypted with it if it exists at all.
            return self._source(resource, (RDS_CLUSTER_SNAPSHOT, RDS_CLUSTER_SNAPSHOT_COPY), "_snapshotId",
                                "sourceDbClusterSnapshotIdentifier", "copy of",
                                "without kmsKeyId a cluster snapshot copy keeps its source's encryption", depth,
                                key if is_set(key) else MISSING)
        raise NotApplicable(f"{kind} has no storage")


_SNAPSHOT_ID_PROPS = {
    RDS_SNAPSHOT: "dbSnapshotIdentifier",
    RDS_SNAPSHOT_COPY: "targetDbSnapshotIdentifier",
    RDS_CLUSTER_SNAPSHOT: "dbClusterSnapshotIdentifier",
    RDS_CLUSTER_SNAPSHOT_COPY: "targetDbClusterSnapshotIdentifier",
}


def _index_snapshot_ids(index: StackIndex) -> None:
    """Snapshots are named by a different property per type; index them under one key, ``_snapshotId``."""
    from .inputs import last_arn_part

    for types in ((RDS_SNAPSHOT, RDS_SNAPSHOT_COPY),
                  (RDS_CLUSTER_SNAPSHOT, RDS_CLUSTER_SNAPSHOT_COPY, RDS_SNAPSHOT, RDS_SNAPSHOT_COPY),
                  (RDS_CLUSTER_SNAPSHOT, RDS_CLUSTER_SNAPSHOT_COPY)):
        table: dict[str, list[PolicyResource]] = {}
        for resource in index.of(*types):
            value = lookup(resource.props, _SNAPSHOT_ID_PROPS[resource.resource_type])
            if isinstance(value, str) and value:
                table.setdefault(last_arn_part(value), []).append(resource)
        index._by_key[(types, "_snapshotId")] = table


def resolver(index: StackIndex) -> EncryptionResolver:
    _index_snapshot_ids(index)
    return EncryptionResolver(index)


def _encrypted_check(types: tuple[str, ...], what: str) -> StackCheck:
    """A stack check that every resource of ``types`` is encrypted (its own flag or what it inherits)."""
    def check(index: StackIndex, config: Mapping[str, Any], report: StackReport, findings: StackFindings) -> None:
        resolve = resolver(index)

        def judge(resource: PolicyResource) -> None:
            state = resolve.of(resource)
            if not state.encrypted:
                report(f"unencrypted {what}: {state.why}", resource)

        judge_each(index.of(*types), config, findings, judge)
    return check


_check_storage_encrypted = _encrypted_check((RDS_INSTANCE, RDS_CLUSTER), "storage")
_check_snapshot_encrypted = _encrypted_check(SNAPSHOT_TYPES, "snapshot")


def _judge_key(state: Encryption, resource: PolicyResource, report: StackReport) -> None:
    """Report an encrypted resource whose key (its own or its source's) is AWS managed."""
    if state.key is MISSING:
        report(f"encrypted with the AWS managed key aws/rds ({state.why}, no kmsKeyId)", resource)
    elif not customer_managed(state.key, state.holder, "kmsKeyId"):
        whose = "" if state.holder is resource else f" ({state.why})"
        report(f"kmsKeyId {state.key} is an AWS managed key, not a customer-managed one{whose}", resource)


def _cmk_check(types: tuple[str, ...]) -> StackCheck:
    """A stack check that every encrypted resource of ``types`` ends up under a customer-managed key, its own or
    the one it keeps from its source (an unencrypted one is rds-storage-encrypted's / rds-snapshot-encrypted's)."""
    def check(index: StackIndex, config: Mapping[str, Any], report: StackReport, findings: StackFindings) -> None:
        resolve = resolver(index)

        def judge(resource: PolicyResource) -> None:
            state = resolve.of(resource)
            if state.encrypted:
                _judge_key(state, resource, report)

        judge_each(index.of(*types), config, findings, judge)
    return check


_check_storage_cmk = _cmk_check((RDS_INSTANCE, RDS_CLUSTER))
# CopyDBSnapshot / CopyDBClusterSnapshot without KmsKeyId: the copy keeps the source's key.
_check_copy_cmk = _cmk_check((RDS_SNAPSHOT_COPY, RDS_CLUSTER_SNAPSHOT_COPY))


# --------------------------------------------------------------------------- TLS at the database

_FORCE_SSL = "rds.force_ssl"
_SECURE_TRANSPORT = "require_secure_transport"
_ON = {"1", "on", "true"}


def _tls_parameter(engine: str) -> str | None:
    if engine in ("postgres", "aurora-postgresql") or engine.startswith("sqlserver"):
        return _FORCE_SSL
    if engine in ("mysql", "mariadb", "aurora-mysql"):
        return _SECURE_TRANSPORT
    return None


def _default_tls(engine: str, version: Any, family: Any = MISSING) -> tuple[bool, str]:
    """Whether the engine's default parameter group forces TLS, and how we know."""
    if engine == "postgres":
        major = major_version(version)
        if major is None and isinstance(family, str):
            major = major_version(family.removeprefix("postgres"))
        if major is None:
            raise Undetermined("engineVersion is not set: rds.force_ssl defaults to 1 from PostgreSQL 15, "
                               "0 before, and the version RDS picks is not known offline",
                               "engineVersion, or a parameter group with rds.force_ssl=1,")
        on = major >= 15
        return on, f"RDS for PostgreSQL {major} defaults rds.force_ssl to {1 if on else 0}"
    if engine == "aurora-postgresql":
        return False, "Aurora PostgreSQL defaults rds.force_ssl to 0"
    if engine.startswith("sqlserver"):
        return False, "RDS for SQL Server defaults rds.force_ssl to 0"
    return False, f"{engine} defaults require_secure_transport to OFF"


def _engine_of(resource: PolicyResource, index: StackIndex) -> tuple[str, Any]:
    engine = engine_name(known(resource.props, "engine"))
    version = lookup(resource.props, "engineVersion")
    if engine is MISSING and resource.resource_type == RDS_INSTANCE and is_replica(resource.props):
        sources = index.find((RDS_INSTANCE,), "identifier", lookup(resource.props, "replicateSourceDb"))
        if len(sources) == 1:
            return _engine_of(sources[0], index)
    if not isinstance(engine, str):
        raise Undetermined("engine is not set (inherited from a source outside this stack), so the TLS parameter "
                           "and its default are not known", "engine")
    return engine, version


def _check_tls(index: StackIndex, config: Mapping[str, Any], report: StackReport, findings: StackFindings) -> None:
    def judge(resource: PolicyResource) -> None:
        engine, version = _engine_of(resource, index)
        parameter = _tls_parameter(engine)
        if parameter is None:
            return  # Oracle and Db2 configure TLS through option groups / their own settings
        cluster = resource.resource_type == RDS_CLUSTER
        group_prop = "dbClusterParameterGroupName" if cluster else "parameterGroupName"
        group_type = RDS_CLUSTER_PARAMETER_GROUP if cluster else RDS_PARAMETER_GROUP
        name = lookup(resource.props, group_prop)
        group = _parameter_group(resource, index, group_type, name)
        if group is None:
            if name is UNKNOWN:
                raise Undetermined(f"{group_prop} is not known yet", preview=True)
            if is_set(name) and not str(name).lower().startswith("default."):
                raise Undetermined(f"parameter group {name} is not in this stack, so its {parameter} is not known",
                                   f"{group_prop} to a parameter group of this stack")
            on, why = _default_tls(engine, version)
            if not on:
                where = f"the default parameter group ({group_prop} is not set)" if not is_set(name) else name
                report(f"{parameter} is not on: {resource.name} uses {where}, and {why}", resource)
            return
        value = _parameter_value(group, parameter)
        if value is UNKNOWN:
            raise Undetermined(f"{parameter} in {group.name} is not known yet", preview=True)
        if value is MISSING:
            on, why = _default_tls(engine, version, lookup(group.props, "family"))
            if not on:
                report(f"{parameter} is not set in parameter group {group.name}, and {why}", resource)
        elif str(value).strip().lower() not in _ON:
            report(f"parameter group {group.name} sets {parameter}={value}", resource)

    judge_each(index.of(RDS_INSTANCE, RDS_CLUSTER), config, findings, judge)


def _parameter_group(resource: PolicyResource, index: StackIndex, group_type: str, name: Any) -> PolicyResource | None:
    if isinstance(name, str) and name:
        found = index.find((group_type,), "name", name)
        return found[0] if len(found) == 1 else None
    if name is UNKNOWN:  # a generated name: the dependency says which group it is
        groups = [d for d in resource.dependencies if d.resource_type == group_type]
        return groups[0] if len(groups) == 1 else None
    return None


def _parameter_value(group: PolicyResource, parameter: str) -> Any:
    for entry in as_list(lookup(group.props, "parameters")):
        entry_name = lookup(entry, "name")
        if isinstance(entry_name, str) and entry_name.strip().lower() == parameter:
            value = lookup(entry, "value")
            return value if value is not MISSING else ""
    return MISSING


# --------------------------------------------------------------------------- resource rules


def _iam_auth_applies(props: Mapping[str, Any], resource_type: str) -> None:
    engine = engine_name(known(props, "engine"))
    if engine is MISSING:
        return  # restored or a replica: the engine is inherited; the IAM-auth flag is still this resource's own
    allowed = IAM_AUTH_CLUSTER_ENGINES if resource_type == RDS_CLUSTER else IAM_AUTH_INSTANCE_ENGINES
    if engine not in allowed:
        raise NotApplicable(f"engine {engine} has no IAM database authentication (judged: {', '.join(allowed)})")


_check_iam_auth = must_be_true("iamDatabaseAuthenticationEnabled", default="the RDS API default is false")


def _check_proxy_iam(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    scheme = known(props, "defaultAuthScheme")
    if isinstance(scheme, str) and scheme.upper() == "IAM_AUTH":
        return []  # end-to-end IAM: clients and the proxy both authenticate with IAM
    auths = known(props, "auths")
    entries = as_list(auths)
    if not entries:
        return ["the proxy has no auths entry and does not use end-to-end IAM (defaultAuthScheme IAM_AUTH)"]
    problems = []
    for index, _entry in enumerate(entries):
        iam_auth = known(auths, index, "iamAuth")
        if not (isinstance(iam_auth, str) and iam_auth.upper() == "REQUIRED"):
            text = "not set (the API default is DISABLED)" if iam_auth is MISSING else shown(iam_auth)
            problems.append(f"auths[{index}].iamAuth is {text}")
    return problems


_check_proxy_tls = must_be_true("requireTls", default="the API default is false")


def _check_not_serverless_v1(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    mode = known(props, "engineMode")
    if isinstance(mode, str) and mode.lower() == "serverless":
        return ["engineMode is 'serverless' (Aurora Serverless v1, end of life 2025-03-31)"]
    return []


def _check_not_public(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    return ["publiclyAccessible is true"] if boolean(props, "publiclyAccessible") is True else []


def _check_snapshot_not_public(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    shared = known(props, "sharedAccounts")
    accounts = [str(a).strip().lower() for a in as_list(shared) if isinstance(a, str)]
    return ["sharedAccounts contains \"all\": anyone in any AWS account can restore it"] if "all" in accounts else []


def _performance_insights_on(props: Mapping[str, Any], _type: str) -> None:
    value = boolean(props, "performanceInsightsEnabled")
    if value is not True:
        raise NotApplicable("Performance Insights is off" + (" (the API default)" if value is MISSING else ""))


def _check_pi_key(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    key = lookup(props, "performanceInsightsKmsKeyId")
    if not is_set(key):
        return ["performanceInsightsKmsKeyId is not set: RDS encrypts Performance Insights data with the AWS "
                "managed key aws/rds"]
    if is_aws_managed_key(key):
        return [f"performanceInsightsKmsKeyId {key} is an AWS managed key"]
    return []


def _flag_check(prop: str, default: bool, meaning: str) -> Any:
    """A check that a boolean property is true, with the API default applied when it is absent."""
    def check(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
        value = boolean(props, prop)
        if value is MISSING:
            return [] if default else [f"{prop} is not set (the API default is false): {meaning}"]
        return [] if value else [f"{prop} is false: {meaning}"]
    return check


def _not_a_replica(reason: str) -> Any:
    def applies(props: Mapping[str, Any], resource_type: str) -> None:
        if resource_type == RDS_INSTANCE and is_replica(props):
            raise NotApplicable(f"read replica: {reason}")
    return applies


def _check_backup_retention(props: Mapping[str, Any], config: Mapping[str, Any], _type: str) -> list[str]:
    minimum = int(config.get("minBackupRetentionDays", DEFAULT_MIN_BACKUP_RETENTION_DAYS))
    value = known(props, "backupRetentionPeriod")
    if value is MISSING:
        return [f"backupRetentionPeriod is not set: the API default is 1 day, below {minimum}"] if minimum > 1 else []
    days = as_number(value)
    if days is None:
        return [f"backupRetentionPeriod is {shown(value)}, which is not a number of days"]
    return [f"backupRetentionPeriod is {shown(value)} day(s), below {minimum}"] if days < minimum else []


def _multi_az_applies(props: Mapping[str, Any], resource_type: str) -> None:
    _not_a_replica("a replica's availability follows its own Multi-AZ setting only on some engines")(props,
                                                                                                      resource_type)
    engine = engine_name(known(props, "engine"))
    if engine == "sqlserver-ex":
        raise NotApplicable("SQL Server Express has no Multi-AZ deployment")


def _check_log_exports(props: Mapping[str, Any], config: Mapping[str, Any], _type: str) -> list[str]:
    engine = engine_name(known(props, "engine"))
    required_by_engine = {**DEFAULT_LOG_TYPES, **(config.get("requiredLogTypes") or {})}
    if not isinstance(engine, str):
        raise Undetermined("engine is not set (inherited), so its log types are not known", "engine")
    required = [str(t).lower() for t in required_by_engine.get(engine, [])]
    if not required:
        raise NotApplicable(f"no log types are required for engine {engine}")
    exported = {str(t).lower() for t in as_list(known(props, "enabledCloudwatchLogsExports")) if isinstance(t, str)}
    missing = [t for t in required if t not in exported]
    if not missing:
        return []
    return [f"enabledCloudwatchLogsExports lacks {', '.join(missing)} (exported: "
            f"{', '.join(sorted(exported)) or 'none, the API default'})"]


def _check_teardown(props: Mapping[str, Any], _config: Mapping[str, Any], resource_type: str) -> list[str]:
    if resource_type == DYNAMODB_TABLE:
        if boolean(props, "deletionProtectionEnabled") is True:
            return ["deletionProtectionEnabled is true, so the stack cannot be destroyed (stack is ephemeral)"]
        return []
    problems = []
    if boolean(props, "deletionProtection") is True:
        problems.append("deletionProtection is true, so the stack cannot be destroyed (stack is ephemeral)")
    replica = resource_type == RDS_INSTANCE and is_replica(props)
    if not replica and boolean(props, "skipFinalSnapshot") is not True:
        problems.append("skipFinalSnapshot is not true (the API default is false), so destroy leaves or waits on "
                        "a final snapshot (stack is ephemeral)")
    return problems


_ENCRYPTION_FIX = (
    "set storage_encrypted=True with kms_key_id of a customer-managed key; encryption is fixed at creation, "
    "so an existing database moves by snapshot -> encrypted copy -> restore (recipe encrypt-existing)"
)
_CMK_FIX = "set kms_key_id to a customer-managed KMS key ARN (the stack's key), not aws/rds"
_DATABASES = (RDS_INSTANCE, RDS_CLUSTER)

RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "rds-iam-authentication-enabled",
        "MySQL, MariaDB and PostgreSQL databases (instances, replicas, Aurora and Multi-AZ DB clusters) must "
        "enable IAM database authentication.",
        _DATABASES, _check_iam_auth,
        "set iam_database_authentication_enabled=True and grant rds-db:connect per database user (recipe iam-auth)",
        EnforcementLevel.MANDATORY,
        Anchor("rds-instance-iam-authentication-enabled, rds-cluster-iam-authentication-enabled",
               "RDS.10, RDS.12", "CKV_AWS_161, CKV_AWS_162"),
        applies=_iam_auth_applies,
    ),
    ResourceRule(
        "rds-snapshot-not-public",
        "RDS snapshots and cluster snapshots must not be shared publicly (sharedAccounts \"all\").",
        SNAPSHOT_TYPES, _check_snapshot_not_public,
        "remove \"all\" from shared_accounts; share with named account ids only",
        EnforcementLevel.MANDATORY, Anchor("rds-snapshots-public-prohibited", "RDS.1", "—"),
        severity=Severity.CRITICAL,
    ),
    ResourceRule(
        "rds-performance-insights-cmk",
        "Performance Insights, when on, must be encrypted with a customer-managed KMS key.",
        (RDS_INSTANCE, RDS_CLUSTER, RDS_CLUSTER_INSTANCE), _check_pi_key,
        "set performance_insights_kms_key_id to the stack's customer-managed key",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "CKV_AWS_354"),
        applies=_performance_insights_on,
    ),
    ResourceRule(
        "rds-proxy-iam-auth-required",
        "RDS Proxy must require IAM authentication from clients.",
        (RDS_PROXY,), _check_proxy_iam,
        "set iam_auth='REQUIRED' on every auths entry, or default_auth_scheme='IAM_AUTH' for end-to-end IAM",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "rds-proxy-tls-required",
        "RDS Proxy must require TLS (requireTls: true).",
        (RDS_PROXY,), _check_proxy_tls,
        "set require_tls=True on the proxy (IAM authentication tokens need TLS anyway)",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "aurora-serverless-v1-retired",
        "Aurora Serverless v1 (engineMode: serverless) reached end of life on 2025-03-31.",
        (RDS_CLUSTER,), _check_not_serverless_v1,
        "use engine_mode='provisioned' with serverlessv2_scaling_configuration and db.serverless cluster instances "
        "(recipe aurora-serverless)",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "rds-no-public-access",
        "RDS instances and Aurora cluster instances should not be publicly accessible.",
        (RDS_INSTANCE, RDS_CLUSTER_INSTANCE), _check_not_public,
        "set publicly_accessible=False and reach the database from inside the VPC (or through RDS Proxy)",
        EnforcementLevel.ADVISORY, Anchor("rds-instance-public-access-check", "RDS.2", "CKV_AWS_17"),
        severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "rds-deletion-protection",
        "Databases of durable stacks should have deletion protection.",
        _DATABASES,
        _flag_check("deletionProtection", False, "a delete call removes the database"),
        "set deletion_protection=True on durable stacks",
        EnforcementLevel.ADVISORY,
        Anchor("rds-instance-deletion-protection-enabled, rds-cluster-deletion-protection-enabled", "RDS.8, RDS.7",
               "CKV_AWS_293, CKV_AWS_139"),
        severity=Severity.MEDIUM, scope=DURABLE,
    ),
    ResourceRule(
        "rds-backup-retention",
        "Databases of durable stacks should keep automated backups for at least minBackupRetentionDays (7).",
        _DATABASES, _check_backup_retention,
        "set backup_retention_period to at least the minimum (1..35 days)",
        EnforcementLevel.ADVISORY,
        Anchor("db-instance-backup-enabled, aurora-resources-protected-by-backup-plan", "RDS.11, RDS.26",
               "CKV_AWS_133"),
        applies=_not_a_replica("automated backups of a replica are its source's"),
        severity=Severity.MEDIUM, scope=DURABLE,
        extra_schema={"minBackupRetentionDays": {"type": "integer", "minimum": 1, "maximum": 35,
                                                 "default": DEFAULT_MIN_BACKUP_RETENTION_DAYS,
                                                 "description": "The least backup retention, in days."}},
    ),
    ResourceRule(
        "rds-multi-az",
        "RDS instances of durable stacks should be Multi-AZ.",
        (RDS_INSTANCE,),
        _flag_check("multiAz", False, "one Availability Zone failure takes the database down"),
        "set multi_az=True on durable stacks",
        EnforcementLevel.ADVISORY, Anchor("rds-multi-az-support", "RDS.5", "CKV_AWS_157"),
        applies=_multi_az_applies, severity=Severity.MEDIUM, scope=DURABLE,
    ),
    ResourceRule(
        "rds-auto-minor-version-upgrade",
        "RDS instances, cluster instances and Multi-AZ DB clusters should take minor version upgrades automatically.",
        (RDS_INSTANCE, RDS_CLUSTER_INSTANCE, RDS_CLUSTER),
        _flag_check("autoMinorVersionUpgrade", True, "security patches wait for a manual upgrade"),
        "leave auto_minor_version_upgrade at its default (true) or set it to True",
        EnforcementLevel.ADVISORY,
        Anchor("rds-automatic-minor-version-upgrade-enabled", "RDS.13, RDS.35", "CKV_AWS_226"),
        severity=Severity.LOW,
    ),
    ResourceRule(
        "rds-log-exports",
        "Databases should export their engine's logs to CloudWatch Logs (requiredLogTypes per engine).",
        _DATABASES, _check_log_exports,
        "set enabled_cloudwatch_logs_exports to the engine's log types (PostgreSQL: postgresql, upgrade; "
        "MySQL/MariaDB: audit, error, general, slowquery)",
        EnforcementLevel.ADVISORY,
        Anchor("rds-logging-enabled", "RDS.9, RDS.34", "CKV_AWS_129, CKV_AWS_324"),
        severity=Severity.LOW,
        extra_schema={"requiredLogTypes": {"type": "object",
                                           "description": "Engine -> the log types it must export.",
                                           "default": DEFAULT_LOG_TYPES}},
    ),
    ResourceRule(
        "rds-copy-tags-to-snapshot",
        "Databases should copy their tags to snapshots.",
        _DATABASES,
        _flag_check("copyTagsToSnapshot", False, "snapshots lose the owner, cost and data tags"),
        "set copy_tags_to_snapshot=True",
        EnforcementLevel.ADVISORY,
        Anchor("rds-instance-copy-tags-to-snapshots-enabled", "RDS.17, RDS.16", "CKV2_AWS_60, CKV_AWS_313"),
        applies=_not_a_replica("a replica's snapshots are not taken"), severity=Severity.LOW,
    ),
    ResourceRule(
        "ephemeral-teardown-safe",
        "Databases and tables of an ephemeral stack must be destroyable (no deletion protection, no final snapshot).",
        (RDS_INSTANCE, RDS_CLUSTER, DYNAMODB_TABLE), _check_teardown,
        "ephemeral stacks: deletion_protection=False (DynamoDB: deletion_protection_enabled=False) and "
        "skip_final_snapshot=True",
        EnforcementLevel.ADVISORY, severity=Severity.MEDIUM, scope=EPHEMERAL,
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "rds-storage-encrypted",
        "RDS instances and clusters must encrypt their storage, as AWS resolves it through replicas and restores.",
        _check_storage_encrypted, _ENCRYPTION_FIX, EnforcementLevel.MANDATORY,
        Anchor("rds-storage-encrypted, rds-cluster-encrypted-at-rest", "RDS.3, RDS.27", "CKV_AWS_16, CKV_AWS_96"),
        severity=Severity.CRITICAL,
    ),
    StackRule(
        "rds-storage-cmk",
        "Durable stacks: RDS storage must be encrypted with a customer-managed KMS key, not aws/rds.",
        _check_storage_cmk, _CMK_FIX, EnforcementLevel.MANDATORY,
        Anchor("—", "—", "CKV_AWS_327 (clusters)"), severity=Severity.HIGH, scope=DURABLE,
    ),
    StackRule(
        "rds-storage-cmk-ephemeral",
        "Ephemeral stacks: RDS storage should be encrypted with a customer-managed KMS key, not aws/rds.",
        _check_storage_cmk, _CMK_FIX, EnforcementLevel.ADVISORY,
        Anchor("—", "—", "CKV_AWS_327 (clusters)"), scope=EPHEMERAL,
    ),
    StackRule(
        "rds-snapshot-encrypted",
        "RDS snapshots, cluster snapshots and their copies must be encrypted.",
        _check_snapshot_encrypted,
        "snapshot an encrypted database, or copy the snapshot with kms_key_id (DB snapshots only)",
        EnforcementLevel.MANDATORY, Anchor("rds-snapshot-encrypted", "RDS.4", "CKV_AWS_266"),
        severity=Severity.CRITICAL,
    ),
    StackRule(
        "rds-snapshot-copy-cmk",
        "RDS snapshot and cluster snapshot copies must be encrypted with a customer-managed KMS key (a copy "
        "without kmsKeyId keeps its source's key).",
        _check_copy_cmk,
        "set kms_key_id on the copy to the stack's customer-managed key (or copy a snapshot that already has one)",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "CKV_AWS_266"), severity=Severity.HIGH,
    ),
    StackRule(
        "rds-tls-enforced",
        "Databases must refuse plaintext connections: rds.force_ssl (PostgreSQL) / require_secure_transport "
        "(MySQL, MariaDB) on in the parameter group they use.",
        _check_tls,
        "use a parameter group (cluster parameter group for Aurora and Multi-AZ clusters) with rds.force_ssl=1 "
        "or require_secure_transport=1",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "CKV2_AWS_69"),
    ),
)
