"""4.5 Password rotation: an RDS MySQL admin secret that a Lambda function rotates every 30 days.

Two ways, chosen with ``managed``:

* ``managed: false`` (default): the recipe owns the rotation. A generated initial
  password (41 characters, letters and digits of every kind, no punctuation)
  becomes the instance's master password and the secret's first version; the
  secret (JSON: engine, host, port, username, password, dbname) is encrypted with
  a customer-managed KMS key; the rotation function (``functions/rotation``, AWS's
  single-user protocol) runs in the VPC, reaches the database on 3306 and
  Secrets Manager through the VPC interface endpoint; Secrets Manager may invoke it
  for this one secret only; ``SecretRotation`` runs it every ``rotation_days``.
  Choose this when you need your own schedule (1..1000 days) or secret format,
  when other tools read the secret's JSON, or when you rotate users other than the
  master user with the same function.
* ``managed: true``: RDS keeps the master password in Secrets Manager itself
  (``manage_master_user_password``) and rotates it, with no function, network path or
  IAM to maintain. RDS's own schedule is 7 days; a ``SecretRotation`` on the managed
  secret (no function) sets it to ``rotation_days`` (30), as terraform-aws-modules/rds
  does with ``manage_master_user_password_rotation`` ("Managed rotation" in the Secrets
  Manager User Guide: RotateSecret on a managed secret takes only the schedule). Choose this
  whenever the master password is all you need rotated. Trade-offs: an instance
  whose master password is RDS-managed cannot be the source of a read replica
  (see 4.4), the schedule is RDS's, and the secret holds only username and
  password (clients find host and port elsewhere).

Network: the function has a security group of its own, the only one (besides
``allowed_security_group_ids``) the database admits MySQL from, and the only MySQL
egress it has leads to the database. It is also a member of the app tier, the group
the Secrets Manager endpoint admits HTTPS from; the app tier itself no longer
reaches the database.

An existing database outside the stack (``target``): its engine and identifier, the security
groups it admits on its port (the function joins them, and the app tier for its egress), and
either the existing secret to rotate (``secret_arn``, with ``kms_key_arn`` when a customer-managed
key encrypts it) or ``username`` + ``host`` for a new secret of this stack with a generated first
password (create the user with it, then rotate: ``rotate_immediately`` must be false). With
``managed: true`` the target's RDS-managed master secret (``rds!...``) gets the schedule only.

TLS: the function connects with ``verify-full``; the RDS CA bundle is shipped in its
archive (``global-bundle.pem``, downloaded once into the build cache, or the local
file named by ``ca_bundle`` for air-gapped builds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.naming import Namer
from components.packaging import (
    CA_BUNDLE_NAME,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    BuiltArchive,
    build_function_archive,
    function_dir,
    missing_ca_bundle,
    rds_ca_bundle,
)
from components.parts import (
    ADMIN_PASSWORD_LENGTH,
    EPHEMERAL_LOG_DAYS,
    FAMILY_PORTS,
    MYSQL_ENGINE,
    MYSQL_PORT,
    TARGET_ENGINES,
    DatabaseRef,
    MySqlInstanceArgs,
    admin_password,
    admin_secret,
    check_kms_key_ref,
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
PORT = MYSQL_PORT
FUNCTION_NAME = "rotation"
DEFAULT_ROTATION_DAYS = 30
ROTATION_DAYS_RANGE = (1, 1000)
INITIAL_PASSWORD_LENGTH = ADMIN_PASSWORD_LENGTH
# Unsafe in connection strings and SQL literals; the function passes them to GetRandomPassword.
EXCLUDE_CHARACTERS = "/@\"'\\ "
PASSWORD_LENGTH_RANGE = (16, 128)
_SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!-]+")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# RDS-managed master secrets are named rds!db-<uuid> / rds!cluster-<uuid>.
_MANAGED_SECRET = re.compile(r".*:secret:rds![a-z]+-[0-9a-f-]+-[A-Za-z0-9]{6}")


@dataclass(frozen=True)
class RotationTargetArgs:
    """A database outside the stack whose user's password is rotated."""

    engine: str
    # The instance or cluster identifier (names it in descriptions and outputs).
    identifier: str
    # Security groups the database admits on its port; the rotation function joins them.
    security_group_ids: tuple[str, ...] = ()
    # Either an existing secret to rotate (JSON: engine, host, port, username, password[, dbname]) ...
    secret_arn: str | None = None
    # ... the key of that secret (None: the AWS managed key aws/secretsmanager), or the key of the new
    # secret below (None: the stack's key).
    kms_key_arn: str | None = None
    # ... or a new secret of this stack for this user, with a generated first password.
    username: str | None = None
    host: str | None = None
    # None: 3306 for MySQL engines, 5432 for PostgreSQL.
    port: int | None = None
    database_name: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in TARGET_ENGINES:
            raise ValueError(f"engine: {self.engine!r} is not allowed (allowed: {', '.join(TARGET_ENGINES)})")
        check_rds_identifier("identifier", self.identifier)
        check_security_group_ids(self.security_group_ids, "the rotation function", required=False)
        if (self.secret_arn is None) == (self.username is None):
            raise ValueError("secret_arn, username: give one: the existing secret to rotate, or the user of a new secret")
        if self.secret_arn is not None:
            if not _SECRET_ARN.fullmatch(self.secret_arn):
                raise ValueError(f"secret_arn: {self.secret_arn!r} is not a secret ARN "
                                 "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)")
            extra = [k for k in ("host", "port", "database_name") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{extra[0]}: only for a new secret (username); an existing secret holds its own")
        else:
            assert self.username is not None
            check_sql_identifier("username", self.username, 63 if TARGET_ENGINES[self.engine] == "POSTGRESQL" else 32)
            if self.host is None or not _HOST.fullmatch(self.host):
                raise ValueError(f"host: a new secret needs the database's endpoint address, got {self.host!r}")
            if self.port is not None and not 1150 <= self.port <= 65535:
                raise ValueError(f"port: RDS ports are 1150..65535, got {self.port}")
            if self.database_name is not None:
                check_sql_identifier("database_name", self.database_name, 63)
        check_kms_key_ref(self.kms_key_arn)

    @property
    def creates_secret(self) -> bool:
        return self.username is not None

    @property
    def db_port(self) -> int:
        return self.port or FAMILY_PORTS[TARGET_ENGINES[self.engine]]


@dataclass(frozen=True)
class SecretRotationArgs(MySqlInstanceArgs):
    # stack: rotate the admin user of the stack's Aurora cluster when it has one, else of its MySQL
    # instance. own: an RDS MySQL instance of this recipe (the instance keys: MySqlInstanceArgs,
    # allowed_security_group_ids).
    database: Literal["stack", "own"] = "stack"
    # true: RDS-managed master password, rotated by RDS; no function.
    managed: bool = False
    # Days between rotations (1..1000); None: 30. In both modes (managed: the RDS-managed secret's schedule).
    rotation_days: int | None = None
    # Rotate once right after creation: proves the set-up works and retires the generated password.
    rotate_immediately: bool = True
    # Length of the passwords the function generates.
    password_length: int = INITIAL_PASSWORD_LENGTH
    # Security groups, besides the app tier, whose members may reach the database.
    allowed_security_group_ids: tuple[str, ...] = ()
    lambda_timeout: int = 60
    lambda_memory: int = 256
    # A local RDS CA bundle (PEM) to ship in the function; None: download it once into the build cache.
    ca_bundle: str | None = None
    # An existing database outside the stack instead (then database stays stack).
    target: RotationTargetArgs | None = None

    def __post_init__(self) -> None:
        self._check_target()
        low, high = ROTATION_DAYS_RANGE
        if self.rotation_days is not None and not low <= self.rotation_days <= high:
            raise ValueError(f"rotation_days: must be {low}..{high}, got {self.rotation_days}")
        super().__post_init__()
        if self.ca_bundle is not None and self.managed:
            raise ValueError("ca_bundle: managed rotation runs no function; remove ca_bundle or set managed: false")
        low, high = PASSWORD_LENGTH_RANGE
        if not low <= self.password_length <= high:
            raise ValueError(f"password_length: must be {low}..{high}, got {self.password_length}")
        if not 3 <= self.lambda_timeout <= 900:
            raise ValueError(f"lambda_timeout: must be 3..900 seconds, got {self.lambda_timeout}")
        if not 128 <= self.lambda_memory <= 10240:
            raise ValueError(f"lambda_memory: must be 128..10240 MB, got {self.lambda_memory}")

    def _check_target(self) -> None:
        target = self.target
        if target is None:
            return
        check_target_alone(self.database)
        if self.managed:
            if target.secret_arn is None or not _MANAGED_SECRET.fullmatch(target.secret_arn):
                raise ValueError("target.secret_arn: managed: true schedules the rotation of the target's RDS-managed "
                                 "master secret (secret:rds!db-... or rds!cluster-...); name it, or set managed: false")
            return
        check_security_group_ids(target.security_group_ids, "the rotation function", required=True,
                                 field="target.security_group_ids")
        if target.creates_secret and self.rotate_immediately:
            raise ValueError(f"rotate_immediately: the new secret's user {target.username} does not exist yet; set "
                             "false, create the user with the secret's password, then rotate it "
                             "(aws secretsmanager rotate-secret)")

    @property
    def days(self) -> int:
        return self.rotation_days or DEFAULT_ROTATION_DAYS


class RotatedSecret(pulumi.ComponentResource):
    """An RDS admin password that is rotated, by a Lambda function or by RDS: of the stack's
    database (``database``) or of an RDS MySQL instance of this recipe's own."""

    def __init__(
        self,
        name: str,
        args: SecretRotationArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        vpc_id: pulumi.Input[str],
        subnet_ids: pulumi.Input[Any],
        app_security_group_id: pulumi.Input[str],
        archive: BuiltArchive | None = None,
        endpoint_dependencies: Sequence[pulumi.Resource] = (),
        log_retention_days: int = EPHEMERAL_LOG_DAYS,
        database: DatabaseRef | None = None,
        stack_key: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``stack_key``: the key of a new secret for ``args.target`` (unless it names one).
        ``endpoint_dependencies``: what must exist before the first rotation runs (the network
        with its Secrets Manager endpoint), since ``rotate_immediately`` invokes the function.
        ``database``: the stack's database whose admin secret is rotated (its secret must be
        RDS-managed for ``managed: true``, the stack's own JSON secret otherwise); None:
        ``args.target`` when given, else an RDS MySQL instance of this recipe's own."""
        super().__init__("db-recipes:rotation:RotatedSecret", name, None, opts)
        self._name = name
        self._log_days = log_retention_days
        self._child = pulumi.ResourceOptions(parent=self)
        self._namer = namer
        if database is not None and database.managed_secret != args.managed:
            raise ValueError(f"secret-rotation: managed is {str(args.managed).lower()} but the database's admin "
                             f"secret is {'RDS-managed' if database.managed_secret else 'the stack'}'s own")
        target = args.target
        if target is not None:
            instance_id = target.identifier
            port = target.db_port
        else:
            instance_id = namer.rds("rotation", "mysql") if database is None else "the stack's database"
            port = PORT if database is None else database.port

        function_sg = None if args.managed else aws.ec2.SecurityGroup(
            f"{name}-function-sg",
            name=namer.security_group("rotation", "function"),
            description=f"Rotation function of {instance_id}: the database port to that database only",
            vpc_id=vpc_id,
            opts=self._child,
        )
        # Version stages are the rotation's: the stack wrote the first value and leaves the rest alone.
        first_value: list[pulumi.Resource] = []
        # Groups the function joins besides its own and the app tier: those an existing target admits.
        target_groups: list[pulumi.Input[str]] = []
        kms_key_arn: pulumi.Output[str] | None
        if target is not None:
            secret_arn, kms_key_arn, first_value = self._target_secret(args, target, ephemeral, stack_key)
            target_groups = list(target.security_group_ids)
        elif database is None:
            kms_key_arn = customer_key(
                name, args.kms_key_arn, alias=namer.kms_alias("rotation"), ephemeral=ephemeral,
                description=f"RDS MySQL {instance_id}: storage and admin secret", opts=self._child)
            db_sg = self._db_security_group(args, vpc_id, function_sg, instance_id)
            password = None if args.managed else admin_password(
                f"{name}-initial-password", length=INITIAL_PASSWORD_LENGTH, opts=self._child)
            self.instance = own_mysql(
                name, "rotation", args, namer=namer, identifier=instance_id, password=password,
                kms_key_arn=kms_key_arn, subnet_ids=subnet_ids, security_group_id=db_sg.id, ephemeral=ephemeral,
                log_retention_days=log_retention_days, opts=self._child)
            if password is None:
                secret_arn = self.instance.master_user_secrets.apply(managed_secret_arn)
            else:
                secret, version = admin_secret(
                    name, secret_name=namer.secret("rotation", "admin"),
                    description=f"Admin credentials of RDS MySQL {instance_id}, rotated every {args.days} days",
                    kms_key_arn=kms_key_arn, ephemeral=ephemeral, engine=ENGINE, host=self.instance.address,
                    port=PORT, username=args.master_username, password=password.result,
                    dbname=args.database_name, parent=self)
                secret_arn, first_value = secret.arn, [version]
            database = DatabaseRef(
                engine=ENGINE, identifier=self.instance.identifier, arn=self.instance.arn,
                resource_id=self.instance.resource_id, address=self.instance.address, port=PORT,
                database_name=args.database_name, master_username=args.master_username, secret_arn=secret_arn,
                managed_secret=password is None, kms_key_arn=kms_key_arn, security_group_id=db_sg.id,
                ready=(self.instance, *first_value))
        else:
            kms_key_arn = pulumi.Output.from_input(database.kms_key_arn)
            secret_arn = pulumi.Output.from_input(database.secret_arn)
        if function_sg is not None and database is not None:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-function-to-db",
                security_group_id=function_sg.id,
                referenced_security_group_id=database.security_group_id,
                ip_protocol="tcp", from_port=port, to_port=port,
                description="The database port of the database it rotates",
                opts=self._child,
            )
        ready = list(database.ready) if database is not None else first_value

        self.function: aws.lambda_.Function | None = None
        self.rotation: aws.secretsmanager.SecretRotation | None = None
        if args.managed:
            # No function: Secrets Manager rotates an RDS-managed secret itself; only the schedule is ours.
            self.rotation = aws.secretsmanager.SecretRotation(
                f"{name}-rotation",
                secret_id=secret_arn,
                rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(automatically_after_days=args.days),
                rotate_immediately=args.rotate_immediately,
                opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
            )
        else:
            region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
            assert function_sg is not None
            # The function joins the app tier: the Secrets Manager endpoint admits it, and the
            # stack's databases admit the app tier on their port (its egress reaches a target).
            self.function = self._function(args, archive, secret_arn, kms_key_arn, region, subnet_ids,
                                           [function_sg.id, app_security_group_id, *target_groups])
            permission = aws.lambda_.Permission(
                f"{name}-invoke-permission",
                action="lambda:InvokeFunction",
                function=self.function.name,
                principal="secretsmanager.amazonaws.com",
                source_arn=secret_arn,  # this secret only, not any secret in the account
                opts=self._child,
            )
            self.rotation = aws.secretsmanager.SecretRotation(
                f"{name}-rotation",
                secret_id=secret_arn,
                rotation_lambda_arn=self.function.arn,
                rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                    automatically_after_days=args.days,
                ),
                rotate_immediately=args.rotate_immediately,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[permission, *ready, *endpoint_dependencies]
                ),
            )

        self.secret_arn = secret_arn
        self.managed = args.managed
        self.rotation_days = args.days
        self.port = port
        self.kms_key_arn = kms_key_arn
        if target is not None:
            self.instance_identifier: pulumi.Input[str] = target.identifier
            self.instance_arn: pulumi.Input[str] | None = None
            self.address: pulumi.Input[str] | None = target.host
            self.engine = target.engine
            self.database_name = target.database_name
            # The user of an existing secret is in the secret, which the stack never reads.
            self.master_username: str | None = target.username
            self.security_group_id: pulumi.Input[str] | None = None
        else:
            assert database is not None
            self.instance_identifier = database.identifier
            self.instance_arn = database.arn
            self.address = database.address
            self.engine = database.engine
            self.database_name = database.database_name
            self.master_username = database.master_username
            self.security_group_id = database.security_group_id
        self.function_security_group_id = function_sg.id if function_sg is not None else None
        self.register_outputs(self.outputs())

    # ------------------------------------------------------------- pieces

    def _target_secret(
        self, args: SecretRotationArgs, target: RotationTargetArgs, ephemeral: bool,
        stack_key: pulumi.Input[str] | None,
    ) -> tuple[pulumi.Output[str], pulumi.Output[str] | None, list[pulumi.Resource]]:
        """The target's secret, its key (None: aws/secretsmanager) and what writes its first value."""
        if target.secret_arn is not None:
            key = key_arn(target.kms_key_arn, parent=self) if target.kms_key_arn else None
            return pulumi.Output.from_input(target.secret_arn), key, []
        assert target.username is not None and target.host is not None
        kms_key_arn = customer_key(
            self._name, target.kms_key_arn, alias=self._namer.kms_alias("rotation"), ephemeral=ephemeral,
            description=f"Secret of {target.username} on {target.identifier}", opts=self._child, stack_key=stack_key)
        password = admin_password(f"{self._name}-initial-password", length=args.password_length, opts=self._child)
        secret, version = admin_secret(
            self._name, secret_name=self._namer.secret("rotation", "user", target.username),
            description=f"{target.username} on {target.identifier} (create the user with this password), rotated "
                        f"every {args.days} days",
            kms_key_arn=kms_key_arn, ephemeral=ephemeral, engine=target.engine, host=target.host,
            port=target.db_port, username=target.username, password=password.result,
            dbname=target.database_name, parent=self)
        return secret.arn, kms_key_arn, [version]

    def _db_security_group(
        self,
        args: SecretRotationArgs,
        vpc_id: pulumi.Input[str],
        function_sg: aws.ec2.SecurityGroup | None,
        instance_id: str,
    ) -> aws.ec2.SecurityGroup:
        sources: list[tuple[str, pulumi.Input[str], str]] = []
        if function_sg is not None:
            sources.append(("function", function_sg.id, "MySQL from the rotation function only"))
        sources += [(f"allowed-{i}", sg, "MySQL from an allowed client group")
                    for i, sg in enumerate(args.allowed_security_group_ids)]
        return aws.ec2.SecurityGroup(
            f"{self._name}-db-sg",
            name=self._namer.security_group("rotation", "db"),
            description=f"MySQL {PORT} to {instance_id} from named security groups only",
            vpc_id=vpc_id,
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp", from_port=PORT, to_port=PORT, security_groups=[source], description=text,
                )
                for _, source, text in sources
            ],
            # No egress: a database opens no connections (inline, so the default allow-all goes).
            egress=[],
            opts=self._child,
        )

    def _function(
        self,
        args: SecretRotationArgs,
        archive: BuiltArchive | None,
        secret_arn: pulumi.Output[str],
        kms_key_arn: pulumi.Output[str] | None,
        region: pulumi.Output[str],
        subnet_ids: pulumi.Input[Any],
        security_group_ids: list[pulumi.Input[str]],
    ) -> aws.lambda_.Function:
        archive = archive or rotation_archive(args.ca_bundle)
        role, vpc_access = lambda_role(f"{self._name}-lambda-role", self._namer.iam_role("rotation", "function"),
                           "Secret rotation function: one secret, its KMS key via Secrets Manager", self._child)
        document = pulumi.Output.all(secret_arn, kms_key_arn if kms_key_arn is not None else "", region).apply(
            lambda values: json.dumps(rotation_role_policy(values[0], values[1] or None, values[2]))
        )
        policy = aws.iam.RolePolicy(f"{self._name}-lambda-policy", role=role.id, policy=document, opts=self._child)
        function_name = self._namer.lambda_function("rotation")
        logs = log_groups(self._name, {"function": f"/aws/lambda/{function_name}"},
                          retention_days=self._log_days, opts=self._child)
        return aws.lambda_.Function(
            f"{self._name}-function",
            name=function_name,
            description="Secrets Manager single-user rotation of an RDS admin password",
            runtime=LAMBDA_RUNTIME,
            architectures=[LAMBDA_ARCHITECTURE],
            handler="handler.lambda_handler",
            role=role.arn,
            code=pulumi.FileArchive(str(archive.path)),
            source_code_hash=archive.sha256_b64,
            timeout=args.lambda_timeout,
            memory_size=args.lambda_memory,
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=subnet_ids, security_group_ids=security_group_ids),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                # Resolves to the VPC interface endpoint through its private DNS name.
                "SECRETS_MANAGER_ENDPOINT": region.apply(lambda r: f"https://secretsmanager.{r}.amazonaws.com"),
                "EXCLUDE_CHARACTERS": EXCLUDE_CHARACTERS,
                "PASSWORD_LENGTH": str(args.password_length),
            }),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, vpc_access, *logs]),
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "managed": self.managed,
            "engine": self.engine,
            "rotation_days": self.rotation_days,
            "secret_arn": self.secret_arn,
            "instance_identifier": self.instance_identifier,
            "instance_arn": self.instance_arn,
            "address": self.address,
            "port": self.port,
            "database_name": self.database_name,
            "master_username": self.master_username,
            "kms_key_arn": self.kms_key_arn,
            "security_group_id": self.security_group_id,
            "function_security_group_id": self.function_security_group_id,
            "function_name": self.function.name if self.function else None,
            "function_arn": self.function.arn if self.function else None,
        }


