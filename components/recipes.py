"""The recipe registry: stack config -> which recipes, with what args -> resources and outputs.

``__main__.py`` and the Automation API's inline program both call
``build(read_stack_config())``; ``dbenv plan`` runs the same call under mocks.
All config is parsed and validated before the first resource is registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws

from components import naming
from components.aurora_serverless import AuroraServerlessArgs, AuroraServerlessPostgres
from components.config import ConfigError, from_mapping
from components.data_api import DataApiAccess, DataApiArgs
from components.dms_migration import DmsMigration, DmsMigrationArgs, DmsSource
from components.dynamodb_autoscaling import DynamoDbAutoscaling, DynamoDbAutoscalingArgs
from components.encrypted_restore import DemoMySqlSource, EncryptedRestore, EncryptExistingArgs
from components.iam_auth import IamAuthArgs, IamDatabaseAuth
from components.network import Network, NetworkArgs

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
        Recipe("data-api", "4.8", "RDS Data API with least-privilege access", DataApiArgs, True,
               implies=("aurora-serverless",)),
        Recipe("iam-auth", "4.2", "RDS IAM database authentication", IamAuthArgs, False,
               implies=("aurora-serverless",)),
        Recipe("encrypt-existing", "4.4", "Encrypt an existing unencrypted RDS MySQL", EncryptExistingArgs, True),
        Recipe("dms-migration", "4.7", "AWS DMS migration into RDS", DmsMigrationArgs, True),
        Recipe("dynamodb-autoscaling", "4.6", "DynamoDB provisioned-capacity autoscaling",
               DynamoDbAutoscalingArgs, False),
    )
}
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPES)

# Keys of the ``db-recipes`` namespace that are not recipe objects.
GLOBAL_KEYS = ("recipes", "ephemeral", "branch", "network")


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

    def args(self, recipe: str) -> Any:
        return self.recipe_args[recipe]


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
    ephemeral = from_mapping(_Flag, {"value": values.get("ephemeral", False)}, f"{NAMESPACE}:ephemeral").value
    branch = values.get("branch")
    if branch is not None:
        try:
            naming.validate_branch(str(branch))
        except naming.InvalidName as err:
            raise ConfigError(f"{NAMESPACE}:branch: {err}") from None
    return StackConfig(
        stack=naming.validate_stack_name(stack),
        region=region or DEFAULT_REGION,
        recipes=selected,
        ephemeral=ephemeral,
        branch=branch,
        network=from_mapping(NetworkArgs, values.get("network"), f"{NAMESPACE}:network"),
        recipe_args=recipe_args,
    )


@dataclass(frozen=True)
class _Flag:
    value: bool


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
    return tuple(n for n in RECIPE_NAMES if n in wanted)


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
    network: Network | None = None
    built: dict[str, Any] = field(default_factory=dict)
    demo_source: DemoMySqlSource | None = None


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
            endpoints=[{service: settings.endpoint_url for service in settings.services}],
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


def build(config: StackConfig, provider_settings: ProviderSettings | None = None) -> dict[str, Any]:
    """Register the selected recipes and return their outputs, keyed by recipe name."""
    provider = make_provider(config, provider_settings)
    ctx = _Build(
        config=config,
        namer=naming.Namer.for_stack(config.stack),
        opts=pulumi.ResourceOptions(providers={"aws": provider}),
    )
    if any(RECIPES[name].needs_network for name in config.recipes):
        ctx.network = Network(
            "network",
            config.network,
            namer=ctx.namer,
            interface_endpoints=_interface_endpoints(config),
            opts=ctx.opts,
        )
    outputs: dict[str, Any] = {}
    if ctx.network is not None:
        outputs["network"] = ctx.network.outputs()
    for name in config.recipes:
        outputs[name] = BUILDERS[name](ctx, config.args(name))
    return outputs


def export(outputs: Mapping[str, Any]) -> None:
    for key, value in outputs.items():
        pulumi.export(key, value)


def _interface_endpoints(config: StackConfig) -> tuple[str, ...]:
    # Only Lambda functions inside the VPC need AWS APIs through interface endpoints;
    # none of the declarative recipes runs one.
    return ()


def _client_sgs(ctx: _Build, extra: tuple[str, ...]) -> list[Any]:
    assert ctx.network is not None
    return [ctx.network.app_security_group_id, *extra]


def _build_aurora(ctx: _Build, args: AuroraServerlessArgs) -> dict[str, Any]:
    if "data-api" in ctx.config.recipes and not args.enable_data_api:
        args = replace(args, enable_data_api=True)
    assert ctx.network is not None
    aurora = AuroraServerlessPostgres(
        "aurora",
        args,
        namer=ctx.namer,
        ephemeral=ctx.config.ephemeral,
        vpc_id=ctx.network.vpc_id,
        subnet_ids=ctx.network.private_subnet_ids,
        client_security_group_ids=_client_sgs(ctx, args.allowed_security_group_ids),
        opts=ctx.opts,
    )
    ctx.built["aurora-serverless"] = aurora
    return aurora.outputs()


def _build_data_api(ctx: _Build, args: DataApiArgs) -> dict[str, Any]:
    raise NotImplementedError("data-api wiring")


def _build_iam_auth(ctx: _Build, args: IamAuthArgs) -> dict[str, Any]:
    raise NotImplementedError("iam-auth wiring")


def _build_encrypt_existing(ctx: _Build, args: EncryptExistingArgs) -> dict[str, Any]:
    raise NotImplementedError("encrypt-existing wiring")


def _build_dms(ctx: _Build, args: DmsMigrationArgs) -> dict[str, Any]:
    raise NotImplementedError("dms-migration wiring")


def _build_dynamodb(ctx: _Build, args: DynamoDbAutoscalingArgs) -> dict[str, Any]:
    raise NotImplementedError("dynamodb-autoscaling wiring")


BUILDERS: dict[str, Callable[[_Build, Any], dict[str, Any]]] = {
    "aurora-serverless": _build_aurora,
    "data-api": _build_data_api,
    "iam-auth": _build_iam_auth,
    "encrypt-existing": _build_encrypt_existing,
    "dms-migration": _build_dms,
    "dynamodb-autoscaling": _build_dynamodb,
}
