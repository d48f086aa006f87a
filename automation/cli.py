"""`dbenv`: the command surface. Parse, call the modules below, render; nothing else lives here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

app = typer.Typer(
    name="dbenv",
    help="AWS database recipes as Pulumi stacks, and one throw-away environment per git branch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

BranchOption = Annotated[
    str | None, typer.Option("--branch", "-b", help="Git branch (default: the current branch).")
]
RecipesOption = Annotated[
    str | None, typer.Option("--recipes", "-r", help="'all' or a comma-separated list of recipe names.")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="A Pulumi stack config YAML (Pulumi.<stack>.yaml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.callback()
def _root() -> None:
    """AWS database recipes as Pulumi stacks, and one throw-away environment per git branch."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One clear line on stderr and the exit code; never a traceback."""
    typer.echo(f"dbenv: {message}", err=True)
    raise typer.Exit(code)


def resolve_branch(branch: str | None) -> str:
    from automation import gitinfo
    from components import naming

    try:
        return naming.validate_branch(branch if branch is not None else gitinfo.current_branch())
    except (naming.InvalidName, gitinfo.GitError) as err:
        fail(str(err))


def plan_config(branch: str | None, recipes: str | None, config: Path | None, durable: bool) -> tuple[dict, str]:
    """The stack config and stack name a plan is built from (shared by `plan` and `policy check`)."""
    from automation import plan as planning
    from components import naming

    chosen = resolve_branch(branch)
    try:
        base = planning.read_config_file(config) if config else {}
    except planning.PlanError as err:
        fail(str(err))
    ephemeral = False if durable else (None if "db-recipes:ephemeral" in base else True)
    merged = planning.merge_config(base, recipes=recipes, branch=chosen, ephemeral=ephemeral)
    if "db-recipes:recipes" not in merged:
        fail("choose recipes with --recipes (e.g. --recipes all) or db-recipes:recipes in --config")
    return merged, naming.stack_name(chosen)


