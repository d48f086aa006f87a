"""The recipe registry: stack config -> which recipes, with what args -> resources and outputs.

``__main__.py`` and the Automation API's inline program both call
``build(read_stack_config())``; ``dbenv plan`` runs the same call under mocks.
All config is parsed and validated before the first resource is registered.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws

from components import naming
from components.aurora_serverless import AuroraServerlessArgs, AuroraServerlessPostgres
from components.branch_databases import PARENT_OUTPUTS, BranchDatabases, ParentDatabases, StackMySqlArgs
from components.config import ConfigError, from_mapping
from components.data_api import DataApiAccess, DataApiArgs
from components.dms_migration import DmsMigration, DmsMigrationArgs, DmsSource
from components.dynamodb_autoscaling import DynamoDbAutoscaling, DynamoDbAutoscalingArgs
from components.encrypted_restore import DemoMySqlSource, DemoSourceArgs, EncryptedRestore, EncryptExistingArgs
from components.iam_auth import IamAuthArgs, IamDatabaseAuth
from components.network import Network, NetworkArgs
from components.parts import DatabaseRef, check_log_retention, log_retention_days
from components.rds_proxy import DatabaseProxy, RdsProxyArgs, check_aurora_for_proxy
from components.secret_rotation import RotatedSecret, SecretRotationArgs

PROJECT = "db-recipes"
NAMESPACE = PROJECT
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Recipe:
    name: str
    section: str
    title: str
    args_type: type
    needs_network: bool
    # Recipes added to the selection when this one is chosen and its config names no
    # existing target of its own (see ``_implied``).
    implies: tuple[str, ...] = ()


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("aurora-serverless", "4.1", "Aurora Serverless v2 PostgreSQL", AuroraServerlessArgs, True),
        Recipe("data-api", "4.8", "RDS Data API with least-privilege access", DataApiArgs, False,
               implies=("aurora-serverless",)),
        Recipe("iam-auth", "4.2", "RDS IAM database authentication", IamAuthArgs, False,
               implies=("aurora-serverless",)),
        Recipe("encrypt-existing", "4.4", "Encrypt an existing unencrypted RDS MySQL", EncryptExistingArgs, True),
        Recipe("dms-migration", "4.7", "AWS DMS migration into RDS", DmsMigrationArgs, True),
        Recipe("dynamodb-autoscaling", "4.6", "DynamoDB provisioned-capacity autoscaling",
               DynamoDbAutoscalingArgs, False),
        Recipe("rds-proxy", "4.3", "RDS Proxy with IAM auth in front of RDS MySQL or Aurora, and a Lambda client",
               RdsProxyArgs, True),
        Recipe("secret-rotation", "4.5", "Secrets Manager rotation of an RDS MySQL admin password",
               SecretRotationArgs, True),
    )
}
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPES)

# Keys of the ``db-recipes`` namespace that are not recipe objects.
GLOBAL_KEYS = ("recipes", "ephemeral", "branch", "network", "log-retention-days", "mysql", "parent")

# Recipes that attach to a database of the stack (``database: stack``, the default) or build one
# of their own (``database: own``), and the keys that configure only that own database.
OWN_DATABASE_KEYS: dict[str, tuple[str, ...]] = {
    "rds-proxy": ("engine_version", "engine_lifecycle_support", "instance_class", "allocated_storage",
                  "database_name", "master_username", "credentials", "kms_key_arn", "backup_retention_days",
                  "parameters", "log_exports", "observability", "restore"),
    "secret-rotation": ("engine_version", "engine_lifecycle_support", "instance_class", "allocated_storage",
                        "database_name", "master_username", "kms_key_arn", "backup_retention_days", "parameters",
                        "log_exports", "observability", "allowed_security_group_ids"),
    "dms-migration": ("target",),
}


@dataclass(frozen=True)
class ProviderSettings:
    """Extra AWS provider arguments: the local target points every service at one endpoint."""

    endpoint_url: str | None = None
    services: tuple[str, ...] = ()
    access_key: str | None = None
    secret_key: str | None = None


@dataclass(frozen=True)
class StackConfig:
    stack: str
    region: str
    recipes: tuple[str, ...]
    ephemeral: bool = False
    branch: str | None = None
    network: NetworkArgs = field(default_factory=NetworkArgs)
    recipe_args: Mapping[str, Any] = field(default_factory=dict)
    # Days the stack's CloudWatch log groups keep their logs; None: 14 (ephemeral) or 365 (durable).
    log_retention_days: int | None = None
    # The stack's MySQL instance, built when a recipe attaches to it (``uses_mysql``).
    mysql: StackMySqlArgs = field(default_factory=StackMySqlArgs)
    # The parent stack (``org/db-recipes/<stack>``) whose databases this stack's are cloned from.
    parent: str | None = None

    def args(self, recipe: str) -> Any:
        return self.recipe_args[recipe]

    def on_stack_database(self, recipe: str) -> bool:
        """Whether ``recipe`` is selected and attaches to a database of the stack."""
        args = self.args(recipe)
        return (recipe in self.recipes and getattr(args, "database", "stack") == "stack"
                and not _has_own_target(recipe, args))

    @property
    def rotation_database(self) -> str:
        """The stack database secret-rotation rotates: the Aurora cluster when there is one."""
        return rotation_database(self.recipes)

    @property
    def cloned_databases(self) -> tuple[str, ...]:
        """The stack databases a parent's are cloned into (PARENT_OUTPUTS keys); the rest is created fresh."""
        if self.parent is None:
            return ()
        wanted = {"aurora-serverless": "aurora-serverless" in self.recipes, "mysql": self.uses_mysql,
                  "dynamodb-autoscaling": "dynamodb-autoscaling" in self.recipes}
        return tuple(name for name in PARENT_OUTPUTS if wanted[name])

    @property
    def uses_mysql(self) -> bool:
        return (self.on_stack_database("rds-proxy") or self.on_stack_database("dms-migration")
                or (self.on_stack_database("secret-rotation") and self.rotation_database == "mysql"))


