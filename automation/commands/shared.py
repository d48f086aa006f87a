"""`dbenv shared`: the account-wide stack."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from automation.commands import common
from automation.commands.common import (
    ConfigOption,
    JsonOption,
    ShowSecretsOption,
    TargetOption,
    WaitOption,
    engine_call,
    env_settings,
    print_outputs,
)

app = typer.Typer(name="shared", help="The account-wide stack (network, DMS service roles) branch stacks read.\n\n"
                              "Example: dbenv shared up --target aws",
                         no_args_is_help=True)


@app.command("up")
def shared_up(
    config: ConfigOption = None,
    target: TargetOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update the shared stack (`db-recipes:network` from --config shapes its VPC).

    Example: dbenv shared up --target aws
    """
    from automation.operations import lifecycle
    from automation.operations.engine import mask_outputs

    settings = env_settings(target=target)
    outcome = engine_call("shared up", lambda on_event: lifecycle.shared_up(
        settings, config_file=config, wait=wait, on_event=on_event, environments=common.environments(settings)))
    values = mask_outputs(outcome.outputs)
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "result": outcome.result, "outputs": values}, indent=2))
    else:
        typer.echo(f"stack {outcome.stack}: {outcome.result}")
        print_outputs(values)


@app.command("down")
def shared_down(
    target: TargetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Destroy even while branch stacks still use it.")] = False,
    wait: WaitOption = False,
) -> None:
    """Destroy the shared stack; refused while a branch stack uses its network, unless --force.

    Example: dbenv shared down
    """
    from automation.operations import lifecycle

    settings = env_settings(target=target)
    outcome = engine_call("shared down", lambda on_event: lifecycle.shared_down(
        settings, force=force, wait=wait, on_event=on_event, environments=common.environments(settings)))
    typer.echo("shared stack destroyed and removed" if outcome.existed else "no shared stack: nothing to do")


@app.command("outputs")
def shared_outputs(target: TargetOption = None, show_secrets: ShowSecretsOption = False, as_json: JsonOption = False) -> None:
    """Print the shared stack's outputs.

    Example: dbenv shared outputs --json
    """
    from automation.operations.prepare import SHARED_STACK

    settings = env_settings(target=target)
    service = common.environments(settings, read_only=True)
    values = engine_call("outputs", lambda _: service.outputs(SHARED_STACK, show_secrets=show_secrets),
                          display=False)
    if as_json:
        typer.echo(json.dumps(values, indent=2))
    else:
        print_outputs(values)

