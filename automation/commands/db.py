"""`dbenv db`: IAM-auth connections, Data API queries and the schema diff against a parent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from automation.commands.common import (
    EXIT_FAILED,
    BranchOption,
    JsonOption,
    TargetOption,
    branch_of,
    engine_call,
    env_settings,
    fail,
)

# ------------------------------------------------------------------ database commands (IAM auth, Data API)

if TYPE_CHECKING:
    from automation.workspace import Settings

app = typer.Typer(name="db", help="Connect to a branch's databases (IAM auth), query them (Data API), diff their schema.\n\n"
                           "Example: dbenv db query --branch feature/x \"select now()\"",
                     no_args_is_help=True)


def _db_context(branch: str | None, target: str | None) -> tuple[Settings, dict, dict[str, Any]]:
    """The branch stack's outputs and how to reach its AWS APIs (the local endpoint, or AWS)."""
    from automation.operations import databases

    settings = env_settings(branch=branch, target=target)
    chosen = branch_of(settings)
    values, client_args = engine_call("outputs", lambda _: databases.stack_context(settings, chosen), display=False)
    return settings, values, client_args


@app.command("connect")
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

    try:  # everything the user typed is checked before the Pulumi CLI is looked for
        db.check_connect_args(recipe, user)
        given_bundle = db.ca_bundle(ca_bundle) if ca_bundle is not None else None
    except db.DbError as err:
        fail(str(err))
    settings, values, client_args = _db_context(branch, target)
    try:
        conn = db.connection(values, recipe, user=user, region=settings.region)
        conn = conn.with_ca_bundle(given_bundle or db.ca_bundle())  # after the checks: a bad stack downloads nothing
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


@app.command("query")
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

    try:  # everything the user typed is checked before the Pulumi CLI is looked for
        db.check_sql(sql)
        params = db.parse_params(param or [])
    except db.DbError as err:
        fail(str(err))
    _, values, client_args = _db_context(branch, target)
    try:
        cluster_arn, secret_arn, default_database = db.data_api_target(values)
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



def _stack_access(branch: str | None, target: str | None, recipe: str | None, user: str | None,
                  ca_bundle: Path | None) -> Any:
    """How to reach a stack's database from its outputs (Data API, IAM token or the admin secret)."""
    from automation.operations import databases

    settings = env_settings(branch=branch, target=target)
    chosen = branch_of(settings)
    return engine_call("outputs", lambda _: databases.stack_access(settings, chosen, recipe=recipe, user=user,
                                                                   ca_bundle=ca_bundle), display=False)


@app.command("diff")
def db_diff(
    branch: BranchOption = None,
    against: Annotated[str | None, typer.Option("--against", help="The parent environment's branch (e.g. staging); "
                                                "default: the `parent` setting (--parent's DBENV_PARENT / dbenv.toml).")] = None,
    url_branch: Annotated[str | None, typer.Option("--url-branch", help="Compare this database instead of the branch's "
                                                   "(postgresql://user:pw@host:port/db, mysql://...).")] = None,
    url_parent: Annotated[str | None, typer.Option("--url-parent", help="Compare against this database instead of "
                                                   "the parent's.")] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Whose database (default: the first the stack has: "
                                               "aurora-serverless, rds-proxy, ...).")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Connect directly as this IAM-auth user "
                                             "(default: the Data API, else the admin secret).")] = None,
    target: TargetOption = None,
    ca_bundle: Annotated[Path | None, typer.Option("--ca-bundle", help="RDS CA bundle PEM (default: downloaded once, cached).")] = None,
    as_json: JsonOption = False,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when the schemas differ (for CI).")] = False,
) -> None:
    """Show how the branch database's schema differs from its parent's: tables, columns (type, null,
    default), indexes, unique and foreign keys, views. PostgreSQL and MySQL/MariaDB.

    Example: dbenv db diff --branch feature/x --against staging --exit-code
    """
    from automation.runbooks import access, db, schema_diff

    if url_parent is None and against is None:
        against = env_settings(branch=branch, target=target).values.get("parent")
    if url_parent is None and against is None:
        fail("name the parent: --against PARENT (a branch such as staging), `parent` in dbenv.toml, DBENV_PARENT, "
             "or --url-parent URL")
    try:
        branch_side = access.from_url(url_branch, "--url-branch") if url_branch else None
        parent_side = access.from_url(url_parent, "--url-parent") if url_parent else None
    except db.DbError as err:
        fail(str(err))
    if (branch_side is None and parent_side is None
            and branch_of(env_settings(branch=branch, target=target)) == branch_of(env_settings(branch=against))):
        fail(f"the parent {against!r} is the branch itself; name its parent (--against, or the `parent` setting)")
    branch_side = branch_side or _stack_access(branch, target, recipe, user, ca_bundle)
    parent_side = parent_side or _stack_access(against, target, recipe, user, ca_bundle)
    try:
        result = schema_diff.diff(branch_side, parent_side)
    except schema_diff.SchemaDiffError as err:
        fail(str(err))
    except schema_diff.Unreachable as err:
        fail(str(err), EXIT_FAILED)
    typer.echo(json.dumps(result.to_json(), indent=2) if as_json else result.summary())
    if exit_code and result.differs:
        raise typer.Exit(EXIT_FAILED)