def rotation_database(selected: tuple[str, ...]) -> str:
    return "aurora" if "aurora-serverless" in selected else "mysql"


def parse_recipe_selection(value: Any, path: str = f"{NAMESPACE}:recipes") -> tuple[str, ...]:
    """``all``, a list of names, or a comma-separated string -> the names in build order."""
    if value is None or value == "":
        raise ConfigError(f"{path}: choose recipes: 'all' or a list of {', '.join(RECIPE_NAMES)}")
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        names = list(value)
    else:
        raise ConfigError(f"{path}: expected 'all' or a list of recipe names, got {value!r}")
    if names == ["all"]:
        return RECIPE_NAMES
    for name in names:
        if name not in RECIPES:
            raise ConfigError(
                f"{path}: unknown recipe {name!r} (valid: all, {', '.join(RECIPE_NAMES)})"
            )
    if not names:
        raise ConfigError(f"{path}: the recipe list is empty")
    return tuple(n for n in RECIPE_NAMES if n in names)


def parse_config(raw: Mapping[str, Any], *, stack: str, region: str | None = None) -> StackConfig:
    """Validate the ``db-recipes:*`` config (keys without the namespace) into a StackConfig.

    ``raw`` values may be JSON strings, as Pulumi hands them to programs, or
    already-decoded values.
    """
    values = {key: _decode(value) for key, value in raw.items()}
    valid = (*GLOBAL_KEYS, *RECIPE_NAMES)
    for key in values:
        if key not in valid:
            raise ConfigError(f"{NAMESPACE}:{key}: unknown config key (valid keys: {', '.join(valid)})")
    selected = parse_recipe_selection(values.get("recipes"))
    recipe_args = {
        name: from_mapping(RECIPES[name].args_type, values.get(name), f"{NAMESPACE}:{name}")
        for name in RECIPE_NAMES
    }
    selected = _implied(selected, recipe_args)
    recipe_args = _linked(selected, recipe_args)
    ephemeral = from_mapping(_Flag, {"value": values.get("ephemeral", False)}, f"{NAMESPACE}:ephemeral").value
    _check_own_database_keys(selected, recipe_args)
    _check_branch_replication(selected, recipe_args, ephemeral)
    network = from_mapping(NetworkArgs, values.get("network"), f"{NAMESPACE}:network")
    _check_existing_targets(selected, recipe_args, network)
    mysql = from_mapping(StackMySqlArgs, values.get("mysql"), f"{NAMESPACE}:mysql")
    recipe_args, mysql = _linked_credentials(selected, recipe_args, mysql)
    branch = values.get("branch")
    if branch is not None:
        try:
            naming.validate_branch(str(branch))
        except naming.InvalidName as err:
            raise ConfigError(f"{NAMESPACE}:branch: {err}") from None
    retention = from_mapping(_Retention, {"value": values.get("log-retention-days")},
                             f"{NAMESPACE}:log-retention-days").value
    parent = _parent(values.get("parent"), stack, recipe_args, mysql)
    return StackConfig(
        stack=naming.validate_stack_name(stack),
        region=region or DEFAULT_REGION,
        recipes=selected,
        ephemeral=ephemeral,
        branch=branch,
        network=network,
        recipe_args=recipe_args,
        log_retention_days=retention,
        mysql=mysql,
        parent=parent,
    )


