"""`dbenv sleep` and `dbenv wake`: stop a branch's databases while nobody uses them, start them again."""

from __future__ import annotations

import json
from typing import Any

import typer

from automation.commands import common
from automation.commands.common import (
    EXIT_FAILED,
    BranchOption,
    JsonOption,
    TargetOption,
    branch_of,
    env_settings,
    fail,
)


def sleeper(service: Any) -> Any:
    from automation.sleep import Sleeper

    return Sleeper(service)


def _run(verb: str, branch: str | None, target: str | None) -> tuple[Any, Any]:
    from automation import environments as envs
    from automation import sleep
    from components import naming

    settings = env_settings(branch=branch, target=target)
    chosen = branch_of(settings)
    service = common.environments(settings)
    worker = sleeper(service)
    stack = naming.stack_name(chosen)
    try:
        report = getattr(worker, verb)(stack, chosen)
    except envs.Refused as err:
        fail(str(err))
    except (envs.NotFound, sleep.SleepError) as err:
        fail(str(err), EXIT_FAILED)
    return report, settings


def _still_costing(report: Any) -> list[tuple[str, str, float]]:
    """What bills while asleep, from the stack's own config priced offline (empty if it cannot be priced)."""
    from automation.planning import cost
    from automation.planning import plan as planning

    config = {k: _decode(v) for k, v in report.config.items()}
    if "db-recipes:recipes" not in config:
        return []
    try:
        return cost.estimate_stack(config, report.stack).still_costing()
    except (planning.PlanError, cost.CostError) as err:
        typer.echo(f"dbenv: cannot price what keeps costing: {err}", err=True)
        return []


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def sleep(branch: BranchOption = None, target: TargetOption = None, as_json: JsonOption = False) -> None:
    """Stop the branch's RDS instances and Aurora clusters; say what keeps costing while asleep.

    Aurora Serverless v2 clusters that pause at 0 ACU are left alone, as are read replicas and their
    sources (RDS cannot stop them). AWS starts a stopped database again after 7 days: `dbenv reap`
    puts it back to sleep. Durable stacks are refused.

    Example: dbenv sleep --branch feature/x
    """
    from automation.planning import cost

    report, _ = _run("sleep", branch, target)
    costing = _still_costing(report)
    if as_json:
        data = report.to_json()
        data["still_costing"] = [{"resource": name, "component": part, "monthly": round(value, 2)}
                                 for name, part, value in costing]
        typer.echo(json.dumps(data, indent=2))
        return
    _print_report(report, "asleep", "stopped")
    if costing:
        total = sum(value for _, _, value in costing)
        typer.echo(f"still costing while asleep: {cost.money(total)}/month")
        for name, part, value in costing:
            typer.echo(f"  {cost.money(value):>10}  {name}: {part}")


def wake(branch: BranchOption = None, target: TargetOption = None, as_json: JsonOption = False) -> None:
    """Start the branch's stopped RDS instances and Aurora clusters and wait until they are available.

    Example: dbenv wake --branch feature/x
    """
    report, _ = _run("wake", branch, target)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    _print_report(report, "awake", "started")


def _print_report(report: Any, state: str, verb: str) -> None:
    typer.echo(f"stack {report.stack} (branch {report.branch}) is {state}: {verb} {len(report.acted)}")
    for db in report.acted:
        typer.echo(f"  {verb:<8} {db.label()}")
    for db in report.left:
        typer.echo(f"  {'left':<8} {db.label()}: {db.reason}")


def reap_sleep(service: Any, settings: Any, *, dry_run: bool, skip: set[str]) -> list[Any]:
    """The sleeping half of `dbenv reap`."""
    return sleeper(service).reap(sleep_after=settings.sleep_after, dry_run=dry_run, skip=skip)
