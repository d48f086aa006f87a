"""What every `dbenv` command shares: options, exit codes, one-line failures, settings and engine calls."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from automation.local_aws import LocalAws
    from automation.operations.environments import Environments
    from automation.operations.prepare import Prepared
    from automation.workspace import Settings

T = TypeVar("T")

# 0 ok, 1 the work failed (engine error, mandatory violation), 2 bad input (nothing touched),
# 3 the tool itself failed (the policy pack process died, an internal error).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TOOL = 0, 1, 2, 3

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
TargetOption = Annotated[
    str | None, typer.Option("--target", "-t", help="local (a moto server on 127.0.0.1) or aws; default from dbenv.toml.")
]
DurableOption = Annotated[
    bool | None, typer.Option("--durable/--ephemeral", help="A durable stack (no expiry; reap keeps it) or an "
                              "ephemeral one (default; also DBENV_DURABLE, `durable` in dbenv.toml).", show_default=False)
]
TtlOption = Annotated[
    str | None, typer.Option("--ttl", help="Lifetime before `dbenv reap` may remove it: 90m, 72h, 3d, 1w.")
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="If the stack is locked by another update, retry with backoff (up to 15 min).")
]
ShowSecretsOption = Annotated[bool, typer.Option("--show-secrets", help="Print secret outputs in plain text.")]
_PARENT_HELP = ("Clone the databases of this environment (a branch, e.g. staging): Aurora copy-on-write, RDS "
                "point-in-time, DynamoDB restore (also DBENV_PARENT, `parent` in dbenv.toml).")
# --parent everywhere; --from too where it names nothing else (policy check --from is a resource file).
ParentOption = Annotated[str | None, typer.Option("--parent", "--from", help=_PARENT_HELP)]
PolicyParentOption = Annotated[str | None, typer.Option("--parent", help=_PARENT_HELP)]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr and the exit code; never a traceback."""
    typer.echo(f"dbenv: {message}", err=True)
    raise typer.Exit(code)


def env_settings(**flags: Any) -> Settings:
    from automation import workspace

    try:
        return workspace.load_settings(flags=flags)
    except workspace.SettingsError as err:
        fail(str(err))


def branch_of(settings: Settings) -> str:
    """The resolved branch (flag, DBENV_BRANCH, else git), or exit 2."""
    from automation import workspace

    try:
        return settings.branch
    except workspace.SettingsError as err:
        fail(str(err))


def environments(settings: Settings, *, read_only: bool = False) -> Environments:
    """The environments of these settings; ``read_only`` ones never create .dbenv/ (work dirs, passphrase, state)."""
    from automation.operations import lifecycle

    return lifecycle.environments_for(settings, read_only=read_only)


def prepare(settings: Settings, *, check_engine: bool = True) -> Prepared:
    """The stack config every stack-building command (plan, policy check, preview, up) hands to the program."""
    from automation.operations import errors, lifecycle

    try:
        return lifecycle.validate(settings, check_engine=check_engine)
    except errors.BadInput as err:
        fail(str(err))


def require_project(settings: Settings) -> None:
    """Commands that write state keep it in the project's .dbenv/, so they need a project."""
    from automation.operations import errors, lifecycle

    try:
        lifecycle.require_project(settings)
    except errors.BadInput as err:
        fail(str(err))


def engine_call(title: str | Callable[[], str], call: Callable[[Any], T], *, display: bool = True) -> T:
    """Run an operation, with a progress display from its first engine event; map every failure of
    ``operations.errors`` to one line and its exit code (USAGE 2, FAILED 1)."""
    from automation.commands import progress
    from automation.operations import errors

    try:
        if not display:
            return call(None)
        shown = progress.Display(sys.stderr, title)
        try:
            return call(shown.on_event)
        finally:
            shown.close()
    except errors.USAGE as err:
        fail(str(err))
    except errors.FAILED as err:
        fail(str(err), EXIT_FAILED)


def stack_title(verb: str, settings: Settings) -> Callable[[], str]:
    """The display's title, asked for once the engine runs (the branch is valid by then)."""
    from components import naming

    return lambda: f"{verb} {naming.stack_name(settings.branch)}"


def echo_line(line: str) -> None:
    """A line of an operation (a runbook step, a notice) on stderr; a warning as `dbenv: <line>`."""
    from automation.operations import lifecycle

    typer.echo(f"dbenv: {line}" if isinstance(line, lifecycle.WarningLine) else line, err=True)


def print_outputs(outputs: dict) -> None:
    import yaml

    if not outputs:
        typer.echo("outputs: (none)")
        return
    typer.echo("outputs:")
    text = yaml.safe_dump(outputs, sort_keys=False, default_flow_style=False, allow_unicode=True)
    typer.echo("\n".join("  " + line for line in text.rstrip().splitlines()))


def confirmation(settings: Settings, yes: bool) -> Callable[[Prepared], bool]:
    """What `dbenv up` asks right before the engine runs; --yes answers it, and off a terminal it must."""

    def ask(prepared: Prepared) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            fail("not on a terminal: pass --yes to deploy without a prompt")
        question = (f"Deploy {', '.join(prepared.recipes)} to stack {prepared.stack} "
                    f"(target {settings.target}, region {prepared.region})?")
        return typer.confirm(question, default=False)

    return ask


def local_server(settings: Settings | None = None) -> LocalAws:
    from automation.local_aws import LocalAws

    return LocalAws((settings or env_settings()).local_dir)
