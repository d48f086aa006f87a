"""4.2 IAM database authentication: ``rds-db:connect`` grants per database user.

For each named database user the component creates one IAM policy that allows
``rds-db:connect`` on exactly one ``dbuser`` ARN,
``arn:<partition>:rds-db:<region>:<account>:dbuser:<resource-id>/<user>``,
and attaches it to existing roles, or to a new role the account can assume.
The database side (``CREATE USER ...``) cannot be done by Pulumi without a
connection, so the SQL that creates each user is an output.

The resource id is the instance's ``DbiResourceId`` (``db-...``) or, for Aurora
and Multi-AZ DB clusters, the ``DbClusterResourceId`` (``cluster-...``); the
instance or cluster itself must have IAM database authentication enabled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.naming import InvalidName, Namer, check_identifier, slugify

MYSQL_ENGINES = ("mysql", "mariadb", "aurora-mysql")
POSTGRES_ENGINES = ("postgres", "aurora-postgresql")
ENGINES = ("mysql", "mariadb", "postgres", "aurora-mysql", "aurora-postgresql")
# The stack's own cluster (recipe aurora-serverless) is Aurora PostgreSQL.
STACK_CLUSTER_ENGINE = "aurora-postgresql"
# Longest user name each engine family accepts.
USER_NAME_MAX = {"mysql": 32, "postgresql": 63}
_USER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Users and roles that RDS or PostgreSQL reserve for themselves; IAM login to them is never intended.
_RESERVED_USER = re.compile(r"(?i)(pg_|rds_).*|rdsadmin|rdsrepladmin|rdsproxyadmin|rdstopmgr|public")
_RESOURCE_ID = re.compile(r"(db|cluster)-[A-Z0-9]+")


def engine_family(engine: str) -> str:
    """``mysql`` for MySQL-compatible engines (MariaDB, Aurora MySQL), else ``postgresql``."""
    return "mysql" if engine in MYSQL_ENGINES else "postgresql"


@dataclass(frozen=True)
class IamAuthTarget:
    """An existing instance or cluster, named by its resource id."""

    resource_id: str
    engine: str

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine: {self.engine!r} is not allowed (allowed: {', '.join(ENGINES)})")
        if not _RESOURCE_ID.fullmatch(self.resource_id):
            raise ValueError(
                f"resource_id: {self.resource_id!r} is not a resource id: use the instance's DbiResourceId "
                "('db-' + upper-case letters and digits) or the cluster's DbClusterResourceId ('cluster-...')"
            )
        if self.engine.startswith("aurora-") and not self.resource_id.startswith("cluster-"):
            # IAM authentication to Aurora is granted on the cluster, never on one of its instances.
            raise ValueError(
                f"resource_id: {self.engine} needs the cluster's DbClusterResourceId ('cluster-...'), "
                f"got {self.resource_id!r}"
            )


@dataclass(frozen=True)
class DbUserGrant:
    """One database user and the IAM roles that may log in as it (none: a new role is created)."""

    db_user: str
    role_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _USER_NAME.fullmatch(self.db_user):
            raise ValueError(
                f"db_user: {self.db_user!r} is not allowed: use letters, digits and '_', starting with a letter"
            )
        if _RESERVED_USER.fullmatch(self.db_user):
            raise ValueError(
                f"db_user: {self.db_user!r} is reserved by RDS or the engine "
                "(pg_*, rds_*, rdsadmin, rdsrepladmin, rdsproxyadmin, rdstopmgr, public); choose an application user name"
            )
        seen: set[str] = set()
        for role in self.role_names:
            if role.startswith("arn:"):
                raise ValueError(f"role_names: give role names, not ARNs (got {role!r})")
            try:
                check_identifier(role, "iam_role")
            except InvalidName as err:
                raise ValueError(f"role_names: {err} (IAM role names: 1-64 of A-Za-z0-9+=,.@_-)") from None
            if role in seen:
                raise ValueError(f"role_names: {role!r} is listed twice")
            seen.add(role)


@dataclass(frozen=True)
class IamAuthArgs:
    """Which database users get IAM login, on the stack's Aurora cluster or on ``target``."""

    grants: tuple[DbUserGrant, ...] = field(default_factory=lambda: (DbUserGrant("app_user"),))
    target: IamAuthTarget | None = None

    @property
    def engine(self) -> str:
        return self.target.engine if self.target else STACK_CLUSTER_ENGINE

    def __post_init__(self) -> None:
        if not self.grants:
            raise ValueError("grants: give at least one {db_user: ..., role_names: [...]}")
        family = engine_family(self.engine)
        limit = USER_NAME_MAX[family]
        by_slug: dict[str, str] = {}
        for index, grant in enumerate(self.grants):
            user = grant.db_user
            if len(user) > limit:
                raise ValueError(
                    f"grants[{index}].db_user: {user!r} has {len(user)} characters; "
                    f"{self.engine} allows at most {limit}"
                )
            # Physical IAM names are built from the slug, so users equal up to case or '_' would collide.
            slug = slugify(user)
            if slug in by_slug:
                raise ValueError(
                    f"grants[{index}].db_user: {user!r} duplicates {by_slug[slug]!r} "
                    "(user names must differ by more than case and '_')"
                )
            by_slug[slug] = user