_QUALIFIED_STACK = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]{1,100}$")


def _parent(value: Any, stack: str, recipe_args: Mapping[str, Any], mysql: StackMySqlArgs) -> str | None:
    """The parent stack's qualified name (org/project/stack); a clone says where its databases come from."""
    if value is None or value == "":
        return None
    path = f"{NAMESPACE}:parent"
    if not isinstance(value, str) or not _QUALIFIED_STACK.match(value):
        raise ConfigError(f"{path}: a stack name like organization/{PROJECT}/staging-1a2b3c4d, got {str(value)[:80]!r}")
    if value.rsplit("/", 1)[-1] == stack:
        raise ConfigError(f"{path}: stack {stack} cannot be its own parent")
    for name, restore in (("aurora-serverless", recipe_args["aurora-serverless"].restore), ("mysql", mysql.restore)):
        if restore is not None:
            raise ConfigError(f"{NAMESPACE}:{name}.restore: the database is cloned from the parent stack {value}; "
                              "give a restore or a parent, not both")
    return value


@dataclass(frozen=True)
class _Flag:
    value: bool


@dataclass(frozen=True)
class _Retention:
    value: int | None

    def __post_init__(self) -> None:
        try:
            check_log_retention(self.value, "value")
        except ValueError as err:
            raise ValueError(str(err).removeprefix("value: ")) from None


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _implied(selected: tuple[str, ...], recipe_args: Mapping[str, Any]) -> tuple[str, ...]:
    wanted = set(selected)
    for name in selected:
        if not _has_own_target(name, recipe_args[name]):
            wanted.update(RECIPES[name].implies)
            wanted.update(getattr(recipe_args[name], "implies", ()))
    return tuple(n for n in RECIPE_NAMES if n in wanted)


def _linked(selected: tuple[str, ...], recipe_args: Mapping[str, Any]) -> dict[str, Any]:
    """Settings one recipe imposes on another, validated like the user's own config."""
    linked = dict(recipe_args)
    if "data-api" in selected and not _has_own_target("data-api", recipe_args["data-api"]):
        try:
            linked["aurora-serverless"] = replace(recipe_args["aurora-serverless"], enable_data_api=True)
        except ValueError as err:
            raise ConfigError(f"{NAMESPACE}:aurora-serverless (needed by data-api): {err}") from None
    if "rds-proxy" in selected and recipe_args["rds-proxy"].implies:
        try:
            check_aurora_for_proxy(linked["aurora-serverless"].min_capacity)
        except ValueError as err:
            raise ConfigError(f"{NAMESPACE}:aurora-serverless.{err}") from None
    return linked


