"""`dbenv policy`: the CrossGuard pack over the analyzer protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from automation.commands.common import (
    EXIT_FAILED,
    BranchOption,
    ConfigOption,
    JsonOption,
    RecipesOption,
    fail,
    plan_config,
)

app = typer.Typer(
    name="policy",
    help="The CrossGuard policy pack (policies/): the same checks as `pulumi preview --policy-pack policies`.",
    no_args_is_help=True,
)


@app.command("check")
def policy_check(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    durable: Annotated[
        bool, typer.Option("--durable", help="Check a durable stack (default: ephemeral, as for a branch).")
    ] = False,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help='Check this JSON file ({"resources": [...]}, the `dbenv plan --json` shape) '
                                    "instead of planning."),
    ] = None,
    policy_config: Annotated[
        Path | None,
        typer.Option("--policy-config", help="Policy config JSON (enforcement levels, parameters, exemptions); "
                                             "default: policies/config.default.json."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the policy pack over the analyzer protocol against the offline plan: no credentials, no Pulumi CLI.

    Exit codes: 0 no mandatory violation, 1 a mandatory violation remains, 2 bad input.

    Example: dbenv policy check --branch main --recipes all
    """
    from automation import plan as planning
    from automation import policy_check as checking

    if from_file is not None and (branch or recipes or config or durable):
        fail("--from checks a resource file: leave out --branch, --recipes, --config and --durable")
    config_path = policy_config or checking.DEFAULT_POLICY_CONFIG
    try:
        rules = checking.read_policy_config(config_path)
        if from_file is not None:
            target = checking.load_resources_file(from_file)
            report = checking.check(lambda: target, project=target.project, stack=target.stack,
                                    policy_config=rules, policy_config_source=str(config_path))
        else:
            merged, stack = plan_config(branch, recipes, config, durable)
            report = checking.check(
                lambda: checking.target_from_plan(planning.build_plan(merged, stack=stack)),
                project=planning.PROJECT, stack=stack, stack_config=merged,
                policy_config=rules, policy_config_source=str(config_path),
            )
    except (checking.PolicyCheckError, planning.PlanError) as err:
        fail(str(err))
    except checking.PackError as err:
        fail(str(err), EXIT_FAILED)
    for message in report.pack_log:
        typer.echo(f"policy pack {message}", err=True)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(checking.render_report(report))
    if not report.passed:
        raise typer.Exit(EXIT_FAILED)
