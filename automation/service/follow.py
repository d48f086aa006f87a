"""Live events for SSE followers: one poll of the events table per process, fanned out to every follower.

A hundred browsers following one job cost one query every ``interval`` seconds, not a hundred.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from automation.jobs import store

log = logging.getLogger("dbenv.service")


class EventHub:
    def __init__(self, pool: Any, interval: float = 0.2) -> None:
        self.pool = pool
        self.interval = interval
        self._followers: dict[int, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._last_id = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        async with self.pool.connection() as conn:
            self._last_id = await store.newest_event_id(conn)
        self._task = asyncio.create_task(self._run(), name="dbenv-event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def follow(self, job_id: int) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._followers[job_id].add(queue)
        self._wake.set()
        return queue

    def leave(self, job_id: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        followers = self._followers.get(job_id)
        if followers is not None:
            followers.discard(queue)
            if not followers:
                self._followers.pop(job_id, None)

    async def _run(self) -> None:
        while True:
            if not self._followers:
                self._wake.clear()
                # Nobody follows: keep the cursor current cheaply, and sleep until someone does.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=5)
            try:
                async with self.pool.connection() as conn:
                    rows = await store.events_since(conn, self._last_id)
            except Exception as err:  # noqa: BLE001 - a database hiccup must not end every stream
                log.warning("event hub: %s", err)
                await asyncio.sleep(1)
                continue
            for row in rows:
                self._last_id = max(self._last_id, row["id"])
                for queue in list(self._followers.get(row["job_id"], ())):
                    queue.put_nowait(row)
            if len(rows) < 2000:
                await asyncio.sleep(self.interval)
