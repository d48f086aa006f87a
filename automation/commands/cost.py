"""`dbenv cost`, the cost column of `dbenv plan`, and the budget options of `up` and `preview`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from automation.commands.common import (
    BranchOption,
    ConfigOption,
    DurableOption,
    JsonOption,
    ParentOption,
    RecipesOption,
    TargetOption,
    env_settings,
    fail,
    prepare,
)

if TYPE_CHECKING:
    from automation.operations.prepare import Prepared
    from automation.planning.cost import Estimate, Usage
    from automation.workspace import Settings

UsageOption = Annotated[
    Path | None, typer.Option("--usage", "-u", help="A usage file (default: dbenv-usage.yml in the project, if any).")
]
BudgetOption = Annotated[
    float | None, typer.Option("--budget", help="USD a month; refuse a change whose idle estimate is higher.")
]
OverBudgetOption = Annotated[bool, typer.Option("--over-budget", help="Deploy even if the estimate is over budget.")]


def load_usage(path: Path | None, settings: Settings | None = None) -> Usage:
    from automation.planning import cost

    try:
        return cost.project_usage(settings.project_dir if settings else Path.cwd(), path)
    except cost.CostError as err:
        fail(str(err))


def _estimate(config: dict, stack: str, usage: Usage) -> Estimate:
    from automation.planning import cost
    from automation.planning import plan as planning

    try:
        return cost.estimate_stack(config, stack, usage)
    except (planning.PlanError, cost.CostError) as err:
        fail(str(err))


# ------------------------------------------------------------------ the command


def cost(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    target: TargetOption = None,
    durable: DurableOption = None,
    parent: ParentOption = None,
    usage: UsageOption = None,
    against: Annotated[
        Path | None, typer.Option("--against", help="A `dbenv cost --json` of the base branch: print a Markdown "
                                  "comparison (for a pull request's job summary).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """What the stack would cost a month at list price, offline: per resource, per recipe, in total.

    Idle (deployed, no traffic) and with a usage profile (--usage; the keys are in the README);
    resources the price table does not know are listed as not priced, never counted as zero.
    With --from PARENT a clone is priced by what it adds: an Aurora copy-on-write clone shares the
    parent's storage until it writes (0 GB idle; the usage profile's aurora_storage_gb is what it
    writes), a restored RDS instance and DynamoDB table pay their own storage.

    Example: dbenv cost --branch feature/x --recipes all --usage dbenv-usage.yml --json
    """
    from automation.planning import cost as pricing

    settings = env_settings(branch=branch, recipes=recipes, config=config, target=target, durable=durable,
                            parent=parent)
    base = _read_estimate(against) if against is not None else None
    profile = load_usage(usage, settings)
    prepared = prepare(settings, check_engine=False)
    result = _estimate(prepared.config, prepared.stack, profile)
    if base is not None:
        typer.echo(pricing.compare(result.to_json(), base))
    elif as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo(pricing.render(result))


def _read_estimate(path: Path) -> dict[str, Any]:
    from automation import inputs

    try:
        doc = inputs.read_json(path, "estimate")
    except inputs.InputError as err:
        fail(f"{path}: not a `dbenv cost --json` estimate: {err}")
    if not isinstance(doc, dict) or not isinstance(doc.get("total"), dict):
        fail(f"{path}: not a `dbenv cost --json` estimate (no 'total')")
    return doc


# ------------------------------------------------------------------ the cost column of `dbenv plan`


def plan_estimate(prepared: Prepared, settings: Settings) -> Estimate:
    """The estimate behind `dbenv plan`'s cost column and summary (the project's usage file, if any)."""
    return _estimate(prepared.config, prepared.stack, load_usage(None, settings))
