"""Secrets Manager: customer-managed encryption, and rotation of every secret that holds database credentials.

AWS behaviour: a secret without KmsKeyId is encrypted with aws/secretsmanager (CreateSecret, KmsKeyId).
A secret ARN is ``arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>``; SecretId
accepts the ARN, a partial ARN or the name (RotateSecret, SecretId). RDS-managed secrets (``rds!`` names,
tag aws:secretsmanager:owningService=rds) are rotated by RDS, every 7 days by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource

from .inputs import MISSING, UNKNOWN, is_aws_managed_key, is_set, known, lookup, malformed_boolean, strings
from .rules import (
    Anchor,
    ResourceRule,
    StackFindings,
    StackIndex,
    StackReport,
    StackRule,
    dependencies,
    judge_each,
)
from .tokens import (
    DMS_ENDPOINT,
    RANDOM_PASSWORD,
    RDS_CLUSTER,
    RDS_INSTANCE,
    RDS_PROXY,
    SECRET,
    SECRET_ROTATION,
    SECRET_VERSION,
)

DEFAULT_MAX_ROTATION_DAYS = 30
DEFAULT_CREDENTIAL_NAME_PATTERNS = (
    r"(?i)(^|[-_/.!])(db|database|rds|aurora|mysql|mariadb|postgres|postgresql|admin|master)([-_/.]|$)",
)
CREDENTIAL_USERS = (RDS_PROXY, DMS_ENDPOINT, RDS_INSTANCE, RDS_CLUSTER)
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


def secret_names(identifier: str) -> list[str]:
    """The names an identifier may stand for: a name, or a (partial) ARN with or without its random suffix."""
    if ":secret:" not in identifier:
        return [identifier]
    name = identifier.split(":secret:", 1)[1]
    stripped = _ARN_SUFFIX.sub("", name)
    return [name, stripped] if stripped != name else [name]


class SecretIndex:
    """Secrets by urn, name and ancestor component, built once; lookups are then constant time."""

    def __init__(self, index: StackIndex) -> None:
        self.index = index
        self.secrets = index.of(SECRET)
        self.by_urn = {s.urn: s for s in self.secrets}
        self.by_name: dict[str, list[PolicyResource]] = {}
        for secret in self.secrets:
            for prop in ("name", "arn"):
                value = lookup(secret.props, prop)
                if isinstance(value, str) and value:
                    for name in secret_names(value):
                        self.by_name.setdefault(name, []).append(secret)
        self.under_component: dict[str, list[PolicyResource]] = {}
        for secret in self.secrets:
            parent = secret.parent
            while parent is not None:
                self.under_component.setdefault(parent.urn, []).append(secret)
                parent = parent.parent

    def named(self, identifier: Any) -> list[PolicyResource]:
        if not isinstance(identifier, str):
            return []
        found: dict[str, PolicyResource] = {}
        for name in secret_names(identifier):
            for secret in self.by_name.get(name, ()):
                found[secret.urn] = secret
        return list(found.values())

    def referenced_by(self, resource: PolicyResource, identifier_values: Sequence[str] = ()) -> list[PolicyResource]:
        """The secrets ``resource`` points at: by dependency, by ARN/name, or through a component's output."""
        found: dict[str, PolicyResource] = {}
        for value in identifier_values:
            for secret in self.named(value):
                found[secret.urn] = secret
        components = []
        for dep in dependencies(resource):
            if dep.urn in self.by_urn:
                found[dep.urn] = dep
            elif dep.urn in self.under_component:
                components.append(self.under_component[dep.urn])
        if not found:
            for under in components:
                if len(under) == 1:  # a component output that can only be its one secret
                    found[under[0].urn] = under[0]
        return list(found.values())


def _holds_password(version: PolicyResource) -> bool:
    # The value itself is never echoed: only whether it has a password field or comes from a generated password.
    if any(dep.resource_type == RANDOM_PASSWORD for dep in dependencies(version)):
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
    if isinstance(days, str) and days.strip().isdigit():
        days = int(days)
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


def _rds_managed(secret: PolicyResource) -> bool:
    name = lookup(secret.props, "name")
    owner = lookup(secret.props, "tags", "aws:secretsmanager:owningService")
    return (isinstance(name, str) and name.startswith("rds!")) or owner == "rds"


