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

Quota: AWS allows 20 proxies per account and region, and every branch stack
that selects this recipe creates one: reap stale branch stacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    MYSQL_DEFAULT_VERSION,
    MYSQL_ENGINE,
    MYSQL_LOG_EXPORTS,
    MYSQL_MAJORS,
    MYSQL_PAST_STANDARD_SUPPORT,
    MYSQL_PORT,
    DatabaseRef,
    MySqlOptions,
    ObservabilityArgs,
    RestoreArgs,
    admin_password,
    check_kms_key_ref,
    check_lifecycle,
    check_parameters,
    customer_key,
    encrypted_mysql,
    log_groups,
    mysql_major,
)

ENGINE = MYSQL_ENGINE
ENGINE_FAMILY = "MYSQL"
PORT = MYSQL_PORT
SUPPORTED_MAJORS = MYSQL_MAJORS
AUTH_SCHEMES = ("NONE", "IAM_AUTH")
# The only filter RDS Proxy knows (MySQL family): SET statements no longer pin a session.
PINNING_FILTERS = ("EXCLUDE_VARIABLE_SETS",)
DEFAULT_MYSQL_LOG_EXPORTS = ("error", "iam-db-auth-error")
FUNCTION_NAME = "proxy_client"
PROXY_QUOTA_PER_REGION = 20
QUOTA_NOTE = (
    f"RDS Proxy quota: {PROXY_QUOTA_PER_REGION} proxies per account and region; "
    "each branch stack with rds-proxy uses one"
)
LAMBDA_VPC_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


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
        check_identifier("username", self.username, 32)
        if self.secret_arn is not None and ":secretsmanager:" not in self.secret_arn:
            raise ValueError(f"secret_arn: a Secrets Manager secret ARN, got {self.secret_arn!r}")
        check_kms_key_ref(self.secret_kms_key_arn, "secret_kms_key_arn")


@dataclass(frozen=True)
class RdsProxyArgs:
    # stack: front the stack's MySQL instance (db-recipes:mysql). own: a MySQL instance of this
    # recipe, configured by the instance keys below (engine_version .. restore).
    database: Literal["stack", "own"] = "stack"
    engine_version: str = MYSQL_DEFAULT_VERSION
    # None: open-source-rds-extended-support-disabled where the major allows it.
    engine_lifecycle_support: str | None = None
    instance_class: str = "db.t4g.micro"
    allocated_storage: int = 20
    database_name: str = "app"
    master_username: str = "dbadmin"
    # managed: RDS keeps (and rotates) the master password in Secrets Manager; secret: a generated one.
    credentials: Literal["managed", "secret"] = "managed"
    # An existing customer-managed KMS key; a new one is created when None.
    kms_key_arn: str | None = None
    # Connection pool of the proxy's default target group.
    max_connections_percent: int = 90
    max_idle_connections_percent: int = 50
    connection_borrow_timeout: int = 120
    idle_client_timeout: int = 1800
    # Security groups, besides the function's own, whose members may connect to the proxy.
    allowed_security_group_ids: tuple[str, ...] = ()
    lambda_timeout: int = 30
    lambda_memory: int = 256
    # None: 1 day for ephemeral stacks, 7 for durable ones.
    backup_retention_days: int | None = None
    # DB parameter overrides on top of require_secure_transport=ON.
    parameters: dict[str, str] | None = None
    log_exports: tuple[str, ...] = DEFAULT_MYSQL_LOG_EXPORTS
    observability: ObservabilityArgs = field(default_factory=ObservabilityArgs)
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

    def __post_init__(self) -> None:
        check_mysql_instance(self)
        if self.default_auth_scheme not in AUTH_SCHEMES:
            raise ValueError(f"default_auth_scheme: {self.default_auth_scheme!r} is not allowed "
                             f"(allowed: {', '.join(AUTH_SCHEMES)})")
        if self.default_auth_scheme == "IAM_AUTH" and not self.users:
            raise ValueError("default_auth_scheme: IAM_AUTH needs at least one entry in users (database users "
                             "created WITH AWSAuthenticationPlugin); the master user cannot use IAM")
        names = [self.master_username, *(u.username for u in self.users)]
        if len(set(names)) != len(names):
            raise ValueError("users: each username once, and not the master_username")
        bad = sorted(set(self.session_pinning_filters) - set(PINNING_FILTERS))
        if bad:
            raise ValueError(f"session_pinning_filters: {bad[0]!r} is not allowed "
                             f"(allowed: {', '.join(PINNING_FILTERS)})")
        if self.init_query is not None and not self.init_query.strip():
            raise ValueError("init_query: empty; leave it unset instead")
        _check_range("max_connections_percent", self.max_connections_percent, 1, 100)
        _check_range("max_idle_connections_percent", self.max_idle_connections_percent, 0,
                     self.max_connections_percent, "at most max_connections_percent")
        _check_range("connection_borrow_timeout", self.connection_borrow_timeout, 0, 3600)
        _check_range("idle_client_timeout", self.idle_client_timeout, 1, 28800)
        _check_range("lambda_timeout", self.lambda_timeout, 3, 900)
        _check_range("lambda_memory", self.lambda_memory, 128, 10240)


