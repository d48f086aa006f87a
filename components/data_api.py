"""4.8 Least-privilege access to the RDS Data API of one Aurora cluster.

The Data API itself is a switch on the cluster (``enable_http_endpoint``, set by
the aurora-serverless recipe when data-api is selected). What callers need is
IAM: the five ``rds-data`` statement actions on that cluster's ARN, and
``secretsmanager:GetSecretValue`` on that cluster's secret only, because the
Data API reads the database credentials from Secrets Manager with the
caller's own permissions.

Supported (AWS, late 2026) on Aurora Serverless v2 and provisioned Aurora:
PostgreSQL 13.11+, 14.8+, 15.3+, 16.1+, 17.4+ and MySQL 3.07+.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aurora_serverless import DATA_API_MINIMUM, parse_version, supports
from components.naming import InvalidName, Namer, check_identifier

DATA_API_ACTIONS = (
    "rds-data:ExecuteStatement",
    "rds-data:BatchExecuteStatement",
    "rds-data:BeginTransaction",
    "rds-data:CommitTransaction",
    "rds-data:RollbackTransaction",
)
ENGINES = ("aurora-postgresql", "aurora-mysql")
# Aurora MySQL reports versions like "8.0.mysql_aurora.3.07.1"; the Data API needs 3.07 or later.
DATA_API_MYSQL_MINIMUM = {3: (3, 7)}
_ARN_HEAD = r"arn:(?P<partition>aws[a-z-]*):{service}:(?P<region>[a-z]{{2}}(?:-[a-z]+)+-\d):(?P<account>\d{{12}}):"
_CLUSTER_ARN = re.compile(_ARN_HEAD.format(service="rds") + r"cluster:[A-Za-z][A-Za-z0-9-]{0,62}")
# RDS-managed master secrets are named "rds!cluster-<uuid>", hence the '!'.
_SECRET_ARN = re.compile(_ARN_HEAD.format(service="secretsmanager") + r"secret:[A-Za-z0-9/_+=.@!-]+")
_KMS_KEY_ARN = re.compile(_ARN_HEAD.format(service="kms") + r"key/[A-Za-z0-9-]+")
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _mysql_aurora_version(version: str) -> str:
    return version.split("mysql_aurora.", 1)[1] if "mysql_aurora." in version else version


def data_api_supported(engine: str, version: str) -> bool:
    """Whether the RDS Data API works on ``engine`` at ``version``."""
    if engine == "aurora-mysql":
        return supports(_mysql_aurora_version(version), DATA_API_MYSQL_MINIMUM)
    return supports(version, DATA_API_MINIMUM)


def _minimums(engine: str) -> str:
    if engine == "aurora-mysql":
        return ", ".join(f"{a}.{b:02d}+" for a, b in DATA_API_MYSQL_MINIMUM.values())
    return ", ".join(f"{a}.{b}+" for a, b in DATA_API_MINIMUM.values())


@dataclass(frozen=True)
class DataApiTarget:
    """An existing Aurora cluster with the Data API enabled, and the secret callers use with it."""

    cluster_arn: str
    secret_arn: str
    engine_version: str
    engine: str = "aurora-postgresql"
    # The customer-managed key that encrypts the secret; None when it uses aws/secretsmanager.
    kms_key_arn: str | None = None
    # Only used in the example command.
    database_name: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine: {self.engine!r} is not allowed (allowed: {', '.join(ENGINES)})")
        cluster = _CLUSTER_ARN.fullmatch(self.cluster_arn)
        if not cluster:
            raise ValueError(
                f"cluster_arn: {self.cluster_arn!r} is not a DB cluster ARN "
                "(arn:aws:rds:<region>:<account>:cluster:<identifier>)"
            )
        secret = _SECRET_ARN.fullmatch(self.secret_arn)
        if not secret:
            raise ValueError(
                f"secret_arn: {self.secret_arn!r} is not a secret ARN "
                "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
            )
        if secret["region"] != cluster["region"]:
            raise ValueError(
                f"secret_arn: the Data API reads the secret in the cluster's region {cluster['region']}, "
                f"not {secret['region']}"
            )
        if self.kms_key_arn is not None:
            key = _KMS_KEY_ARN.fullmatch(self.kms_key_arn)
            if not key or key["region"] != secret["region"]:
                raise ValueError(
                    f"kms_key_arn: {self.kms_key_arn!r} is not a key ARN in {secret['region']} "
                    "(arn:aws:kms:<region>:<account>:key/<key id>; aliases cannot scope kms:Decrypt)"
                )
        if self.database_name is not None and not _DATABASE_NAME.fullmatch(self.database_name):
            raise ValueError(
                f"database_name: {self.database_name!r} is not allowed: 1-63 letters, digits and '_', not a digit first"
            )
        if self.engine == "aurora-mysql":
            parse_version(_mysql_aurora_version(self.engine_version))
        if not data_api_supported(self.engine, self.engine_version):
            raise ValueError(
                f"engine_version: the Data API needs {self.engine} {_minimums(self.engine)}, "
                f"not {self.engine_version}"
            )

    @property
    def region(self) -> str:
        match = _CLUSTER_ARN.fullmatch(self.cluster_arn)
        assert match is not None  # checked in __post_init__
        return match["region"]


@dataclass(frozen=True)
class DataApiArgs:
    """Data API callers: existing roles to attach the policy to (none: a new role is created)."""

    role_names: tuple[str, ...] = ()
    target: DataApiTarget | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, role in enumerate(self.role_names):
            if role.startswith("arn:"):
                raise ValueError(f"role_names[{index}]: give role names, not ARNs (got {role!r})")
            try:
                check_identifier(role, "iam_role")
            except InvalidName as err:
                raise ValueError(f"role_names[{index}]: {err} (IAM role names: 1-64 of A-Za-z0-9+=,.@_-)") from None
            if role in seen:
                raise ValueError(f"role_names[{index}]: {role!r} is listed twice")
            seen.add(role)


class DataApiAccess(pulumi.ComponentResource):
    """An IAM policy (and, without ``role_names``, a role) to run SQL on one cluster via the Data API."""

    def __init__(
        self,
        name: str,
        args: DataApiArgs,
        *,
        namer: Namer,
        cluster_arn: pulumi.Input[str],
        secret_arn: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str] | None,
        database_name: str | None = None,
        region: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("db-recipes:dataapi:Access", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        # The cluster's region: its secret lives there, and so does the kms:ViaService endpoint.
        self.region: pulumi.Output[str] = (
            pulumi.Output.from_input(region) if region else aws.get_region_output(opts=invoke).region
        )
        self.account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self.partition = aws.get_partition_output(opts=invoke).partition
        self.cluster_arn = pulumi.Output.from_input(cluster_arn)
        self.secret_arn = pulumi.Output.from_input(secret_arn)
        self.database_name = database_name

        self.policy = aws.iam.Policy(
            f"{name}-policy",
            name=namer.iam_policy(name),
            description="RDS Data API statements on one Aurora cluster with its secret",
            policy=pulumi.Output.json_dumps(self._policy_document(kms_key_arn)),
            opts=child,
        )
        self.role = None if args.role_names else self._assumable_role(name, namer, child)
        attach_to: dict[str, pulumi.Input[str]] = (
            {role: role for role in args.role_names} if self.role is None else {"role": self.role.name}
        )
        for label, role in attach_to.items():
            aws.iam.RolePolicyAttachment(f"{name}-{label}-attach", role=role, policy_arn=self.policy.arn, opts=child)
        self.role_names = list(attach_to.values())
        self.register_outputs(self.outputs())

    def _policy_document(self, kms_key_arn: pulumi.Input[str] | None) -> dict[str, Any]:
        statements: list[dict[str, Any]] = [
            {"Sid": "DataApiOnCluster", "Effect": "Allow", "Action": list(DATA_API_ACTIONS),
             "Resource": self.cluster_arn},
            {"Sid": "ReadClusterSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": self.secret_arn},
        ]
        if kms_key_arn is not None:
            # The Aurora master secret is encrypted with the cluster's customer-managed key, so reading it
            # needs kms:Decrypt on that key; kms:ViaService limits the grant to decryption done by
            # Secrets Manager on the caller's behalf, not direct use of the key.
            statements.append({
                "Sid": "DecryptSecretViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt",
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {
                    "kms:ViaService": pulumi.Output.concat("secretsmanager.", self.region, ".amazonaws.com"),
                }},
            })
        return {"Version": "2012-10-17", "Statement": statements}

    def _assumable_role(self, name: str, namer: Namer, child: pulumi.ResourceOptions) -> aws.iam.Role:
        """A role any principal of this account may assume (if its own IAM policy allows sts:AssumeRole)."""
        root = pulumi.Output.concat("arn:", self.partition, ":iam::", self.account_id, ":root")
        return aws.iam.Role(
            f"{name}-role",
            name=namer.iam_role(name),
            description="Assume to run SQL through the RDS Data API",
            assume_role_policy=pulumi.Output.json_dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": root}, "Action": "sts:AssumeRole"}],
            }),
            opts=child,
        )

    def example_command(self) -> pulumi.Output[str]:
        database = f" --database {self.database_name}" if self.database_name else ""
        return pulumi.Output.concat(
            "aws rds-data execute-statement --region ", self.region,
            " --resource-arn ", self.cluster_arn, " --secret-arn ", self.secret_arn,
            database, ' --sql "select 1"',
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "policy_arn": self.policy.arn,
            "role_arn": self.role.arn if self.role else None,
            "role_names": self.role_names,
            "cluster_arn": self.cluster_arn,
            "secret_arn": self.secret_arn,
            "example_command": self.example_command(),
        }
