"""The db-recipes CrossGuard policies: storage encryption and IAM database authentication you cannot forget.

This module is the whole pack; ``__main__.py`` only wraps ``POLICIES`` in a
``PolicyPack``. It imports nothing of the project: the Pulumi CLI runs it in
the pack's own virtualenv (``requirements.txt``), and ``dbenv policy check``
starts it as a separate process and talks to it over the analyzer protocol.

Conventions every policy follows:

- Properties are judged by their raw (camelCase) names, as the engine sends
  them, so a policy behaves the same under ``pulumi preview`` and offline.
- A value that is set but unknown during preview is *set*: presence checks
  pass. A check that needs the value itself reads it through the SDK's
  unknown-checking proxy, which turns it into the SDK's advisory
  "can't be known during preview" diagnostic; the update checks it again
  with the real value.
- Exemptions are configuration: every policy accepts
  ``exemptions: [{"resource": <logical name>, "reason": <why>}]``. An exempted
  resource is never judged and never silently passed: it is reported through
  the protocol's not-applicable channel as ``exempted <name>: <reason>``.
- "Not applicable" (a read replica, an engine without IAM auth, ...) is also
  reported, with the reason.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_NAME = "db-recipes-guard"
PACK_DESCRIPTION = "db-recipes: encrypted storage, IAM database authentication and safe teardown for AWS databases"

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
RDS_CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
RDS_SNAPSHOT_COPY = "aws:rds/snapshotCopy:SnapshotCopy"
RDS_PROXY = "aws:rds/proxy:Proxy"
DYNAMODB_TABLE = "aws:dynamodb/table:Table"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
DMS_REPLICATION_INSTANCE = "aws:dms/replicationInstance:ReplicationInstance"
DMS_ENDPOINT = "aws:dms/endpoint:Endpoint"
KMS_KEY = "aws:kms/key:Key"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
IAM_POLICY_DOCUMENT_TYPES = {
    "aws:iam/policy:Policy": "policy",
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
IAM_ROLE = "aws:iam/role:Role"

IAM_AUTH_INSTANCE_ENGINES = ("mysql", "mariadb", "postgres")
IAM_AUTH_CLUSTER_ENGINES = ("aurora-mysql", "aurora-postgresql")
# DMS endpoint engines that talk to AWS service APIs over HTTPS and have no sslMode of their own.
DMS_SERVICE_ENGINES = ("dynamodb", "s3", "kinesis", "kafka", "opensearch", "elasticsearch", "neptune")
# Actions that read database data or credentials; granting them on "*" defeats least privilege.
SENSITIVE_DATA_ACTIONS = (
    "rds-db:connect",
    "rds-data:ExecuteStatement",
    "rds-data:BatchExecuteStatement",
    "rds-data:BeginTransaction",
    "rds-data:CommitTransaction",
    "rds-data:RollbackTransaction",
    "rds-data:ExecuteSql",
    "secretsmanager:GetSecretValue",
)
DEFAULT_MAX_ROTATION_DAYS = 30
DEFAULT_CREDENTIAL_NAME_PATTERNS = (
    r"(?i)(^|[-_/.!])(db|database|rds|aurora|mysql|mariadb|postgres|postgresql|admin|master)([-_/.]|$)",
)
DEFAULT_MIN_BACKUP_RETENTION_DAYS = 1
DEFAULT_EPHEMERAL_TAG = "ephemeral"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown during preview>"


MISSING: Any = _Missing()
UNKNOWN: Any = _Unknown()


# --------------------------------------------------------------------------- reading properties


def lookup(props: Any, *path: str | int) -> Any:
    """The value at ``path``; ``MISSING`` when absent or null, ``UNKNOWN`` when not known during preview."""
    current = props
    for key in path:
        try:
            current = current[key]
        except UnknownValueError:
            return UNKNOWN
        except (KeyError, IndexError, TypeError):
            return MISSING
        if current is None:
            return MISSING
    return current


def known(props: Any, *path: str | int) -> Any:
    """Like ``lookup`` but an unknown value raises the SDK's ``UnknownValueError``.

    Used where the verdict depends on the value itself: the SDK reports the
    policy as "can't run during preview" (advisory) instead of guessing.
    """
    current = props
    for key in path:
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
        if current is None:
            return MISSING
    return current


def is_set(value: Any) -> bool:
    """Set means present and non-empty; an unknown value is set (it will have a value)."""
    if value is UNKNOWN:
        return True
    if value is MISSING or value == "":
        return False
    if isinstance(value, (Sequence, Mapping)) and not isinstance(value, str):
        return len(value) > 0
    return True


def is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def is_aws_managed_key(key: Any) -> bool:
    """``aws/<service>`` aliases (bare, ``alias/``-prefixed or as an alias ARN) name AWS managed keys."""
    if not isinstance(key, str):
        return False
    alias = key.split(":alias/", 1)[1] if ":alias/" in key else key.removeprefix("alias/")
    return alias.startswith("aws/")


def shown(value: Any) -> str:
    """A property value for a message; numbers arrive as doubles, so 7.0 is shown as 7."""
    if value is MISSING:
        return "not set"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


def as_list(value: Any) -> list[Any]:
    if value is MISSING or value is UNKNOWN:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


# --------------------------------------------------------------------------- configuration


EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Resources (by logical name) this policy does not judge, each with the reason why.",
    "items": {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "minLength": 1},
            "reason": {"type": "string", "minLength": 1},
        },
        "required": ["resource", "reason"],
        "additionalProperties": False,
    },
    "default": [],
}


def config_schema(**properties: dict[str, Any]) -> PolicyConfigSchema:
    return PolicyConfigSchema(properties={"exemptions": EXEMPTIONS_SCHEMA, **properties})


def exemption_reason(config: Mapping[str, Any], resource_name: str) -> str | None:
    for entry in config.get("exemptions") or []:
        if isinstance(entry, Mapping) and entry.get("resource") == resource_name:
            return str(entry.get("reason") or "no reason given")
    return None


def exempted_note(resource_name: str, reason: str) -> str:
    return f"exempted {resource_name}: {reason}"


# --------------------------------------------------------------------------- resource policies


class NotApplicable(Exception):
    """Raised by a check's ``applies`` step: the policy does not judge this resource, for a reason."""