def _check_own_database_keys(selected: tuple[str, ...], recipe_args: Mapping[str, Any]) -> None:
    """A recipe on the stack's database has no database of its own to configure."""
    for recipe, keys in OWN_DATABASE_KEYS.items():
        args = recipe_args[recipe]
        if recipe not in selected or args.database == "own":
            continue
        for key in keys:
            if not _is_default(args, key):
                raise ConfigError(
                    f"{NAMESPACE}:{recipe}.{key}: configures a database of the recipe's own, but {recipe} uses "
                    f"the stack's; set {recipe}.database: own to keep one (the former layout), or configure the "
                    f"stack's database ({NAMESPACE}:mysql, {NAMESPACE}:aurora-serverless)")


def _is_default(args: Any, key: str) -> bool:
    """Whether field ``key`` of dataclass ``args`` holds its default (an empty map or list counts as unset)."""
    spec = next(f for f in dataclasses.fields(args) if f.name == key)
    default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
    value = getattr(args, key)
    if dataclasses.is_dataclass(value) and dataclasses.is_dataclass(default):
        return all(_is_default(value, f.name) for f in dataclasses.fields(value))
    return value == default or not (value or default)


def _check_existing_targets(selected: tuple[str, ...], recipe_args: Mapping[str, Any], network: NetworkArgs) -> None:
    """A database outside the stack is reached from its own VPC: a VPC created here has no route to it."""
    for recipe in ("rds-proxy", "secret-rotation"):
        if recipe in selected and recipe_args[recipe].target is not None and not (
                network.adopted or network.shared_stack):
            raise ConfigError(
                f"{NAMESPACE}:{recipe}.target: an existing database is reached from its own VPC, and a VPC created "
                f"by this stack has no route to it; set {NAMESPACE}:network.vpc_id and subnet_ids to that VPC "
                "(or network.shared_stack to a stack on it)")


def _check_branch_replication(selected: tuple[str, ...], recipe_args: Mapping[str, Any], ephemeral: bool) -> None:
    dms = recipe_args["dms-migration"]
    serverless = dms.compute == "serverless" or (dms.compute is None and ephemeral)
    if "dms-migration" in selected and ephemeral and serverless and dms.start_replication_task:
        raise ConfigError(
            f"{NAMESPACE}:dms-migration.start_replication_task: a branch stack never starts its DMS Serverless "
            "replication (it is billed from the start, and for 48 hours after a stop); start it by hand with "
            "aws dms start-replication, or set compute: instance")


def _linked_credentials(selected: tuple[str, ...], recipe_args: Mapping[str, Any],
                        mysql: StackMySqlArgs) -> tuple[dict[str, Any], StackMySqlArgs]:
    """How the stack's databases keep their admin password, as the recipes attached to them need it:
    RDS-managed for managed rotation, the stack's own JSON secret for the rotation function and DMS."""
    linked = dict(recipe_args)
    needs: dict[str, list[tuple[str, str]]] = {"aurora-serverless": [], "mysql": []}
    rotation = recipe_args["secret-rotation"]
    if "secret-rotation" in selected and rotation.database == "stack" and rotation.target is None:
        mode = "managed" if rotation.managed else "secret"
        why = "secret-rotation (managed: true)" if rotation.managed else "secret-rotation's function"
        needs["aurora-serverless" if rotation_database(selected) == "aurora" else "mysql"].append((mode, why))
    if "dms-migration" in selected and recipe_args["dms-migration"].database == "stack":
        needs["mysql"].append(("secret", "dms-migration (DMS reads host and port from it)"))
    chosen: dict[str, str | None] = {}
    for database, wants in needs.items():
        given = (mysql if database == "mysql" else recipe_args[database]).credentials
        modes = {mode for mode, _ in wants} | ({given} if given else set())
        if len(modes) > 1:
            reasons = ", ".join(f"{why} needs {mode}" for mode, why in wants)
            raise ConfigError(f"{NAMESPACE}:{database}.credentials: {given or 'the recipes disagree'}, but {reasons}")
        chosen[database] = next(iter(modes), None)
    if chosen["aurora-serverless"] != recipe_args["aurora-serverless"].credentials:
        linked["aurora-serverless"] = replace(recipe_args["aurora-serverless"], credentials=chosen["aurora-serverless"])
    return linked, replace(mysql, credentials=chosen["mysql"])


