"""`dbenv local`: the embedded AWS endpoint."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from automation.commands.common import (
    EXIT_FAILED,
    JsonOption,
    env_settings,
    fail,
    local_server,
    require_project,
)

app = typer.Typer(name="local", help="The local AWS endpoint (a moto server on 127.0.0.1) for --target local.\n\n"
                  "Example: dbenv local start --port 4566", no_args_is_help=True)


@app.command("start")
def local_start(
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535,
                                             help="Port (default: the last one used, else a free one).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the moto server in the background (pid file and log in .dbenv/local/).

    Example: dbenv local start
    """
    from automation.local_aws import LocalAwsError, PortUnavailable

    settings = env_settings()
    require_project(settings)
    server = local_server(settings)
    try:
        status = server.start(port=port)
    except PortUnavailable as err:
        fail(str(err))
    except LocalAwsError as err:
        fail(str(err), EXIT_FAILED)
    typer.echo(json.dumps(status.to_json()) if as_json else f"running at {status.endpoint} (pid {status.pid})")


@app.command("stop")
def local_stop() -> None:
    """Stop the moto server. Everything deployed to it is forgotten.

    Example: dbenv local stop
    """
    stopped = local_server().stop()
    typer.echo("stopped" if stopped else "not running")


@app.command("status")
def local_status(as_json: JsonOption = False) -> None:
    """Say whether the moto server runs, where, and its pid (a stale pid file is cleaned up).

    Example: dbenv local status --json
    """
    status = local_server().status()
    if as_json:
        typer.echo(json.dumps(status.to_json()))
    elif status.running:
        typer.echo(f"running at {status.endpoint} (pid {status.pid})")
    else:
        typer.echo("not running" + (" (removed a stale pid file)" if status.stale_cleaned else ""))
