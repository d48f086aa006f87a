"""4.3 RDS Proxy: an RDS MySQL instance behind an RDS Proxy, and a Lambda function that queries through it.

How authentication works end to end (the design RDS Proxy's IAM auth really supports):

* Lambda -> proxy: IAM. The function signs a 15-minute auth token for its DB user
  (``rds.generate_db_auth_token`` against the *proxy* endpoint) and connects over
  TLS; the proxy requires both (``iam_auth="REQUIRED"``, ``require_tls=True``).
  The function's role holds ``rds-db:connect`` on
  ``arn:aws:rds-db:<region>:<account>:dbuser:prx-<id>/<db user>``, the proxy's
  resource id (the last segment of its ARN), not the instance's.
* proxy -> MySQL: the username and password of the credentials secret
  (``auth_scheme="SECRETS"``). The proxy only knows users it has a secret for, so
  the function's DB user *is* that secret's user (the master user here). No
  ``CREATE USER ... AWSAuthenticationPlugin`` is needed on this path: that plugin is
  for clients that connect to the instance directly with IAM (recipe 4.2).

The credentials secret is the RDS-managed master secret by default
(``credentials: managed``); ``credentials: secret`` creates a Secrets Manager
secret from a generated password instead. Either way it is encrypted with the
recipe's customer-managed KMS key, and the proxy role may decrypt it only through
Secrets Manager.

Network: the database admits MySQL from the proxy only; the proxy admits MySQL
from the function's own security group (plus any ``allowed_security_group_ids``);
the function's group may only open MySQL connections to the proxy. The function
needs no AWS API at run time (token signing is local), so no VPC endpoint.

What the proxy fronts (``database``/``target``): the stack's MySQL instance (default), a MySQL
instance of the recipe's own, the stack's Aurora PostgreSQL cluster (``database: aurora``), or an
existing RDS instance or Aurora cluster outside the stack (``target``: identifier, engine, the
security groups it admits, and one secret per user). A PostgreSQL target gets the POSTGRESQL
engine family and no client function: ``functions/proxy_client`` guards its queries with a MySQL
dialect scanner. A cluster with a proxy attached never auto-pauses, and the proxy bills at least
8 ACU on an Aurora Serverless v2 target ("Prerequisites and limitations", Aurora User Guide,
aurora-serverless-v2-auto-pause.html; https://aws.amazon.com/rds/proxy/pricing/): the stack's
cluster must then keep ``min_capacity`` above 0 (checked when the config is read).

Quota: AWS allows 20 proxies per account and region, and every branch stack
that selects this recipe creates one: reap stale branch stacks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.naming import Namer
from components.packaging import (
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    BuiltArchive,
    build_function_archive,
    function_dir,
)
from components.parts import (
    EPHEMERAL_LOG_DAYS,
    FAMILY_PORTS,
    MYSQL_ENGINE,
    MYSQL_PORT,
    TARGET_ENGINES,
    DatabaseRef,
    MySqlInstanceArgs,
    RestoreArgs,
    admin_password,
    assume_role_policy,
    check_kms_key_ref,
    check_range,
    check_rds_identifier,
    check_security_group_ids,
    check_sql_identifier,
    check_target_alone,
    customer_key,
    key_arn,
    lambda_role,
    log_groups,
    managed_secret_arn,
    own_mysql,
)

ENGINE = MYSQL_ENGINE
ENGINE_FAMILY = "MYSQL"
PORT = MYSQL_PORT
# How clients authenticate to the proxy: RDS's defaults per engine (RDS API UserAuthConfig,
# ClientPasswordAuthType), stated so that no later default change shows as a diff.
CLIENT_PASSWORD_AUTH = {"MYSQL": "MYSQL_CACHING_SHA2_PASSWORD", "POSTGRESQL": "POSTGRES_SCRAM_SHA_256"}
CLIENT_NOTE_POSTGRESQL = (
    "no client function: functions/proxy_client speaks MySQL only; connect with psql through "
    "proxy_endpoint using an IAM token (aws rds generate-db-auth-token) as the password, sslmode=verify-full"
)
_RESOURCE_ID = re.compile(r"(db|cluster)-[A-Z0-9]+")
AUTH_SCHEMES = ("NONE", "IAM_AUTH")
# The only filter RDS Proxy knows (MySQL family): SET statements no longer pin a session.
PINNING_FILTERS = ("EXCLUDE_VARIABLE_SETS",)
FUNCTION_NAME = "proxy_client"
PROXY_QUOTA_PER_REGION = 20
QUOTA_NOTE = (
    f"RDS Proxy quota: {PROXY_QUOTA_PER_REGION} proxies per account and region; "
    "each branch stack with rds-proxy uses one"
)


@dataclass(frozen=True)
class ProxyUserArgs:
    """A further database user the proxy logs in as: its own secret (given, or generated here;
    then create the user in MySQL with the secret's password) and, with IAM_AUTH, its IAM grant."""

    username: str
    # An existing secret with username and password; None: a secret with a generated password.
    secret_arn: str | None = None
    # The customer-managed key of that existing secret, if it has one.
    secret_kms_key_arn: str | None = None

    def __post_init__(self) -> None:
        check_sql_identifier("username", self.username, 32)
        if self.secret_arn is not None and ":secretsmanager:" not in self.secret_arn:
            raise ValueError(f"secret_arn: a Secrets Manager secret ARN, got {self.secret_arn!r}")
        check_kms_key_ref(self.secret_kms_key_arn, "secret_kms_key_arn")


@dataclass(frozen=True)
class ProxyTargetArgs:
    """An existing RDS instance or Aurora cluster outside the stack, in the stack's VPC (adopt it with
    ``db-recipes:network.vpc_id``/``subnet_ids``). The proxy logs in with the secrets of ``users``."""

    engine: str
    # One of the two: an RDS instance (mysql, mariadb, postgres) or an Aurora cluster (aurora-*).
    db_instance_identifier: str | None = None
    db_cluster_identifier: str | None = None
    # Security groups the database admits on its port; the proxy joins them.
    security_group_ids: tuple[str, ...] = ()
    # The client function's default database (MySQL targets).
    database_name: str | None = None
    # DbiResourceId (db-...) or DbClusterResourceId (cluster-...): needed for default_auth_scheme IAM_AUTH.
    resource_id: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in TARGET_ENGINES:
            raise ValueError(f"engine: {self.engine!r} is not allowed (allowed: {', '.join(TARGET_ENGINES)})")
        given = [v for v in (self.db_instance_identifier, self.db_cluster_identifier) if v is not None]
        if len(given) != 1:
            raise ValueError("db_instance_identifier, db_cluster_identifier: give exactly one")
        aurora = self.engine.startswith("aurora-")
        if aurora and self.db_cluster_identifier is None:
            raise ValueError(f"db_cluster_identifier: {self.engine} is an Aurora engine; the proxy targets the cluster")
        if not aurora and self.db_instance_identifier is None:
            raise ValueError(f"db_instance_identifier: {self.engine} runs on an RDS instance; name the instance")
        check_rds_identifier("db_cluster_identifier" if aurora else "db_instance_identifier", given[0])
        check_security_group_ids(self.security_group_ids, "the proxy", required=True)
        if self.database_name is not None:
            check_sql_identifier("database_name", self.database_name, 64)
        if self.resource_id is not None:
            prefix = "cluster-" if aurora else "db-"
            if not _RESOURCE_ID.fullmatch(self.resource_id) or not self.resource_id.startswith(prefix):
                raise ValueError(f"resource_id: {self.resource_id!r} is not the target's resource id "
                                 f"({prefix}... in upper-case letters and digits)")

    @property
    def engine_family(self) -> str:
        return TARGET_ENGINES[self.engine]

    @property
    def identifier(self) -> str:
        return self.db_cluster_identifier or self.db_instance_identifier or ""


@dataclass(frozen=True)
class RdsProxyArgs(MySqlInstanceArgs):
    # stack: front the stack's MySQL instance (db-recipes:mysql). aurora: the stack's Aurora
    # PostgreSQL cluster (db-recipes:aurora-serverless; it must keep min_capacity > 0). own: a MySQL
    # instance of this recipe, configured by the instance keys (MySqlInstanceArgs, credentials, restore).
    database: Literal["stack", "aurora", "own"] = "stack"
    # managed: RDS keeps (and rotates) the master password in Secrets Manager; secret: a generated one.
    credentials: Literal["managed", "secret"] = "managed"
    # Connection pool of the proxy's default target group.
    max_connections_percent: int = 90
    max_idle_connections_percent: int = 50
    connection_borrow_timeout: int = 120
    idle_client_timeout: int = 1800
    # Security groups, besides the function's own, whose members may connect to the proxy.
    allowed_security_group_ids: tuple[str, ...] = ()
    lambda_timeout: int = 30
    lambda_memory: int = 256
    # Create the instance from a snapshot or a point in time of another instance.
    restore: RestoreArgs | None = None
    # Users besides the master user, one secret each.
    users: tuple[ProxyUserArgs, ...] = ()
    # NONE: clients use IAM, the proxy logs in with the secrets. IAM_AUTH: end-to-end IAM, no
    # secrets; the proxy itself connects with IAM as each of ``users`` (not the master user).
    default_auth_scheme: str = "NONE"
    session_pinning_filters: tuple[str, ...] = ()
    # SQL the proxy runs on each new database connection, e.g. "SET time_zone = '+00:00'".
    init_query: str | None = None
    # An existing instance or cluster outside the stack instead (then database stays stack).
    target: ProxyTargetArgs | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_target()
        if self.default_auth_scheme not in AUTH_SCHEMES:
            raise ValueError(f"default_auth_scheme: {self.default_auth_scheme!r} is not allowed "
                             f"(allowed: {', '.join(AUTH_SCHEMES)})")
        if self.default_auth_scheme == "IAM_AUTH" and not self.users:
            raise ValueError("default_auth_scheme: IAM_AUTH needs at least one entry in users (database users "
                             "created WITH AWSAuthenticationPlugin); the master user cannot use IAM")
        names = [*([] if self.target else [self.master_username]), *(u.username for u in self.users)]
        if len(set(names)) != len(names):
            raise ValueError("users: each username once, and not the master_username")
        bad = sorted(set(self.session_pinning_filters) - set(PINNING_FILTERS))
        if bad:
            raise ValueError(f"session_pinning_filters: {bad[0]!r} is not allowed "
                             f"(allowed: {', '.join(PINNING_FILTERS)})")
        if self.session_pinning_filters and self.engine_family != "MYSQL":
            # "Currently, the only allowed value is EXCLUDE_VARIABLE_SETS", a MySQL filter (RDS API
            # ConnectionPoolConfiguration, SessionPinningFilters).
            raise ValueError("session_pinning_filters: only MySQL targets have pinning filters; remove them")
        if self.init_query is not None and not self.init_query.strip():
            raise ValueError("init_query: empty; leave it unset instead")
        check_range("max_connections_percent", self.max_connections_percent, 1, 100)
        check_range("max_idle_connections_percent", self.max_idle_connections_percent, 0,
                     self.max_connections_percent, "at most max_connections_percent")
        check_range("connection_borrow_timeout", self.connection_borrow_timeout, 0, 3600)
        check_range("idle_client_timeout", self.idle_client_timeout, 1, 28800)
        check_range("lambda_timeout", self.lambda_timeout, 3, 900)
        check_range("lambda_memory", self.lambda_memory, 128, 10240)

    def _check_target(self) -> None:
        target = self.target
        if target is None:
            return
        check_target_alone(self.database)
        if self.default_auth_scheme == "IAM_AUTH" and target.resource_id is None:
            raise ValueError("target.resource_id: default_auth_scheme IAM_AUTH grants the proxy rds-db:connect on "
                             "the target's resource id; give it (db-... or cluster-...)")
        if self.default_auth_scheme == "NONE" and not self.users:
            raise ValueError("users: name the database users the proxy logs in as, each with the secret_arn "
                             "of its credentials (the proxy has no other secret for an existing target)")
        for index, user in enumerate(self.users):
            if self.default_auth_scheme == "NONE" and user.secret_arn is None:
                raise ValueError(f"users[{index}].secret_arn: with an existing target, name the secret holding "
                                 f"{user.username}'s password")

    @property
    def engine_family(self) -> str:
        """The proxy's engine family: POSTGRESQL for the stack's Aurora cluster or a PostgreSQL target."""
        if self.target is not None:
            return self.target.engine_family
        return "POSTGRESQL" if self.database == "aurora" else ENGINE_FAMILY

    @property
    def implies(self) -> tuple[str, ...]:
        """Recipes this configuration needs in the selection."""
        return ("aurora-serverless",) if self.database == "aurora" and self.target is None else ()


def engine_name(family: str) -> str:
    return "MySQL" if family == "MYSQL" else "PostgreSQL"


def check_aurora_for_proxy(min_capacity: float) -> None:
    """A cluster with an RDS Proxy attached never auto-pauses, and the proxy bills at least 8 ACU on an
    Aurora Serverless v2 target (Aurora User Guide, aurora-serverless-v2-auto-pause.html, "Prerequisites
    and limitations"; https://aws.amazon.com/rds/proxy/pricing/): refuse a stack that expects it to."""
    if min_capacity == 0:
        raise ValueError(
            "min_capacity: 0 (auto-pause), but rds-proxy fronts this cluster and a cluster with a proxy never "
            "pauses: it bills its minimum ACU all month and the proxy at least 8 ACU-hours every hour "
            "(see dbenv cost); set min_capacity to 0.5 or more, or point rds-proxy elsewhere")


def proxy_user_arn(region: str, account: str, proxy_arn: str, db_user: str) -> str:
    """The ``rds-db:connect`` resource of ``db_user`` at a proxy: its id ``prx-...`` ends the proxy ARN."""
    resource_id = proxy_arn.rsplit(":", 1)[-1]
    if not resource_id.startswith("prx-"):
        raise ValueError(f"not an RDS Proxy ARN: {proxy_arn!r}")
    return f"arn:aws:rds-db:{region}:{account}:dbuser:{resource_id}/{db_user}"


@dataclass(frozen=True)
class _Fronted:
    """What the proxy needs to know about the database it fronts."""

    family: str
    # How descriptions name it (part of security group descriptions: keep stable).
    label: str
    identifier: pulumi.Input[str]
    arn: pulumi.Input[str] | None
    cluster: bool
    database_name: str | None
    # The master user and its secret (None for an existing target: the proxy uses ``users`` only).
    master_username: str | None
    secret_arn: pulumi.Output[str] | None
    # The key that encrypts the master secret and the user secrets generated here (None for a target).
    kms_key_arn: pulumi.Output[str] | None
    resource_id: pulumi.Input[str] | None
    address: pulumi.Input[str] | None
    engine: str
    # A group of this stack with standalone rules only: it gets an ingress rule from the proxy.
    db_group: pulumi.Input[str] | None
    # Groups the database admits that the proxy joins instead (inline-rule groups, foreign groups).
    member_groups: tuple[pulumi.Input[str], ...] = ()
    ready: tuple[pulumi.Resource, ...] = ()


class DatabaseProxy(pulumi.ComponentResource):
    """RDS Proxy (IAM auth, TLS) in front of a MySQL instance or an Aurora PostgreSQL cluster of the
    stack, a MySQL instance of its own, or an existing target; a VPC Lambda client for MySQL."""

    def __init__(
        self,
        name: str,
        args: RdsProxyArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Any],
        archive: BuiltArchive | None = None,
        log_retention_days: int = EPHEMERAL_LOG_DAYS,
        database: DatabaseRef | None = None,
        app_security_group_id: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``database``: the stack's MySQL instance or Aurora cluster to front; None: ``args.target``
        when given, else an instance of this recipe's own. ``app_security_group_id``: the app tier,
        which the proxy joins when the database admits it by group (the Aurora cluster, a target)."""
        # The type token predates other targets than MySQL; it stays so existing stacks keep their URNs.
        super().__init__("db-recipes:proxy:MySqlProxy", name, None, opts)
        self._name = name
        self._log_days = log_retention_days
        self._child = pulumi.ResourceOptions(parent=self)
        self._namer = namer
        invoke = pulumi.InvokeOutputOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region
        account = aws.get_caller_identity_output(opts=invoke).account_id
        fronted = self._fronted(args, ephemeral, vpc_id, subnet_ids, database, app_security_group_id)
        self.engine_family = fronted.family
        self.port = FAMILY_PORTS[fronted.family]
        proxy_sg, lambda_sg = self._security_groups(args, vpc_id, fronted)
        # An existing target's users bring their secrets (none for end-to-end IAM users).
        user_secrets = [self._user_secret(user, ephemeral, fronted) for user in args.users
                        if args.target is None or user.secret_arn]
        end_to_end_iam = args.default_auth_scheme == "IAM_AUTH"
        master = [] if fronted.secret_arn is None else [(fronted.master_username, fronted.secret_arn)]
        secrets = [] if end_to_end_iam else [*master, *user_secrets]
        keys = [*([fronted.kms_key_arn] if fronted.kms_key_arn is not None else []),
                *(key_arn(u.secret_kms_key_arn, parent=self) for u in args.users if u.secret_kms_key_arn)]
        proxy_role = self._proxy_role([arn for _, arn in secrets], keys, region, account,
                                      pulumi.Output.from_input(fronted.resource_id) if end_to_end_iam else None,
                                      [u.username for u in args.users])
        self.proxy = aws.rds.Proxy(
            f"{name}-proxy",
            name=namer.rds_proxy("proxy"),
            engine_family=fronted.family,
            # IAM_AUTH: end-to-end IAM, the proxy needs no secrets ("auths: Required when
            # default_auth_scheme is NONE or unspecified", pulumi-aws rds.Proxy; RDS Proxy User
            # Guide, "End-to-end IAM authentication").
            default_auth_scheme=args.default_auth_scheme,
            auths=[
                aws.rds.ProxyAuthArgs(
                    auth_scheme="SECRETS",
                    secret_arn=arn,
                    iam_auth="REQUIRED",
                    client_password_auth_type=CLIENT_PASSWORD_AUTH[fronted.family],
                    description=f"{user}: IAM token from clients, secret to {engine_name(fronted.family)}",
                )
                for user, arn in secrets
            ] or None,
            require_tls=True,
            idle_client_timeout=args.idle_client_timeout,
            role_arn=proxy_role.arn,
            vpc_subnet_ids=subnet_ids,
            vpc_security_group_ids=[proxy_sg.id, *fronted.member_groups],
            debug_logging=False,  # would log SQL text
            opts=self._child,
        )
        target_group = aws.rds.ProxyDefaultTargetGroup(
            f"{name}-proxy-target-group",
            db_proxy_name=self.proxy.name,
            connection_pool_config=aws.rds.ProxyDefaultTargetGroupConnectionPoolConfigArgs(
                max_connections_percent=args.max_connections_percent,
                max_idle_connections_percent=args.max_idle_connections_percent,
                connection_borrow_timeout=args.connection_borrow_timeout,
                session_pinning_filters=list(args.session_pinning_filters) or None,
                init_query=args.init_query,
            ),
            opts=self._child,
        )
        # One of the two: an instance, or an Aurora cluster (pulumi-aws rds.ProxyTarget
        # db_instance_identifier / db_cluster_identifier; one target per target group).
        aws.rds.ProxyTarget(
            f"{name}-proxy-target",
            db_proxy_name=self.proxy.name,
            target_group_name=target_group.name,
            db_instance_identifier=None if fronted.cluster else fronted.identifier,
            db_cluster_identifier=fronted.identifier if fronted.cluster else None,
            # An attached database must be available (and its secret hold a value) first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(fronted.ready)),
        )

        # The function's database user: with end-to-end IAM or a target the proxy logs in as users only.
        self.db_user = args.users[0].username if end_to_end_iam or fronted.master_username is None \
            else fronted.master_username
        self.database_name = fronted.database_name or (None if args.target else args.database_name)
        self.proxy_resource_id = self.proxy.arn.apply(lambda arn: arn.rsplit(":", 1)[-1])
        # The client speaks MySQL only (see functions/proxy_client): no function for PostgreSQL.
        self.function = self._function(args, archive, region, account, subnet_ids, lambda_sg) \
            if lambda_sg is not None else None
        self.client_note = None if self.function is not None else CLIENT_NOTE_POSTGRESQL

        self.instance_identifier = fronted.identifier
        self.instance_arn = fronted.arn
        self.target_kind = "cluster" if fronted.cluster else "instance"
        self.instance_address = fronted.address
        self.proxy_arn = self.proxy.arn
        self.proxy_endpoint = self.proxy.endpoint
        self.secret_arn = fronted.secret_arn
        self.kms_key_arn = fronted.kms_key_arn
        self.db_security_group_id = fronted.db_group
        self.proxy_security_group_id = proxy_sg.id
        self.lambda_security_group_id = lambda_sg.id if lambda_sg is not None else None
        self.function_name = self.function.name if self.function is not None else None
        self.function_arn = self.function.arn if self.function is not None else None
        self.register_outputs(self.outputs())

    # ------------------------------------------------------------- pieces

    def _group(self, vpc_id: pulumi.Input[str], suffix: str, description: str) -> aws.ec2.SecurityGroup:
        # Groups without inline rules; the rules are separate resources because they refer to each
        # other in a cycle (function -> proxy -> database) that inline rules cannot express.
        return aws.ec2.SecurityGroup(
            f"{self._name}-{suffix}-sg",
            name=self._namer.security_group("proxy", suffix),
            description=description,
            vpc_id=vpc_id,
            opts=self._child,
        )

    def _db_group(self, vpc_id: pulumi.Input[str], instance_id: str) -> aws.ec2.SecurityGroup:
        return self._group(vpc_id, "db", f"MySQL {instance_id}: port {PORT} from its RDS Proxy only")

    def _fronted(self, args: RdsProxyArgs, ephemeral: bool, vpc_id: pulumi.Input[str], subnet_ids: pulumi.Input[Any],
                 database: DatabaseRef | None, app_group: pulumi.Input[str] | None) -> _Fronted:
        family = args.engine_family
        if args.target is not None:
            target = args.target
            # The database admits the groups named in config; the app tier gives the proxy its egress.
            members = (*([app_group] if app_group is not None else []), *target.security_group_ids)
            return _Fronted(
                family=family, label=target.identifier, identifier=target.identifier, arn=None,
                cluster=target.db_cluster_identifier is not None, database_name=target.database_name,
                master_username=None, secret_arn=None, kms_key_arn=None, resource_id=target.resource_id,
                address=None, engine=target.engine, db_group=None, member_groups=members)
        if database is not None and database.cluster:
            # The cluster's group admits the app tier with inline rules (a standalone rule beside them
            # would be removed on the next update), so the proxy joins the app tier.
            assert app_group is not None, "the stack's Aurora cluster is reached through the app tier"
            return _Fronted(
                family=family, label="the stack's Aurora cluster", identifier=database.identifier,
                arn=database.arn, cluster=True, database_name=database.database_name,
                master_username=database.master_username,
                secret_arn=pulumi.Output.from_input(database.secret_arn),
                kms_key_arn=pulumi.Output.from_input(database.kms_key_arn), resource_id=database.resource_id,
                address=database.address, engine=database.engine, db_group=None, member_groups=(app_group,),
                ready=database.ready)
        label = "the stack's MySQL instance"
        if database is None:
            label = self._namer.rds("proxy", "mysql")
            kms_key_arn = customer_key(
                self._name, args.kms_key_arn, alias=self._namer.kms_alias("proxy"), ephemeral=ephemeral,
                description=f"RDS MySQL {label}: storage and credentials secret", opts=self._child)
            db_sg = self._db_group(vpc_id, label)
            password = None if args.credentials == "managed" else admin_password(
                f"{self._name}-master-password", opts=self._child)
            instance = own_mysql(
                self._name, "proxy", args, namer=self._namer, identifier=label, password=password,
                kms_key_arn=kms_key_arn, subnet_ids=subnet_ids, security_group_id=db_sg.id, ephemeral=ephemeral,
                log_retention_days=self._log_days, restore=args.restore, opts=self._child)
            secret_arn = self._credentials_secret(args, ephemeral, instance, password, kms_key_arn)
            database = DatabaseRef(
                engine=ENGINE, identifier=instance.identifier, arn=instance.arn, resource_id=instance.resource_id,
                address=instance.address, port=PORT, database_name=args.database_name,
                master_username=args.master_username, secret_arn=secret_arn, managed_secret=password is None,
                kms_key_arn=kms_key_arn, security_group_id=db_sg.id)
        return _Fronted(
            family=family, label=label, identifier=database.identifier, arn=database.arn, cluster=False,
            database_name=database.database_name, master_username=database.master_username,
            secret_arn=pulumi.Output.from_input(database.secret_arn),
            kms_key_arn=pulumi.Output.from_input(database.kms_key_arn), resource_id=database.resource_id,
            address=database.address, engine=database.engine, db_group=database.security_group_id,
            ready=database.ready)

    def _security_groups(
        self, args: RdsProxyArgs, vpc_id: pulumi.Input[str], fronted: _Fronted,
    ) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup | None]:
        """The proxy's group, and the client function's (MySQL only)."""
        instance_id, port = fronted.label, FAMILY_PORTS[fronted.family]
        engine = engine_name(fronted.family)
        proxy_sg = self._group(vpc_id, "proxy", f"RDS Proxy of {instance_id}: port {port} in from clients, out to the DB")
        if fronted.db_group is not None:
            self._ingress("db-from-proxy", fronted.db_group, proxy_sg.id, "MySQL from the RDS Proxy", port)
            self._egress("proxy-to-db", proxy_sg, fronted.db_group, "MySQL to the database", port)
        for index, group_id in enumerate(args.allowed_security_group_ids):
            self._ingress(f"proxy-from-allowed-{index}", proxy_sg.id, group_id,
                          f"{engine} from an allowed client group", port)
        if fronted.family != "MYSQL":
            return proxy_sg, None
        lambda_sg = self._group(vpc_id, "lambda", f"Proxy client function: MySQL to the proxy of {instance_id} only")
        self._ingress("proxy-from-lambda", proxy_sg.id, lambda_sg.id, "MySQL from the proxy client function", port)
        self._egress("lambda-to-proxy", lambda_sg, proxy_sg.id, "MySQL to the RDS Proxy", port)
        return proxy_sg, lambda_sg

    def _ingress(self, suffix: str, group_id: pulumi.Input[str], source: pulumi.Input[str], text: str,
                 port: int) -> None:
        aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-{suffix}",
            security_group_id=group_id,
            referenced_security_group_id=source,
            ip_protocol="tcp", from_port=port, to_port=port,
            description=text,
            opts=self._child,
        )

    def _egress(self, suffix: str, group: aws.ec2.SecurityGroup, target: pulumi.Input[str], text: str,
                port: int) -> None:
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-{suffix}",
            security_group_id=group.id,
            referenced_security_group_id=target,
            ip_protocol="tcp", from_port=port, to_port=port,
            description=text,
            opts=self._child,
        )

    def _credentials_secret(
        self,
        args: RdsProxyArgs,
        ephemeral: bool,
        instance: aws.rds.Instance,
        password: random.RandomPassword | None,
        kms_key_arn: pulumi.Output[str],
    ) -> pulumi.Output[str]:
        if password is None:
            return instance.master_user_secrets.apply(managed_secret_arn)
        secret = aws.secretsmanager.Secret(
            f"{self._name}-credentials",
            name=self._namer.secret("proxy", "credentials"),
            description=f"MySQL credentials the RDS Proxy logs in with ({args.master_username})",
            kms_key_id=kms_key_arn,
            recovery_window_in_days=0 if ephemeral else 30,
            opts=self._child,
        )
        aws.secretsmanager.SecretVersion(
            f"{self._name}-credentials-value",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.json_dumps({
                "engine": ENGINE,
                "host": instance.address,
                "port": PORT,
                "username": args.master_username,
                "password": password.result,
                "dbname": args.database_name,
            })),
            opts=self._child,
        )
        return secret.arn

    def _user_secret(self, user: ProxyUserArgs, ephemeral: bool, fronted: _Fronted) -> tuple[str, pulumi.Output[str]]:
        if user.secret_arn is not None:
            return user.username, pulumi.Output.from_input(user.secret_arn)
        # RdsProxyArgs refuses generated secrets for an existing target: only the stack's databases get here.
        assert fronted.kms_key_arn is not None and fronted.address is not None
        engine = engine_name(fronted.family)
        password = admin_password(f"{self._name}-user-{user.username}-password", opts=self._child)
        secret = aws.secretsmanager.Secret(
            f"{self._name}-user-{user.username}",
            name=self._namer.secret("proxy", "user", user.username),
            description=f"{engine} user {user.username} that the RDS Proxy logs in as (create it with this password)",
            kms_key_id=fronted.kms_key_arn,
            recovery_window_in_days=0 if ephemeral else 30,
            opts=self._child,
        )
        aws.secretsmanager.SecretVersion(
            f"{self._name}-user-{user.username}-value",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.json_dumps({
                "engine": fronted.engine, "host": fronted.address, "port": FAMILY_PORTS[fronted.family],
                "username": user.username, "password": password.result,
            })),
            opts=self._child,
        )
        return user.username, secret.arn

    def _proxy_role(
        self, secret_arns: list[pulumi.Output[str]], kms_key_arns: list[Any], region: pulumi.Output[str],
        account: pulumi.Output[str], iam_resource_id: pulumi.Output[str] | None, iam_users: list[str],
    ) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{self._name}-proxy-role",
            name=self._namer.iam_role("proxy"),
            description="RDS Proxy: read its one credentials secret",
            assume_role_policy=assume_role_policy("rds.amazonaws.com"),
            opts=self._child,
        )
        policy = pulumi.Output.all(
            pulumi.Output.all(*secret_arns), pulumi.Output.all(*kms_key_arns), region, account,
            iam_resource_id if iam_resource_id is not None else "",
        ).apply(lambda v: json.dumps(proxy_role_policy(
            list(v[0]), list(v[1]), v[2],
            [f"arn:aws:rds-db:{v[2]}:{v[3]}:dbuser:{v[4]}/{user}" for user in iam_users] if v[4] else [],
        )))
        aws.iam.RolePolicy(f"{self._name}-proxy-role-policy", role=role.id, policy=policy, opts=self._child)
        return role

    def _function(
        self,
        args: RdsProxyArgs,
        archive: BuiltArchive | None,
        region: pulumi.Output[str],
        account: pulumi.Output[str],
        subnet_ids: pulumi.Input[Any],
        lambda_sg: aws.ec2.SecurityGroup,
    ) -> aws.lambda_.Function:
        archive = archive or build_function_archive(function_dir(FUNCTION_NAME))
        role, vpc_access = lambda_role(f"{self._name}-lambda-role", self._namer.iam_role("proxy", "client"),
                           "Proxy client function: rds-db:connect through the proxy", self._child)
        connect = pulumi.Output.all(region, account, self.proxy.arn).apply(
            lambda values: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "ConnectThroughProxy",
                    "Effect": "Allow",
                    "Action": "rds-db:connect",
                    "Resource": proxy_user_arn(*values, self.db_user),
                }],
            })
        )
        policy = aws.iam.RolePolicy(f"{self._name}-lambda-connect", role=role.id, policy=connect, opts=self._child)
        function_name = self._namer.lambda_function("proxy", "client")
        logs = log_groups(self._name, {"function": f"/aws/lambda/{function_name}"},
                          retention_days=self._log_days, opts=self._child)
        return aws.lambda_.Function(
            f"{self._name}-client",
            name=function_name,
            description="Connects through the RDS Proxy with an IAM token over TLS and runs a query",
            runtime=LAMBDA_RUNTIME,
            architectures=[LAMBDA_ARCHITECTURE],
            handler="handler.lambda_handler",
            role=role.arn,
            code=pulumi.FileArchive(str(archive.path)),
            source_code_hash=archive.sha256_b64,
            timeout=args.lambda_timeout,
            memory_size=args.lambda_memory,
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=subnet_ids, security_group_ids=[lambda_sg.id]),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "DB_HOST": self.proxy.endpoint,  # the proxy, never the instance
                "DB_PORT": str(PORT),
                "DB_USER": self.db_user,
                "DB_NAME": self.database_name or "",
                # AWS_REGION is reserved (Lambda sets it); this names the region the token is signed for.
                "DB_REGION": region,
            }),
            # The role's policy must exist before the function can use it; its log group before it logs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, vpc_access, *logs]),
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "engine_family": self.engine_family,
            "target_kind": self.target_kind,
            "instance_identifier": self.instance_identifier,
            "instance_arn": self.instance_arn,
            "instance_address": self.instance_address,
            "proxy_arn": self.proxy_arn,
            "proxy_resource_id": self.proxy_resource_id,
            "proxy_endpoint": self.proxy_endpoint,
            "port": self.port,
            "database_name": self.database_name,
            "db_user": self.db_user,
            "secret_arn": self.secret_arn,
            "kms_key_arn": self.kms_key_arn,
            "db_security_group_id": self.db_security_group_id,
            "proxy_security_group_id": self.proxy_security_group_id,
            "lambda_security_group_id": self.lambda_security_group_id,
            "function_name": self.function_name,
            "function_arn": self.function_arn,
            "client_note": self.client_note,
            "quota": QUOTA_NOTE,
        }


def proxy_role_policy(secret_arns: list[str], kms_key_arns: list[str], region: str,
                      db_user_arns: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Read the proxy's secrets and decrypt them only on Secrets Manager's behalf; with end-to-end
    IAM, ``rds-db:connect`` as each IAM database user instead (RDS Proxy User Guide)."""
    statements: list[dict[str, Any]] = []
    if secret_arns:
        statements.append({
            "Sid": "ReadCredentialsSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arns[0] if len(secret_arns) == 1 else sorted(secret_arns),
        })
    # Secrets under the AWS managed key aws/secretsmanager need no statement: its key policy lets the
    # account's principals use it through Secrets Manager (Secrets Manager User Guide, "Secret
    # encryption and decryption").
    if secret_arns and kms_key_arns:
        statements += [
            {
                "Sid": "DecryptViaSecretsManager",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": kms_key_arns[0] if len(kms_key_arns) == 1 else sorted(set(kms_key_arns)),
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
            },
        ]
    if db_user_arns:
        statements.append({"Sid": "ConnectAsIamUsers", "Effect": "Allow", "Action": "rds-db:connect",
                           "Resource": sorted(db_user_arns)})
    return {"Version": "2012-10-17", "Statement": statements}