def _rotations_and_credentials(index: StackIndex, secrets: SecretIndex) -> tuple[dict[str, list[PolicyResource]],
                                                                                set[str]]:
    """Each secret's rotations, and which secrets hold database credentials: one pass over the stack."""
    rotations: dict[str, list[PolicyResource]] = {}
    for rotation in index.of(SECRET_ROTATION):
        secret_id = lookup(rotation.props, "secretId")
        for secret in secrets.referenced_by(rotation, [secret_id] if isinstance(secret_id, str) else []):
            rotations.setdefault(secret.urn, []).append(rotation)
    credentials: set[str] = set()
    for user in index.of(*CREDENTIAL_USERS):
        for secret in secrets.referenced_by(user, list(strings(user.props))):
            credentials.add(secret.urn)
    for version in index.of(SECRET_VERSION):
        if _holds_password(version):
            secret_id = lookup(version.props, "secretId")
            for secret in secrets.referenced_by(version, [secret_id] if isinstance(secret_id, str) else []):
                credentials.add(secret.urn)
    return rotations, credentials


def _check_rotation(index: StackIndex, config: Mapping[str, Any], report: StackReport,
                    findings: StackFindings) -> None:
    max_days = int(config.get("maxRotationDays", DEFAULT_MAX_ROTATION_DAYS))
    patterns = [re.compile(p) for p in config.get("credentialNamePatterns", DEFAULT_CREDENTIAL_NAME_PATTERNS)]
    secrets = SecretIndex(index)
    rotations, credentials = _rotations_and_credentials(index, secrets)

    def judge(secret: PolicyResource) -> None:
        if _rds_managed(secret):
            return  # RDS rotates the secrets it manages (every 7 days by default)
        own = rotations.get(secret.urn, [])
        names = [v for v in (lookup(secret.props, "name"), lookup(secret.props, "namePrefix")) if isinstance(v, str)]
        is_credentials = secret.urn in credentials or any(p.search(n) for p in patterns for n in names)
        if not own and not is_credentials:
            return
        if not own:
            report("database credentials secret without a SecretRotation", secret)
            return
        for rotation in own:
            enabled = known(rotation.props, "rotationEnabled")
            if enabled is not MISSING and not isinstance(enabled, bool):
                report(f"SecretRotation {rotation.name}: {malformed_boolean('rotationEnabled', enabled)}", secret)
                continue
            if enabled is False:
                report(f"SecretRotation {rotation.name} has rotationEnabled false", secret)
                continue
            days = rotation_interval_days(known(rotation.props, "rotationRules"))
            if days is None:
                report(f"SecretRotation {rotation.name} has no schedule that can be read "
                       f"(rotationRules.automaticallyAfterDays or a rate()/cron() scheduleExpression)", secret)
            elif days > max_days:
                report(f"rotates every {days:g} days, more than {max_days}", secret)

    judge_each(secrets.secrets, config, findings, judge)


def _check_secret_cmk(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    key = lookup(props, "kmsKeyId")
    if key is UNKNOWN:
        return []
    if not is_set(key):
        return ["kmsKeyId is not set: the secret uses the AWS managed key aws/secretsmanager"]
    if is_aws_managed_key(key):
        return [f"kmsKeyId {key} is an AWS managed key"]
    return []


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "secretsmanager-secret-encrypted-cmk",
        "Secrets Manager secrets must be encrypted with a customer-managed KMS key, not aws/secretsmanager.",
        (SECRET,), _check_secret_cmk,
        "set kms_key_id to a customer-managed KMS key ARN (an aws/ alias is an AWS managed key)",
        EnforcementLevel.MANDATORY, Anchor("secretsmanager-using-cmk", "—", "CKV_AWS_149"),
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "secretsmanager-rotation-enabled",
        "Database credentials secrets should rotate (a SecretRotation at most every N days) or be RDS-managed.",
        _check_rotation,
        "add an aws.secretsmanager.SecretRotation with rotation_rules.automatically_after_days <= the limit "
        "(recipe secret-rotation), or let RDS manage the password (manage_master_user_password=True)",
        EnforcementLevel.ADVISORY,
        Anchor("secretsmanager-rotation-enabled-check", "SecretsManager.1", "CKV2_AWS_57"),
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
)
