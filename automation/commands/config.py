"""`dbenv config`: dbenv's own settings."""

from __future__ import annotations

import json

import typer

from automation.commands.common import (
    JsonOption,
    TargetOption,
    TtlOption,
    env_settings,
)

app = typer.Typer(name="config", help="dbenv's own settings (dbenv.toml, \\[tool.dbenv], env, flags).\n\n"
                              "Example: dbenv config show --json",
                         no_args_is_help=True)


@app.command("show")
def config_show(target: TargetOption = None, ttl: TtlOption = None, as_json: JsonOption = False) -> None:
    """Print the effective settings and where each one came from (default, file, env or flag).

    Example: dbenv config show --target aws
    """
    from automation import workspace

    settings = env_settings(target=target, ttl=ttl)
    rows = workspace.describe_settings(settings)
    if as_json:
        typer.echo(json.dumps({"project_dir": str(settings.project_dir), "settings": rows}, indent=2, default=str))
        return
    width = max(len(row["key"]) for row in rows)
    typer.echo(f"project: {settings.project_dir}")
    for row in rows:
        value = "-" if row["value"] is None else row["value"]
        typer.echo(f"{row['key']:<{width}}  {value}  ({row['source']})")

