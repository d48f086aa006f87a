"""`dbenv`: assembles the command groups of `automation.commands`; parsing and rendering live there."""

from __future__ import annotations

import gc
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from automation.commands import config, cost, db, env, local, policy, service, shared, sleep
from automation.commands.common import EXIT_TOOL


class _Guarded(TyperGroup):
    """Every command runs inside this group: an unexpected exception is one line and exit 3, never a traceback.

    Set DBENV_DEBUG=1 to see the traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException, KeyboardInterrupt, SystemExit):
            raise  # usage errors (exit 2) and deliberate exits keep their codes
        except Exception as err:  # noqa: BLE001 - the contract: the tool's own failure is exit 3
            if os.environ.get("DBENV_DEBUG"):
                raise
            detail = " ".join(str(err).split())[:300]
            typer.echo(f"dbenv: internal error: {type(err).__name__}{': ' + detail if detail else ''} "
                       "(set DBENV_DEBUG=1 for the traceback)", err=True)
            raise typer.Exit(EXIT_TOOL) from None


app = typer.Typer(
    cls=_Guarded,
    name="dbenv",
    help="AWS database recipes as Pulumi stacks, and one throw-away environment per git branch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
app.command()(service.serve)
app.command()(service.worker)
app.add_typer(service.app, name="service")


def main() -> None:
    # A plan imports ~1,000 modules and allocates ~200k short-lived objects: with the default threshold the
    # cycle collector runs thousands of times, over the whole heap every few (measured: 0.2 s of a 1 s
    # `dbenv policy check`). Collect less often, as mypy does (python/mypy, mypy/build.py).
    gc.set_threshold(200_000, 30, 30)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - outside any command (argument parsing): still one line
        typer.echo(f"dbenv: internal error: {type(err).__name__}: {' '.join(str(err).split())[:300]}", err=True)
        sys.exit(EXIT_TOOL)
    finally:
        # The process is ending: without this, interpreter shutdown garbage-collects every object of the
        # ~1,000 modules a plan imports (measured: 0.3 s of a 1.3 s `dbenv policy check`). Objects are
        # still released and atexit handlers still run; only the cycle collector skips them.
        gc.freeze()


if __name__ == "__main__":
    main()
