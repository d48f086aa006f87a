"""Whether a KMS key named by an input is customer managed, AWS managed, or cannot be told from the plan.

AWS behaviour (AWS KMS Developer Guide, "AWS managed keys" and CreateAlias): aliases that begin with
``aws/`` are reserved for AWS managed keys, and a customer alias (``alias/<name>`` outside ``aws/``) can only
point to a customer managed key. An AWS managed key also has a plain key id and key ARN
(``arn:aws:kms:<region>:<account>:key/<uuid>``), so a key id or ARN proves nothing by itself: it is customer
managed when it comes from a key this stack creates (a dependency on ``aws.kms.Key`` and its kin), and
undetermined otherwise.
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import PolicyResource

from .inputs import UNKNOWN, is_aws_managed_key
from .rules import Undetermined, dependencies
from .tokens import KMS_ALIAS, KMS_EXTERNAL_KEY, KMS_KEY, KMS_REPLICA_KEY

KEY_TYPES = (KMS_KEY, KMS_REPLICA_KEY, KMS_EXTERNAL_KEY, KMS_ALIAS)


def is_customer_alias(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    alias = key.split(":alias/", 1)[1] if ":alias/" in key else key.removeprefix("alias/") if key.startswith(
        "alias/") else None
    return alias is not None and not alias.lower().startswith("aws/")


def _from_stack_key(holder: PolicyResource | None, prop: str) -> bool:
    if holder is None:
        return False
    by_property = holder.property_dependencies.get(prop)
    candidates = by_property if by_property else dependencies(holder)
    return any(d.resource_type in KEY_TYPES for d in candidates)


def customer_managed(key: Any, holder: PolicyResource | None, prop: str, label: str = "") -> bool:
    """True for a customer managed key, False for an AWS managed one; ``Undetermined`` when the plan cannot tell.

    ``holder`` is the resource whose top-level input ``prop`` names ``key`` (its dependencies say where the key
    comes from); ``label`` names the input in messages (default ``prop``).
    """
    if is_aws_managed_key(key):
        return False
    if is_customer_alias(key) or _from_stack_key(holder, prop):
        return True
    label = label or prop
    where = f" of {holder.name}" if holder is not None else ""
    if key is UNKNOWN:
        raise Undetermined(f"{label}{where} is not known yet and comes from no key of this stack", preview=True)
    raise Undetermined(f"{label}{where} {key} is not a key of this stack, and AWS managed keys have key ids and "
                       "ARNs too", f"{label} to a key this stack creates (aws.kms.Key) or to a customer alias")
