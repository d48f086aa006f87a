"""Checks against the AWS account that must pass before the engine runs (``dbenv up`` / ``preview``).

The DMS service roles ``dms-vpc-role`` and ``dms-cloudwatch-logs-role`` are account-wide and
looked up by DMS under these fixed names ("IAM roles to use with the AWS CLI and AWS DMS API",
DMS User Guide). A stack with ``create_service_roles: false`` on an account that lacks them
fails deep inside ``up`` with "The IAM Role arn:aws:iam::...:role/dms-vpc-role is not configured
properly" (hashicorp/terraform-provider-aws#11025, aws/aws-cdk#7632): say so before, with the fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

DMS_SERVICE_ROLES = ("dms-vpc-role", "dms-cloudwatch-logs-role")
NAMESPACE = "db-recipes"


class PreflightError(ValueError):
    """The account is not ready for this stack; the message says what to do."""


def missing_roles(iam: Any, names: tuple[str, ...] = DMS_SERVICE_ROLES) -> list[str] | None:
    """The roles of ``names`` the account lacks; None when IAM cannot be asked (no credentials, denied)."""
    from botocore.exceptions import BotoCoreError, ClientError

    missing = []
    for name in names:
        try:
            iam.get_role(RoleName=name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "NoSuchEntity":
                missing.append(name)
                continue
            return None
        except BotoCoreError:
            return None
    return missing


def _dms_creates_roles(config: Mapping[str, Any]) -> bool:
    value = config.get(f"{NAMESPACE}:dms-migration") or {}
    if isinstance(value, str):
        value = json.loads(value)
    return bool(value.get("create_service_roles"))


def dms_role_problem(config: Mapping[str, Any], recipes: tuple[str, ...], iam: Any) -> str | None:
    if "dms-migration" not in recipes or _dms_creates_roles(config):
        return None
    missing = missing_roles(iam)
    if not missing:
        return None
    return (
        f"dms-migration: this AWS account has no {' and no '.join(missing)}, which DMS needs under exactly "
        "these names; create them once per account: `dbenv shared up` (the shared stack owns them), or "
        f"set {NAMESPACE}:dms-migration.create_service_roles: true in exactly one stack"
    )


def iam_client(region: str, provider_settings: Any = None) -> Any:
    import boto3

    args: dict[str, Any] = {"region_name": region}
    if provider_settings is not None and getattr(provider_settings, "endpoint_url", None):
        args.update(endpoint_url=provider_settings.endpoint_url, aws_access_key_id=provider_settings.access_key,
                    aws_secret_access_key=provider_settings.secret_key)
    return boto3.client("iam", **args)


def check(config: Mapping[str, Any], recipes: tuple[str, ...], region: str, provider_settings: Any = None,
          client: Callable[[str, Any], Any] = iam_client) -> None:
    """Raise PreflightError naming the first thing the account lacks for this stack."""
    if "dms-migration" not in recipes or _dms_creates_roles(config):
        return
    problem = dms_role_problem(config, recipes, client(region, provider_settings))
    if problem:
        raise PreflightError(problem)
