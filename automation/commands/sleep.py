"""`dbenv sleep` and `dbenv wake`: stop a branch's databases while nobody uses them, start them again."""

from __future__ import annotations

import json
from typing import Any

import typer

from automation.commands import common
from automation.commands.common import (
    BranchOption,
    JsonOption,
    TargetOption,
    echo_line,
    engine_call,
    env_settings,
)


def _run(verb: str, branch: str | None, target: str | None) -> Any:
    from automation.operations import lifecycle

    settings = env_settings(branch=branch, target=target)
    operation = lifecycle.sleep if verb == "sleep" else lifecycle.wake
    return engine_call(verb, lambda _: operation(settings, environments=common.environments(settings),
                                                 on_line=echo_line), display=False)


def sleep(branch: BranchOption = None, target: TargetOption = None, as_json: JsonOption = False) -> None:
    """Stop the branch's RDS instances and Aurora clusters; say what keeps costing while asleep.

    Aurora Serverless v2 clusters that pause at 0 ACU are left alone, as are read replicas and their
    sources (RDS cannot stop them). AWS starts a stopped database again after 7 days: `dbenv reap`
    puts it back to sleep. Durable stacks are refused.

    Example: dbenv sleep --branch feature/x
    """
    from automation.planning import cost

    report = _run("sleep", branch, target)
    costing = report.still_costing
    if as_json:
        data = report.to_json()
        data["still_costing"] = report.still_costing_json()
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
    report = _run("wake", branch, target)
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