Check = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
Applies = Callable[[Mapping[str, Any], str], None]


def _always(_props: Mapping[str, Any], _resource_type: str) -> None:
    return None


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    types: tuple[str, ...]
    check: Check
    remediation: str
    level: EnforcementLevel
    applies: Applies = _always
    severity: Severity = Severity.HIGH
    extra_schema: dict[str, dict[str, Any]] = field(default_factory=dict)

    def policy(self) -> ResourceValidationPolicy:
        return ResourceValidationPolicy(
            name=self.name,
            description=self.description,
            validate=self.validate,
            enforcement_level=self.level,
            config_schema=config_schema(**self.extra_schema),
            severity=self.severity,
            remediation_steps=self.remediation,
        )

    def validate(self, args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in self.types:
            return
        config = args.get_config() or {}
        reason = exemption_reason(config, args.name)
        if reason is not None:
            args.not_applicable(exempted_note(args.name, reason))
        try:
            self.applies(args.props, args.resource_type)
        except NotApplicable as err:
            args.not_applicable(str(err))
        for problem in self.check(args.props, config):
            report_violation(f"{problem}\nRemediation: {self.remediation}", None)


def _not_a_replica(props: Mapping[str, Any], _resource_type: str = RDS_INSTANCE) -> None:
    if is_set(lookup(props, "replicateSourceDb")):
        raise NotApplicable("read replica: storage encryption and IAM authentication follow the source instance")


def _check_storage_encrypted(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    value = known(props, "storageEncrypted")
    if is_true(value):
        return []
    if value is MISSING:
        return ["storageEncrypted is not set (RDS creates unencrypted storage by default)"]
    return [f"storageEncrypted is {shown(value)}"]


def _check_snapshot_copy_key(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    if is_set(lookup(props, "kmsKeyId")):
        return []
    return ["kmsKeyId is not set: the copy keeps the source snapshot's (lack of) encryption"]


def _iam_auth_applies(props: Mapping[str, Any], resource_type: str) -> None:
    _not_a_replica(props)
    engine = known(props, "engine")
    if engine is MISSING:
        return  # restored from a snapshot: the engine is inherited, and our engines all support IAM auth
    allowed = IAM_AUTH_CLUSTER_ENGINES if resource_type == RDS_CLUSTER else IAM_AUTH_INSTANCE_ENGINES
    if str(engine) not in allowed:
        raise NotApplicable(f"engine {engine} has no IAM database authentication here (judged: {', '.join(allowed)})")


def _check_iam_auth(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    value = known(props, "iamDatabaseAuthenticationEnabled")
    if is_true(value):
        return []
    return [f"iamDatabaseAuthenticationEnabled is {shown(value)}"]


def _check_proxy_iam(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    if known(props, "defaultAuthScheme") == "IAM_AUTH":
        return []  # end-to-end IAM: clients and the proxy both authenticate with IAM
    auths = known(props, "auths")
    entries = as_list(auths)
    if not entries:
        return ["the proxy has no auths entry and does not use end-to-end IAM (defaultAuthScheme IAM_AUTH)"]
    problems = []
    for index, _entry in enumerate(entries):
        iam_auth = known(auths, index, "iamAuth")
        if iam_auth != "REQUIRED":
            text = "not set (DISABLED)" if iam_auth is MISSING else shown(iam_auth)
            problems.append(f"auths[{index}].iamAuth is {text}")
    return problems


def _check_proxy_tls(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    value = known(props, "requireTls")
    return [] if is_true(value) else [f"requireTls is {shown(value)}"]


def _check_dynamodb_kms(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    sse = lookup(props, "serverSideEncryption")
    if sse is MISSING:
        return ["serverSideEncryption is not set: the table uses an AWS owned key"]
    enabled = known(props, "serverSideEncryption", "enabled")
    if not is_true(enabled):
        return ["serverSideEncryption.enabled is not true: the table uses an AWS owned key"]
    key = lookup(props, "serverSideEncryption", "kmsKeyArn")
    if not is_set(key):
        return ["serverSideEncryption.kmsKeyArn is not set: the table uses the AWS managed key aws/dynamodb"]
    if is_aws_managed_key(key):
        return [f"serverSideEncryption.kmsKeyArn {key} is an AWS managed key"]
    return []


def _check_secret_cmk(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    key = lookup(props, "kmsKeyId")
    if not is_set(key):
        return ["kmsKeyId is not set: the secret uses the AWS managed key aws/secretsmanager"]
    if is_aws_managed_key(key):
        return [f"kmsKeyId {key} is an AWS managed key"]
    return []


def _check_dms_kms(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    return [] if is_set(lookup(props, "kmsKeyArn")) else ["kmsKeyArn is not set: storage uses the AWS managed key"]


def _check_dms_private(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    value = known(props, "publiclyAccessible")
    if is_false(value):
        return []
    if value is MISSING:
        return ["publiclyAccessible is not set, and the AWS default is a public replication instance"]
    return [f"publiclyAccessible is {shown(value)}"]


def _check_not_serverless_v1(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    mode = known(props, "engineMode")
    if mode == "serverless":
        return ["engineMode is 'serverless' (Aurora Serverless v1, end of life 2025-03-31)"]
    return []


def _check_not_public(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    value = known(props, "publiclyAccessible")
    return [f"publiclyAccessible is {shown(value)}"] if is_true(value) else []


def _symmetric_key(props: Mapping[str, Any], _resource_type: str) -> None:
    spec = known(props, "customerMasterKeySpec")
    usage = known(props, "keyUsage")
    if spec not in (MISSING, "SYMMETRIC_DEFAULT") or usage not in (MISSING, "ENCRYPT_DECRYPT"):
        raise NotApplicable(f"asymmetric or HMAC key ({spec if spec is not MISSING else usage}): AWS cannot rotate it")
    if is_set(lookup(props, "customKeyStoreId")) or is_set(lookup(props, "xksKeyId")):
        raise NotApplicable("key in a custom key store: AWS cannot rotate it automatically")


def _check_key_rotation(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    value = known(props, "enableKeyRotation")
    return [] if is_true(value) else [f"enableKeyRotation is {shown(value)}"]


def _dms_endpoint_applies(props: Mapping[str, Any], _resource_type: str) -> None:
    engine = known(props, "engineName")
    if engine in DMS_SERVICE_ENGINES:
        raise NotApplicable(f"engine {engine} is reached over the service's HTTPS API, not a database connection")


def _check_dms_ssl(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    mode = known(props, "sslMode")
    if mode is MISSING:
        return ["sslMode is not set, and the AWS default is none (plaintext)"]
    return ["sslMode is 'none' (plaintext)"] if mode == "none" else []


def _check_iam_documents(props: Mapping[str, Any], _config: Mapping[str, Any]) -> list[str]:
    documents: list[tuple[str, Any]] = [("policy", known(props, "policy"))]
    inline = lookup(props, "inlinePolicies")
    for index, _entry in enumerate(as_list(inline)):
        documents.append((f"inlinePolicies[{index}].policy", known(inline, index, "policy")))
    problems = []
    for where, document in documents:
        problems.extend(f"{where}: {p}" for p in wildcard_data_grants(document))
    return problems


def wildcard_data_grants(document: Any) -> list[str]:
    """Allow statements that grant a sensitive data action on ``Resource: "*"``."""
    if document is MISSING:
        return []
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []  # not ours to parse-check: IAM itself rejects malformed documents
    if not isinstance(document, Mapping):
        return []
    problems = []
    for index, statement in enumerate(as_list(document.get("Statement"))):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        on_everything = "*" in as_list(statement.get("Resource")) or "NotResource" in statement
        if not on_everything:
            continue
        granted = _granted_actions(statement)
        if granted:
            sid = statement.get("Sid")
            label = f"statement {sid!r}" if sid else f"Statement[{index}]"
            problems.append(f"{label} allows {', '.join(granted)} on Resource \"*\"")
    return problems


def _granted_actions(statement: Mapping[str, Any]) -> list[str]:
    if "NotAction" in statement:
        excluded = [str(a).lower() for a in as_list(statement["NotAction"])]
        return [a for a in SENSITIVE_DATA_ACTIONS if not any(fnmatch.fnmatchcase(a.lower(), p) for p in excluded)]
    patterns = [str(a).lower() for a in as_list(statement.get("Action"))]
    return [a for a in SENSITIVE_DATA_ACTIONS if any(fnmatch.fnmatchcase(a.lower(), p) for p in patterns)]


_ENCRYPTION_FIX = (
    "set storage_encrypted=True with kms_key_id of a customer-managed key; encryption is fixed at creation, "
    "so an existing database moves by snapshot -> encrypted copy -> restore (recipe encrypt-existing)"
)

RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "rds-storage-encrypted",
        "RDS instances and clusters must encrypt their storage (storageEncrypted: true).",
        (RDS_INSTANCE, RDS_CLUSTER),
        _check_storage_encrypted,
        _ENCRYPTION_FIX,
        EnforcementLevel.MANDATORY,
        applies=_not_a_replica,
        severity=Severity.CRITICAL,
    ),
    ResourceRule(
        "rds-snapshot-copy-encrypted",
        "RDS snapshot copies must be encrypted with a KMS key (kmsKeyId).",
        (RDS_SNAPSHOT_COPY,),
        _check_snapshot_copy_key,
        "set kms_key_id on the SnapshotCopy to a customer-managed KMS key ARN",
        EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
    ),
    ResourceRule(
        "rds-iam-authentication-enabled",
        "MySQL, MariaDB and PostgreSQL databases (RDS and Aurora) must enable IAM database authentication.",
        (RDS_INSTANCE, RDS_CLUSTER),
        _check_iam_auth,
        "set iam_database_authentication_enabled=True and grant rds-db:connect per database user (recipe iam-auth)",
        EnforcementLevel.MANDATORY,
        applies=_iam_auth_applies,
    ),
    ResourceRule(
        "rds-proxy-iam-auth-required",
        "RDS Proxy must require IAM authentication from clients.",
        (RDS_PROXY,),
        _check_proxy_iam,
        "set iam_auth='REQUIRED' on every auths entry, or default_auth_scheme='IAM_AUTH' for end-to-end IAM",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "rds-proxy-tls-required",
        "RDS Proxy must require TLS (requireTls: true).",
        (RDS_PROXY,),
        _check_proxy_tls,
        "set require_tls=True on the proxy (IAM authentication tokens need TLS anyway)",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "dynamodb-table-encrypted-kms",
        "DynamoDB tables must be encrypted with a customer-managed KMS key.",
        (DYNAMODB_TABLE,),
        _check_dynamodb_kms,
        "set server_side_encryption={'enabled': True, 'kms_key_arn': <customer-managed key ARN>}",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "secretsmanager-secret-encrypted-cmk",
        "Secrets Manager secrets must be encrypted with a customer-managed KMS key, not aws/secretsmanager.",
        (SECRET,),
        _check_secret_cmk,
        "set kms_key_id to a customer-managed KMS key ARN (an aws/ alias is an AWS managed key)",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "dms-replication-instance-encrypted",
        "DMS replication instances must encrypt their storage with a customer-managed KMS key (kmsKeyArn).",
        (DMS_REPLICATION_INSTANCE,),
        _check_dms_kms,
        "set kms_key_arn on the replication instance to a customer-managed KMS key ARN",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "dms-replication-instance-not-public",
        "DMS replication instances must be private (publiclyAccessible: false, stated explicitly).",
        (DMS_REPLICATION_INSTANCE,),
        _check_dms_private,
        "set publicly_accessible=False explicitly: the DMS API default is a public instance",
        EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
    ),
    ResourceRule(
        "aurora-serverless-v1-retired",
        "Aurora Serverless v1 (engineMode: serverless) reached end of life on 2025-03-31.",
        (RDS_CLUSTER,),
        _check_not_serverless_v1,
        "use engine_mode='provisioned' with serverlessv2_scaling_configuration and db.serverless cluster instances "
        "(recipe aurora-serverless)",
        EnforcementLevel.MANDATORY,
    ),
    ResourceRule(
        "rds-no-public-access",
        "RDS instances and Aurora cluster instances should not be publicly accessible.",
        (RDS_INSTANCE, RDS_CLUSTER_INSTANCE),
        _check_not_public,
        "set publicly_accessible=False and reach the database from inside the VPC (or through RDS Proxy)",
        EnforcementLevel.ADVISORY,
        severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "kms-key-rotation-enabled",
        "Symmetric KMS keys should rotate their key material automatically.",
        (KMS_KEY,),
        _check_key_rotation,
        "set enable_key_rotation=True on the key",
        EnforcementLevel.ADVISORY,
        applies=_symmetric_key,
        severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "dms-endpoint-ssl",
        "DMS endpoints should connect to their databases over SSL.",
        (DMS_ENDPOINT,),
        _check_dms_ssl,
        "set ssl_mode to 'require', 'verify-ca' or 'verify-full' (verify-* with certificate_arn)",
        EnforcementLevel.ADVISORY,
        applies=_dms_endpoint_applies,
        severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "iam-no-wildcard-data-access",
        "IAM policies should not grant database data or credential access on Resource \"*\".",
        (*IAM_POLICY_DOCUMENT_TYPES, IAM_ROLE),
        _check_iam_documents,
        "scope rds-db:connect to arn:aws:rds-db:<region>:<account>:dbuser:<resource-id>/<user>, rds-data:* to the "
        "cluster ARN and secretsmanager:GetSecretValue to the one secret ARN",
        EnforcementLevel.ADVISORY,
        severity=Severity.MEDIUM,
    ),
)


# --------------------------------------------------------------------------- stack policies


@dataclass
class StackFindings:
    """What a stack policy found besides violations: exemptions and values unknown during preview."""

    notes: list[str] = field(default_factory=list)

    def exempted(self, resource: PolicyResource, reason: str) -> None:
        self.notes.append(exempted_note(resource.name, reason))

    def undetermined(self, resource: PolicyResource, error: UnknownValueError) -> None:
        self.notes.append(f"undetermined {resource.name}: {error.message}; judged again at update")


StackCheck = Callable[[StackValidationArgs, Mapping[str, Any], ReportViolation, StackFindings], None]


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck
    remediation: str
    level: EnforcementLevel
    extra_schema: dict[str, dict[str, Any]] = field(default_factory=dict)

    def policy(self) -> StackValidationPolicy:
        return StackValidationPolicy(
            name=self.name,
            description=self.description,
            validate=self.validate,
            enforcement_level=self.level,
            config_schema=config_schema(**self.extra_schema),
            severity=Severity.MEDIUM,
            remediation_steps=self.remediation,
        )

    def validate(self, args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = args.get_config() or {}
        findings = StackFindings()

        def report(message: str, urn: str | None = None) -> None:
            report_violation(f"{message}\nRemediation: {self.remediation}", urn)

        try:
            self.check(args, config, report, findings)
        except NotApplicable as err:
            findings.notes.insert(0, str(err))
        if findings.notes:
            # The protocol has one not-applicable reason per stack policy; violations already
            # reported stay in the response, so exemptions are listed here, one per line.
            args.not_applicable("\n".join(findings.notes))


def judge_each(resources: Iterable[PolicyResource], config: Mapping[str, Any], findings: StackFindings,
               judge: Callable[[PolicyResource], None]) -> None:
    """Run ``judge`` per resource, honouring exemptions and isolating values unknown during preview."""
    for resource in resources:
        reason = exemption_reason(config, resource.name)
        if reason is not None:
            findings.exempted(resource, reason)
            continue
        try:
            judge(resource)
        except UnknownValueError as err:
            findings.undetermined(resource, err)


def _depends_on(resource: PolicyResource, target: PolicyResource) -> bool:
    if any(dep.urn == target.urn for dep in resource.dependencies):
        return True
    return any(dep.urn == target.urn for deps in resource.property_dependencies.values() for dep in deps)


def _references(resource: PolicyResource, target: PolicyResource) -> bool:
    """``resource`` depends on ``target`` or carries one of its known identifiers (arn, name)."""
    if _depends_on(resource, target):
        return True
    identifiers = {v for v in (lookup(target.props, "arn"), lookup(target.props, "name"))
                   if isinstance(v, str) and v}
    return bool(identifiers) and bool(identifiers & set(_strings(resource.props)))


def _strings(value: Any, depth: int = 0) -> Iterable[str]:
    if depth > 6:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key in value:
            yield from _strings(lookup(value, key), depth + 1)
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        for index in range(len(value)):
            yield from _strings(lookup(value, index), depth + 1)


def _rds_managed(secret: PolicyResource) -> bool:
    name = lookup(secret.props, "name")
    owner = lookup(secret.props, "tags", "aws:secretsmanager:owningService")
    return (isinstance(name, str) and name.startswith("rds!")) or owner == "rds"


def _is_db_credentials(secret: PolicyResource, resources: Sequence[PolicyResource], patterns: Sequence[str]) -> bool:
    for other in resources:
        if other.resource_type in (RDS_PROXY, DMS_ENDPOINT, RDS_INSTANCE, RDS_CLUSTER) and _references(other, secret):
            return True
        if other.resource_type == SECRET_VERSION and _references(other, secret) and _holds_password(other):
            return True
    names = [v for v in (lookup(secret.props, "name"), lookup(secret.props, "namePrefix")) if isinstance(v, str)]
    return any(re.search(pattern, name) for pattern in patterns for name in names)


def _holds_password(version: PolicyResource) -> bool:
    # The value itself is never echoed: only whether it has a password field, or comes from a generated password.
    if any(dep.resource_type == RANDOM_PASSWORD for dep in version.dependencies):
        return True
    text = lookup(version.props, "secretString")
    if not isinstance(text, str):
        return False
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "password" in parsed


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(day|days|hour|hours)\s*\)$")


def rotation_interval_days(rules: Any) -> float | None:
    """Days between rotations from ``rotationRules``; None when the schedule cannot be read."""
    days = known(rules, "automaticallyAfterDays")
    if isinstance(days, (int, float)) and not isinstance(days, bool) and days > 0:
        return float(days)
    expression = known(rules, "scheduleExpression")
    if not isinstance(expression, str):
        return None
    match = _RATE.match(expression.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return float(amount) if unit.startswith("day") else amount / 24
    return _cron_interval_days(expression.strip())


def _cron_interval_days(expression: str) -> float | None:
    if not (expression.startswith("cron(") and expression.endswith(")")):
        return None
    fields = expression[5:-1].split()
    if len(fields) != 6:
        return None
    _minutes, _hours, day_of_month, month, day_of_week, _year = fields
    if month not in ("*", "?"):
        return None  # some months only: longer than any sensible rotation period
    if day_of_month in ("*", "?") and day_of_week not in ("*", "?"):
        return 7.0  # weekly (or more often)
    if day_of_month in ("*", "?"):
        return 1.0
    if "/" in day_of_month:
        step = day_of_month.split("/", 1)[1]
        return float(step) if step.isdigit() else None
    return 31.0  # fixed day(s) of the month: up to a month apart


def _check_rotation(args: StackValidationArgs, config: Mapping[str, Any], report: ReportViolation,
                    findings: StackFindings) -> None:
    max_days = int(config.get("maxRotationDays", DEFAULT_MAX_ROTATION_DAYS))
    patterns = list(config.get("credentialNamePatterns", DEFAULT_CREDENTIAL_NAME_PATTERNS))
    resources = list(args.resources)
    rotations = [r for r in resources if r.resource_type == SECRET_ROTATION]

    def judge(secret: PolicyResource) -> None:
        if _rds_managed(secret):
            return  # RDS rotates the secrets it manages (every 7 days by default)
        own = [r for r in rotations if _references(r, secret)]
        if not own and not _is_db_credentials(secret, resources, patterns):
            return
        if not own:
            report("database credentials secret without a SecretRotation", secret.urn)
            return
        for rotation in own:
            if is_false(known(rotation.props, "rotationEnabled")):
                report(f"SecretRotation {rotation.name} has rotationEnabled false", secret.urn)
                continue
            days = rotation_interval_days(known(rotation.props, "rotationRules"))
            if days is None:
                report(f"SecretRotation {rotation.name} has no schedule that can be read "
                       f"(rotationRules.automaticallyAfterDays or a rate()/cron() scheduleExpression)", secret.urn)
            elif days > max_days:
                report(f"rotates every {days:g} days, more than {max_days}", secret.urn)

    judge_each([r for r in resources if r.resource_type == SECRET], config, findings, judge)


def _stack_is_ephemeral(args: StackValidationArgs, config: Mapping[str, Any]) -> bool:
    tag = str(config.get("tagName", DEFAULT_EPHEMERAL_TAG))
    value = args.stack_tags.get(tag)
    if value is None:
        raise NotApplicable(f"the stack has no {tag!r} tag: it is neither declared ephemeral nor durable")
    if value.lower() not in ("true", "false"):
        raise NotApplicable(f"the stack tag {tag}={value!r} is neither 'true' nor 'false'")
    return value.lower() == "true"


def _check_teardown(args: StackValidationArgs, config: Mapping[str, Any], report: ReportViolation,
                    findings: StackFindings) -> None:
    ephemeral = _stack_is_ephemeral(args, config)
    min_backup = int(config.get("minBackupRetentionDays", DEFAULT_MIN_BACKUP_RETENTION_DAYS))
    judged = (RDS_INSTANCE, RDS_CLUSTER, DYNAMODB_TABLE)

    def judge(resource: PolicyResource) -> None:
        problems = (_ephemeral_problems(resource) if ephemeral else _durable_problems(resource, min_backup))
        for problem in problems:
            kind = "ephemeral" if ephemeral else "durable"
            report(f"{problem} (stack is {kind})", resource.urn)

    judge_each([r for r in args.resources if r.resource_type in judged], config, findings, judge)


def _ephemeral_problems(resource: PolicyResource) -> list[str]:
    props = resource.props
    if resource.resource_type == DYNAMODB_TABLE:
        return ["deletionProtectionEnabled is true"] if is_true(known(props, "deletionProtectionEnabled")) else []
    problems = []
    if is_true(known(props, "deletionProtection")):
        problems.append("deletionProtection is true, so the stack cannot be destroyed")
    replica = resource.resource_type == RDS_INSTANCE and is_set(lookup(props, "replicateSourceDb"))
    if not replica and not is_true(known(props, "skipFinalSnapshot")):
        problems.append("skipFinalSnapshot is not true, so destroy leaves (or waits on) a final snapshot")
    return problems


def _durable_problems(resource: PolicyResource, min_backup: int) -> list[str]:
    props = resource.props
    if resource.resource_type == DYNAMODB_TABLE:
        problems = []
        if not is_true(known(props, "deletionProtectionEnabled")):
            problems.append("deletionProtectionEnabled is not true")
        if not is_true(known(props, "pointInTimeRecovery", "enabled")):
            problems.append("pointInTimeRecovery.enabled is not true (no continuous backups)")
        return problems
    problems = []
    if not is_true(known(props, "deletionProtection")):
        problems.append("deletionProtection is not true")
    if resource.resource_type == RDS_INSTANCE and is_set(lookup(props, "replicateSourceDb")):
        return problems  # a replica's backups are the source's
    retention = known(props, "backupRetentionPeriod")
    if not isinstance(retention, (int, float)) or isinstance(retention, bool) or retention < min_backup:
        problems.append(f"backupRetentionPeriod is {shown(retention)}, below {min_backup} day(s)")
    return problems


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "secretsmanager-rotation-enabled",
        "Database credentials secrets should rotate (a SecretRotation at most every N days) or be RDS-managed.",
        _check_rotation,
        "add an aws.secretsmanager.SecretRotation with rotation_rules.automatically_after_days <= the limit "
        "(recipe secret-rotation), or let RDS manage the password (manage_master_user_password=True)",
        EnforcementLevel.ADVISORY,
        extra_schema={
            "maxRotationDays": {"type": "integer", "minimum": 1, "maximum": 1000,
                                "default": DEFAULT_MAX_ROTATION_DAYS,
                                "description": "Longest allowed interval between rotations, in days."},
            "credentialNamePatterns": {"type": "array", "items": {"type": "string", "minLength": 1},
                                       "default": list(DEFAULT_CREDENTIAL_NAME_PATTERNS),
                                       "description": "Regular expressions on a secret's name that mark it as "
                                                      "database credentials (besides its use by RDS, RDS Proxy, "
                                                      "DMS or a SecretVersion holding a password)."},
        },
    ),
    StackRule(
        "ephemeral-teardown-safe",
        "An ephemeral stack must be destroyable; a durable stack must keep deletion protection and backups.",
        _check_teardown,
        "ephemeral: deletion_protection=False and skip_final_snapshot=True; durable: deletion_protection=True, "
        "backup_retention_period >= the minimum, and DynamoDB deletion protection with point-in-time recovery",
        EnforcementLevel.ADVISORY,
        extra_schema={
            "tagName": {"type": "string", "minLength": 1, "default": DEFAULT_EPHEMERAL_TAG,
                        "description": "Stack tag whose value 'true'/'false' says whether the stack is ephemeral."},
            "minBackupRetentionDays": {"type": "integer", "minimum": 1, "maximum": 35,
                                       "default": DEFAULT_MIN_BACKUP_RETENTION_DAYS,
                                       "description": "Durable stacks: the least backup retention, in days."},
        },
    ),
)


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [rule.policy() for rule in RESOURCE_RULES] + [rule.policy() for rule in STACK_RULES]