def _has_own_target(name: str, args: Any) -> bool:
    return getattr(args, "target", None) is not None


def read_stack_config() -> StackConfig:
    """The config of the running Pulumi program (``pulumi up`` or the Automation API)."""
    raw: dict[str, Any] = {}
    all_config = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    for key, value in all_config.items():
        if key.startswith(prefix):
            raw[key[len(prefix):]] = value
    region = pulumi.Config("aws").get("region")
    return parse_config(raw, stack=pulumi.get_stack(), region=region)


# --------------------------------------------------------------------------- building


@dataclass
class _Build:
    config: StackConfig
    namer: naming.Namer
    opts: pulumi.ResourceOptions
    databases: BranchDatabases
    network: Network | None = None
    built: dict[str, Any] = field(default_factory=dict)
    demo_source: DemoMySqlSource | None = None

    def key(self, given: str | None) -> pulumi.Output[str] | None:
        """The stack's customer-managed key for a recipe, unless the recipe names a key of its own."""
        return None if given else self.databases.key()


def default_tags(config: StackConfig, project: str = PROJECT) -> dict[str, str]:
    return {
        "project": project,
        "stack": config.stack,
        "branch": config.branch or config.stack,
        "ephemeral": "true" if config.ephemeral else "false",
        "managed-by": "pulumi",
    }


def make_provider(config: StackConfig, settings: ProviderSettings | None = None) -> aws.Provider:
    settings = settings or ProviderSettings()
    extra: dict[str, Any] = {}
    if settings.endpoint_url:
        extra.update(
            endpoints=[_endpoints(settings)],
            access_key=settings.access_key or "test",
            secret_key=pulumi.Output.secret(settings.secret_key or "test"),
            skip_credentials_validation=True,
            skip_requesting_account_id=True,
            skip_metadata_api_check=True,
            s3_use_path_style=True,
        )
    return aws.Provider(
        "aws",
        region=config.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=default_tags(config)),
        **extra,
    )


def _endpoints(settings: ProviderSettings) -> aws.ProviderEndpointArgs:
    """Endpoint keys are the provider's names (``lambda``, ``appautoscaling``); the typed args reject typos."""
    try:
        return aws.ProviderEndpointArgs(
            **{("lambda_" if service == "lambda" else service): settings.endpoint_url for service in settings.services}
        )
    except TypeError as err:
        raise ConfigError(f"provider endpoints: {err}") from None


def build(config: StackConfig, provider_settings: ProviderSettings | None = None) -> dict[str, Any]:
    """Register the selected recipes and return their outputs, keyed by recipe name."""
    provider = make_provider(config, provider_settings)
    namer = naming.Namer.for_stack(config.stack)
    opts = pulumi.ResourceOptions(providers={"aws": provider})
    network = None
    if any(RECIPES[name].needs_network for name in config.recipes):
        network = Network("network", config.network, namer=namer, interface_endpoints=_interface_endpoints(config),
                          opts=opts)
    databases = BranchDatabases(
        namer=namer, ephemeral=config.ephemeral,
        log_retention_days=log_retention_days(config.log_retention_days, config.ephemeral), opts=opts,
        placement={"namer": namer, "ephemeral": config.ephemeral, "vpc_id": network.vpc_id,
                   "subnet_ids": network.private_subnet_ids} if network else {},
        client_security_group_ids=[network.app_security_group_id] if network else [],
        parent=ParentDatabases(config.parent, opts=opts) if config.cloned_databases else None,
    )
    ctx = _Build(config=config, namer=namer, opts=opts, databases=databases, network=network)
    outputs: dict[str, Any] = {}
    if ctx.network is not None:
        outputs["network"] = ctx.network.outputs()
    for name in config.recipes:
        outputs[name] = BUILDERS[name](ctx, config.args(name))
    if databases.mysql_built is not None:
        outputs["mysql"] = databases.mysql_built.outputs()
    return outputs


