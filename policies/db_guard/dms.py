"""DMS: customer-managed encryption, private replication instances, SSL endpoints with certificates, task logging.

AWS behaviour: without KmsKeyId DMS encrypts replication storage with the AWS managed key aws/dms; the
PubliclyAccessible default is true (CreateReplicationInstance). verify-ca / verify-full check the server
certificate against the endpoint's CertificateArn (CreateEndpoint, SslMode). Task logging is
ReplicationTaskSettings Logging.EnableLogging (default false); AWS Config's
dms-replication-task-sourcedb-logging / -targetdb-logging want SOURCE_CAPTURE, SOURCE_UNLOAD, TARGET_APPLY and
TARGET_LOAD at LOGGER_SEVERITY_DEFAULT or more. An endpoint's connection parameters are encrypted with its KmsKeyId,
or without one with the account's default DMS key, aws/dms (CreateEndpoint, KmsKeyId).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, Severity

from .inputs import (
    MISSING,
    as_list,
    boolean,
    document,
    is_aws_managed_key,
    is_set,
    known,
    lookup,
    malformed_boolean,
    shown,
)
from .keys import customer_managed
from .rules import (
    DURABLE,
    Anchor,
    NotApplicable,
    ResourceRule,
    StackFindings,
    StackIndex,
    StackReport,
    StackRule,
    judge_each,
    must_be_true,
)
from .tokens import DMS_ENDPOINT, DMS_REPLICATION_INSTANCE, DMS_REPLICATION_TASK

# DMS endpoint engines that talk to AWS service APIs over HTTPS and have no sslMode of their own.
DMS_SERVICE_ENGINES = ("dynamodb", "s3", "kinesis", "kafka", "opensearch", "elasticsearch", "neptune")
LOGGED_COMPONENTS = ("SOURCE_CAPTURE", "SOURCE_UNLOAD", "TARGET_APPLY", "TARGET_LOAD")
ENOUGH_SEVERITY = ("LOGGER_SEVERITY_DEFAULT", "LOGGER_SEVERITY_DEBUG", "LOGGER_SEVERITY_DETAILED_DEBUG")


def _check_kms(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    key = lookup(props, "kmsKeyArn")
    if not is_set(key):
        return ["kmsKeyArn is not set: DMS encrypts the storage with the AWS managed key aws/dms"]
    if is_aws_managed_key(key):
        return [f"kmsKeyArn {key} is the AWS managed key, not a customer-managed one"]
    return []


def _check_private(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    value = boolean(props, "publiclyAccessible")
    if value is False:
        return []
    if value is MISSING:
        return ["publiclyAccessible is not set, and the DMS API default is a public replication instance"]
    return ["publiclyAccessible is true"]


def _endpoint_applies(props: Mapping[str, Any], _resource_type: str) -> None:
    engine = known(props, "engineName")
    if isinstance(engine, str) and engine.lower() in DMS_SERVICE_ENGINES:
        raise NotApplicable(f"engine {engine} is reached over the service's HTTPS API, not a database connection")


def _ssl_mode(props: Mapping[str, Any]) -> Any:
    mode = known(props, "sslMode")
    return mode.strip().lower() if isinstance(mode, str) else mode


def _check_ssl(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    mode = _ssl_mode(props)
    if mode is MISSING:
        return ["sslMode is not set, and the DMS API default is none (plaintext)"]
    return ["sslMode is 'none' (plaintext)"] if mode == "none" else []


def _check_certificate(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    mode = _ssl_mode(props)
    if mode not in ("verify-ca", "verify-full"):
        raise NotApplicable(f"sslMode is {shown(mode)}: no certificate is verified")
    if is_set(lookup(props, "certificateArn")):
        return []
    return [f"sslMode is {mode} but certificateArn is not set: there is no CA to verify the server against"]


def _check_auto_minor(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    value = boolean(props, "autoMinorVersionUpgrade")
    if value is True:
        return []
    if value is MISSING:
        return ["autoMinorVersionUpgrade is not set: nothing asks DMS to apply minor engine upgrades"]
    return ["autoMinorVersionUpgrade is false"]


_check_multi_az = must_be_true("multiAz", default="the API default is false",
                               consequence="one Availability Zone failure stops the migration")


def _check_task_logging(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    raw = known(props, "replicationTaskSettings")
    settings = document(raw)
    if settings is None:
        if is_set(raw):
            return ["replicationTaskSettings is not a JSON object"]
        return ["replicationTaskSettings is not set: DMS task logging is off by default"]
    logging = settings.get("Logging")
    enabled = logging.get("EnableLogging") if isinstance(logging, Mapping) else None
    if enabled is not None and not isinstance(enabled, bool):
        return [f"replicationTaskSettings {malformed_boolean('Logging.EnableLogging', enabled)}"]
    if enabled is not True:
        return ["Logging.EnableLogging is not true in replicationTaskSettings"]
    problems = []
    for component in as_list(logging.get("LogComponents")):
        if not isinstance(component, Mapping):
            continue
        name, severity = str(component.get("Id", "")).upper(), str(component.get("Severity", "")).upper()
        if name in LOGGED_COMPONENTS and severity not in ENOUGH_SEVERITY:
            problems.append(f"log component {name} is at {severity or 'no severity'}, below LOGGER_SEVERITY_DEFAULT")
    return problems


def _check_endpoint_cmk(index: StackIndex, config: Mapping[str, Any], report: StackReport,
                        findings: StackFindings) -> None:
    def judge(endpoint: PolicyResource) -> None:
        key = lookup(endpoint.props, "kmsKeyArn")
        if not is_set(key):
            report("kmsKeyArn is not set: DMS encrypts the endpoint's connection parameters with the AWS managed "
                   "key aws/dms", endpoint)
        elif not customer_managed(key, endpoint, "kmsKeyArn"):
            report(f"kmsKeyArn {key} is an AWS managed key, not a customer-managed one", endpoint)

    judge_each(index.of(DMS_ENDPOINT), config, findings, judge)


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "dms-replication-instance-encrypted",
        "DMS replication instances must encrypt their storage with a customer-managed KMS key, not aws/dms.",
        (DMS_REPLICATION_INSTANCE,), _check_kms,
        "set kms_key_arn on the replication instance to a customer-managed KMS key ARN",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "CKV_AWS_212"),
    ),
    ResourceRule(
        "dms-replication-instance-not-public",
        "DMS replication instances must be private (publiclyAccessible: false, stated explicitly).",
        (DMS_REPLICATION_INSTANCE,), _check_private,
        "set publicly_accessible=False explicitly: the DMS API default is a public instance",
        EnforcementLevel.MANDATORY, Anchor("dms-replication-not-public", "DMS.1", "CKV_AWS_89"),
        severity=Severity.CRITICAL,
    ),
    ResourceRule(
        "dms-endpoint-ssl",
        "DMS endpoints should connect to their databases over SSL.",
        (DMS_ENDPOINT,), _check_ssl,
        "set ssl_mode to 'require', 'verify-ca' or 'verify-full' (verify-* with certificate_arn)",
        EnforcementLevel.ADVISORY, Anchor("dms-endpoint-ssl-configured", "DMS.9", "—"),
        applies=_endpoint_applies, severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "dms-endpoint-verify-certificate",
        "DMS endpoints with sslMode verify-ca / verify-full must name the certificate to verify against.",
        (DMS_ENDPOINT,), _check_certificate,
        "set certificate_arn to an aws.dms.Certificate holding the database's CA (RDS: global-bundle.pem)",
        EnforcementLevel.MANDATORY, applies=_endpoint_applies,
    ),
    ResourceRule(
        "dms-auto-minor-version-upgrade",
        "DMS replication instances should take minor engine upgrades automatically.",
        (DMS_REPLICATION_INSTANCE,), _check_auto_minor,
        "set auto_minor_version_upgrade=True",
        EnforcementLevel.ADVISORY, Anchor("dms-auto-minor-version-upgrade-check", "DMS.6", "CKV_AWS_222"),
        severity=Severity.LOW,
    ),
    ResourceRule(
        "dms-replication-instance-multi-az",
        "DMS replication instances of durable stacks should be Multi-AZ.",
        (DMS_REPLICATION_INSTANCE,), _check_multi_az,
        "set multi_az=True on durable stacks",
        EnforcementLevel.ADVISORY, Anchor(),
        severity=Severity.MEDIUM, scope=DURABLE,
    ),
    ResourceRule(
        "dms-task-logging",
        "DMS replication tasks should log (source capture/unload, target apply/load at default severity or more).",
        (DMS_REPLICATION_TASK,), _check_task_logging,
        "set replication_task_settings with Logging.EnableLogging=true (the role dms-cloudwatch-logs-role must exist)",
        EnforcementLevel.ADVISORY,
        Anchor("dms-replication-task-sourcedb-logging, dms-replication-task-targetdb-logging", "DMS.7, DMS.8", "—"),
        severity=Severity.MEDIUM,
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "dms-endpoint-cmk",
        "DMS endpoints must encrypt their connection parameters with a customer-managed KMS key (kmsKeyArn).",
        _check_endpoint_cmk,
        "set kms_key_arn on the endpoint to the stack's customer-managed key",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "—"), severity=Severity.HIGH,
    ),
)
