"""Input -> stack config: everything about a stack checked before the engine is touched (BadInput).

The one place where settings become a stack config: ``dbenv plan`` and ``dbenv policy check``
plan exactly what ``dbenv preview`` and ``dbenv up`` deploy, and the service validates a request
with the same code before it queues a job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from automation import workspace as ws_mod
from automation.operations.errors import BadInput
from automation.workspace import PROJECT, Settings, SettingsError

NAMESPACE = PROJECT
SHARED_STACK = "shared"


@dataclass(frozen=True)
class Prepared:
    """A validated request: the stack, its Pulumi config and what it was made from."""

    stack: str
    branch: str | None
    config: dict[str, Any]
    recipes: tuple[str, ...]
    region: str
    ephemeral: bool
    shared_network: bool
    ttl: timedelta
    # The parent environment (a branch) whose databases this stack's are cloned from, and its stack.
    parent: str | None = None
    parent_stack: str | None = None
    # The parsed stack config (components.recipes.StackConfig): what is cloned, on which engines.
    stack_config: Any = field(default=None, repr=False, compare=False)


def prepare(settings: Settings, *, branch: str | None = None, recipes: str | None = None,
            config_file: Path | None = None, ephemeral: bool | None = None, check_engine: bool = True,
            config_values: Mapping[str, Any] | None = None) -> Prepared:
    """Validate everything about a branch stack before any stack is touched (BadInput on any problem).

    The one place where settings become a stack config: ``dbenv plan`` and ``dbenv policy check``
    plan exactly what ``dbenv preview`` and ``dbenv up`` deploy. Precedence, per value: flags and
    ``DBENV_*`` variables, then the stack config file's own keys (``aws:region``,
    ``db-recipes:recipes``, ``db-recipes:ephemeral``), then dbenv.toml, then defaults. The keyword
    arguments act as flags (for callers from Python). ``check_engine`` False skips the checks that
    only matter to the engine (the aws target's secrets provider), for offline plans.
    ``config_values`` stands in for the config file: the ``config:`` mapping a stack config file
    would hold (the service's request body), checked the same way; a file and values both is BadInput.
    """
    from automation.planning import plan as planning
    from components import naming
    from components import recipes as registry
    from components.config import ConfigError

    try:
        branch = naming.validate_branch(branch) if branch is not None else settings.branch
        if check_engine:
            ws_mod.check_aws_target(settings)
        ttl = settings.ttl
        base = _base_config(config_file or settings.config_file, config_values)
        chosen = _chosen(settings, "recipes", recipes, base.get(f"{NAMESPACE}:recipes"))
        if chosen is None:
            raise BadInput("choose recipes with --recipes (e.g. --recipes all), DBENV_RECIPES, `recipes` in "
                           f"dbenv.toml, or {NAMESPACE}:recipes in the --config file")
        check_recipes(chosen)
        if ephemeral is None:
            ephemeral = not _chosen(settings, "durable", None, _file_flag(base, f"{NAMESPACE}:ephemeral", invert=True))
        region = str(_chosen(settings, "region", None, base.get("aws:region")))
    except (naming.InvalidName, SettingsError, planning.PlanError) as err:
        raise BadInput(str(err)) from None
    config = planning.merge_config(base, recipes=chosen, branch=branch, ephemeral=ephemeral)
    config["aws:region"] = region
    parent = settings.values.get("parent")
    parent_stack = None
    if parent is not None:
        if parent == branch:
            raise BadInput(f"parent: branch {branch!r} cannot be its own parent: name another environment "
                           "with --from (e.g. the branch it was made from)")
        parent_stack = naming.stack_name(parent)
        config[f"{NAMESPACE}:parent"] = settings.qualified(parent_stack)
    if settings.shared_network:
        network = config.get(f"{NAMESPACE}:network") or {}
        try:
            network = json.loads(network) if isinstance(network, str) else dict(network)
        except (ValueError, TypeError):
            raise BadInput(f"{NAMESPACE}:network: expected a mapping, got {str(network)[:60]!r}") from None
        config[f"{NAMESPACE}:network"] = {**network, "shared_stack": settings.qualified(SHARED_STACK)}
    stack = naming.stack_name(branch)
    own = {key[len(NAMESPACE) + 1:]: value for key, value in config.items() if key.startswith(f"{NAMESPACE}:")}
    try:
        parsed = registry.parse_config(own, stack=stack, region=region)
    except ConfigError as err:
        raise BadInput(str(err)) from None
    return Prepared(stack=stack, branch=branch, config=config, recipes=parsed.recipes, region=region,
                    ephemeral=ephemeral, shared_network=settings.shared_network, ttl=ttl, parent=parent,
                    parent_stack=parent_stack, stack_config=parsed)


def _base_config(file: Path | None, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stack config the flags are layered on: the config file's, or the values handed in (PlanError)."""
    from automation.planning import plan as planning

    if values is None:
        return planning.read_config_file(file) if file else {}
    if file:
        raise BadInput(f"config: both a config file ({file}) and config values were given: give one")
    return planning.config_mapping(values, "config")


def _chosen(settings: Settings, key: str, override: Any, from_config_file: Any) -> Any:
    """A value by precedence: override (a flag from Python), flag or env, the config file, dbenv.toml, default."""
    if override is not None:
        return override
    explicit = settings.sources[key].startswith(("flag", "env"))
    if explicit or from_config_file is None:
        return settings.values[key]
    return from_config_file


def _file_flag(base: Mapping[str, Any], key: str, *, invert: bool) -> bool | None:
    """A boolean of the config file (``db-recipes:ephemeral``), inverted to the durable setting."""
    if key not in base:
        return None
    value = ws_mod._as_bool(base[key], key)  # noqa: SLF001 - the one boolean parser of settings
    return None if value is None else (not value if invert else value)


def check_recipes(selection: Any) -> None:
    """``all`` alone or known recipe names: say which name is unknown, and why ``all`` stands alone."""
    from components import recipes as registry

    if not isinstance(selection, str):
        return  # a YAML list from the config file: parse_config names its faults
    names = [part.strip() for part in selection.split(",") if part.strip()]
    valid = ", ".join(registry.RECIPE_NAMES)
    for name in names:
        if name != "all" and name not in registry.RECIPES:
            raise BadInput(f"recipes: unknown recipe {name[:60]!r} (valid: all, {valid})")
    if "all" in names and len(names) > 1:
        raise BadInput(f"recipes: 'all' already means every recipe and cannot be combined with names "
                       f"(got {selection[:80]!r}): use --recipes all, or list only the names you want")
    if not names:
        raise BadInput(f"recipes: the list is empty: use 'all' or names out of {valid}")


def prepare_shared(settings: Settings, config_file: Path | None = None) -> Prepared:
    """The shared stack's config: region and network settings only."""
    from automation.planning import plan as planning
    from components import recipes as registry
    from components.config import ConfigError

    try:
        ws_mod.check_aws_target(settings)
        base = planning.read_config_file(config_file) if config_file else {}
    except (SettingsError, planning.PlanError) as err:
        raise BadInput(str(err)) from None
    region = str(base.get("aws:region") or settings.region)
    config: dict[str, Any] = {"aws:region": region}
    if f"{NAMESPACE}:network" in base:
        config[f"{NAMESPACE}:network"] = base[f"{NAMESPACE}:network"]
    try:
        registry.parse_shared_config({k[len(NAMESPACE) + 1:]: v for k, v in config.items()
                                      if k.startswith(f"{NAMESPACE}:")}, stack=SHARED_STACK, region=region)
    except ConfigError as err:
        raise BadInput(str(err)) from None
    return Prepared(stack=SHARED_STACK, branch=None, config=config, recipes=(), region=region,
                    ephemeral=False, shared_network=False, ttl=settings.ttl)


def parent_problems(stack_config: Any, outputs: Mapping[str, Any]) -> list[str]:
    """What keeps a parent's outputs from being cloned into ``stack_config``'s databases (empty: nothing)."""
    from components.aurora_serverless import parse_version
    from components.branch_databases import PARENT_OUTPUTS
    from components.parts import mysql_major

    problems: list[str] = []
    for database in stack_config.cloned_databases:
        values = outputs.get(database)
        if not isinstance(values, Mapping):
            problems.append(f"it has no {database} database (output {database!r}) to clone")
            continue
        missing = [key for key in PARENT_OUTPUTS[database] if values.get(key) in (None, "")]
        if missing:
            problems.append(f"its {database} outputs lack {', '.join(missing)} (run `dbenv up` on the parent "
                            "once more to export them)")
            continue
        if database == "aurora-serverless":
            wanted = stack_config.args("aurora-serverless").engine_version
            theirs = str(values["engine_version"])
            try:
                same = parse_version(theirs)[0] == parse_version(wanted)[0]
            except ValueError:
                same = False
            if not same:
                problems.append(f"its Aurora PostgreSQL runs {theirs} and this branch wants {wanted}: a clone keeps "
                                "the parent's major version; set aurora-serverless.engine_version to the same major")
        elif database == "mysql":
            wanted = stack_config.mysql.engine_version
            theirs = str(values["engine_version"])
            try:
                same = mysql_major(theirs) == mysql_major(wanted)
            except ValueError:
                same = False
            if not same:
                problems.append(f"its RDS MySQL runs {theirs} and this branch wants {wanted}: a point-in-time "
                                "restore keeps the parent's major version; set mysql.engine_version to the same major")
            elif not int(values["backup_retention_days"] or 0):
                problems.append("its RDS MySQL keeps no automated backups (backup retention 0), which a "
                                "point-in-time restore needs")
        elif database == "dynamodb-autoscaling" and values["point_in_time_recovery"] is not True:
            problems.append(f"its DynamoDB table {values['table_name']} has point-in-time recovery off, which a "
                            "restore to the latest time needs: set dynamodb-autoscaling.point_in_time_recovery: true "
                            "on the parent (durable stacks have it on by default) and `dbenv up` it")
    return problems


def prepare_hooks(settings: Settings, prepared: Prepared) -> Any:
    """post_clone, seed and migrate from the settings, every SQL file read and checked (BadInput)."""
    from automation.runbooks import db
    from automation.runbooks import hooks as data_hooks

    names = [db.ALIASES.get(recipe, recipe) for recipe in prepared.recipes]
    engine = next((db.ENDPOINTS[name].engine for name in db.ENDPOINTS if name in names), "postgres")

    def paths(key: str) -> list[Path]:
        # load_settings made every path absolute (relative to the project, or to the cwd for flags)
        return [Path(item) for item in settings.values.get(key) or ()]

    try:
        return data_hooks.load(post_clone=paths("post_clone"), seed=paths("seed"),
                               migrate=settings.values.get("migrate"), engine=engine)
    except data_hooks.HookInputError as err:
        raise BadInput(str(err)) from None