def parse_shared_config(raw: Mapping[str, Any], *, stack: str, region: str | None = None) -> StackConfig:
    """The shared stack's config: only ``network`` (it never selects recipes and is never ephemeral)."""
    values = {key: _decode(value) for key, value in raw.items()}
    for key in values:
        if key != "network":
            raise ConfigError(f"{NAMESPACE}:{key}: the shared stack takes only {NAMESPACE}:network")
    network = from_mapping(NetworkArgs, values.get("network"), f"{NAMESPACE}:network")
    if network.shared_stack is not None:
        raise ConfigError(f"{NAMESPACE}:network.shared_stack: the shared stack cannot read another shared stack")
    return StackConfig(stack=naming.validate_stack_name(stack), region=region or DEFAULT_REGION, recipes=(),
                       network=network)


def read_shared_config() -> StackConfig:
    """The shared stack's config inside the running program."""
    all_config = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    raw = {key[len(prefix):]: value for key, value in all_config.items() if key.startswith(prefix)}
    return parse_shared_config(raw, stack=pulumi.get_stack(), region=pulumi.Config("aws").get("region"))


SHARED_INTERFACE_ENDPOINTS = ("secretsmanager",)


def build_shared(config: StackConfig, provider_settings: ProviderSettings | None = None) -> dict[str, Any]:
    """The account-wide pieces branch stacks read through StackReference: the network, DMS service roles."""
    from components.dms_migration import DmsServiceRoles

    opts = pulumi.ResourceOptions(providers={"aws": make_provider(config, provider_settings)})
    namer = naming.Namer.for_stack(config.stack)
    # Any branch stack on this network may run the rotation function or DMS, which read
    # Secrets Manager; a stack that reads a shared network cannot add endpoints to it.
    network = Network("network", config.network, namer=namer, interface_endpoints=SHARED_INTERFACE_ENDPOINTS,
                      opts=opts)
    roles = DmsServiceRoles("dms-service-roles", opts=opts)
    return {"network": network.outputs(), "dms_service_roles": roles.outputs()}


def export(outputs: Mapping[str, Any]) -> None:
    for key, value in outputs.items():
        pulumi.export(key, value)


def _interface_endpoints(config: StackConfig) -> tuple[str, ...]:
    # There is no NAT: whatever runs inside the VPC and calls an AWS API needs an interface
    # endpoint. The rotation function and the private DMS replication instance both read
    # Secrets Manager. The rds-proxy client needs none (IAM token signing is local), and
    # managed rotation runs no function at all.
    if config.network.shared_stack is not None:
        return ()  # the shared stack has them (SHARED_INTERFACE_ENDPOINTS)
    if config.ephemeral:
        # An interface endpoint bills every hour in every AZ: paid once per account in the shared
        # network, never per branch. A branch on a network of its own has no path to Secrets
        # Manager (fine on the local target; on AWS branches use the shared network by default).
        return ()
    rotation = "secret-rotation" in config.recipes and not config.args("secret-rotation").managed
    if rotation or "dms-migration" in config.recipes:
        return ("secretsmanager",)
    return ()


def _placement(ctx: _Build) -> dict[str, Any]:
    """The keyword arguments every networked recipe component takes: names, lifecycle, subnets."""
    assert ctx.network is not None
    return {"namer": ctx.namer, "ephemeral": ctx.config.ephemeral, "vpc_id": ctx.network.vpc_id,
            "subnet_ids": ctx.network.private_subnet_ids}


