"""`dbenv`: the command surface. Parse, call the modules below, render; nothing else lives here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

app = typer.Typer(
    name="dbenv",
    help="AWS database recipes as Pulumi stacks, and one throw-away environment per git branch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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


@app.callback()
def _root() -> None:
    """AWS database recipes as Pulumi stacks, and one throw-away environment per git branch."""


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


@app.command()
def plan(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    durable: Annotated[
        bool, typer.Option("--durable", help="Plan a durable stack (default: ephemeral, as for a branch).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show what a branch's stack would create, offline: no Pulumi CLI, no credentials, no network.

    Example: dbenv plan --branch feature/x --recipes aurora-serverless,data-api --json
    """
    from automation import plan as planning
    from components import naming

    chosen = resolve_branch(branch)
    try:
        base = planning.read_config_file(config) if config else {}
        ephemeral = False if durable else (None if "db-recipes:ephemeral" in base else True)
        merged = planning.merge_config(base, recipes=recipes, branch=chosen, ephemeral=ephemeral)
        if "db-recipes:recipes" not in merged:
            fail("choose recipes with --recipes (e.g. --recipes all) or db-recipes:recipes in --config")
        result = planning.build_plan(merged, stack=naming.stack_name(chosen))
    except planning.PlanError as err:
        fail(str(err))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=False))
    else:
        typer.echo(planning.render_tree(result))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
