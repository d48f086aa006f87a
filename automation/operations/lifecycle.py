"""The stack lifecycle as both faces run it: `dbenv` commands and the service's jobs call these.

Each function does, in order, what its command does: validate everything first (BadInput,
nothing touched), then the budget gate, then the confirmation, then the engine, then the records
on the stack. Engine events go to ``on_event`` (from the engine's threads); a human line (a
runbook step, a notice such as the cost estimate) goes to ``on_line``. Failures are the classes
of ``operations.errors``; ``errors.USAGE`` and ``errors.FAILED`` say how a face maps them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automation.operations.engine import mask_outputs
from automation.operations.environments import DownOutcome, Environments, PreviewOutcome, ReapResult, UpOutcome
from automation.operations.errors import BadInput, Declined, OverBudget
from automation.operations.prepare import NAMESPACE, Prepared, prepare, prepare_hooks, prepare_shared
from automation.operations.sleep import Sleeper, SleepReport
from automation.workspace import Settings, SettingsError

if TYPE_CHECKING:
    from automation.planning.cost import Estimate

OnEvent = Callable[[Any], None]
OnLine = Callable[[str], None]


class WarningLine(str):
    """A line that warns (an estimate that could not be made); the CLI prints it as ``dbenv: <line>``."""


@dataclass(frozen=True)
class Deployed:
    outcome: UpOutcome
    estimate: Estimate | None  # None when the change could not be priced
    outputs: dict[str, Any]  # the outcome's outputs, secrets masked


def environments_for(settings: Settings, *, read_only: bool = False) -> Environments:
    """The environments of these settings; ``read_only`` ones never create .dbenv/ (work dirs, passphrase)."""
    return Environments(settings, read_only=read_only)


def sleeper(service: Environments) -> Sleeper:
    """Sleep and wake over ``service`` with the RDS clients of its target."""
    return Sleeper(service)


def require_project(settings: Settings) -> None:
    """Operations that write state keep it in the project's .dbenv/, so they need a project."""
    if not settings.in_project:
        raise BadInput(f"no dbenv project in {settings.project_dir} or above (no dbenv.toml or pyproject.toml): "
                       "run dbenv in your project, or create an empty dbenv.toml to start one")


def validate(settings: Settings, *, config_values: Mapping[str, Any] | None = None,
             check_engine: bool = False) -> Prepared:
    """Everything checkable before anything runs (branch, recipes, config, TTL, parent): BadInput."""
    return prepare(settings, config_values=config_values, check_engine=check_engine)


def up(settings: Settings, *, config_values: Mapping[str, Any] | None = None, over_budget: bool = False,
       wait: bool = False, confirm: Callable[[Prepared], bool] | None = None, on_event: OnEvent | None = None,
       on_line: OnLine | None = None, environments: Environments | None = None) -> Deployed:
    """Create or update the branch's environment: `dbenv up` (Declined when ``confirm`` says no)."""
    say = on_line or _quiet
    prepared = prepare(settings, config_values=config_values)
    require_project(settings)
    hooks = prepare_hooks(settings, prepared)
    estimate = budget_gate(prepared, settings, over_budget=over_budget, on_line=say)
    if confirm is not None and not confirm(prepared):
        raise Declined("not deployed")
    service = environments or environments_for(settings)
    outcome = service.up(prepared, on_event=on_event, wait=wait, hooks=hooks, on_line=say)
    figures = None if estimate is None else (estimate.total("idle"), estimate.total("asleep"))
    sleeper(service).mark_deployed(outcome.stack, figures)
    return Deployed(outcome, estimate, mask_outputs(outcome.outputs))


def preview(settings: Settings, *, config_values: Mapping[str, Any] | None = None, over_budget: bool = False,
            wait: bool = False, on_event: OnEvent | None = None, on_line: OnLine | None = None,
            environments: Environments | None = None) -> PreviewOutcome:
    """What `up` would change, with the policy pack attached; the same budget gate first."""
    prepared = prepare(settings, config_values=config_values)
    require_project(settings)
    budget_gate(prepared, settings, over_budget=over_budget, on_line=on_line or _quiet)
    service = environments or environments_for(settings)
    return service.preview(prepared, on_event=on_event, wait=wait)


def down(settings: Settings, *, force: bool = False, wait: bool = False, on_event: OnEvent | None = None,
         environments: Environments | None = None) -> DownOutcome:
    """Destroy the branch's environment and remove its stack (protected branches only with ``force``)."""
    branch = _branch(settings)
    require_project(settings)
    service = environments or environments_for(settings)
    return service.down(branch, force=force, on_event=on_event, wait=wait)


def sleep(settings: Settings, *, environments: Environments | None = None,
          on_line: OnLine | None = None) -> SleepReport:
    """Stop the branch's databases; the report's ``still_costing`` is what bills while asleep."""
    from components import naming

    branch = _branch(settings)
    service = environments or environments_for(settings)
    report = sleeper(service).sleep(naming.stack_name(branch), branch)
    report.still_costing = _still_costing(report, on_line or _quiet)
    return report