def check_mysql_instance(args: Any) -> None:
    """The settings every RDS MySQL instance config of the project shares (the stack's MySQL, and
    the own instances of rds-proxy and secret-rotation): engine, lifecycle, parameters, log exports,
    class, storage, backups, names and key."""
    check_lifecycle(args.engine_lifecycle_support, mysql_major(args.engine_version), MYSQL_PAST_STANDARD_SUPPORT)
    check_parameters(args.parameters or {})
    bad = sorted(set(args.log_exports) - set(MYSQL_LOG_EXPORTS))
    if bad:
        raise ValueError(f"log_exports: unknown log {bad[0]!r} (allowed: {', '.join(MYSQL_LOG_EXPORTS)})")
    if not args.instance_class.startswith("db."):
        raise ValueError(f"instance_class: an RDS class like 'db.t4g.micro', got {args.instance_class!r}")
    _check_range("allocated_storage", args.allocated_storage, 20, 65536, "GiB")
    if args.backup_retention_days is not None:
        _check_range("backup_retention_days", args.backup_retention_days, 1, 35)
    check_identifier("database_name", args.database_name, 64)
    check_identifier("master_username", args.master_username, 16)
    check_kms_key_arn(args.kms_key_arn)


def _check_range(field: str, value: int, low: int, high: int, note: str = "") -> None:
    if not low <= value <= high:
        extra = f" ({note})" if note else ""
        raise ValueError(f"{field}: must be {low}..{high}{extra}, got {value}")


def check_identifier(field: str, value: str, max_len: int) -> None:
    # MySQL allows more, but these names end up unquoted in SQL, connection strings and IAM ARNs.
    if not (value.isascii() and value.isidentifier() and value[0].isalpha() and len(value) <= max_len):
        raise ValueError(f"{field}: 1-{max_len} ASCII letters, digits and '_', letter first, got {value!r}")
    if value.lower() == "rdsadmin":
        raise ValueError(f"{field}: 'rdsadmin' is reserved by RDS; choose another name")


def check_kms_key_arn(value: str | None) -> None:
    check_kms_key_ref(value, "kms_key_arn")


