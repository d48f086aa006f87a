"""Where the service keeps jobs, events, environments, tokens and deliveries: one PostgreSQL.

Without a URL the service starts an embedded PostgreSQL (pgserver) under ``.dbenv/service/`` that
listens on a Unix socket only (pgserver starts postgres with ``-h ""``: no TCP port); with a URL
many workers on many machines share one server. Both take the same path from here on: a conninfo
string for psycopg and procrastinate, and the same schema.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

# The service's own tables beside procrastinate's (procrastinate_jobs, _events, _workers, ...).
# A job row is what a user sees (who asked, inputs masked, outcome, outputs masked, duration); the
# procrastinate job is how it runs. Events carry a per-job sequence id for SSE's Last-Event-ID.
SCHEMA = """
CREATE TABLE IF NOT EXISTS dbenv_jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    branch text,
    stack text,
    state text NOT NULL DEFAULT 'queued',
    requested_by text NOT NULL,
    source text NOT NULL DEFAULT 'api',
    inputs jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome jsonb,
    outputs jsonb,
    error text,
    commit_sha text,
    procrastinate_id bigint,
    worker text,
    timeout_seconds integer NOT NULL DEFAULT 7200,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS dbenv_jobs_stack_state ON dbenv_jobs (stack, state);
CREATE INDEX IF NOT EXISTS dbenv_jobs_branch_id ON dbenv_jobs (branch, id DESC);
CREATE INDEX IF NOT EXISTS dbenv_jobs_procrastinate ON dbenv_jobs (procrastinate_id);
CREATE TABLE IF NOT EXISTS dbenv_events (
    id bigserial PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES dbenv_jobs (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    line text NOT NULL DEFAULT '',
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (job_id, seq)
);
CREATE TABLE IF NOT EXISTS dbenv_environments (
    branch text PRIMARY KEY,
    stack text NOT NULL,
    recipes text[] NOT NULL DEFAULT '{}',
    status text NOT NULL,
    owner text,
    commit_sha text,
    parent text,
    ephemeral boolean NOT NULL DEFAULT true,
    created_at timestamptz,
    expires_at timestamptz,
    asleep boolean NOT NULL DEFAULT false,
    cost_idle numeric,
    cost_asleep numeric,
    cost_active numeric,
    drift text,
    drift_checked_at timestamptz,
    outputs jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_job_id bigint,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dbenv_environments_updated ON dbenv_environments (updated_at DESC, branch);
CREATE TABLE IF NOT EXISTS dbenv_tokens (
    name text PRIMARY KEY,
    digest bytea NOT NULL UNIQUE,
    scope text NOT NULL CHECK (scope IN ('read', 'write')),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
ALTER TABLE dbenv_environments ADD COLUMN IF NOT EXISTS github_repo text;
ALTER TABLE dbenv_environments ADD COLUMN IF NOT EXISTS github_pr integer;
CREATE TABLE IF NOT EXISTS dbenv_approvals (
    repository text NOT NULL,
    pr integer NOT NULL,
    sha text NOT NULL,
    approved_by text NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository, pr, sha)
);
CREATE TABLE IF NOT EXISTS dbenv_deliveries (
    id text PRIMARY KEY,
    event text NOT NULL,
    action text,
    repository text,
    received_at timestamptz NOT NULL DEFAULT now(),
    job_id bigint,
    outcome text NOT NULL DEFAULT 'recorded'
);
"""

log = logging.getLogger("dbenv.service")


class DatabaseError(RuntimeError):
    """The service database cannot be reached or started."""


@dataclass(frozen=True)
class Database:
    """A conninfo for psycopg and procrastinate, and whether this process started it (embedded)."""

    conninfo: str
    embedded: bool
    data_dir: Path | None = None

    def describe(self) -> str:
        """Where the database is, for logs: never a password."""
        if self.embedded:
            return f"embedded PostgreSQL in {self.data_dir} (Unix socket only)"
        from automation.workspace import redact_url

        return f"PostgreSQL at {redact_url(self.conninfo)}"


def embedded(state_root: Path) -> Database:
    """Start (or join) the embedded PostgreSQL under ``<state_root>/service/pg``: about 1 s the first time."""
    data_dir = (state_root / "service" / "pg").resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver reads the user's runtime dir at import (for its inter-process lock) and platformdirs
        # warns when there is none (no login session); its fallback in /tmp is what it then uses.
        warnings.simplefilter("ignore")
        import pgserver
    try:
        # cleanup_mode=None: the server outlives this process, so a restart of `dbenv serve` (or a
        # crash) finds it running and the jobs and events in it; `dbenv serve` stops it on a clean exit.
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    except Exception as err:  # noqa: BLE001 - initdb/pg_ctl failures come as several types
        raise DatabaseError(f"could not start the embedded PostgreSQL in {data_dir}: {err}") from None
    return Database(conninfo=server.get_uri(), embedded=True, data_dir=data_dir)


def stop_embedded(database: Database) -> None:
    if not database.embedded or database.data_dir is None:
        return
    import pgserver

    try:
        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=database.data_dir,
                        user="pgserver" if os.geteuid() == 0 else None)
    except Exception as err:  # noqa: BLE001 - already stopped is fine
        log.info("embedded PostgreSQL stop: %s", err)


def resolve(url: str | None, state_root: Path) -> Database:
    """The ``database_url`` setting (already checked by the settings resolution), else the embedded server."""
    return Database(conninfo=url, embedded=False) if url else embedded(state_root)


async def apply_schema(conninfo: str) -> None:
    """procrastinate's schema (once) and ours (idempotent), under an advisory lock: many workers may start at once."""
    import psycopg
    from procrastinate import schema as pschema

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(74656)")
        try:
            present = (await (await conn.execute(
                "SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).fetchone())[0]
            if not present:
                await conn.execute(pschema.SchemaManager.get_schema())
            await conn.execute(SCHEMA)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(74656)")
