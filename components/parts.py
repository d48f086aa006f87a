"""Resource groups several recipes build the same way: a customer-managed key, an admin
password, an encrypted MySQL instance. One definition each, so a fix lands everywhere.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

MYSQL_ENGINE = "mysql"
MYSQL_PORT = 3306
# RDS MySQL master passwords are at most 41 characters.
ADMIN_PASSWORD_LENGTH = 41


def customer_key(
    name: str,
    given_arn: str | None,
    *,
    alias: str,
    description: str,
    ephemeral: bool,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """``given_arn``, or a new rotating KMS key (``<name>-key``) with ``alias``; its ARN either way."""
    if given_arn:
        return pulumi.Output.from_input(given_arn)
    key = aws.kms.Key(
        f"{name}-key",
        description=description,
        enable_key_rotation=True,
        # The shortest window KMS allows for a throw-away stack; the longest for a durable one.
        deletion_window_in_days=7 if ephemeral else 30,
        opts=opts,
    )
    aws.kms.Alias(f"{name}-key-alias", name=alias, target_key_id=key.key_id, opts=opts)
    return key.arn


def admin_password(name: str, *, opts: pulumi.ResourceOptions,
                   length: int = ADMIN_PASSWORD_LENGTH) -> random.RandomPassword:
    """Letters and digits of every kind, no punctuation: safe in URLs, shells, DSNs and SQL literals."""
    return random.RandomPassword(
        name,
        length=length,
        special=False,
        upper=True, lower=True, numeric=True,
        min_upper=1, min_lower=1, min_numeric=1,
        opts=opts,
    )


def encrypted_mysql(
    name: str,
    *,
    identifier: str,
    final_snapshot_identifier: str,
    engine_version: str,
    instance_class: str,
    allocated_storage: int,
    db_name: str | None,
    username: str,
    password: pulumi.Input[str] | None,
    kms_key_arn: pulumi.Input[str],
    subnet_group_name: pulumi.Input[str],
    security_group_ids: list[pulumi.Input[str]],
    ephemeral: bool,
    backup_retention_days: int,
    opts: pulumi.ResourceOptions,
    **extra: Any,
) -> aws.rds.Instance:
    """A private, KMS-encrypted, IAM-auth RDS MySQL instance.

    ``password=None`` lets RDS manage the master password in Secrets Manager (under the
    same key). Ephemeral instances are destroyable at once; durable ones keep deletion
    protection and a final snapshot.
    """
    managed = password is None
    return aws.rds.Instance(
        name,
        identifier=identifier,
        engine=MYSQL_ENGINE,
        engine_version=engine_version,
        instance_class=instance_class,
        allocated_storage=allocated_storage,
        storage_type="gp3",
        db_name=db_name,
        username=username,
        manage_master_user_password=True if managed else None,
        master_user_secret_kms_key_id=kms_key_arn if managed else None,
        password=password,
        port=MYSQL_PORT,
        storage_encrypted=True,
        kms_key_id=kms_key_arn,
        iam_database_authentication_enabled=True,
        db_subnet_group_name=subnet_group_name,
        vpc_security_group_ids=security_group_ids,
        publicly_accessible=False,
        copy_tags_to_snapshot=True,
        backup_retention_period=backup_retention_days,
        deletion_protection=not ephemeral,
        skip_final_snapshot=ephemeral,
        final_snapshot_identifier=None if ephemeral else final_snapshot_identifier,
        apply_immediately=ephemeral,
        opts=opts,
        **extra,
    )
