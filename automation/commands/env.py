"""Root commands: the offline plan and the branch environments on the Automation API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from automation.commands import common
from automation.commands import cost as cost_cmd
from automation.commands.common import (
    EXIT_FAILED,
    BranchOption,
    ConfigOption,
    DurableOption,
    JsonOption,
    ParentOption,
    RecipesOption,
    ShowSecretsOption,
    TargetOption,
    TtlOption,
    WaitOption,
    branch_of,
    confirmation,
    echo_line,
    engine_call,
    env_settings,
    fail,
    prepare,
    print_outputs,
    require_project,
    stack_title,
)


def plan(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    target: TargetOption = None,
    durable: DurableOption = None,
    parent: ParentOption = None,
    no_cost: Annotated[bool, typer.Option("--no-cost", help="Leave out the monthly cost column and summary.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show what a branch's stack would create, offline: no Pulumi CLI, no credentials, no network.

    The same settings as `dbenv up` (flags, DBENV_*, dbenv.toml); --target aws plans the branch stack
    on the shared stack's network, whose outputs are shown as placeholders; --from PARENT plans the
    clones of the parent's databases, the parent assumed to exist (its identifiers are placeholders,
    and the lines at the end say what each clone keeps from it). The tree carries each
    resource's idle monthly cost and ends with a cost summary (`dbenv cost` has the details and
    --json); --no-cost leaves both out.

    Example: dbenv plan --branch feature/x --recipes aurora-serverless,data-api --json
    """
    from automation.planning import cost as pricing
    from automation.planning import plan as planning

    settings = env_settings(branch=branch, recipes=recipes, config=config, target=target, durable=durable,
                            parent=parent)
    prepared = prepare(settings, check_engine=False)
    try:
        result = planning.build_plan(prepared.config, stack=prepared.stack)
    except planning.PlanError as err:
        fail(str(err))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=False))
    elif no_cost:
        typer.echo(planning.render_tree(result))
    else:
        estimate = cost_cmd.plan_estimate(prepared, settings)
        typer.echo(planning.render_tree(result, pricing.resource_suffix(estimate)))
        typer.echo(pricing.render(estimate))


def up(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    ttl: TtlOption = None,
    target: TargetOption = None,
    durable: DurableOption = None,
    parent: ParentOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Deploy without asking.")] = False,
    wait: WaitOption = False,
    budget: cost_cmd.BudgetOption = None,
    over_budget: cost_cmd.OverBudgetOption = False,
    as_json: JsonOption = False,
    post_clone: Annotated[list[Path] | None, typer.Option("--post-clone", help="SQL file run once on a fresh "
                                                          "clone, e.g. masking (repeatable).")] = None,
    migrate: Annotated[str | None, typer.Option("--migrate", help="Shell command run after the deploy with the "
                                                "database's connection in its environment.")] = None,
    seed: Annotated[list[Path] | None, typer.Option("--seed", help="SQL file run once on a database created "
                                                    "without a parent (repeatable).")] = None,
) -> None:
    """Create or update the branch's own environment and deploy the chosen recipes.

    Before the engine runs, the change is priced offline; over `budget` (dbenv.toml or --budget) it is
    refused with the top cost drivers, unless --over-budget.

    The stack is tagged branch, created-at, expires-at (now + --ttl, renewed on every up), ephemeral,
    owner and commit. With --target local (the default) a moto server is started if needed.

    With --from PARENT (or `parent` in dbenv.toml) the branch's databases are created from the parent
    environment's: an Aurora copy-on-write clone, an RDS MySQL point-in-time restore, a DynamoDB
    restore, each at the latest restorable time; post_clone then runs once on the clone. A parent that
    does not exist, lacks a database or runs another engine major is refused (exit 2) before anything
    is created; the stack is also tagged parent and cloned-at.

    Example: dbenv up --branch feature/x --from staging --recipes aurora-serverless,dynamodb-autoscaling --yes
    """
    from automation.operations import lifecycle
    from automation.operations.engine import TAG_CLONED, TAG_EXPIRES, TAG_PARENT

    settings = env_settings(branch=branch, recipes=recipes, config=config, target=target, ttl=ttl, durable=durable,
                            parent=parent, budget=budget, migrate=migrate,
                            post_clone=[str(p) for p in post_clone] if post_clone else None,
                            seed=[str(p) for p in seed] if seed else None)
    deployed = engine_call(stack_title("up", settings), lambda on_event: lifecycle.up(
        settings, over_budget=over_budget, wait=wait, confirm=confirmation(settings, yes), on_event=on_event,
        on_line=echo_line, environments=common.environments(settings)))
    outcome, outputs = deployed.outcome, deployed.outputs
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "branch": outcome.branch, "result": outcome.result,
                               "changes": outcome.changes, "tags": dict(outcome.tags),
                               "outputs": outputs}, indent=2))
        return
    tags = outcome.tags
    cloned = f"; cloned from {tags[TAG_PARENT]} at {tags.get(TAG_CLONED)}" if TAG_PARENT in tags else ""
    typer.echo(f"stack {outcome.stack} (branch {outcome.branch}): {outcome.result}; "
               f"expires {tags.get(TAG_EXPIRES)}{cloned}")
    print_outputs(outputs)


