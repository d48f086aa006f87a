"""The service's rows: jobs, their events, environments, tokens, deliveries (async psycopg, one pool).

Queries live here and nowhere else; routes, tasks and schedules call these functions. Every change
is one transaction, committed before the caller answers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

# What a user sees of a job's life. queued -> running -> succeeded | failed | cancelled | lost;
# queued -> superseded (a newer up, or a down, replaced it) | cancelled.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, LOST, SUPERSEDED = (
    "queued", "running", "succeeded", "failed", "cancelled", "lost", "superseded")
FINISHED = (SUCCEEDED, FAILED, CANCELLED, LOST, SUPERSEDED)
JOB_STATES = (QUEUED, RUNNING, *FINISHED)
# Job kinds: up, down, sleep, wake (the CLI's verbs), drift (a preview expecting no changes), and for pull
# requests plan (the offline review), notify (a reply on the pull request) and resolve (a `/dbenv` comment
# turned into its job once the pull request's head is known).
SCOPES = ("read", "write")
TOKEN_PREFIX = "dbenv_"

_JOB_COLUMNS = ("id, kind, branch, stack, state, requested_by, source, inputs, outcome, outputs, error, commit_sha, "
                "procrastinate_id, worker, timeout_seconds, created_at, started_at, finished_at")


@dataclass(frozen=True)
class Token:
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


def digest(token: str) -> bytes:
    # Tokens are 256-bit random strings: a plain SHA-256 is the right hash (nothing to stretch).
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# ------------------------------------------------------------------ tokens


async def create_token(conn: Any, name: str, scope: str) -> str:
    token = new_token()
    await conn.execute("INSERT INTO dbenv_tokens (name, digest, scope) VALUES (%s, %s, %s)",
                       (name, digest(token), scope))
    return token


async def list_tokens(conn: Any) -> list[Token]:
    cur = await conn.execute("SELECT name, scope, created_at, revoked_at FROM dbenv_tokens ORDER BY name")
    return [Token(*row) for row in await cur.fetchall()]


async def revoke_token(conn: Any, name: str) -> bool:
    cur = await conn.execute("UPDATE dbenv_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
                             (name,))
    return cur.rowcount == 1


async def token_scope(conn: Any, token: str) -> tuple[str, str] | None:
    """(name, scope) of a live token, else None. The digest is compared in constant time."""
    wanted = digest(token)
    cur = await conn.execute("SELECT name, scope, digest FROM dbenv_tokens WHERE digest = %s AND revoked_at IS NULL",
                             (wanted,))
    row = await cur.fetchone()
    if row is None or not hmac.compare_digest(bytes(row[2]), wanted):
        return None
    return row[0], row[1]


async def live_token_count(conn: Any) -> int:
    cur = await conn.execute("SELECT count(*) FROM dbenv_tokens WHERE revoked_at IS NULL")
    return (await cur.fetchone())[0]


# ------------------------------------------------------------------ jobs


async def insert_job(conn: Any, *, kind: str, branch: str | None, stack: str | None, requested_by: str,
                     inputs: Mapping[str, Any], source: str = "api", commit_sha: str | None = None,
                     timeout_seconds: int = 7200) -> int:
    cur = await conn.execute(
        "INSERT INTO dbenv_jobs (kind, branch, stack, requested_by, inputs, source, commit_sha, timeout_seconds) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (kind, branch, stack, requested_by, Jsonb(dict(inputs)), source, commit_sha, timeout_seconds))
    return (await cur.fetchone())[0]


async def set_procrastinate_id(conn: Any, job_id: int, procrastinate_id: int) -> None:
    await conn.execute("UPDATE dbenv_jobs SET procrastinate_id = %s WHERE id = %s", (procrastinate_id, job_id))


async def queued_jobs(conn: Any, stack: str, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The stack's queued jobs of these kinds, locked for this transaction (the caller supersedes them)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT id, kind, procrastinate_id FROM dbenv_jobs WHERE stack = %s AND state = 'queued' "
                      "AND kind = ANY(%s) ORDER BY id FOR UPDATE", (stack, list(kinds)))
    return await cur.fetchall()


async def get_job(conn: Any, job_id: int) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {_JOB_COLUMNS} FROM dbenv_jobs WHERE id = %s", (job_id,))
    return await cur.fetchone()


async def list_jobs(conn: Any, *, branch: str | None = None, state: str | None = None, limit: int = 50,
                    before: int | None = None) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the cursor (a job id)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_JOB_COLUMNS} FROM dbenv_jobs WHERE (%(branch)s::text IS NULL OR branch = %(branch)s) "
        "AND (%(state)s::text IS NULL OR state = %(state)s) AND (%(before)s::bigint IS NULL OR id < %(before)s) "
        "ORDER BY id DESC LIMIT %(limit)s", {"branch": branch, "state": state, "before": before, "limit": limit})
    return await cur.fetchall()


async def start_job(conn: Any, job_id: int, worker: str) -> dict[str, Any] | None:
    """queued -> running; None if the job is no longer queued (cancelled or superseded meanwhile)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"UPDATE dbenv_jobs SET state = 'running', started_at = now(), worker = %s "
                      f"WHERE id = %s AND state = 'queued' RETURNING {_JOB_COLUMNS}", (worker, job_id))
    return await cur.fetchone()


