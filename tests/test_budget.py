"""Budgets: `dbenv up`/`preview` refuse, before the engine runs, a change whose idle estimate is over budget."""

from __future__ import annotations

import json
from pathlib import Path

from automation.planning import cost
from tests.test_cli_env import STACK, project, run  # noqa: F401 - project is a fixture
from tests.test_environments import FakeAutomation


def idle_estimate() -> float:
    """The dbenv.toml of the `project` fixture deploys dynamodb-autoscaling alone."""
    from automation.planning.plan import build_plan

    plan = build_plan({"aws:region": "us-east-1", "db-recipes:recipes": "dynamodb-autoscaling",
                       "db-recipes:ephemeral": True, "db-recipes:branch": "feature/x"}, stack=STACK)
    return cost.estimate(plan).total("idle")


def test_up_over_budget_is_refused_before_the_engine_runs(project: FakeAutomation) -> None:  # noqa: F811
    result = run("up", "-b", "feature/x", "-y", "--budget", "1")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "over the budget of $1.00" in result.stderr and "top drivers:" in result.stderr
    assert "stack-key customer-managed key $1.00" in result.stderr
    assert project.backend.calls == [] and project.backend.stacks == {}


def test_budget_from_dbenv_toml_guards_preview_too(project: FakeAutomation) -> None:  # noqa: F811
    toml = Path("dbenv.toml")
    toml.write_text(toml.read_text(encoding="utf-8") + "budget = 2.5\n", encoding="utf-8")
    result = run("preview", "-b", "feature/x")
    assert result.exit_code == 2 and "over the budget of $2.50" in result.stderr
    assert project.backend.calls == []


def test_over_budget_deploys_and_ls_shows_the_estimate(project: FakeAutomation) -> None:  # noqa: F811
    result = run("up", "-b", "feature/x", "-y", "--budget", "1", "--over-budget")
    assert result.exit_code == 0, result.output
    tags = project.backend.stacks[STACK].tags
    assert float(tags["cost-idle"]) == round(idle_estimate(), 2)
    assert tags["sleep-state"] == "awake"
    listed = json.loads(run("ls", "--json").stdout)
    assert listed[0]["sleep"] == "awake" and listed[0]["monthly_cost"] == round(idle_estimate(), 2)
    assert f"${idle_estimate():,.2f}" in run("ls").stdout


def test_within_budget_deploys(project: FakeAutomation) -> None:  # noqa: F811
    result = run("up", "-b", "feature/x", "-y", "--budget", "1000")
    assert result.exit_code == 0, result.output
    assert "estimated cost:" in result.stderr and "budget $1,000.00" in result.stderr


def test_a_budget_that_is_not_a_number_is_bad_input(project: FakeAutomation) -> None:  # noqa: F811
    toml = Path("dbenv.toml")
    toml.write_text(toml.read_text(encoding="utf-8") + 'budget = "lots"\n', encoding="utf-8")
    result = run("up", "-b", "feature/x", "-y")
    assert result.exit_code == 2 and "budget (from dbenv.toml): expected USD a month" in result.stderr
    assert project.backend.calls == []