def assume_role_policy(service: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


def lambda_role(
    name: str, role_name: str, description: str, opts: pulumi.ResourceOptions
) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
    """A Lambda execution role with VPC networking and logs (the AWS managed policy) and nothing else.

    The attachment is returned too: a VPC function must not be created before its role may
    create network interfaces, or Lambda refuses it.
    """
    role = aws.iam.Role(
        name,
        name=role_name,
        description=description,
        assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
        opts=opts,
    )
    attachment = aws.iam.RolePolicyAttachment(
        f"{name}-vpc-access", role=role.name, policy_arn=LAMBDA_VPC_POLICY, opts=opts
    )
    return role, attachment


def proxy_user_arn(region: str, account: str, proxy_arn: str, db_user: str) -> str:
    """The ``rds-db:connect`` resource of ``db_user`` at a proxy: its id ``prx-...`` ends the proxy ARN."""
    resource_id = proxy_arn.rsplit(":", 1)[-1]
    if not resource_id.startswith("prx-"):
        raise ValueError(f"not an RDS Proxy ARN: {proxy_arn!r}")
    return f"arn:aws:rds-db:{region}:{account}:dbuser:{resource_id}/{db_user}"


class MySqlProxy(pulumi.ComponentResource):
    """RDS MySQL + RDS Proxy (IAM auth, TLS) + a VPC Lambda that connects through the proxy."""

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
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``database``: the stack's MySQL instance to front; None: an instance of this recipe's own."""
        super().__init__("db-recipes:proxy:MySqlProxy", name, None, opts)
        self._name = name
        self._log_days = log_retention_days
        self._child = pulumi.ResourceOptions(parent=self)
        self._namer = namer
        invoke = pulumi.InvokeOutputOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region
        account = aws.get_caller_identity_output(opts=invoke).account_id
        if database is None:
            instance_id = namer.rds("proxy", "mysql")
            kms_key_arn = customer_key(
                name, args.kms_key_arn, alias=namer.kms_alias("proxy"), ephemeral=ephemeral,
                description=f"RDS MySQL {instance_id}: storage and credentials secret", opts=self._child)
            db_sg = self._db_group(vpc_id, instance_id)
            instance, password = self._instance(args, ephemeral, instance_id, kms_key_arn, subnet_ids, db_sg)
            secret_arn = self._credentials_secret(args, ephemeral, instance, password, kms_key_arn)
            database = DatabaseRef(
                engine=ENGINE, identifier=instance.identifier, arn=instance.arn, resource_id=instance.resource_id,
                address=instance.address, port=PORT, database_name=args.database_name,
                master_username=args.master_username, secret_arn=secret_arn, managed_secret=password is None,
                kms_key_arn=kms_key_arn, security_group_id=db_sg.id)
        else:
            instance_id = "the stack's MySQL instance"
            kms_key_arn = pulumi.Output.from_input(database.kms_key_arn)
            secret_arn = pulumi.Output.from_input(database.secret_arn)
        proxy_sg, lambda_sg = self._security_groups(args, vpc_id, instance_id, database.security_group_id)
        user_secrets = [self._user_secret(user, ephemeral, database.address, kms_key_arn) for user in args.users]
        end_to_end_iam = args.default_auth_scheme == "IAM_AUTH"
        secrets = [] if end_to_end_iam else [(database.master_username, secret_arn), *user_secrets]
        keys = [kms_key_arn, *(u.secret_kms_key_arn for u in args.users if u.secret_kms_key_arn)]
        proxy_role = self._proxy_role([arn for _, arn in secrets], keys, region, account,
                                      pulumi.Output.from_input(database.resource_id) if end_to_end_iam else None,
                                      [u.username for u in args.users])
        self.proxy = aws.rds.Proxy(
            f"{name}-proxy",
            name=namer.rds_proxy("proxy"),
            engine_family=ENGINE_FAMILY,
            # IAM_AUTH: end-to-end IAM, the proxy needs no secrets ("auths: Required when
            # default_auth_scheme is NONE or unspecified", pulumi-aws rds.Proxy; RDS Proxy User
            # Guide, "End-to-end IAM authentication").
            default_auth_scheme=args.default_auth_scheme,
            auths=[
                aws.rds.ProxyAuthArgs(
                    auth_scheme="SECRETS",
                    secret_arn=arn,
                    iam_auth="REQUIRED",
                    # RDS's default for MySQL; stated so that no later default change shows as a diff.
                    client_password_auth_type="MYSQL_CACHING_SHA2_PASSWORD",
                    description=f"{user}: IAM token from clients, secret to MySQL",
                )
                for user, arn in secrets
            ] or None,
            require_tls=True,
            idle_client_timeout=args.idle_client_timeout,
            role_arn=proxy_role.arn,
            vpc_subnet_ids=subnet_ids,
            vpc_security_group_ids=[proxy_sg.id],
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
        aws.rds.ProxyTarget(
            f"{name}-proxy-target",
            db_proxy_name=self.proxy.name,
            target_group_name=target_group.name,
            db_instance_identifier=database.identifier,
            # An attached instance must be available (and its secret hold a value) first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(database.ready)),
        )

        # The function's database user: with end-to-end IAM the proxy can log in as IAM users only.
        self.db_user = args.users[0].username if end_to_end_iam else database.master_username
        self.database_name = database.database_name or args.database_name
        self.proxy_resource_id = self.proxy.arn.apply(lambda arn: arn.rsplit(":", 1)[-1])
        self.function = self._function(args, archive, region, account, subnet_ids, lambda_sg)

        self.instance_identifier = database.identifier
        self.instance_arn = database.arn
        self.instance_address = database.address
        self.proxy_arn = self.proxy.arn
        self.proxy_endpoint = self.proxy.endpoint
        self.port = PORT
        self.secret_arn = secret_arn
        self.kms_key_arn = kms_key_arn
        self.db_security_group_id = database.security_group_id
        self.proxy_security_group_id = proxy_sg.id
        self.lambda_security_group_id = lambda_sg.id
        self.function_name = self.function.name
        self.function_arn = self.function.arn
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

    def _security_groups(
        self, args: RdsProxyArgs, vpc_id: pulumi.Input[str], instance_id: str, db_group_id: pulumi.Input[str]
    ) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        proxy_sg = self._group(vpc_id, "proxy", f"RDS Proxy of {instance_id}: port {PORT} in from clients, out to the DB")
        lambda_sg = self._group(vpc_id, "lambda", f"Proxy client function: MySQL to the proxy of {instance_id} only")
        self._ingress("db-from-proxy", db_group_id, proxy_sg.id, "MySQL from the RDS Proxy")
        self._egress("proxy-to-db", proxy_sg, db_group_id, "MySQL to the database")
        self._ingress("proxy-from-lambda", proxy_sg.id, lambda_sg.id, "MySQL from the proxy client function")
        for index, group_id in enumerate(args.allowed_security_group_ids):
            self._ingress(f"proxy-from-allowed-{index}", proxy_sg.id, group_id, "MySQL from an allowed client group")
        self._egress("lambda-to-proxy", lambda_sg, proxy_sg.id, "MySQL to the RDS Proxy")
        return proxy_sg, lambda_sg

    def _ingress(self, suffix: str, group_id: pulumi.Input[str], source: pulumi.Input[str], text: str) -> None:
        aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-{suffix}",
            security_group_id=group_id,
            referenced_security_group_id=source,
            ip_protocol="tcp", from_port=PORT, to_port=PORT,
            description=text,
            opts=self._child,
        )

    def _egress(self, suffix: str, group: aws.ec2.SecurityGroup, target: pulumi.Input[str], text: str) -> None:
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-{suffix}",
            security_group_id=group.id,
            referenced_security_group_id=target,
            ip_protocol="tcp", from_port=PORT, to_port=PORT,
            description=text,
            opts=self._child,
        )

    def _instance(
        self,
        args: RdsProxyArgs,
        ephemeral: bool,
        instance_id: str,
        kms_key_arn: pulumi.Output[str],
        subnet_ids: pulumi.Input[Any],
        db_sg: aws.ec2.SecurityGroup,
    ) -> tuple[aws.rds.Instance, random.RandomPassword | None]:
        managed = args.credentials == "managed"
        password = None if managed else admin_password(f"{self._name}-master-password", opts=self._child)
        subnet_group = aws.rds.SubnetGroup(
            f"{self._name}-subnets",
            name=self._namer.rds("proxy", "subnets"),
            description=f"Private subnets of {instance_id}",
            subnet_ids=subnet_ids,
            opts=self._child,
        )
        instance = encrypted_mysql(
            f"{self._name}-mysql",
            identifier=instance_id,
            final_snapshot_identifier=self._namer.rds("proxy", "mysql", "final"),
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage,
            db_name=args.database_name,
            username=args.master_username,
            password=None if password is None else password.result,
            kms_key_arn=kms_key_arn,
            subnet_group_name=subnet_group.name,
            security_group_ids=[db_sg.id],
            ephemeral=ephemeral,
            backup_retention_days=args.backup_retention_days or (1 if ephemeral else 7),
            parameter_group_name=self._namer.rds("proxy", "mysql", "params"),
            monitoring_role_name=self._namer.iam_role("proxy", "monitoring"),
            options=MySqlOptions(
                engine_lifecycle_support=args.engine_lifecycle_support, parameters=args.parameters,
                log_exports=args.log_exports, log_retention_days=self._log_days,
                observability=args.observability, restore=args.restore,
            ),
            opts=self._child,
        )
        return instance, password

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

    def _user_secret(self, user: ProxyUserArgs, ephemeral: bool, address: pulumi.Input[str],
                     kms_key_arn: pulumi.Output[str]) -> tuple[str, pulumi.Output[str]]:
        if user.secret_arn is not None:
            return user.username, pulumi.Output.from_input(user.secret_arn)
        password = admin_password(f"{self._name}-user-{user.username}-password", opts=self._child)
        secret = aws.secretsmanager.Secret(
            f"{self._name}-user-{user.username}",
            name=self._namer.secret("proxy", "user", user.username),
            description=f"MySQL user {user.username} that the RDS Proxy logs in as (create it with this password)",
            kms_key_id=kms_key_arn,
            recovery_window_in_days=0 if ephemeral else 30,
            opts=self._child,
        )
        aws.secretsmanager.SecretVersion(
            f"{self._name}-user-{user.username}-value",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.json_dumps({
                "engine": ENGINE, "host": address, "port": PORT,
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
                "DB_NAME": self.database_name,
                # AWS_REGION is reserved (Lambda sets it); this names the region the token is signed for.
                "DB_REGION": region,
            }),
            # The role's policy must exist before the function can use it; its log group before it logs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, vpc_access, *logs]),
        )

    def outputs(self) -> dict[str, Any]:
        return {
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
            "quota": QUOTA_NOTE,
        }


def managed_secret_arn(secrets: Any) -> str:
    if not secrets:
        raise ValueError("the instance reports no RDS-managed master secret")
    first = secrets[0]
    return first["secret_arn"] if isinstance(first, dict) else first.secret_arn


def proxy_role_policy(secret_arns: list[str], kms_key_arns: list[str], region: str,
                      db_user_arns: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Read the proxy's secrets and decrypt them only on Secrets Manager's behalf; with end-to-end
    IAM, ``rds-db:connect`` as each IAM database user instead (RDS Proxy User Guide)."""
    statements: list[dict[str, Any]] = []
    if secret_arns:
        statements += [
            {
                "Sid": "ReadCredentialsSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secret_arns[0] if len(secret_arns) == 1 else sorted(secret_arns),
            },
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