async def finish_job(conn: Any, job_id: int, state: str, *, outcome: Mapping[str, Any] | None = None,
                     outputs: Mapping[str, Any] | None = None, error: str | None = None,
                     only_from: Sequence[str] = (QUEUED, RUNNING)) -> bool:
    cur = await conn.execute(
        "UPDATE dbenv_jobs SET state = %s, outcome = %s, outputs = %s, error = %s, finished_at = now() "
        "WHERE id = %s AND state = ANY(%s)",
        (state, Jsonb(dict(outcome)) if outcome is not None else None,
         Jsonb(dict(outputs)) if outputs is not None else None, error, job_id, list(only_from)))
    return cur.rowcount == 1


async def jobs_by_procrastinate_ids(conn: Any, ids: Sequence[int]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {_JOB_COLUMNS} FROM dbenv_jobs WHERE procrastinate_id = ANY(%s)", (list(ids),))
    return await cur.fetchall()


# ------------------------------------------------------------------ events


async def add_event(conn: Any, job_id: int, kind: str, line: str, data: Mapping[str, Any] | None = None) -> int:
    """Append an event with the job's next sequence id (the row lock on the job orders concurrent writers)."""
    cur = await conn.execute(
        "WITH j AS (SELECT id FROM dbenv_jobs WHERE id = %(job)s FOR UPDATE) "
        "INSERT INTO dbenv_events (job_id, seq, kind, line, data) "
        "SELECT %(job)s, COALESCE((SELECT max(seq) FROM dbenv_events WHERE job_id = %(job)s), 0) + 1, "
        "%(kind)s, %(line)s, %(data)s FROM j RETURNING seq",
        {"job": job_id, "kind": kind, "line": line, "data": Jsonb(dict(data or {}))})
    row = await cur.fetchone()
    return row[0] if row else 0


async def events_after(conn: Any, job_id: int, after_seq: int, limit: int = 1000) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT id, seq, at, kind, line, data FROM dbenv_events WHERE job_id = %s AND seq > %s "
                      "ORDER BY seq LIMIT %s", (job_id, after_seq, limit))
    return await cur.fetchall()


async def newest_event_id(conn: Any) -> int:
    cur = await conn.execute("SELECT COALESCE(max(id), 0) FROM dbenv_events")
    return (await cur.fetchone())[0]


