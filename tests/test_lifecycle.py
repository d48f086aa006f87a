"""The operations both faces call, driven directly (no typer) over the real pulumi.automation and the
scripted `pulumi` binary: budget gate, confirmation, estimate record, notices, masked outputs, config values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from automation import workspace
from automation.operations import errors, lifecycle
from components import naming
from tests.scripted_pulumi import cli_log, scripted_project

BRANCH = "feature/x"
STACK = naming.stack_name(BRANCH)


@dataclass
class Project:
    root: Path
    state: Path

    def settings(self, **flags: Any) -> Any:
        return workspace.load_settings(self.root, env={"PULUMI_CONFIG_PASSPHRASE": "test-only"},
                                       flags={"branch": BRANCH, **flags})

    def stacks(self) -> dict[str, Any]:
        return json.loads(self.state.read_text(encoding="utf-8")) if self.state.exists() else {}

    def commands(self) -> list[str]:
        return [call["args"][0] for call in cli_log(self.state)]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(*scripted_project(tmp_path, monkeypatch))


def test_up_records_the_estimate_says_it_and_masks_the_outputs(project: Project) -> None:
    lines: list[str] = []
    events: list[Any] = []
    deployed = lifecycle.up(project.settings(budget=1000), on_line=lines.append, on_event=events.append)

    assert deployed.outcome.stack == STACK and deployed.outcome.result == "succeeded"
    assert deployed.outputs == {"dynamodb-autoscaling": {"table_name": "orders"}, "token": "[secret]"}
    assert deployed.estimate is not None
    tags = project.stacks()[STACK]["tags"]
    assert tags["cost-idle"] == f"{deployed.estimate.total('idle'):.2f}"
    assert tags["cost-asleep"] == f"{deployed.estimate.total('asleep'):.2f}"
    assert tags["sleep-state"] == "awake" and tags["branch"] == BRANCH
    assert len(lines) == 1 and lines[0].startswith("estimated cost: ") and "(budget $1,000.00)" in lines[0]
    assert not isinstance(lines[0], lifecycle.WarningLine)
    assert any(event.res_outputs_event is not None for event in events)  # the engine's own event stream
    assert "up" in project.commands()


def test_over_budget_is_refused_before_the_engine_runs(project: Project) -> None:
    with pytest.raises(lifecycle.OverBudget) as refused:
        lifecycle.up(project.settings(budget=0.01))
    assert isinstance(refused.value, errors.BadInput) and isinstance(refused.value, errors.USAGE)
    assert "over the budget of $0.01" in str(refused.value) and "top drivers:" in str(refused.value)
    assert "--over-budget" in str(refused.value)
    with pytest.raises(lifecycle.OverBudget):
        lifecycle.preview(project.settings(budget=0.01))
    assert "up" not in project.commands() and "preview" not in project.commands()
    assert project.stacks() == {}

    deployed = lifecycle.up(project.settings(budget=0.01), over_budget=True)
    assert deployed.outcome.result == "succeeded" and "up" in project.commands()


def test_a_declined_confirmation_runs_nothing(project: Project) -> None:
    asked: list[Any] = []

    def no(prepared: Any) -> bool:
        asked.append(prepared)
        return False

    with pytest.raises(lifecycle.Declined, match="not deployed") as declined:
        lifecycle.up(project.settings(), confirm=no)
    assert isinstance(declined.value, errors.FAILED)
    assert [prepared.stack for prepared in asked] == [STACK] and asked[0].recipes == ("dynamodb-autoscaling",)
    assert project.stacks() == {} and "up" not in project.commands()


def test_config_values_are_checked_as_a_config_file_is(project: Project) -> None:
    settings = project.settings()
    values = {"aws:region": "eu-west-1", "db-recipes:no_such_key": 1}
    with pytest.raises(errors.BadInput, match="no_such_key") as from_values:
        lifecycle.validate(settings, config_values=values)
    config_file = project.root / "Pulumi.feature.yaml"
    config_file.write_text(json.dumps({"config": values}), encoding="utf-8")
    with pytest.raises(errors.BadInput) as from_file:
        lifecycle.validate(project.settings(config=str(config_file)))
    assert str(from_values.value) == str(from_file.value)

    with pytest.raises(errors.BadInput, match="encrypted secret"):
        lifecycle.validate(settings, config_values={"db-recipes:token": {"secure": "AAAB"}})
    with pytest.raises(errors.BadInput, match="expected a mapping"):
        lifecycle.validate(settings, config_values=["aws:region"])  # type: ignore[arg-type]
    with pytest.raises(errors.BadInput, match="both a config file"):
        lifecycle.validate(project.settings(config=str(config_file)), config_values={"aws:region": "eu-west-1"})
    with pytest.raises(errors.BadInput, match="no_such_key"):
        lifecycle.up(settings, config_values=values)
    assert project.stacks() == {}

    prepared = lifecycle.validate(settings, config_values={"aws:region": "eu-west-1",
                                                           "db-recipes:recipes": "aurora-serverless"})
    assert prepared.region == "eu-west-1" and prepared.recipes == ("aurora-serverless",)
    assert prepared.config["aws:region"] == "eu-west-1"


def test_a_bad_usage_file_is_bad_input_before_the_engine(project: Project) -> None:
    (project.root / "dbenv-usage.yml").write_text("aurora_acu_hours: lots\n", encoding="utf-8")
    with pytest.raises(errors.BadInput, match="dbenv-usage.yml"):
        lifecycle.up(project.settings())
    assert "up" not in project.commands()


def test_an_estimate_that_cannot_be_made_is_a_warning_unless_a_budget_needs_it(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from automation.planning import cost

    def unpriceable(*args: Any, **kwargs: Any) -> Any:
        raise cost.CostError("no price for db.x9.huge")

    monkeypatch.setattr(cost, "estimate_stack", unpriceable)
    with pytest.raises(errors.BadInput, match="cannot estimate the cost to check the budget: no price"):
        lifecycle.up(project.settings(budget=100))
    assert "up" not in project.commands()
    lines: list[str] = []
    deployed = lifecycle.up(project.settings(), on_line=lines.append)
    assert lines == ["no cost estimate: no price for db.x9.huge"] and isinstance(lines[0], lifecycle.WarningLine)
    assert deployed.estimate is None and "cost-idle" not in project.stacks()[STACK]["tags"]


def test_preview_then_down_over_the_engine(project: Project) -> None:
    events: list[Any] = []
    lifecycle.up(project.settings())
    outcome = lifecycle.preview(project.settings(), on_event=events.append)
    assert outcome.stack == STACK and outcome.changes == {"create": 1}
    assert events
    gone = lifecycle.down(project.settings(), on_event=events.append)
    assert gone.existed and gone.branch == BRANCH and STACK not in project.stacks()
    assert not lifecycle.down(project.settings()).existed
    with pytest.raises(errors.Refused, match="protected branch"):
        lifecycle.down(project.settings(branch="main"))


def test_operations_that_write_state_need_a_project(tmp_path: Path, project: Project) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    settings = workspace.load_settings(bare, env={}, flags={"branch": BRANCH, "recipes": "dynamodb-autoscaling"})
    if settings.in_project:
        pytest.skip("a dbenv project above the temporary folder")
    with pytest.raises(errors.BadInput, match="no dbenv project"):
        lifecycle.up(settings)
    with pytest.raises(errors.BadInput, match="no dbenv project"):
        lifecycle.down(settings)
    assert set(project.commands()) <= {"version"}  # nothing but the CLI's version was asked


def test_the_shared_stack_up_and_down(project: Project) -> None:
    outcome = lifecycle.shared_up(project.settings())
    assert outcome.stack == "shared" and project.stacks()["shared"]["tags"]["ephemeral"] == "false"
    lifecycle.up(project.settings(shared_network=True))
    with pytest.raises(errors.Refused, match=STACK):
        lifecycle.shared_down(project.settings())
    assert lifecycle.down(project.settings()).existed
    assert lifecycle.shared_down(project.settings()).existed and project.stacks() == {}
