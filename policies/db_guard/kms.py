"""KMS: key rotation, and no key policy that lets anyone use the key.

AWS behaviour: a key created without a policy gets the default key policy (the account root only);
``Principal: "*"`` or ``{"AWS": "*"}`` is everyone, in every account, unless a Condition narrows it
(KMS Developer Guide, "Default key policy" and "Allowing users in other accounts").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, Severity

from .iam import granted
from .inputs import MISSING, as_list, document, is_set, known, lookup, statements
from .rules import Anchor, NotApplicable, ResourceRule, must_be_true
from .tokens import KMS_KEY, KMS_KEY_POLICY

PUBLIC_KEY_ACTIONS = ("kms:*", "kms:Decrypt")


def _symmetric_key(props: Mapping[str, Any], _resource_type: str) -> None:
    spec = known(props, "customerMasterKeySpec")
    usage = known(props, "keyUsage")
    if spec not in (MISSING, "SYMMETRIC_DEFAULT") or usage not in (MISSING, "ENCRYPT_DECRYPT"):
        raise NotApplicable(f"asymmetric or HMAC key ({spec if spec is not MISSING else usage}): AWS cannot rotate it")
    if is_set(lookup(props, "customKeyStoreId")) or is_set(lookup(props, "xksKeyId")):
        raise NotApplicable("key in a custom key store: AWS cannot rotate it automatically")


_check_key_rotation = must_be_true("enableKeyRotation", default="the API default is off")


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(p == "*" for p in as_list(principal.get("AWS")))
    return False


def _check_key_policy(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    problems = []
    for label, statement in statements(document(known(props, "policy"))):
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        if not _is_everyone(statement.get("Principal")) and "NotPrincipal" not in statement:
            continue
        actions = [a for a in granted(statement, ("kms:Decrypt", "kms:Encrypt", "kms:PutKeyPolicy"))]
        if "kms:Decrypt" in actions:
            everything = len(actions) == 3
            problems.append(f"{label} allows {'kms:*' if everything else 'kms:Decrypt'} to every principal "
                            f"(Principal \"*\") without a Condition")
    return problems


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "kms-key-rotation-enabled",
        "Symmetric KMS keys should rotate their key material automatically.",
        (KMS_KEY,), _check_key_rotation,
        "set enable_key_rotation=True on the key",
        EnforcementLevel.ADVISORY, Anchor("cmk-backing-key-rotation-enabled", "KMS.4", "CKV_AWS_7"),
        applies=_symmetric_key, severity=Severity.MEDIUM,
    ),
    ResourceRule(
        "kms-key-policy-not-public",
        "KMS key policies must not grant kms:* or kms:Decrypt to a wildcard principal without a condition.",
        (KMS_KEY, KMS_KEY_POLICY), _check_key_policy,
        "name the principals (account root, roles) or add a Condition (kms:CallerAccount, kms:ViaService, ...)",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "CKV_AWS_33"), severity=Severity.CRITICAL,
    ),
)