def rotation_archive(ca_bundle: str | None) -> BuiltArchive:
    """The rotation function's zip with the RDS CA bundle beside handler.py (where it looks first)."""
    bundle = rds_ca_bundle(ca_bundle)
    if bundle.path is None:
        missing_ca_bundle(FUNCTION_NAME, bundle.problem or "no bundle")
        return build_function_archive(function_dir(FUNCTION_NAME))
    return build_function_archive(function_dir(FUNCTION_NAME), extra_files={CA_BUNDLE_NAME: bundle.path})


def rotation_role_policy(secret_arn: str, kms_key_arn: str | None, region: str) -> dict[str, Any]:
    """What AWS's single-user rotation function needs, scoped to one secret and one key. A secret
    under the AWS managed key aws/secretsmanager needs no key statement: that key's policy lets the
    account's principals use it through Secrets Manager (Secrets Manager User Guide, "Secret
    encryption and decryption")."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "RotateThisSecret",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                # Lets setSecret find the versions of an abandoned rotation and never lock the user out.
                "secretsmanager:ListSecretVersionIds",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ],
            "Resource": secret_arn,
        },
        {
            # GetRandomPassword acts on no resource, so IAM accepts only "*" here.
            "Sid": "GeneratePasswords",
            "Effect": "Allow",
            "Action": "secretsmanager:GetRandomPassword",
            "Resource": "*",
        },
    ]
    if kms_key_arn:
        statements.append({
            "Sid": "UseSecretKeyViaSecretsManager",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        })
    return {"Version": "2012-10-17", "Statement": statements}