def quote_postgres_identifier(name: str) -> str:
    """A PostgreSQL identifier in double quotes, so its case is kept exactly."""
    return '"' + name.replace('"', '""') + '"'


def quote_mysql_string(text: str) -> str:
    """A MySQL string literal; doubling quotes works with and without NO_BACKSLASH_ESCAPES."""
    return "'" + text.replace("'", "''") + "'"


def mysql_create_user_sql(user: str) -> str:
    """MySQL / MariaDB / Aurora MySQL: a user that logs in with an IAM token, over TLS only."""
    account = f"{quote_mysql_string(user)}@'%'"
    return (
        f"CREATE USER {account} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';\n"
        f"ALTER USER {account} REQUIRE SSL;"
    )


def postgres_create_user_sql(user: str) -> str:
    """PostgreSQL / Aurora PostgreSQL: membership in ``rds_iam`` switches the user to IAM tokens."""
    ident = quote_postgres_identifier(user)
    return f"CREATE USER {ident};\nGRANT rds_iam TO {ident};"


def create_user_sql(user: str, engine: str) -> str:
    return mysql_create_user_sql(user) if engine_family(engine) == "mysql" else postgres_create_user_sql(user)


class IamDatabaseAuth(pulumi.ComponentResource):
    """One least-privilege ``rds-db:connect`` policy per database user, attached to roles."""

    def __init__(
        self,
        name: str,
        args: IamAuthArgs,
        *,
        namer: Namer,
        resource_id: pulumi.Input[str],
        endpoint: pulumi.Input[str] | None = None,
        port: pulumi.Input[int] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("db-recipes:iam:DatabaseAuth", name, None, opts)
        self._name = name
        self._namer = namer
        self._child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self.region = aws.get_region_output(opts=invoke).region
        self.account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self.partition = aws.get_partition_output(opts=invoke).partition
        self.engine = args.engine
        self.resource_id = pulumi.Output.from_input(resource_id)
        self.users: dict[str, dict[str, Any]] = {}
        for grant in args.grants:
            self.users[grant.db_user] = self._grant(grant, endpoint, port)
        self.create_users_sql = "\n".join(create_user_sql(g.db_user, self.engine) for g in args.grants)
        self.register_outputs(self.outputs())

    def dbuser_arn(self, db_user: str) -> pulumi.Output[str]:
        return pulumi.Output.concat(
            "arn:", self.partition, ":rds-db:", self.region, ":", self.account_id,
            ":dbuser:", self.resource_id, "/", db_user,
        )

    def _grant(
        self, grant: DbUserGrant, endpoint: pulumi.Input[str] | None, port: pulumi.Input[int] | None
    ) -> dict[str, Any]:
        user = grant.db_user
        dbuser_arn = self.dbuser_arn(user)
        policy = aws.iam.Policy(
            f"{self._name}-{user}-policy",
            name=self._namer.iam_policy(self._name, user),
            description=f"IAM database login as {user}",
            policy=pulumi.Output.json_dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "ConnectAsDbUser", "Effect": "Allow", "Action": "rds-db:connect", "Resource": dbuser_arn}
                ],
            }),
            opts=self._child,
        )
        created_role = None if grant.role_names else self._assumable_role(user)
        attach_to: dict[str, pulumi.Input[str]] = (
            {role: role for role in grant.role_names} if created_role is None else {"role": created_role.name}
        )
        for label, role in attach_to.items():
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{user}-{label}-attach",
                role=role,
                policy_arn=policy.arn,
                opts=self._child,
            )
        outputs: dict[str, Any] = {
            "dbuser_arn": dbuser_arn,
            "policy_arn": policy.arn,
            "role_names": list(attach_to.values()),
            "created_role_arn": created_role.arn if created_role else None,
            "sql": {"mysql": mysql_create_user_sql(user), "postgresql": postgres_create_user_sql(user)},
            "create_user_sql": create_user_sql(user, self.engine),
        }
        if endpoint is not None and port is not None:
            port_text = pulumi.Output.from_input(port).apply(str)
            outputs["token_command"] = pulumi.Output.concat(
                "aws rds generate-db-auth-token --hostname ", endpoint, " --port ", port_text,
                " --username ", user, " --region ", self.region,
            )
        return outputs

    def _assumable_role(self, user: str) -> aws.iam.Role:
        """A role any principal of this account may assume (if its own IAM policy allows sts:AssumeRole)."""
        root = pulumi.Output.concat("arn:", self.partition, ":iam::", self.account_id, ":root")
        return aws.iam.Role(
            f"{self._name}-{user}-role",
            name=self._namer.iam_role(self._name, user),
            description=f"Assume to log in to the database as {user} with an IAM token",
            assume_role_policy=pulumi.Output.json_dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "sts:AssumeRole"}
                ],
            }),
            opts=self._child,
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "resource_id": self.resource_id,
            "users": self.users,
            "create_users_sql": self.create_users_sql,
        }