def preview(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    target: TargetOption = None,
    durable: DurableOption = None,
    parent: ParentOption = None,
    wait: WaitOption = False,
    budget: cost_cmd.BudgetOption = None,
    over_budget: cost_cmd.OverBudgetOption = False,
    as_json: JsonOption = False,
) -> None:
    """Ask the engine what `dbenv up` would change, with the policy pack (policies/) attached.

    Refused before the engine runs when the idle estimate is over `budget`, as for `dbenv up`.

    Example: dbenv preview --branch feature/x --recipes all
    """
    from automation.operations import lifecycle

    settings = env_settings(branch=branch, recipes=recipes, config=config, target=target, durable=durable,
                            parent=parent, budget=budget)
    outcome = engine_call(stack_title("preview", settings), lambda on_event: lifecycle.preview(
        settings, over_budget=over_budget, wait=wait, on_event=on_event, on_line=echo_line,
        environments=common.environments(settings)))
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "changes": outcome.changes,
                               "policy_pack": outcome.policy_pack}, indent=2))
        return
    changes = ", ".join(f"{n} {op}" for op, n in sorted(outcome.changes.items()) if n) or "no changes"
    pack = outcome.policy_pack or "none (no PulumiPolicy.yaml found)"
    typer.echo(f"stack {outcome.stack}: {changes}; policy pack: {pack}")


