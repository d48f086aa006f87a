"""Figures of `dbenv serve` on this machine, over real HTTP on loopback and a real PostgreSQL.

Usage: python benchmarks/service.py [--jobs 200] [--stacks 50] [--workers 4] [--sse 100]

Prints, and asserts nothing (speed goals are read, not tested):
1. GET /v1/environments with 1,000 environments: p50/p99 of a page (100) and of a walk of all pages;
2. request -> queued: p50/p99 of PUT /v1/environments/{branch} (validated, committed, answered 202);
3. 200 jobs over 50 stacks on 4 worker processes (machine's PostgreSQL, scripted engine), one worker
   SIGKILLed mid-run: throughput, overlapping runs on one stack, jobs never finished;
4. 100 SSE clients following one job: the serving process's RSS before and while they follow.
AWS API calls (sleep, wake) go to a moto server on loopback (tests/service_harness.py), never out.
Goals here: p99 < 50 ms list, < 100 ms accept; 0 overlaps; 0 jobs unaccounted for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components import naming  # noqa: E402
from tests.service_harness import Deployment, wait_job  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def seed_environments(url: str, count: int) -> None:
    import psycopg

    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        rows = []
        for i in range(count):
            branch = f"bench/env-{i:04d}"
            rows.append((branch, naming.stack_name(branch), ["aurora-serverless", "data-api"], "ready",
                         f"dev{i % 17}@example.com", f"{i:040x}", now - timedelta(hours=i % 48),
                         now + timedelta(hours=72 - i % 96), i % 5 == 0, 43.8 + i % 7, 4.2, 120.5))
        cur.executemany("INSERT INTO dbenv_environments (branch, stack, recipes, status, owner, commit_sha, "
                        "created_at, expires_at, asleep, cost_idle, cost_asleep, cost_active) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)


def timed(call: object, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def bench_list_and_accept(tmp: Path) -> None:
    dep = Deployment(tmp / "list", "machine", workers=0)
    try:
        assert dep.url
        seed_environments(dep.url, 1000)
        api = dep.api

        def page() -> None:
            response = api.get("/v1/environments")
            assert response.status_code == 200 and len(response.json()["items"]) == 100

        def walk() -> None:
            cursor, seen = None, 0
            while True:
                body = api.get("/v1/environments", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
                               ).json()
                seen += len(body["items"])
                cursor = body["next_cursor"]
                if not cursor:
                    break
            assert seen == 1000, seen

        for _ in range(20):
            page()  # warm the pool and the imports
        pages = timed(page, 300)
        walks = timed(walk, 30)
        print(f"GET /v1/environments (1,000 environments, page of 100): p50 {ms(pct(pages, .5))}  "
              f"p99 {ms(pct(pages, .99))}  (goal p99 < 50 ms)")
        print(f"  all 1,000 in pages of 500: p50 {ms(pct(walks, .5))}  p99 {ms(pct(walks, .99))}")

        counter = iter(range(10**6))

        def accept() -> None:
            response = api.put(f"/v1/environments/bench/accept-{next(counter)}", json={"recipes": "dynamodb-autoscaling"})
            assert response.status_code == 202, response.text

        for _ in range(10):
            accept()
        accepts = timed(accept, 300)
        print(f"PUT /v1/environments/{{branch}} request -> queued (202, committed): p50 {ms(pct(accepts, .5))}  "
              f"p99 {ms(pct(accepts, .99))}  (goal p99 < 100 ms)")
    finally:
        dep.close()


def bench_jobs(tmp: Path, jobs: int, stacks: int, workers: int) -> None:
    dep = Deployment(tmp / "jobs", "machine", workers=workers)
    try:
        branches = [f"bench/stack-{i:02d}" for i in range(stacks)]
        for branch in branches:
            # Each stack as `dbenv up` leaves it (tagged), its engine busy 0.2 s per up or destroy.
            dep.project.set_state(naming.stack_name(branch), delay=0.2,
                                  tags={"ephemeral": "true", "branch": branch})
        start = time.perf_counter()
        accepted = []
        rng = random.Random(7)
        for i in range(jobs):
            branch = branches[i % stacks]
            kind = rng.choice(("up", "up", "up", "sleep", "wake", "down"))
            if kind == "up":
                response = dep.api.put(f"/v1/environments/{branch}", json={"recipes": "dynamodb-autoscaling"})
            elif kind == "down":
                response = dep.api.delete(f"/v1/environments/{branch}")
            else:
                response = dep.api.post(f"/v1/environments/{branch}/{kind}")
            assert response.status_code in (200, 202), response.text
            accepted.append(response.json()["id"])
            if i == jobs // 3:
                victim = dep.workers[0]
                victim.kill()
                dep.add_worker("replacement")
        finals = [wait_job(dep.api, job_id, timeout=600) for job_id in dict.fromkeys(accepted)]
        elapsed = time.perf_counter() - start
        states: dict[str, int] = {}
        for job in finals:
            states[job["state"]] = states.get(job["state"], 0) + 1
        overlaps = count_overlaps(finals)
        ran = sum(1 for j in finals if j["started_at"])
        unaccounted = len(dict.fromkeys(accepted)) - len(finals)
        print(f"{jobs} requests over {stacks} stacks on {workers} worker processes (one SIGKILLed at request "
              f"{jobs // 3}, a replacement started): {len(finals)} jobs, {ran} ran, {elapsed:.1f}s, "
              f"{ran / elapsed:.1f} jobs/s")
        print(f"  final states: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}")
        reasons: dict[str, int] = {}
        for job in finals:
            if job["state"] == "failed":
                reason = f"{job['kind']}: {' '.join((job['error'] or '').replace(job['stack'] or '', 'STACK').split())[:90]}"
                reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            print(f"  failed {count}x  {reason}")
        print(f"  overlapping runs on one stack: {overlaps} (goal 0); jobs never finished or missing: "
              f"{unaccounted} (goal 0); interrupted by the kill and marked lost: {states.get('lost', 0)}")
    finally:
        dep.close()


def count_overlaps(jobs: list[dict]) -> int:
    by_stack: dict[str, list[tuple[datetime, datetime]]] = {}
    for job in jobs:
        if job["started_at"] and job["finished_at"] and job["state"] != "lost":
            by_stack.setdefault(job["stack"], []).append((datetime.fromisoformat(job["started_at"]),
                                                          datetime.fromisoformat(job["finished_at"])))
    overlaps = 0
    for spans in by_stack.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            overlaps += start < end
    return overlaps


def bench_sse(tmp: Path, clients: int) -> None:
    dep = Deployment(tmp / "sse", "embedded", workers=1)
    try:
        branch = "bench/sse"
        dep.project.set_state(naming.stack_name(branch), delay=12)
        job = dep.api.put(f"/v1/environments/{branch}", json={"recipes": "dynamodb-autoscaling"}).json()
        wait_job(dep.api, job["id"], ("running",))
        server = psutil.Process(dep.service.process.proc.pid)
        before = server.memory_info().rss

        async def follow(client: httpx.AsyncClient, got: list[int]) -> None:
            async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("id:"):
                        got.append(1)

        async def run() -> tuple[int, int, int]:
            got: list[int] = []
            limits = httpx.Limits(max_connections=clients + 10)
            async with httpx.AsyncClient(base_url=dep.service.base, limits=limits, timeout=120,
                                         headers={"Authorization": f"Bearer {dep.read}"}) as client:
                tasks = [asyncio.create_task(follow(client, got)) for _ in range(clients)]
                await asyncio.sleep(4)
                peak = server.memory_info().rss
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)
            return peak, len(got), sum(1 for t in tasks if t.done())

        peak, events, finished = asyncio.run(run())
        print(f"{clients} SSE clients following one job: serve RSS {before / 2**20:.0f} MiB before, "
              f"{peak / 2**20:.0f} MiB while following ({(peak - before) / 2**20 / clients * 1024:.0f} KiB a "
              f"client); {events} events delivered, {finished}/{clients} streams closed at the job's end")
    finally:
        dep.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--stacks", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sse", type=int, default=100)
    parser.add_argument("--only", choices=("list", "jobs", "sse"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dbenv-bench-") as tmp:
        if args.only in (None, "list"):
            bench_list_and_accept(Path(tmp))
        if args.only in (None, "jobs"):
            bench_jobs(Path(tmp), args.jobs, args.stacks, args.workers)
        if args.only in (None, "sse"):
            bench_sse(Path(tmp), args.sse)


if __name__ == "__main__":
    main()
