"""What every `dbenv` command shares: options, exit codes, one-line failures, settings and engine calls."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

BranchOption = Annotated[
    str | None, typer.Option("--branch", "-b", help="Git branch (default: the current branch).")
]
RecipesOption = Annotated[
    str | None, typer.Option("--recipes", "-r", help="'all' or a comma-separated list of recipe names.")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="A Pulumi stack config YAML (Pulumi.<stack>.yaml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr and the exit code; never a traceback."""
    typer.echo(f"dbenv: {message}", err=True)
    raise typer.Exit(code)


def resolve_branch(branch: str | None) -> str:
    from automation import gitinfo
    from components import naming

    try:
        return naming.validate_branch(branch if branch is not None else gitinfo.current_branch())
    except (naming.InvalidName, gitinfo.GitError) as err:
        fail(str(err))


def plan_config(branch: str | None, recipes: str | None, config: Path | None, durable: bool) -> tuple[dict, str]:
    """The stack config and stack name a plan is built from (shared by `plan` and `policy check`)."""
    from automation import plan as planning
    from components import naming

    chosen = resolve_branch(branch)
    try:
        base = planning.read_config_file(config) if config else {}
    except planning.PlanError as err:
        fail(str(err))
    ephemeral = False if durable else (None if "db-recipes:ephemeral" in base else True)
    merged = planning.merge_config(base, recipes=recipes, branch=chosen, ephemeral=ephemeral)
    if "db-recipes:recipes" not in merged:
        fail("choose recipes with --recipes (e.g. --recipes all) or db-recipes:recipes in --config")
    return merged, naming.stack_name(chosen)


T = TypeVar("T")

if TYPE_CHECKING:
    from automation.environments import Environments, Prepared
    from automation.local_aws import LocalAws
    from automation.workspace import Settings

TargetOption = Annotated[
    str | None, typer.Option("--target", "-t", help="local (a moto server on 127.0.0.1) or aws; default from dbenv.toml.")
]
TtlOption = Annotated[
    str | None, typer.Option("--ttl", help="Lifetime before `dbenv reap` may remove it: 90m, 72h, 3d, 1w.")
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="If the stack is locked by another update, retry with backoff (up to 15 min).")
]
ShowSecretsOption = Annotated[bool, typer.Option("--show-secrets", help="Print secret outputs in plain text.")]


def env_settings(**flags: Any) -> Settings:
    from automation import workspace

    try:
        return workspace.load_settings(flags=flags)
    except workspace.SettingsError as err:
        fail(str(err))


def environments(settings: Settings) -> Environments:
    from automation.environments import Environments

    return Environments(settings)


def prepare(settings: Settings, branch: str, recipes: str | None, config: Path | None) -> Prepared:
    from automation import environments as envs

    try:
        return envs.prepare(settings, branch=branch, recipes=recipes, config_file=config)
    except envs.BadInput as err:
        fail(str(err))


def engine_call(title: str, call: Callable[[Any], T], *, display: bool = True) -> T:
    """Run an engine operation with a progress display; map every failure to one line and an exit code."""
    from automation import environments as envs
    from automation import local_aws, progress, workspace

    try:
        if not display:
            return call(None)
        with progress.renderer(sys.stderr, title) as shown:
            return call(shown.on_event)
    except (envs.BadInput, envs.Refused) as err:
        fail(str(err))
    except (envs.OperationFailed, envs.NotFound, workspace.PulumiCliError, local_aws.LocalAwsError) as err:
        fail(str(err), EXIT_FAILED)


def print_outputs(outputs: dict) -> None:
    import yaml

    if not outputs:
        typer.echo("outputs: (none)")
        return
    typer.echo("outputs:")
    text = yaml.safe_dump(outputs, sort_keys=False, default_flow_style=False, allow_unicode=True)
    typer.echo("\n".join("  " + line for line in text.rstrip().splitlines()))


def confirm_deploy(prepared: Prepared, settings: Settings, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail("not on a terminal: pass --yes to deploy without a prompt")
    question = (f"Deploy {', '.join(prepared.recipes)} to stack {prepared.stack} "
                f"(target {settings.target}, region {prepared.region})?")
    if not typer.confirm(question, default=False):
        fail("not deployed", EXIT_FAILED)


def local_server() -> LocalAws:
    from automation.local_aws import LocalAws

    settings = env_settings()
    return LocalAws(settings.local_dir)