def _logs(ctx: _Build) -> dict[str, Any]:
    """How long the recipe's CloudWatch log groups keep logs (they are the stack's, removed by down)."""
    return {"log_retention_days": log_retention_days(ctx.config.log_retention_days, ctx.config.ephemeral)}


def _client_sgs(ctx: _Build, extra: tuple[str, ...]) -> list[Any]:
    assert ctx.network is not None
    return [ctx.network.app_security_group_id, *extra]


def _build_aurora(ctx: _Build, args: AuroraServerlessArgs) -> dict[str, Any]:
    assert ctx.network is not None
    aurora = ctx.databases.aurora(args)
    ctx.built["aurora-serverless"] = aurora
    return aurora.outputs()


def _build_data_api(ctx: _Build, args: DataApiArgs) -> dict[str, Any]:
    target = args.target
    if target is not None:
        access = DataApiAccess(
            "data-api", args, namer=ctx.namer,
            cluster_arn=target.cluster_arn, secret_arn=target.secret_arn, kms_key_arn=target.kms_key_arn,
            database_name=target.database_name, region=target.region, opts=ctx.opts,
        )
    else:
        # _implied put aurora-serverless in the selection and _build_aurora turned its Data API on.
        aurora: AuroraServerlessPostgres = ctx.built["aurora-serverless"]
        assert aurora.data_api_enabled, "aurora-serverless must be built with enable_data_api for data-api"
        access = DataApiAccess(
            "data-api", args, namer=ctx.namer,
            cluster_arn=aurora.cluster_arn, secret_arn=aurora.master_user_secret_arn,
            kms_key_arn=aurora.kms_key_arn, database_name=aurora.database_name, opts=ctx.opts,
        )
    ctx.built["data-api"] = access
    return access.outputs()


def _build_iam_auth(ctx: _Build, args: IamAuthArgs) -> dict[str, Any]:
    if args.target is not None:
        auth = IamDatabaseAuth("iam-auth", args, namer=ctx.namer, resource_id=args.target.resource_id, opts=ctx.opts)
    else:
        aurora: AuroraServerlessPostgres = ctx.built["aurora-serverless"]
        auth = IamDatabaseAuth(
            "iam-auth", args, namer=ctx.namer, resource_id=aurora.cluster_resource_id,
            endpoint=aurora.endpoint, port=aurora.port, opts=ctx.opts,
        )
    ctx.built["iam-auth"] = auth
    return auth.outputs()


def _build_encrypt_existing(ctx: _Build, args: EncryptExistingArgs) -> dict[str, Any]:
    assert ctx.network is not None
    restore = EncryptedRestore(
        "encrypt-existing",
        args,
        **_placement(ctx),
        client_security_group_ids=_client_sgs(ctx, ()),
        stack_key=ctx.key(args.kms_key_arn),
        opts=ctx.opts,
    )
    ctx.built["encrypt-existing"] = restore
    ctx.demo_source = restore.source
    return restore.outputs()


def _build_dms(ctx: _Build, args: DmsMigrationArgs) -> dict[str, Any]:
    assert ctx.network is not None
    source_group: pulumi.Input[str] | None
    if args.source is not None:
        # A source named in config wins, even when encrypt-existing made a demo source.
        source = args.source.to_source()
        source_group, source_port = args.source.security_group_id, args.source.port
    else:
        demo = ctx.demo_source or DemoMySqlSource(
            "dms-source",
            DemoSourceArgs(),
            **_placement(ctx),
            client_security_group_ids=_client_sgs(ctx, ()),
            opts=ctx.opts,
        )
        source = DmsSource(
            engine_name="mysql", server_name=demo.address, port=demo.port, database_name=demo.db_name,
            username=demo.username, password=demo.password,
        )
        source_group, source_port = demo.security_group_id, demo.port
    own = args.database == "own"
    dms = DmsMigration(
        "dms",
        args,
        **_placement(ctx),
        client_security_group_ids=_client_sgs(ctx, ()),
        source=source,
        # A replication instance in a private subnet fetches endpoint secrets through the
        # Secrets Manager interface endpoint, which admits the app tier, as does the stack's MySQL.
        member_security_group_ids=[ctx.network.app_security_group_id],
        **_logs(ctx),
        # database: own keeps the former layout, with its own target and key.
        target=None if own else ctx.databases.mysql(ctx.config.mysql).ref(),
        stack_key=None if own else ctx.key(args.kms_key_arn),
        opts=ctx.opts,
    )
    if source_group is not None:
        # A standalone rule, like the demo source's own: inline and standalone rules on one
        # group would fight each other.
        aws.vpc.SecurityGroupIngressRule(
            "dms-to-source",
            security_group_id=source_group,
            referenced_security_group_id=dms.security_group_id,
            ip_protocol="tcp", from_port=source_port, to_port=source_port,
            description="Source database port from the DMS replication instance",
            opts=pulumi.ResourceOptions(parent=dms),
        )
    ctx.built["dms-migration"] = dms
    return dms.outputs()