@app.command()
def plan(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    durable: Annotated[
        bool, typer.Option("--durable", help="Plan a durable stack (default: ephemeral, as for a branch).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show what a branch's stack would create, offline: no Pulumi CLI, no credentials, no network.

    Example: dbenv plan --branch feature/x --recipes aurora-serverless,data-api --json
    """
    from automation import plan as planning

    merged, stack = plan_config(branch, recipes, config, durable)
    try:
        result = planning.build_plan(merged, stack=stack)
    except planning.PlanError as err:
        fail(str(err))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=False))
    else:
        typer.echo(planning.render_tree(result))


policy_app = typer.Typer(
    name="policy",
    help="The CrossGuard policy pack (policies/): the same checks as `pulumi preview --policy-pack policies`.",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")


@policy_app.command("check")
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


# ------------------------------------------------------------------ branch environments (Automation API)

T = TypeVar("T")

if TYPE_CHECKING:
    from automation.environments import Environments, Prepared
    from automation.local_aws import LocalAws
    from automation.workspace import Settings

TargetOption = Annotated[
    str | None, typer.Option("--target", "-t", help="local (a moto server on 127.0.0.1) or aws; default from dbenv.toml.")
]
TtlOption = Annotated[
    str | None, typer.Option("--ttl", help="Lifetime before `dbenv reap` may remove it: 90m, 72h, 3d, 1w.")
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="If the stack is locked by another update, retry with backoff (up to 15 min).")
]
ShowSecretsOption = Annotated[bool, typer.Option("--show-secrets", help="Print secret outputs in plain text.")]


def _env_settings(**flags: Any) -> Settings:
    from automation import workspace

    try:
        return workspace.load_settings(flags=flags)
    except workspace.SettingsError as err:
        fail(str(err))


def _environments(settings: Settings) -> Environments:
    from automation.environments import Environments

    return Environments(settings)


def _prepare(settings: Settings, branch: str, recipes: str | None, config: Path | None) -> Prepared:
    from automation import environments as envs

    try:
        return envs.prepare(settings, branch=branch, recipes=recipes, config_file=config)
    except envs.BadInput as err:
        fail(str(err))


def _engine_call(title: str, call: Callable[[Any], T], *, display: bool = True) -> T:
    """Run an engine operation with a progress display; map every failure to one line and an exit code."""
    from automation import environments as envs
    from automation import local_aws, progress, workspace

    try:
        if not display:
            return call(None)
        with progress.renderer(sys.stderr, title) as shown:
            return call(shown.on_event)
    except (envs.BadInput, envs.Refused) as err:
        fail(str(err))
    except (envs.OperationFailed, envs.NotFound, workspace.PulumiCliError, local_aws.LocalAwsError) as err:
        fail(str(err), EXIT_FAILED)


def _print_outputs(outputs: dict) -> None:
    import yaml

    if not outputs:
        typer.echo("outputs: (none)")
        return
    typer.echo("outputs:")
    text = yaml.safe_dump(outputs, sort_keys=False, default_flow_style=False, allow_unicode=True)
    typer.echo("\n".join("  " + line for line in text.rstrip().splitlines()))


def _confirm_deploy(prepared: Prepared, settings: Settings, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail("not on a terminal: pass --yes to deploy without a prompt")
    question = (f"Deploy {', '.join(prepared.recipes)} to stack {prepared.stack} "
                f"(target {settings.target}, region {prepared.region})?")
    if not typer.confirm(question, default=False):
        fail("not deployed", EXIT_FAILED)


@app.command()
def up(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    ttl: TtlOption = None,
    target: TargetOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Deploy without asking.")] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update the branch's own environment and deploy the chosen recipes.

    The stack is tagged branch, created-at, expires-at (now + --ttl, renewed on every up), ephemeral,
    owner and commit. With --target local (the default) a moto server is started if needed.

    Example: dbenv up --branch feature/x --recipes aurora-serverless,dynamodb-autoscaling --ttl 24h --yes
    """
    from automation import environments as envs

    settings = _env_settings(target=target, ttl=ttl)
    prepared = _prepare(settings, resolve_branch(branch), recipes, config)
    _confirm_deploy(prepared, settings, yes)
    service = _environments(settings)
    outcome = _engine_call(f"up {prepared.stack}",
                           lambda on_event: service.up(prepared, on_event=on_event, wait=wait))
    outputs = envs.mask_outputs(outcome.outputs)
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "branch": outcome.branch, "result": outcome.result,
                               "changes": outcome.changes, "tags": dict(outcome.tags),
                               "outputs": outputs}, indent=2))
        return
    tags = outcome.tags
    typer.echo(f"stack {outcome.stack} (branch {outcome.branch}): {outcome.result}; "
               f"expires {tags.get(envs.TAG_EXPIRES)}")
    _print_outputs(outputs)


