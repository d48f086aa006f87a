"""Periodic work as procrastinate periodic tasks: each tick is deferred once however many workers run
(procrastinate records every periodic defer under a unique (task, periodic id, timestamp) key; see
its "Launch a task periodically" how-to). A tick only queues per-environment jobs (``down`` for the
expired, ``sleep`` for the asleep ones AWS may have woken, ``drift`` for the others), so every piece of
work runs as a job under its stack's lock, visible in /v1/jobs, through the same operations as the CLI.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("dbenv.service")
REAP_CRON = "*/10 * * * *"      # expired environments: every 10 minutes
RESLEEP_CRON = "7 * * * *"      # AWS starts a stopped RDS database after 7 days: check hourly
DRIFT_CRON = "23 */6 * * *"     # a preview per environment every 6 hours
RECOVER_CRON = "* * * * *"      # lost jobs, also checked by every worker between ticks
SYNC_CRON = "*/10 * * * *"      # environments made or removed outside the service (`dbenv up/down`)


def register(runtime: Any) -> None:
    for name, cron, action in (("reap", REAP_CRON, reap_expired), ("resleep", RESLEEP_CRON, resleep_asleep),
                               ("drift", DRIFT_CRON, check_drift), ("recover", RECOVER_CRON, _recover),
                               ("sync", SYNC_CRON, sync_from_backend)):
        _periodic(runtime, name, cron, action)


def _periodic(runtime: Any, name: str, cron: str, action: Any) -> None:
    task = f"dbenv.schedule.{name}"

    @runtime.app.periodic(cron=cron, periodic_id=name)
    @runtime.app.task(name=task, queue="schedules", queueing_lock=task)
    async def tick(timestamp: int) -> None:
        await action(runtime)


async def _recover(runtime: Any) -> None:
    await runtime.recover_stalled()


async def _environments(runtime: Any, sql: str) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    async with runtime.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql)
        return await cur.fetchall()


async def reap_expired(runtime: Any) -> list[int]:
    """A ``down`` job for every expired ephemeral environment (protected branches are never reaped)."""
    from automation.operations import environments as envs

    rows = await _environments(runtime, "SELECT branch, stack FROM dbenv_environments WHERE ephemeral "
                                        "AND expires_at IS NOT NULL AND expires_at < now() ORDER BY expires_at")
    queued = []
    for row in rows:
        if envs.is_protected(row["branch"]):
            continue
        job, _ = await runtime.enqueue(kind="down", branch=row["branch"], stack=row["stack"],
                                       requested_by="schedule:reap", inputs={"reason": "expired"}, source="schedule")
        queued.append(job["id"])
    return queued


async def resleep_asleep(runtime: Any) -> list[int]:
    """A ``sleep`` job for every environment marked asleep: it stops again what AWS started (after 7 days)."""
    rows = await _environments(runtime, "SELECT branch, stack FROM dbenv_environments WHERE asleep ORDER BY branch")
    return [(await runtime.enqueue(kind="sleep", branch=r["branch"], stack=r["stack"], requested_by="schedule:resleep",
                                   inputs={"reason": "re-sleep"}, source="schedule"))[0]["id"] for r in rows]


async def check_drift(runtime: Any) -> list[int]:
    """A ``drift`` job (a preview that expects no changes) for every deployed environment."""
    rows = await _environments(runtime, "SELECT branch, stack, recipes, parent FROM dbenv_environments WHERE status "
                                        "IN ('ready', 'asleep') ORDER BY branch")
    return [(await runtime.enqueue(kind="drift", branch=r["branch"], stack=r["stack"], requested_by="schedule:drift",
                                   inputs={"recipes": ",".join(r["recipes"]), "from": r["parent"]},
                                   source="schedule"))[0]["id"] for r in rows]


async def sync_from_backend(runtime: Any) -> int | None:
    """Environments made or removed by `dbenv up`/`down` (not through the service) join or leave the list.

    The backend's tags (owner, commit, expiry, sleep state, recorded cost) update the rows; a row whose
    stack the backend no longer holds, and that no queued or running job is making, is removed.
    """
    import asyncio

    from automation.jobs import store

    found = await asyncio.to_thread(runtime.operations.backend_environments)
    if found is None:
        return None
    async with runtime.pool.connection() as conn, conn.transaction():
        for env in found:
            values = {k: v for k, v in env.items() if k not in ("branch", "stack")}
            if await store.get_environment(conn, env["branch"]) is None:
                await store.upsert_environment(conn, env["branch"], env["stack"],
                                               status="asleep" if env["asleep"] else "ready", **values)
            else:
                await store.update_environment(conn, env["branch"],
                                               **{k: v for k, v in values.items() if v is not None})
        await conn.execute(
            "DELETE FROM dbenv_environments e WHERE e.status IN ('ready', 'asleep') AND NOT (e.stack = ANY(%s)) "
            "AND NOT EXISTS (SELECT 1 FROM dbenv_jobs j WHERE j.stack = e.stack AND j.state IN ('queued', 'running'))",
            ([env["stack"] for env in found],))
    return len(found)