def wake(settings: Settings, *, environments: Environments | None = None,
         on_line: OnLine | None = None) -> SleepReport:
    """Start the branch's stopped databases and wait until they are available."""
    from components import naming

    branch = _branch(settings)
    service = environments or environments_for(settings)
    return sleeper(service).wake(naming.stack_name(branch), branch)


def reap(settings: Settings, *, dry_run: bool = False, older_than: timedelta | None = None,
         on_result: Callable[[ReapResult], None] | None = None,
         environments: Environments | None = None) -> list[ReapResult]:
    """Destroy expired environments, then sleep idle ones and re-sleep those AWS woke: `dbenv reap`."""
    if not dry_run:
        require_project(settings)
    service = environments or environments_for(settings, read_only=dry_run)
    results = service.reap(dry_run=dry_run, older_than=older_than, on_result=on_result)
    slept = sleeper(service).reap(sleep_after=settings.sleep_after, dry_run=dry_run,
                                  skip={result.stack for result in results})
    for result in slept:
        if on_result is not None:
            on_result(result)
    return [*results, *slept]


def shared_up(settings: Settings, *, config_file: Path | None = None, wait: bool = False,
              on_event: OnEvent | None = None, environments: Environments | None = None) -> UpOutcome:
    """Create or update the account-wide shared stack (network, DMS service roles): `dbenv shared up`."""
    prepared = prepare_shared(settings, config_file)
    require_project(settings)
    service = environments or environments_for(settings)
    return service.up(prepared, on_event=on_event, wait=wait)


def shared_down(settings: Settings, *, force: bool = False, wait: bool = False, on_event: OnEvent | None = None,
                environments: Environments | None = None) -> DownOutcome:
    """Destroy the shared stack; Refused while a branch stack uses its network, unless ``force``."""
    require_project(settings)
    service = environments or environments_for(settings)
    return service.shared_down(force=force, on_event=on_event, wait=wait)


# ------------------------------------------------------------------ cost


def budget_gate(prepared: Prepared, settings: Settings, *, over_budget: bool, on_line: OnLine) -> Estimate | None:
    """Price the change offline before the engine runs; OverBudget when its idle figure is over budget.

    Without a budget an estimate that cannot be made is a warning, not an error: it only feeds `dbenv ls`.
    """
    from automation.planning import cost as pricing
    from automation.planning.plan import PlanError

    budget = settings.budget
    usage = project_usage(settings)
    try:
        result = pricing.estimate_stack(prepared.config, prepared.stack, usage)
    except (PlanError, pricing.CostError) as err:
        if budget is not None and not over_budget:
            raise BadInput(f"cannot estimate the cost to check the budget: {err} "
                           "(pass --over-budget to deploy anyway)") from None
        on_line(WarningLine(f"no cost estimate: {err}"))
        return None
    idle = result.total("idle")
    if budget is not None and idle > budget and not over_budget:
        drivers = "; ".join(f"{name} {part} {pricing.money(value)}" for name, part, value in result.drivers("idle", 3))
        raise OverBudget(f"estimated idle cost {pricing.money(idle)}/month is over the budget of "
                         f"{pricing.money(budget)}; top drivers: {drivers}. Pass --over-budget to deploy anyway")
    if budget is not None:
        on_line(f"estimated cost: {pricing.money(idle)}/month idle, {pricing.money(result.total('asleep'))} "
                f"asleep (budget {pricing.money(budget)})")
    return result


def project_usage(settings: Settings) -> Any:
    """The project's usage file (dbenv-usage.yml), if any: BadInput when it cannot be read."""
    from automation.planning import cost as pricing

    try:
        return pricing.project_usage(settings.project_dir)
    except pricing.CostError as err:
        raise BadInput(str(err)) from None


def _still_costing(report: SleepReport, on_line: OnLine) -> list[tuple[str, str, float]]:
    """What bills while asleep, from the stack's own config priced offline (empty if it cannot be priced)."""
    from automation.planning import cost as pricing
    from automation.planning.plan import PlanError

    config = {key: _decode(value) for key, value in report.config.items()}
    if f"{NAMESPACE}:recipes" not in config:
        return []
    try:
        return pricing.estimate_stack(config, report.stack).still_costing()
    except (PlanError, pricing.CostError) as err:
        on_line(WarningLine(f"cannot price what keeps costing: {err}"))
        return []


def _decode(value: Any) -> Any:
    """A stack config value as the config file had it: structured values travel as JSON."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# ------------------------------------------------------------------ helpers


def _branch(settings: Settings) -> str:
    try:
        return settings.branch
    except SettingsError as err:
        raise BadInput(str(err)) from None


def _quiet(_: str) -> None:
    return None


def schema_diff_text(settings: Settings, parent: str) -> str:
    """The branch's schema against the parent's, as `dbenv db diff` prints it (for reports such as a PR comment)."""
    from automation.operations import databases

    return databases.schema_diff_text(settings, parent)