@app.command()
def preview(
    branch: BranchOption = None,
    recipes: RecipesOption = None,
    config: ConfigOption = None,
    target: TargetOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Ask the engine what `dbenv up` would change, with the policy pack (policies/) attached.

    Example: dbenv preview --branch feature/x --recipes all
    """
    settings = _env_settings(target=target)
    prepared = _prepare(settings, resolve_branch(branch), recipes, config)
    service = _environments(settings)
    outcome = _engine_call(f"preview {prepared.stack}",
                           lambda on_event: service.preview(prepared, on_event=on_event, wait=wait))
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "changes": outcome.changes,
                               "policy_pack": outcome.policy_pack}, indent=2))
        return
    changes = ", ".join(f"{n} {op}" for op, n in sorted(outcome.changes.items()) if n) or "no changes"
    pack = outcome.policy_pack or "none (no PulumiPolicy.yaml found)"
    typer.echo(f"stack {outcome.stack}: {changes}; policy pack: {pack}")


@app.command()
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
    settings = _env_settings(target=target)
    chosen = resolve_branch(branch)
    service = _environments(settings)
    outcome = _engine_call(f"down {chosen}",
                           lambda on_event: service.down(chosen, force=force, on_event=on_event, wait=wait))
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "branch": outcome.branch, "existed": outcome.existed,
                               "changes": outcome.changes}, indent=2))
    elif outcome.existed:
        typer.echo(f"stack {outcome.stack} (branch {chosen}) destroyed and removed")
    else:
        typer.echo(f"no environment for branch {chosen} (stack {outcome.stack}): nothing to do")


@app.command("ls")
def list_environments(target: TargetOption = None, as_json: JsonOption = False) -> None:
    """List every environment of the project: branch, age, expiry, resources, last result, expired, locked.

    Example: dbenv ls --json
    """
    from automation import workspace

    settings = _env_settings(target=target)
    service = _environments(settings)
    infos = _engine_call("ls", lambda _: service.list(), display=False)
    if as_json:
        typer.echo(json.dumps([info.to_json() for info in infos], indent=2))
        return
    if not infos:
        typer.echo("no environments")
        return
    rows = [("STACK", "BRANCH", "AGE", "EXPIRES IN", "RESOURCES", "LAST", "STATE")]
    for info in infos:
        expires = workspace.format_duration(info.expires_at - info.now) if info.expires_at else "-"
        state = ",".join(s for s, on in (("expired", info.expired), ("locked", info.locked),
                                         ("durable", not info.ephemeral)) if on) or "ok"
        rows.append((info.stack, info.branch or "-", workspace.format_duration(info.age) if info.age else "-",
                     expires, str(info.resource_count if info.resource_count is not None else "-"),
                     info.last_result or "-", state))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@app.command()
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

    settings = _env_settings(target=target)
    stack = naming.stack_name(resolve_branch(branch))
    service = _environments(settings)
    values = _engine_call("outputs", lambda _: service.outputs(stack, show_secrets=show_secrets), display=False)
    if as_json:
        typer.echo(json.dumps(values, indent=2))
    else:
        typer.echo(f"stack {stack}")
        _print_outputs(values)


@app.command()
def reap(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be destroyed.")] = False,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Also reap ephemeral stacks created longer ago than this (e.g. 7d).")
    ] = None,
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Destroy and remove every expired ephemeral environment, a few at a time; report each one.

    Never touches a stack that is not tagged ephemeral. One failure does not stop the others;
    the exit code is 1 if any failed.

    Example: dbenv reap --dry-run --older-than 7d
    """
    from automation import workspace

    settings = _env_settings(target=target)
    try:
        age = workspace.parse_ttl(older_than, "--older-than") if older_than else None
    except workspace.SettingsError as err:
        fail(str(err))
    service = _environments(settings)

    def report(result: Any) -> None:
        if not as_json:
            detail = f": {result.detail}" if result.detail else ""
            typer.echo(f"{result.status:<13} {result.stack} ({result.branch or '-'}){detail}")

    results = _engine_call("reap", lambda _: service.reap(dry_run=dry_run, older_than=age, on_result=report),
                           display=False)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    elif not results:
        typer.echo("nothing to reap")
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def cancel(
    branch: BranchOption = None,
    stack: Annotated[str | None, typer.Option("--stack", help="A stack name instead of a branch (e.g. shared).")] = None,
    target: TargetOption = None,
) -> None:
    """Clear the lock of a stack whose update crashed. Dangerous while an update really runs.

    Example: dbenv cancel --branch feature/x
    """
    from components import naming

    settings = _env_settings(target=target)
    name = stack or naming.stack_name(resolve_branch(branch))
    try:
        naming.validate_stack_name(name)
    except naming.InvalidName as err:
        fail(str(err))
    service = _environments(settings)
    _engine_call("cancel", lambda _: service.cancel(name), display=False)
    typer.echo(f"stack {name}: lock cleared")


shared_app = typer.Typer(name="shared", help="The account-wide stack (network, DMS service roles) branch stacks read.",
                         no_args_is_help=True)
app.add_typer(shared_app, name="shared")


@shared_app.command("up")
def shared_up(
    config: ConfigOption = None,
    target: TargetOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update the shared stack (`db-recipes:network` from --config shapes its VPC).

    Example: dbenv shared up --target aws
    """
    from automation import environments as envs

    settings = _env_settings(target=target)
    try:
        prepared = envs.prepare_shared(settings, config)
    except envs.BadInput as err:
        fail(str(err))
    service = _environments(settings)
    outcome = _engine_call("shared up", lambda on_event: service.up(prepared, on_event=on_event, wait=wait))
    values = envs.mask_outputs(outcome.outputs)
    if as_json:
        typer.echo(json.dumps({"stack": outcome.stack, "result": outcome.result, "outputs": values}, indent=2))
    else:
        typer.echo(f"stack {outcome.stack}: {outcome.result}")
        _print_outputs(values)


@shared_app.command("down")
def shared_down(
    target: TargetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Destroy even while branch stacks still use it.")] = False,
    wait: WaitOption = False,
) -> None:
    """Destroy the shared stack; refused while a branch stack uses its network, unless --force.

    Example: dbenv shared down
    """
    settings = _env_settings(target=target)
    service = _environments(settings)
    outcome = _engine_call("shared down", lambda on_event: service.shared_down(force=force, on_event=on_event,
                                                                                wait=wait))
    typer.echo("shared stack destroyed and removed" if outcome.existed else "no shared stack: nothing to do")


@shared_app.command("outputs")
def shared_outputs(target: TargetOption = None, show_secrets: ShowSecretsOption = False, as_json: JsonOption = False) -> None:
    """Print the shared stack's outputs.

    Example: dbenv shared outputs --json
    """
    from automation.environments import SHARED_STACK

    settings = _env_settings(target=target)
    service = _environments(settings)
    values = _engine_call("outputs", lambda _: service.outputs(SHARED_STACK, show_secrets=show_secrets),
                          display=False)
    if as_json:
        typer.echo(json.dumps(values, indent=2))
    else:
        _print_outputs(values)


local_app = typer.Typer(name="local", help="The local AWS endpoint (a moto server on 127.0.0.1) for --target local.",
                        no_args_is_help=True)
app.add_typer(local_app, name="local")


def _local_server() -> LocalAws:
    from automation.local_aws import LocalAws

    settings = _env_settings()
    return LocalAws(settings.local_dir)


@local_app.command("start")
def local_start(
    port: Annotated[int | None, typer.Option("--port", help="Port (default: the last one used, else a free one).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the moto server in the background (pid file and log in .dbenv/local/).

    Example: dbenv local start
    """
    from automation.local_aws import LocalAwsError

    server = _local_server()
    try:
        status = server.start(port=port)
    except LocalAwsError as err:
        fail(str(err), EXIT_FAILED)
    typer.echo(json.dumps(status.to_json()) if as_json else f"running at {status.endpoint} (pid {status.pid})")


@local_app.command("stop")
def local_stop() -> None:
    """Stop the moto server. Everything deployed to it is forgotten.

    Example: dbenv local stop
    """
    stopped = _local_server().stop()
    typer.echo("stopped" if stopped else "not running")


@local_app.command("status")
def local_status(as_json: JsonOption = False) -> None:
    """Say whether the moto server runs, where, and its pid (a stale pid file is cleaned up).

    Example: dbenv local status --json
    """
    status = _local_server().status()
    if as_json:
        typer.echo(json.dumps(status.to_json()))
    elif status.running:
        typer.echo(f"running at {status.endpoint} (pid {status.pid})")
    else:
        typer.echo("not running" + (" (removed a stale pid file)" if status.stale_cleaned else ""))


config_app = typer.Typer(name="config", help="dbenv's own settings (dbenv.toml, \\[tool.dbenv], env, flags).",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(target: TargetOption = None, ttl: TtlOption = None, as_json: JsonOption = False) -> None:
    """Print the effective settings and where each one came from (default, file, env or flag).

    Example: dbenv config show --target aws
    """
    from automation import workspace

    settings = _env_settings(target=target, ttl=ttl)
    rows = workspace.describe_settings(settings)
    if as_json:
        typer.echo(json.dumps({"project_dir": str(settings.project_dir), "settings": rows}, indent=2, default=str))
        return
    width = max(len(row["key"]) for row in rows)
    typer.echo(f"project: {settings.project_dir}")
    for row in rows:
        value = "-" if row["value"] is None else row["value"]
        typer.echo(f"{row['key']:<{width}}  {value}  ({row['source']})")


@app.command("install-pulumi")
def install_pulumi(
    version: Annotated[str | None, typer.Option("--version", help="CLI version (default: the SDK's own).")] = None,
) -> None:
    """Download the Pulumi CLI into ~/.pulumi/versions/<version> (needs the internet).

    Example: dbenv install-pulumi
    """
    from automation import workspace

    try:
        command = workspace.install_pulumi(version)
    except Exception as err:  # noqa: BLE001 - network, HTTP, shell: all end in one line
        fail(f"could not install the Pulumi CLI: {err}", EXIT_FAILED)
    typer.echo(f"installed pulumi {command.version} at {command.command}")


# ------------------------------------------------------------------ database commands (IAM auth, Data API)

db_app = typer.Typer(name="db", help="Connect to a branch's databases with IAM auth, or query them through the Data API.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")


def _db_context(branch: str | None, target: str | None) -> tuple[Settings, dict, dict[str, Any]]:
    """The branch stack's outputs and how to reach its AWS APIs (the local endpoint, or AWS)."""
    from automation import local_aws
    from components import naming

    settings = _env_settings(target=target)
    stack = naming.stack_name(resolve_branch(branch))
    service = _environments(settings)
    values = _engine_call("outputs", lambda _: service.outputs(stack, show_secrets=False), display=False)
    client_args: dict[str, Any] = {"region_name": settings.region}
    if settings.target == "local":
        status = _local_server().status()
        if not status.running:
            fail("the local AWS endpoint is not running: `dbenv local start`, then `dbenv up`", EXIT_FAILED)
        client_args.update(endpoint_url=status.endpoint, aws_access_key_id=local_aws.ACCESS_KEY,
                           aws_secret_access_key=local_aws.SECRET_KEY)
    return settings, values, client_args


@db_app.command("connect")
def db_connect(
    recipe: Annotated[str, typer.Option("--recipe", help="aurora-serverless (also iam-auth), rds-proxy, "
                                        "encrypt-existing, dms-migration or secret-rotation.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Database user with IAM auth (rds_iam / AWSAuthenticationPlugin).")],
    branch: BranchOption = None,
    target: TargetOption = None,
    ca_bundle: Annotated[Path | None, typer.Option("--ca-bundle", help="RDS CA bundle PEM (default: downloaded once, cached).")] = None,
    execute: Annotated[bool, typer.Option("--exec", help="Run psql/mysql now, with a fresh token in its environment.")] = False,
) -> None:
    """Print (or run) the psql/mysql command for an IAM-auth, TLS-verified connection.

    The printed command makes its token with the AWS CLI when it runs, so no token is printed.
    Example: dbenv db connect --branch feature/x --recipe aurora-serverless --user app_user --exec
    """
    import os

    import boto3

    from automation.runbooks import db

    settings, values, client_args = _db_context(branch, target)
    try:
        conn = db.connection(values, recipe, user=user, region=settings.region)
        conn = conn.with_ca_bundle(db.ca_bundle(ca_bundle))  # after the checks: a bad --user downloads nothing
    except db.DbError as err:
        fail(str(err))
    if not execute:
        typer.echo(conn.shell_command())
        return
    token = db.auth_token(boto3.client("rds", **client_args), conn)
    try:
        os.execvpe(conn.argv()[0], conn.argv(), conn.environment(token))
    except OSError as err:
        fail(f"cannot run {conn.argv()[0]}: {err.strerror}", EXIT_FAILED)


@db_app.command("query")
def db_query(
    sql: Annotated[str, typer.Argument(help="One SQL statement; name parameters :like_this.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value (ints, floats, true/false, null typed).")] = None,
    branch: BranchOption = None,
    target: TargetOption = None,
    database: Annotated[str | None, typer.Option("--database", help="Database (default: the cluster's).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run SQL through the RDS Data API on the branch's Aurora cluster, with the cluster's secret.

    Example: dbenv db query --branch feature/x "select id, name from items where id > :min" --param min=10
    """
    import boto3
    import botocore.exceptions

    from automation.runbooks import db

    _, values, client_args = _db_context(branch, target)
    try:
        cluster_arn, secret_arn, default_database = db.data_api_target(values)
        params = db.parse_params(param or [])
        result = db.run_query(boto3.client("rds-data", **client_args), cluster_arn=cluster_arn,
                              secret_arn=secret_arn, database=database or default_database, sql=sql, params=params)
    except db.DbError as err:
        fail(str(err))
    except botocore.exceptions.BotoCoreError as err:
        fail(f"Data API call failed: {err}", EXIT_FAILED)
    except botocore.exceptions.ClientError as err:
        fail(f"Data API call failed: {err.response.get('Error', {}).get('Message', err)}", EXIT_FAILED)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    typer.echo(db.render_table(result))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
