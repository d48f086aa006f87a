"""`dbenv`: assembles the command groups of `automation.commands`; parsing and rendering live there."""

from __future__ import annotations

import sys

import typer

from automation.commands import config, cost, db, env, local, policy, shared, sleep

app = typer.Typer(
    name="dbenv",
    help="AWS database recipes as Pulumi stacks, and one throw-away environment per git branch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """AWS database recipes as Pulumi stacks, and one throw-away environment per git branch."""


app.command()(env.plan)
app.command()(env.up)
app.command()(env.preview)
app.command()(env.down)
app.command("ls")(env.list_environments)
app.command()(env.outputs)
app.command()(env.reap)
app.command()(env.cancel)
app.command("install-pulumi")(env.install_pulumi)
app.command()(cost.cost)
app.command()(sleep.sleep)
app.command()(sleep.wake)
app.add_typer(policy.app, name="policy")
app.add_typer(shared.app, name="shared")
app.add_typer(local.app, name="local")
app.add_typer(config.app, name="config")
app.add_typer(db.app, name="db")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