async def events_since(conn: Any, after_id: int, limit: int = 2000) -> list[dict[str, Any]]:
    """Every job's events after a global id: one query feeds every live follower of this process."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT id, job_id, seq, at, kind, line, data FROM dbenv_events WHERE id > %s "
                      "ORDER BY id LIMIT %s", (after_id, limit))
    return await cur.fetchall()


# ------------------------------------------------------------------ environments

_ENV_COLUMNS = ("branch, stack, recipes, status, owner, commit_sha, parent, ephemeral, created_at, expires_at, asleep, "
                "cost_idle, cost_asleep, cost_active, drift, drift_checked_at, outputs, last_job_id, updated_at, "
                "github_repo, github_pr")


async def upsert_environment(conn: Any, branch: str, stack: str, **values: Any) -> None:
    columns = ["branch", "stack", *values]
    params = [branch, stack, *(Jsonb(v) if isinstance(v, dict) else v for v in values.values())]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
    await conn.execute(
        f"INSERT INTO dbenv_environments ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (branch) DO UPDATE SET {updates}, updated_at = now()", params)


async def update_environment(conn: Any, branch: str, **values: Any) -> None:
    sets = ", ".join(f"{c} = %s" for c in values)
    params = [Jsonb(v) if isinstance(v, dict) else v for v in values.values()]
    await conn.execute(f"UPDATE dbenv_environments SET {sets}, updated_at = now() WHERE branch = %s",
                       [*params, branch])


async def delete_environment(conn: Any, branch: str) -> None:
    await conn.execute("DELETE FROM dbenv_environments WHERE branch = %s", (branch,))


async def get_environment(conn: Any, branch: str) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {_ENV_COLUMNS} FROM dbenv_environments WHERE branch = %s", (branch,))
    return await cur.fetchone()


async def list_environments(conn: Any, *, owner: str | None = None, status: str | None = None,
                            expired: bool | None = None, limit: int = 100,
                            after: str | None = None) -> list[dict[str, Any]]:
    """Newest first (last changed), with a (updated_at, branch) keyset cursor."""
    cur = conn.cursor(row_factory=dict_row)
    cursor_at, cursor_branch = _split_cursor(after)
    await cur.execute(
        f"SELECT {_ENV_COLUMNS} FROM dbenv_environments "
        "WHERE (%(owner)s::text IS NULL OR owner = %(owner)s) AND (%(status)s::text IS NULL OR status = %(status)s) "
        "AND (%(expired)s::boolean IS NULL OR (ephemeral AND expires_at IS NOT NULL "
        "AND expires_at < now()) = %(expired)s) "
        "AND (%(at)s::timestamptz IS NULL OR (updated_at, branch) < (%(at)s::timestamptz, %(branch)s::text)) "
        "ORDER BY updated_at DESC, branch DESC LIMIT %(limit)s",
        {"owner": owner, "status": status, "expired": expired, "at": cursor_at, "branch": cursor_branch,
         "limit": limit})
    return await cur.fetchall()


def environment_cursor(row: Mapping[str, Any]) -> str:
    return f"{row['updated_at'].isoformat()}|{row['branch']}"


def _split_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    if not cursor:
        return None, None
    moment, _, branch = cursor.partition("|")
    datetime.fromisoformat(moment)  # ValueError for a forged cursor: the route answers 400
    return moment, branch


# ------------------------------------------------------------------ deliveries (GitHub webhooks)


async def record_delivery(conn: Any, delivery_id: str, event: str, action: str | None,
                          repository: str | None) -> bool:
    """True if this delivery id is new; a redelivery of a recorded one returns False."""
    cur = await conn.execute(
        "INSERT INTO dbenv_deliveries (id, event, action, repository) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING", (delivery_id, event, action, repository))
    return cur.rowcount == 1


async def set_delivery_outcome(conn: Any, delivery_id: str, outcome: str, job_id: int | None = None) -> None:
    await conn.execute("UPDATE dbenv_deliveries SET outcome = %s, job_id = %s WHERE id = %s",
                       (outcome, job_id, delivery_id))


async def known_deliveries(conn: Any, ids: Sequence[str]) -> set[str]:
    cur = await conn.execute("SELECT id FROM dbenv_deliveries WHERE id = ANY(%s)", (list(ids),))
    return {row[0] for row in await cur.fetchall()}


async def get_jobs(conn: Any, ids: Sequence[int]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {_JOB_COLUMNS} FROM dbenv_jobs WHERE id = ANY(%s)", (list(ids),))
    return await cur.fetchall()


# ------------------------------------------------------------------ approvals (fork pull requests)


async def approve(conn: Any, repository: str, pr: int, sha: str, approved_by: str) -> None:
    await conn.execute("INSERT INTO dbenv_approvals (repository, pr, sha, approved_by) VALUES (%s, %s, %s, %s) "
                       "ON CONFLICT DO NOTHING", (repository, pr, sha, approved_by))


async def approved_shas(conn: Any, repository: str, pr: int) -> set[str]:
    cur = await conn.execute("SELECT sha FROM dbenv_approvals WHERE repository = %s AND pr = %s", (repository, pr))
    return {row[0] for row in await cur.fetchall()}
