"""IAM: no database data, credentials or decryption granted on everything.

IAM semantics used: action names are case-insensitive and may use ``*``/``?`` wildcards; ``NotAction`` and
``NotResource`` grant everything they do not list; ``Statement``, ``Action`` and ``Resource`` may be one value
or a list; a document may be JSON text or an object (IAM User Guide, "IAM JSON policy elements reference").
An rds-db:connect resource is ``arn:aws:rds-db:<region>:<account>:dbuser:<resource-id>/<db-user>``; a
wildcard in the resource id or the user grants every database or every user (RDS User Guide,
"Creating and using an IAM policy for IAM database access").
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, Severity

from .inputs import as_list, document, known, lookup, statements
from .rules import Anchor, ResourceRule
from .tokens import IAM_GROUP_POLICY, IAM_POLICY, IAM_ROLE, IAM_ROLE_POLICY, IAM_USER_POLICY

POLICY_DOCUMENT_TYPES = (IAM_POLICY, IAM_ROLE_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY, IAM_ROLE)
# Actions that read database data or credentials.
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
KMS_DECRYPT_ACTIONS = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo")
_WILDCARDS = set("*?")


def granted(statement: Mapping[str, Any], actions: tuple[str, ...]) -> list[str]:
    """Which of ``actions`` an Allow statement grants (Action patterns, or everything NotAction does not list)."""
    if "NotAction" in statement:
        excluded = [str(a).lower() for a in as_list(statement["NotAction"])]
        return [a for a in actions if not any(fnmatch.fnmatchcase(a.lower(), p) for p in excluded)]
    patterns = [str(a).lower() for a in as_list(statement.get("Action"))]
    return [a for a in actions if any(fnmatch.fnmatchcase(a.lower(), p) for p in patterns)]


def _segment_is_wildcard(segment: str) -> bool:
    return segment == "" or set(segment) <= _WILDCARDS


def wildcard_resource(resource: str, action: str) -> bool:
    """Whether ``resource`` covers every resource of the action's kind (every database, user, secret, key)."""
    if set(resource) <= _WILDCARDS:
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6 or not parts[0].lower().startswith("arn"):
        return False
    service, rest = parts[2], parts[5]
    if set(service) <= _WILDCARDS:
        return True
    if action.lower().startswith("rds-db:"):
        # dbuser:<resource-id>/<user>: a wildcard anywhere in the id or the user part grants too much.
        kind, _, path = rest.partition(":")
        if not path:
            return any(c in _WILDCARDS for c in rest)
        resource_id, _, user = path.partition("/")
        return any(c in _WILDCARDS for c in resource_id + (user or "*")) or kind == "*"
    kind, sep, name = rest.replace("/", ":", 1).partition(":")
    return _segment_is_wildcard(name if sep else kind)


def broad_grants(doc: Mapping[str, Any] | None, actions: tuple[str, ...]) -> list[str]:
    """Allow statements granting one of ``actions`` on every resource of its kind."""
    problems = []
    for label, statement in statements(doc):
        if statement.get("Effect") != "Allow":
            continue
        for action in granted(statement, actions):
            if "NotResource" in statement:
                problems.append(f"{label} allows {action} on everything outside NotResource")
                continue
            broad = [r for r in as_list(statement.get("Resource")) if isinstance(r, str) and wildcard_resource(r, action)]
            if broad:
                problems.append(f"{label} allows {action} on {', '.join(map(repr, broad))}")
    return problems


def policy_documents(props: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any] | None]]:
    """Every policy document of an IAM resource: ``policy`` and a Role's ``inlinePolicies[].policy``."""
    found: list[tuple[str, Mapping[str, Any] | None]] = [("policy", document(known(props, "policy")))]
    inline = lookup(props, "inlinePolicies")
    for index, _entry in enumerate(as_list(inline)):
        found.append((f"inlinePolicies[{index}].policy", document(known(inline, index, "policy"))))
    return found


def _checker(actions: tuple[str, ...]) -> Any:
    def check(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
        return [f"{where}: {problem}" for where, doc in policy_documents(props) for problem in broad_grants(doc, actions)]
    return check


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "iam-no-wildcard-data-access",
        "IAM policies should not grant database data or credential access on wildcard resources (Resource \"*\", "
        "rds-db ARNs with a wildcard resource id or user, every secret).",
        POLICY_DOCUMENT_TYPES, _checker(SENSITIVE_DATA_ACTIONS),
        "scope rds-db:connect to arn:aws:rds-db:<region>:<account>:dbuser:<resource-id>/<user>, rds-data:* to the "
        "cluster ARN and secretsmanager:GetSecretValue to the one secret ARN",
        EnforcementLevel.ADVISORY, Anchor("—", "—", "CKV_AWS_355, CKV_AWS_290"), severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "iam-no-kms-decrypt-on-all-keys",
        "IAM policies should not allow kms:Decrypt or kms:ReEncrypt* on all KMS keys.",
        POLICY_DOCUMENT_TYPES, _checker(KMS_DECRYPT_ACTIONS),
        "scope kms:Decrypt / kms:ReEncrypt* to the key ARNs the principal needs",
        EnforcementLevel.ADVISORY,
        Anchor("iam-customer-policy-blocked-kms-actions, iam-inline-policy-blocked-kms-actions", "KMS.1, KMS.2", "—"),
        severity=Severity.MEDIUM,
    ),
)