def down(
    branch: BranchOption = None,
    target: TargetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Also destroy protected branches and untagged stacks.")] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Destroy the branch's environment and remove its stack; nothing is left behind.

    Refuses stacks not tagged ephemeral, and the branches main, master, prod*, production and staging,
    unless --force. A branch without an environment is not an error.

    Example: dbenv down --branch feature/x
    """
    from automation.operations import lifecycle

    settings = env_settings(branch=branch, target=target)
    outcome = engine_call(lambda: f"down {settings.branch}", lambda on_event: lifecycle.down(
        settings, force=force, wait=wait, on_event=on_event, environments=common.environments(settings)))
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "branch": outcome.branch, "existed": outcome.existed,
                               "changes": outcome.changes}, indent=2))
    elif outcome.existed:
        typer.echo(f"stack {outcome.stack} (branch {outcome.branch}) destroyed and removed")
    else:
        typer.echo(f"no environment for branch {outcome.branch} (stack {outcome.stack}): nothing to do")


def list_environments(target: TargetOption = None, as_json: JsonOption = False) -> None:
    """List every environment: branch, parent and clone time, age, expiry, resources, last result, state,
    asleep/awake, monthly cost.

    The cost is the estimate `dbenv up` recorded: idle while awake, what still bills while asleep.

    Example: dbenv ls --json
    """
    from automation import workspace
    from automation.operations.engine import format_time

    settings = env_settings(target=target)
    service = common.environments(settings, read_only=True)
    infos = engine_call("ls", lambda _: service.list(), display=False)
    if as_json:
        typer.echo(json.dumps([info.to_json() for info in infos], indent=2))
        return
    if not infos:
        typer.echo("no environments")
        return
    rows = [("STACK", "BRANCH", "PARENT", "CLONED", "AGE", "EXPIRES IN", "RESOURCES", "LAST", "STATE", "SLEEP",
             "COST/MO")]
    for info in infos:
        expires = workspace.format_duration(info.expires_at - info.now) if info.expires_at else "-"
        state = ",".join(s for s, on in (("expired", info.expired), ("locked", info.locked),
                                         ("durable", not info.ephemeral)) if on) or "ok"
        cloned = format_time(info.cloned_at) if info.cloned_at else "-"
        rows.append((info.stack, info.branch or "-", info.parent or "-", cloned,
                     workspace.format_duration(info.age) if info.age else "-",
                     expires, str(info.resource_count if info.resource_count is not None else "-"),
                     info.last_result or "-", state, info.sleep_state, _money(info.monthly_cost)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def outputs(
    branch: BranchOption = None,
    target: TargetOption = None,
    show_secrets: ShowSecretsOption = False,
    as_json: JsonOption = False,
) -> None:
    """Print the branch environment's outputs (endpoints, ARNs, secret ARNs); secret values stay masked.

    Example: dbenv outputs --branch feature/x --json
    """
    from components import naming

    settings = env_settings(branch=branch, target=target)
    stack = naming.stack_name(branch_of(settings))
    service = common.environments(settings, read_only=True)
    values = engine_call("outputs", lambda _: service.outputs(stack, show_secrets=show_secrets), display=False)
    if as_json:
        typer.echo(json.dumps(values, indent=2))
    else:
        typer.echo(f"stack {stack}")
        print_outputs(values)


def reap(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be destroyed.")] = False,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Also reap ephemeral stacks created longer ago than this "
                                                      "(e.g. 7d, 12w; any length).")
    ] = None,
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Destroy and remove every expired ephemeral environment, a few at a time; report each one.

    Then sleep the branches idle longer than `sleep_after` (12h since the last up/wake) and put back
    to sleep those marked asleep that AWS started again (it does after 7 days).
    Never touches a stack that is not tagged ephemeral. One failure does not stop the others;
    the exit code is 1 if any failed.

    Example: dbenv reap --dry-run --older-than 7d
    """
    from automation import workspace
    from automation.operations import lifecycle

    settings = env_settings(target=target)
    try:
        age = workspace.parse_duration(older_than, "--older-than") if older_than is not None else None
    except workspace.SettingsError as err:
        fail(str(err))

    def report(result: Any) -> None:
        if not as_json:
            detail = f": {result.detail}" if result.detail else ""
            typer.echo(f"{result.status:<13} {result.stack} ({result.branch or '-'}){detail}")

    results = engine_call("reap", lambda _: lifecycle.reap(
        settings, dry_run=dry_run, older_than=age, on_result=report,
        environments=common.environments(settings, read_only=dry_run)), display=False)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    elif not results:
        typer.echo("nothing to reap")
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_FAILED)


def cancel(
    branch: BranchOption = None,
    stack: Annotated[str | None, typer.Option("--stack", help="A stack name instead of a branch (e.g. shared).")] = None,
    target: TargetOption = None,
) -> None:
    """Clear the lock of a stack whose update crashed. Dangerous while an update really runs.

    Example: dbenv cancel --branch feature/x
    """
    from components import naming

    settings = env_settings(branch=None if stack else branch, target=target)
    if stack and branch:
        fail("--stack and --branch name the stack twice: give one")
    name = stack or naming.stack_name(branch_of(settings))
    try:
        naming.validate_stack_name(name)
    except naming.InvalidName as err:
        fail(str(err))
    require_project(settings)
    service = common.environments(settings)
    engine_call("cancel", lambda _: service.cancel(name), display=False)
    typer.echo(f"stack {name}: lock cleared")


def install_pulumi(
    version: Annotated[str | None, typer.Option("--version", help="CLI version (default: the SDK's own).")] = None,
) -> None:
    """Download the Pulumi CLI into ~/.pulumi/versions/<version> (needs the internet).

    Example: dbenv install-pulumi
    """
    from automation import workspace

    try:
        wanted = workspace.check_install_version(version)
    except workspace.SettingsError as err:
        fail(str(err))
    try:
        command = workspace.install_pulumi(wanted)
    except Exception as err:  # noqa: BLE001 - network, HTTP, shell: all end in one line
        fail(f"could not install the Pulumi CLI: {err}", EXIT_FAILED)
    typer.echo(f"installed pulumi {command.version} at {command.command}")


def _money(value: float | None) -> str:
    return f"${value:,.2f}" if value is not None else "-"
