"""Durable jobs on procrastinate: accept (commit, then answer), run (the operations layer), recover.

- Accepting a change is one transaction: the stack's queued jobs it replaces are superseded (a newer
  ``up`` replaces a queued ``up``; a ``down`` replaces everything queued before it), the job row is
  inserted and the procrastinate job deferred on the same connection, then committed: a ``202``
  is only sent for a job that is in PostgreSQL.
- Each procrastinate job carries ``lock=<stack>``: procrastinate never runs two jobs with one lock
  at once, and runs them in the order they were deferred ("lock" in procrastinate's docs, "Ensure
  tasks don't run concurrently"); different stacks run in parallel up to the workers' concurrency.
- A job runs the same ``automation.operations.lifecycle`` call as the CLI, in a thread (the
  Automation API blocks), each engine event and runbook line stored with a per-job sequence id.
- Cancel: a queued job is cancelled in procrastinate and never starts; a running one gets
  procrastinate's abort, which cancels the task; the task then stops the engine the way Pulumi
  stops cleanly (SIGINT to the `pulumi` process of that job: the CLI finishes in-flight resource
  operations, saves the state and exits) and waits for it.
- A worker killed mid-job stops sending heartbeats; ``recover_stalled`` (every worker runs it) finds
  its jobs with procrastinate's ``get_stalled_jobs``, marks them ``lost`` and clears the stack's
  lock the way ``dbenv cancel`` does (`pulumi cancel`: "After this command completes successfully,
  the stack will be ready for further updates", Pulumi CLI docs). Pending operations the killed CLI
  left are shown by the next update as a warning and cleared by a refresh (Pulumi docs,
  "Recovering from an interrupted update"). Lost jobs are not retried: an interrupted `up` or
  `down` is for a person to look at; read-only kinds (preview, drift, plan) are safe to run again
  and are re-queued once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automation.jobs import store

log = logging.getLogger("dbenv.service")
TASK = "dbenv.run"
QUEUE = "environments"
JOB_ENV = "DBENV_JOB_ID"  # set on every engine process of a job, so a cancel finds that job's `pulumi`
READ_ONLY_KINDS = ("preview", "drift", "plan")
# A newer job of the key kind replaces the stack's queued jobs of the value kinds.
SUPERSEDES = {"up": ("up",), "down": ("up", "sleep", "wake", "preview", "drift")}
# Asking again for one of these while one is queued returns the queued one.
COALESCE = ("down", "sleep", "wake", "preview", "drift")


@dataclass
class ServiceConfig:
    """What the runtime needs beyond the database: where the project is and how jobs run."""

    project_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    job_timeout: int = 7200
    stalled_after: float = 30.0
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    schedules: bool = True
    github: Any = None  # pull_requests.GitHubConfig when the webhook secret is set


def heartbeat_options(config: ServiceConfig) -> dict[str, float]:
    return {"update_heartbeat_interval": max(0.5, config.stalled_after / 5),
            "stalled_worker_timeout": config.stalled_after}


class Runtime:
    """The database pool, the procrastinate app and its tasks, for the API and the workers alike."""

    def __init__(self, config: ServiceConfig, conninfo: str, operations: Any = None) -> None:
        import procrastinate
        from psycopg_pool import AsyncConnectionPool

        from automation.jobs import runner

        self.config = config
        self.conninfo = conninfo
        self.pool = AsyncConnectionPool(conninfo, open=False, min_size=1, max_size=8,
                                        kwargs={"autocommit": True})
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
        self.operations = operations or runner.Operations(config)
        self.operations.attach(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._register_tasks()

    async def open(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.pool.open(wait=True, timeout=30)
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()
        await self.pool.close()

    # ------------------------------------------------------------ accept

    async def enqueue(self, *, kind: str, branch: str | None, stack: str | None, requested_by: str,
                      inputs: Mapping[str, Any], source: str = "api", commit_sha: str | None = None,
                      after_insert: Callable[[Any, int], Any] | None = None) -> tuple[dict[str, Any], bool]:
        """(job row, created). Committed when this returns; ``created`` False means an equal queued job answered."""
        async with self.pool.connection() as conn, conn.transaction():
            return await self.enqueue_on(conn, kind=kind, branch=branch, stack=stack, requested_by=requested_by,
                                         inputs=inputs, source=source, commit_sha=commit_sha, after_insert=after_insert)

    async def enqueue_on(self, conn: Any, *, kind: str, branch: str | None, stack: str | None, requested_by: str,
                         inputs: Mapping[str, Any], source: str = "api", commit_sha: str | None = None,
                         after_insert: Callable[[Any, int], Any] | None = None) -> tuple[dict[str, Any], bool]:
        """``enqueue`` inside the caller's transaction (a webhook records its delivery in the same one)."""
        if stack:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (stack,))
            if kind in COALESCE:
                same = await store.queued_jobs(conn, stack, (kind,))
                if same:
                    return await store.get_job(conn, same[-1]["id"]), False
        job_id = await store.insert_job(conn, kind=kind, branch=branch, stack=stack, requested_by=requested_by,
                                        inputs=inputs, source=source, commit_sha=commit_sha,
                                        timeout_seconds=self.config.job_timeout)
        if stack:
            for victim in await store.queued_jobs(conn, stack, SUPERSEDES.get(kind, ())):
                if victim["id"] == job_id:
                    continue
                if victim["procrastinate_id"]:
                    await self.app.job_manager.cancel_job_by_id_async(victim["procrastinate_id"],
                                                                      connection=conn)
                await store.finish_job(conn, victim["id"], store.SUPERSEDED, error=f"superseded by job {job_id}",
                                       only_from=(store.QUEUED,))
                await store.add_event(conn, victim["id"], "superseded", f"superseded by job {job_id} ({kind})")
        deferrer = self.app.configure_task(TASK, lock=stack, queue=QUEUE, connection=conn)
        procrastinate_id = await deferrer.defer_async(job_id=job_id)
        await store.set_procrastinate_id(conn, job_id, procrastinate_id)
        await store.add_event(conn, job_id, "queued", f"{kind} queued by {requested_by}")
        if after_insert is not None:
            await after_insert(conn, job_id)
        return await store.get_job(conn, job_id), True

    async def cancel(self, job_id: int) -> dict[str, Any] | None:
        """Queued -> cancelled now; running -> abort requested (the worker stops the engine and records it)."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await store.get_job(conn, job_id)
            if row is None or row["state"] in store.FINISHED:
                return row
            if row["state"] == store.QUEUED:
                if row["procrastinate_id"]:
                    await self.app.job_manager.cancel_job_by_id_async(row["procrastinate_id"], connection=conn)
                await store.finish_job(conn, job_id, store.CANCELLED, error="cancelled before it started",
                                       only_from=(store.QUEUED,))
                await store.add_event(conn, job_id, "cancelled", "cancelled before it started")
            else:
                await self.app.job_manager.cancel_job_by_id_async(row["procrastinate_id"], abort=True,
                                                                  connection=conn)
                await store.add_event(conn, job_id, "cancelling", "cancel requested: stopping the engine (SIGINT)")
            return await store.get_job(conn, job_id)

    # ------------------------------------------------------------ run

    def _register_tasks(self) -> None:
        from procrastinate import exceptions

        runtime = self

        @self.app.task(name=TASK, queue=QUEUE, pass_context=True)
        async def run_job(context: Any, job_id: int) -> None:
            aborted = await runtime.execute(job_id, why=lambda: context.abort_reason())
            if aborted:
                raise exceptions.JobAborted()

        self.run_job = run_job
        if self.config.schedules:
            from automation.jobs import schedules

            schedules.register(self)
            if self.config.github is not None:
                from automation.jobs import pull_requests

                pull_requests.register_sweep(self, self.config.github)

    async def event(self, job_id: int, kind: str, line: str, data: Mapping[str, Any] | None = None) -> None:
        async with self.pool.connection() as conn:
            await store.add_event(conn, job_id, kind, line, data)

    def event_from_thread(self, job_id: int, kind: str, line: str, data: Mapping[str, Any] | None = None) -> None:
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self.event(job_id, kind, line, data), self.loop).result(timeout=60)

    async def execute(self, job_id: int, why: Callable[[], Any] = lambda: None) -> bool:
        """Run one job to its end; True if it was aborted (cancel), for procrastinate's record."""
        async with self.pool.connection() as conn:
            row = await store.start_job(conn, job_id, self.config.worker_name)
        if row is None:
            return False  # cancelled or superseded after procrastinate handed it out
        await self.event(job_id, "started", f"{row['kind']} started on {self.config.worker_name}")
        await self._tell(row, "running")
        started = time.monotonic()
        done: asyncio.Future[Any] = self.loop.run_in_executor(None, self._run_operation, row)  # type: ignore[union-attr]
        state, error, result, aborted = store.SUCCEEDED, None, None, False
        try:
            result = await asyncio.wait_for(asyncio.shield(done), timeout=row["timeout_seconds"])
        except asyncio.CancelledError:
            # procrastinate's abort (POST /v1/jobs/{id}/cancel) or the worker shutting down.
            await self.event(job_id, "cancelling", "stopping the engine (SIGINT) and waiting for it")
            self.interrupt(job_id)
            detail = await self._settle(done)
            stopping = str(getattr(why(), "value", "")) == "shutdown"
            cause = "the worker was shut down" if stopping else "cancelled while running"
            state, error, aborted = store.CANCELLED, f"{cause} ({detail})", True
        except TimeoutError:
            self.interrupt(job_id)
            detail = await self._settle(done)
            state, error = store.FAILED, f"timed out after {row['timeout_seconds']}s; the engine was stopped ({detail})"
        except Exception as err:  # noqa: BLE001 - the job's own failure: recorded, never a worker crash
            state, error = store.FAILED, _job_error(err)
        if isinstance(result, Failure):
            state, error, result = store.FAILED, result.message, None
        elapsed = round(time.monotonic() - started, 3)
        outcome = {"duration_seconds": elapsed, **(result.outcome if result else {})}
        await self._tell(row, state, outcome=outcome, outputs=result.outputs if result else None, error=error)
        async with self.pool.connection() as conn, conn.transaction():
            await store.finish_job(conn, job_id, state, outcome=outcome, outputs=result.outputs if result else None,
                                   error=error, only_from=(store.RUNNING,))
            await store.add_event(conn, job_id, "finished", f"{state}{': ' + error if error else ''} ({elapsed:.1f}s)",
                                  {"state": state})
            if result is not None or state == store.FAILED:
                await self.operations.record(conn, row, state, result)
        return aborted

    async def _tell(self, row: Mapping[str, Any], state: str, *, outcome: Mapping[str, Any] | None = None,
                    outputs: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """Keep a pull request's comment and commit status in step (its own or its environment's PR)."""
        pulls = self.operations.pulls
        if pulls is None or row["kind"] == "resolve":
            return
        from automation.jobs import pull_requests

        async with self.pool.connection() as conn:
            environment = await store.get_environment(conn, row["branch"]) if row["branch"] else None
            parent = (row["inputs"] or {}).get("from") or (environment or {}).get("parent")
            parent_row = await store.get_environment(conn, parent) if parent else None
        if not (row["inputs"] or {}).get("github") and not (environment or {}).get("github_repo"):
            return
        status = "running" if state == "running" else pull_requests.comment_status(row["kind"], state)
        message = error or (row["inputs"] or {}).get("message")
        job_id = row["id"]
        await asyncio.to_thread(pulls.tell, row, status, lambda kind, line, data=None: self.event_from_thread(
            job_id, kind, line, data), outcome=outcome, outputs=outputs, message=message, environment=environment,
            parent_cost=pull_requests.cost_of(parent_row))

    async def _settle(self, done: asyncio.Future[Any]) -> str:
        """Wait for an interrupted operation to end; what it ended with, in a few words."""
        try:
            result = await asyncio.shield(done)
        except Exception as err:  # noqa: BLE001
            return _job_error(err)
        return result.message if isinstance(result, Failure) else "it had finished"

    def _run_operation(self, row: Mapping[str, Any]) -> Any:
        job_id = row["id"]
        try:
            return self.operations.run(row, lambda kind, line, data=None: self.event_from_thread(job_id, kind, line,
                                                                                               data))
        except Exception as err:  # noqa: BLE001 - mapped to a message the job keeps
            return Failure(self.operations.describe_failure(err))

    def interrupt(self, job_id: int) -> int:
        """SIGINT every `pulumi` process this job started (found by DBENV_JOB_ID in its environment)."""
        import psutil

        hit = 0
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.environ().get(JOB_ENV) == str(job_id) and "pulumi" in os.path.basename(" ".join(
                        proc.cmdline()[:2])):
                    proc.send_signal(signal.SIGINT)
                    hit += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return hit

    # ------------------------------------------------------------ recover

    async def recover_stalled(self) -> list[int]:
        """Jobs of workers that stopped heartbeating -> lost; their stacks unlocked. Returns our job ids."""
        from procrastinate.jobs import Status

        lost: list[int] = []
        async with self.pool.connection() as conn:
            got = (await (await conn.execute("SELECT pg_try_advisory_lock(74657)")).fetchone())[0]
            if not got:
                return lost
            try:
                stalled = await self.app.job_manager.get_stalled_jobs(
                    seconds_since_heartbeat=self.config.stalled_after)
                for job in stalled:
                    with contextlib.suppress(Exception):  # finished by another worker meanwhile
                        await self.app.job_manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
                    for row in await store.jobs_by_procrastinate_ids(conn, [job.id]):
                        lost.append(row["id"])
                        await self._mark_lost(conn, row)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(74657)")
        return lost

    async def _mark_lost(self, conn: Any, row: Mapping[str, Any]) -> None:
        detail = (f"the worker running it ({row['worker'] or 'unknown'}) stopped sending heartbeats for "
                  f"{self.config.stalled_after:.0f}s (killed or cut off)")
        if not await store.finish_job(conn, row["id"], store.LOST, error=detail, only_from=(store.RUNNING,
                                                                                          store.QUEUED)):
            return
        await store.add_event(conn, row["id"], "lost", f"lost: {detail}", {"state": store.LOST})
        if row["stack"]:
            note = await asyncio.to_thread(self.operations.unlock, row)
            await store.add_event(conn, row["id"], "recovered", note)
        if row["kind"] in READ_ONLY_KINDS:
            await self.enqueue(kind=row["kind"], branch=row["branch"], stack=row["stack"],
                               requested_by=row["requested_by"], inputs=row["inputs"], source=row["source"],
                               commit_sha=row["commit_sha"])


@dataclass(frozen=True)
class Failure:
    message: str


@dataclass(frozen=True)
class Result:
    """What a job keeps: its outcome (changes, cost, verdicts...) and outputs (secrets masked)."""

    outcome: dict[str, Any]
    outputs: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None


def _job_error(err: BaseException) -> str:
    """An unexpected error: one line with an id that is also in the server log (never a traceback)."""
    ref = uuid.uuid4().hex[:12]
    log.exception("job error %s", ref, exc_info=err)
    return f"internal error {ref}: {type(err).__name__} (details in the service log under this id)"
