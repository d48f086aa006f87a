"""The processes of `dbenv serve` and `dbenv worker`. One code path for the embedded and a shared PostgreSQL.

serve: the API (uvicorn) and N in-process workers in one event loop; worker: workers only. Every
worker also sweeps for lost jobs between the periodic ticks, so a job whose worker was killed is
marked lost within about ``stalled_after`` seconds even when no schedule tick is near.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from dataclasses import dataclass
from typing import Any

from automation.jobs import database, store
from automation.jobs.runtime import QUEUE, Runtime, ServiceConfig, heartbeat_options

log = logging.getLogger("dbenv.service")


class ServeRefused(Exception):
    """A start that must not happen (bad bind, no token, a file backend shared across machines)."""


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


async def prepare_database(db: database.Database) -> None:
    await database.apply_schema(db.conninfo)


async def run_workers(runtime: Runtime, concurrency: int, stop: asyncio.Event) -> None:
    """procrastinate workers plus the lost-job sweep, until ``stop`` is set."""
    options = heartbeat_options(runtime.config)
    worker = asyncio.create_task(runtime.app.run_worker_async(
        concurrency=concurrency, name=runtime.config.worker_name, install_signal_handlers=False,
        queues=[QUEUE, "schedules"], shutdown_graceful_timeout=30, **options), name="dbenv-worker")
    sweep = asyncio.create_task(_sweep(runtime, stop), name="dbenv-recover")
    await stop.wait()
    worker.cancel()
    sweep.cancel()
    for task in (worker, sweep):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _sweep(runtime: Runtime, stop: asyncio.Event) -> None:
    interval = max(1.0, runtime.config.stalled_after / 2)
    while not stop.is_set():
        try:
            lost = await runtime.recover_stalled()
            if lost:
                log.warning("jobs lost with their worker: %s", ", ".join(map(str, lost)))
        except Exception as err:  # noqa: BLE001 - the sweep must keep running
            log.warning("lost-job sweep: %s", err)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def _sweep_once(runtime: Runtime, github: Any) -> None:
    from automation.jobs import pull_requests

    try:
        await pull_requests.sweep(runtime, github)
    except Exception as err:  # noqa: BLE001 - a sweep that fails is retried by the schedule
        log.warning("github: missed-delivery sweep at start: %s", err)


async def check_bind(runtime: Runtime, bind: Bind) -> None:
    if bind.loopback:
        return
    async with runtime.pool.connection() as conn:
        tokens = await store.live_token_count(conn)
    if tokens == 0:
        raise ServeRefused(f"--host {bind.host} is not a loopback address and no token exists: create one first "
                           "with `dbenv service token create --name NAME --scope write`")


# uvicorn builds the HTTP face from this import string (an app factory), for the runtime `serve` opened:
# the processes live here, below both faces, and import neither.
APP_FACTORY = "automation.service.app:for_serving_runtime"
_serving: list[Runtime] = []


def serving_runtime() -> Runtime:
    """The runtime of the `dbenv serve` in this process (what the app factory serves)."""
    return _serving[-1]


async def serve(config: ServiceConfig, db: database.Database, bind: Bind, workers: int) -> None:
    import uvicorn

    await prepare_database(db)
    runtime = Runtime(config, db.conninfo)
    await runtime.open()
    _serving.append(runtime)
    try:
        await check_bind(runtime, bind)
        server = uvicorn.Server(uvicorn.Config(APP_FACTORY, factory=True, host=bind.host, port=bind.port,
                                               log_level="warning", access_log=False, lifespan="on",
                                               timeout_graceful_shutdown=5))
        stop = asyncio.Event()
        worker_task = asyncio.create_task(run_workers(runtime, workers, stop)) if workers > 0 else None
        log.info("dbenv serve on http://%s:%s with %d worker(s); %s", bind.host, bind.port, workers, db.describe())
        if config.github is not None:
            # Deliveries GitHub could not make while the service was down: ask for them again now.
            asyncio.create_task(_sweep_once(runtime, config.github))
        try:
            await server.serve()
        finally:
            stop.set()
            if worker_task is not None:
                await worker_task
    finally:
        _serving.remove(runtime)
        await runtime.close()


async def work(config: ServiceConfig, db: database.Database, concurrency: int) -> None:
    await prepare_database(db)
    runtime = Runtime(config, db.conninfo)
    await runtime.open()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_workers(runtime, concurrency, stop)
    finally:
        await runtime.close()


def shared_backend_problem(database_url: str, backend_url: str | None) -> str | None:
    """Workers on another machine than the database cannot share a file:// backend folder."""
    from urllib.parse import urlsplit

    host = urlsplit(database_url).hostname or ""
    local = host in ("", "localhost") or host.startswith("/")
    if not local:
        with contextlib.suppress(ValueError):
            local = ipaddress.ip_address(host).is_loopback
    backend = backend_url or ""
    if not local and backend.startswith("file://"):
        return (f"this worker shares a database on {host} but keeps Pulumi state in {backend}, a folder of this "
                "machine: workers on several machines need a shared backend (--target aws with an s3:// backend "
                "or Pulumi Cloud; set `backend` in dbenv.toml or PULUMI_BACKEND_URL)")
    return None