def _build_dynamodb(ctx: _Build, args: DynamoDbAutoscalingArgs) -> dict[str, Any]:
    table = DynamoDbAutoscaling(
        "dynamodb",
        args,
        namer=ctx.namer,
        ephemeral=ctx.config.ephemeral,
        stack_key=ctx.key(args.kms_key_arn),
        restore_source=ctx.databases.parent.table_name() if ctx.databases.parent else None,
        opts=ctx.opts,
    )
    ctx.built["dynamodb-autoscaling"] = table
    return table.outputs()


def _build_rds_proxy(ctx: _Build, args: RdsProxyArgs) -> dict[str, Any]:
    assert ctx.network is not None
    proxy = DatabaseProxy(
        "rds-proxy",
        args,
        **_placement(ctx),
        **_logs(ctx),
        database=_proxied_database(ctx, args),
        app_security_group_id=ctx.network.app_security_group_id,
        opts=ctx.opts,
    )
    ctx.built["rds-proxy"] = proxy
    return proxy.outputs()


def _proxied_database(ctx: _Build, args: RdsProxyArgs) -> DatabaseRef | None:
    """The stack's database the proxy fronts; None: its own instance, or ``args.target``."""
    if args.database == "own" or args.target is not None:
        return None
    if args.database == "aurora":
        return ctx.built["aurora-serverless"].ref()
    return ctx.databases.mysql(ctx.config.mysql).ref()


def _build_secret_rotation(ctx: _Build, args: SecretRotationArgs) -> dict[str, Any]:
    assert ctx.network is not None
    rotated = RotatedSecret(
        "secret-rotation",
        args,
        **_placement(ctx),
        app_security_group_id=ctx.network.app_security_group_id,
        endpoint_dependencies=[ctx.network],
        **_logs(ctx),
        database=_rotated_database(ctx, args),
        stack_key=ctx.key(args.target.kms_key_arn) if args.target and args.target.creates_secret else None,
        opts=ctx.opts,
    )
    ctx.built["secret-rotation"] = rotated
    return rotated.outputs()


def _rotated_database(ctx: _Build, args: SecretRotationArgs) -> DatabaseRef | None:
    """The stack's Aurora cluster when it has one (the function speaks PostgreSQL), else its MySQL."""
    if args.database == "own" or args.target is not None:
        return None
    if ctx.config.rotation_database == "aurora":
        aurora = ctx.built["aurora-serverless"]
        return aurora.ref()
    return ctx.databases.mysql(ctx.config.mysql).ref()


BUILDERS: dict[str, Callable[[_Build, Any], dict[str, Any]]] = {
    "aurora-serverless": _build_aurora,
    "data-api": _build_data_api,
    "iam-auth": _build_iam_auth,
    "encrypt-existing": _build_encrypt_existing,
    "dms-migration": _build_dms,
    "dynamodb-autoscaling": _build_dynamodb,
    "rds-proxy": _build_rds_proxy,
    "secret-rotation": _build_secret_rotation,
}
