"""`dbenv serve`, `dbenv worker` and `dbenv service token`: the service's processes (automation.jobs) and tokens.

Imported by every `dbenv` command, so it imports nothing heavy (asyncio included) at module level.

Settings come from the one resolution (flags > DBENV_* > dbenv.toml > defaults); the database is the
``database_url`` setting or, left out, the embedded PostgreSQL under .dbenv/service/.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from automation.commands.common import EXIT_FAILED, env_settings, fail

DatabaseUrlOption = Annotated[
    str | None, typer.Option("--database-url", help="PostgreSQL for jobs and events (also DBENV_DATABASE_URL, "
                             "`database_url` in dbenv.toml; default: embedded under .dbenv/service/).",
                             show_default=False)
]

app = typer.Typer(name="service", help="The service's tokens (for `dbenv serve` and `dbenv worker`).\n\n"
                  "Example: dbenv service token create --name ci --scope write", no_args_is_help=True)
token_app = typer.Typer(name="token", help="Bearer tokens: created once, stored hashed, revocable.",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


def _config(settings: Any, *, schedules: bool = True) -> Any:
    import os

    from automation import inputs
    from automation.jobs.pull_requests import GitHubConfig
    from automation.jobs.runtime import ServiceConfig

    try:
        github = GitHubConfig.from_settings(settings)
    except inputs.InputError as err:
        fail(str(err))
    return ServiceConfig(project_dir=settings.project_dir, env=dict(os.environ),
                         job_timeout=int(settings.job_timeout.total_seconds()),
                         stalled_after=float(settings.values["heartbeat_timeout"]), schedules=schedules,
                         github=github)


def _database(settings: Any) -> Any:
    from automation.jobs import database

    try:
        return database.resolve(settings.values.get("database_url"), settings.state_root)
    except database.DatabaseError as err:
        fail(str(err), EXIT_FAILED)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("procrastinate", "uvicorn.error", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; a non-loopback one needs a token to exist.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=0, max=64, help="In-process workers (0: API only).")] = 2,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Serve the HTTP API, the web page and N workers: environments as durable jobs.

    Jobs run the same operations as `dbenv up/down/sleep/wake` on this project. Without
    --database-url the jobs live in an embedded PostgreSQL under .dbenv/service/ (a Unix socket, no
    TCP port); with one, `dbenv worker` processes elsewhere share the work.

    Example: dbenv serve --port 8080 --workers 2
    """
    import asyncio

    from automation.jobs import database, server

    settings = env_settings(database_url=database_url)
    db = _database(settings)
    _logging()
    bind = server.Bind(host, port)
    typer.echo(f"dbenv serve: http://{host}:{port} ({workers} worker(s); {db.describe()})", err=True)
    try:
        asyncio.run(server.serve(_config(settings), db, bind, workers))
    except server.ServeRefused as err:
        fail(str(err))
    except KeyboardInterrupt:
        pass
    finally:
        database.stop_embedded(db)


def worker(
    database_url: DatabaseUrlOption = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Jobs at once.")] = 2,
) -> None:
    """Run workers for a `dbenv serve` on a shared PostgreSQL (this machine or another).

    Workers on several machines need a shared Pulumi backend (s3:// or Pulumi Cloud): a worker
    refuses a file:// backend when its database is on another machine.

    Example: dbenv worker --database-url postgresql://dbenv@db.internal/dbenv --concurrency 4
    """
    import asyncio

    from automation.jobs import server

    settings = env_settings(database_url=database_url)
    url = settings.values.get("database_url")
    if not url:
        fail("dbenv worker needs the shared database: pass --database-url (or DBENV_DATABASE_URL); the embedded "
              "one belongs to the `dbenv serve` of this project")
    problem = server.shared_backend_problem(url, settings.backend_url)
    if problem:
        fail(problem)
    _logging()
    db = _database(settings)
    try:
        asyncio.run(server.work(_config(settings, schedules=True), db, concurrency))
    except KeyboardInterrupt:
        pass


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="A name for the token (shown in job records).")],
    scope: Annotated[str, typer.Option("--scope", help="read (GET only) or write (also changes).")] = "read",
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a token and print it once; only its hash is kept.

    Example: dbenv service token create --name ci --scope write
    """
    from automation.jobs import store

    _check_token_name(name)
    if scope not in store.SCOPES:
        fail(f"--scope: {scope[:40]!r} is not read or write")

    async def create(conn: Any) -> str:
        import psycopg

        try:
            return await store.create_token(conn, name, scope)
        except psycopg.errors.UniqueViolation:
            fail(f"a token named {name!r} exists: revoke it or choose another name")

    token = _with_database(database_url, create)
    typer.echo(token)


@token_app.command("list")
def token_list(database_url: DatabaseUrlOption = None,
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List tokens: name, scope, created, revoked (never the token).

    Example: dbenv service token list
    """
    import json

    from automation.jobs import store

    tokens = _with_database(database_url, store.list_tokens)
    if as_json:
        typer.echo(json.dumps([{"name": t.name, "scope": t.scope, "created_at": t.created_at.isoformat(),
                                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None} for t in tokens],
                              indent=2))
        return
    if not tokens:
        typer.echo("no tokens")
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        typer.echo(f"{t.name:<24} {t.scope:<6} created {t.created_at:%Y-%m-%d %H:%M}  {state}")


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")],
                 database_url: DatabaseUrlOption = None) -> None:
    """Revoke a token: requests with it get 401 from now on.

    Example: dbenv service token revoke ci
    """
    from automation.jobs import store

    _check_token_name(name)
    if not _with_database(database_url, lambda conn: store.revoke_token(conn, name)):
        fail(f"no active token named {name!r}", EXIT_FAILED)
    typer.echo(f"token {name} revoked")


def _check_token_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", name):
        fail(f"--name: {name[:40]!r} is not a token name (letters, digits, _ . @ -; at most 64)")


def _with_database(database_url: str | None, action: Any) -> Any:
    import asyncio

    from automation.jobs import database

    settings = env_settings(database_url=database_url)
    db = _database(settings)

    async def run() -> Any:
        import psycopg

        await database.apply_schema(db.conninfo)
        async with await psycopg.AsyncConnection.connect(db.conninfo, autocommit=True) as conn:
            return await action(conn)

    try:
        return asyncio.run(run())
    except OSError as err:
        fail(f"cannot reach the service database ({db.describe()}): {err}", EXIT_FAILED)
