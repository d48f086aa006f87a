"""`dbenv policy`: the CrossGuard pack over the analyzer protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from automation.commands.common import (
    EXIT_FAILED,
    EXIT_TOOL,
    BranchOption,
    ConfigOption,
    DurableOption,
    JsonOption,
    PolicyParentOption,
    RecipesOption,
    TargetOption,
    env_settings,
    fail,
    prepare,
)

app = typer.Typer(
    name="policy",
    help="The CrossGuard policy pack (policies/): the same checks as `pulumi preview --policy-pack policies`.\n\n"
         "Example: dbenv policy check --branch feature/x --recipes all",
    no_args_is_help=True,
)


@app.command("check")
def policy_check(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    target: TargetOption = None,
    durable: DurableOption = None,
    parent: PolicyParentOption = None,
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
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Make what the plan cannot prove (undetermined: a source or key outside the "
                                      "stack) a violation at the policy's level, so mandatory policies fail on it."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the policy pack over the analyzer protocol against the offline plan: no credentials, no Pulumi CLI.

    The stack is planned from the same settings as `dbenv up` (flags, DBENV_*, dbenv.toml); a branch
    cloned from a parent environment is checked with --parent PARENT (here --from names a resource file).
    What the plan cannot prove is reported as an advisory "cannot verify offline: ... — set ... to prove it";
    --strict reports it at the policy's level instead.
    Exit codes: 0 no mandatory violation, 1 a mandatory violation remains, 2 bad input,
    3 the policy pack itself failed (it could not start, died, or its RPCs failed).

    Example: dbenv policy check --branch main --recipes all
    """
    from automation.planning import plan as planning
    from automation.planning import policy_check as checking

    if from_file is not None and (branch or recipes or config or target or durable is not None or parent):
        fail("--from checks a resource file: leave out --branch, --recipes, --config, --target, --durable and "
             "--parent (here the parent environment is --parent; --from names a resource file)")
    prepared = None
    if from_file is None:
        settings = env_settings(branch=branch, recipes=recipes, config=config, target=target, durable=durable,
                                parent=parent)
        prepared = prepare(settings, check_engine=False)
    config_path = policy_config or checking.DEFAULT_POLICY_CONFIG
    try:
        rules = checking.read_policy_config(config_path)
        if prepared is None:
            assert from_file is not None
            resources = checking.load_resources_file(from_file)
            report = checking.check(lambda: resources, project=resources.project, stack=resources.stack,
                                    policy_config=rules, policy_config_source=str(config_path), strict=strict)
        else:
            chosen = prepared
            report = checking.check(
                lambda: checking.target_from_plan(planning.build_plan(chosen.config, stack=chosen.stack)),
                project=planning.PROJECT, stack=chosen.stack, stack_config=chosen.config,
                policy_config=rules, policy_config_source=str(config_path), strict=strict,
            )
    except (checking.PolicyCheckError, planning.PlanError) as err:
        fail(str(err))
    except checking.PackError as err:
        fail(str(err), EXIT_TOOL)
    for message in report.pack_log:
        typer.echo(f"policy pack {message}", err=True)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(checking.render_report(report))
    if not report.passed:
        raise typer.Exit(EXIT_FAILED)
