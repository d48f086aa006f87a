"""`dbenv serve` over real HTTP on loopback, its jobs in a real PostgreSQL, run by real worker processes.

The behaviour suite runs twice: on the embedded database (pgserver, started by `dbenv serve`) and on
the machine's PostgreSQL (127.0.0.1:5432) with separate `dbenv worker` processes. The engine is the
scripted `pulumi` (tests/service_harness.py), driven by the real pulumi.automation package.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components import naming
from tests.service_harness import (
    BRANCH,
    Deployment,
    dbenv,
    make_project,
    make_token,
    running,
    wait_job,
)

pytestmark = pytest.mark.db
STACK = naming.stack_name(BRANCH)
PROBLEM = "application/problem+json"


@pytest.fixture(params=["embedded", "machine"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(tmp_path, request.param)
    try:
        yield dep
    finally:
        dep.close()


def put(dep: Deployment, branch: str = BRANCH, **body: Any) -> httpx.Response:
    return dep.api.put(f"/v1/environments/{branch}", json=body or {"recipes": "dynamodb-autoscaling"})


def wait_ready(dep: Deployment, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dep.api.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"no worker became ready:\n{dep.service.process.output()}")


def wait_event(client: httpx.Client, job_id: int, kind: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = client.get(f"/v1/jobs/{job_id}/events", params={"format": "json"}).json()["items"]
        found = [e for e in events if e["kind"] == kind]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} has no {kind!r} event after {timeout}s: {events}")


# ----------------------------------------------------------------- auth and health


def test_health_auth_and_scopes(deployment: Deployment) -> None:
    base = deployment.service.base
    assert httpx.get(base + "/healthz").json() == {"status": "ok", "checks": {}}
    wait_ready(deployment)
    assert deployment.reader.get("/readyz").json()["checks"]["workers"] >= 1

    anonymous = httpx.get(base + "/v1/environments")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == PROBLEM
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["status"] == 401 and anonymous.json()["title"] == "Unauthorized"
    forged = httpx.get(base + "/v1/environments", headers={"Authorization": "Bearer dbenv_forged"})
    assert forged.status_code == 401
    basic = httpx.get(base + "/v1/environments", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401

    assert deployment.reader.get("/v1/environments").status_code == 200
    denied = deployment.reader.put(f"/v1/environments/{BRANCH}", json={"recipes": "dynamodb-autoscaling"})
    assert denied.status_code == 403 and "read" in denied.json()["detail"]
    assert deployment.reader.get("/v1/jobs").json()["items"] == []  # nothing was queued by the refused write

    revoked = dbenv(deployment.project, "service", "token", "revoke", "reader",
                    *(["--database-url", deployment.url] if deployment.url else []))
    assert revoked.returncode == 0, revoked.stderr
    assert deployment.reader.get("/v1/environments").status_code == 401
    listed = dbenv(deployment.project, "service", "token", "list", "--json",
                   *(["--database-url", deployment.url] if deployment.url else []))
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["reader"]["revoked_at"] and rows["writer"]["scope"] == "write"
    assert deployment.read not in listed.stdout and deployment.write not in listed.stdout
    log = deployment.service.process.output()
    assert deployment.read not in log and deployment.write not in log


# ----------------------------------------------------------------- bad input changes nothing


def test_bad_input_is_a_problem_and_queues_nothing(deployment: Deployment) -> None:
    api = deployment.api
    url = f"/v1/environments/{BRANCH}"
    cases: list[tuple[httpx.Response, int, str | None, str]] = [
        (api.put(url, content=b"{not json", headers={"content-type": "application/json"}), 400, None, "JSON"),
        (api.put(url, content=b"recipes=all", headers={"content-type": "application/x-www-form-urlencoded"}), 415,
         "content-type", "application/json"),
        (api.put(url, content=b'{"recipes": "' + b"a" * (1024 * 1024 + 10) + b'"}',
                 headers={"content-type": "application/json"}), 413, None, "larger"),
        (api.put(url, json={"recipes": "dynamodb-autoscaling", "colour": "blue"}), 422, "colour", "unknown field"),
        (api.put("/v1/environments/feature..x", json={"recipes": "dynamodb-autoscaling"}), 422, "branch", ".."),
        (api.put(url, json={"recipes": "dynamo"}), 422, "recipes", "dynamo"),
        (api.put(url, json={"recipes": "dynamodb-autoscaling", "ttl": "forever"}), 422, "ttl", "forever"),
        (api.put(url, json={"recipes": "dynamodb-autoscaling", "ttl": "90d"}), 422, "ttl", "30d"),
        (api.put(url, json={"recipes": "dynamodb-autoscaling", "from": BRANCH}), 422, None, "own parent"),
        (api.put(url, json={"recipes": "dynamodb-autoscaling", "config": {"db-recipes:nonsense": 1}}), 422,
         "config", "nonsense"),
        (api.put(url, json=["recipes"]), 422, None, ""),
        (api.put(url, json={"recipes": 5}), 422, "recipes", "recipes"),
        (api.put(url, content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"}), 400,
         None, "parsing the body"),
        (api.put(url, content=b"\xff\xfe", headers={"content-type": "application/json"}), 400, None, "JSON"),
        (api.put("/v1/environments/%2e%2e/x", json={"recipes": "dynamodb-autoscaling"}), 422, "branch", ".."),
        (api.put("/v1/environments/a%00b", json={"recipes": "dynamodb-autoscaling"}), 422, "branch", "control"),
        (api.get("/v1/jobs/999999"), 404, "job_id", "999999"),
        (api.get("/v1/jobs/abc"), 404, "job_id", "whole numbers"),
        (api.get("/v1/jobs?state=exploded"), 422, "state", "exploded"),
        (api.get("/v1/jobs?cursor=x"), 400, "cursor", "next_cursor"),
        (api.get("/v1/environments?cursor=notatime"), 400, "cursor", "next_cursor"),
        (api.delete("/v1/environments/main"), 409, "branch", "protected"),
    ]
    for response, status, field, words in cases:
        assert response.status_code == status, (response.request.url, response.text[:300])
        assert response.headers["content-type"] == PROBLEM, response.text[:200]
        problem = response.json()
        assert problem["status"] == status and problem["title"]
        assert "Traceback" not in response.text
        if field is not None:
            assert problem.get("field") == field, problem
        assert words in (problem.get("detail") or ""), problem
    assert api.get("/v1/jobs").json()["items"] == []
    assert api.get("/v1/environments").json()["items"] == []
    # The same message the CLI gives for the same mistake (one validation path).
    cli = dbenv(deployment.project, "plan", "--branch", BRANCH, "--recipes", "dynamo")
    api_detail = api.put(url, json={"recipes": "dynamo"}).json()["detail"]
    assert api_detail in cli.stderr
    # A job that exists but a bad Last-Event-ID.
    job = put(deployment).json()
    bad = api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "seven"})
    assert bad.status_code == 400 and bad.json()["field"] == "Last-Event-ID"


# ----------------------------------------------------------------- a whole environment's life


def read_sse(response: httpx.Response) -> list[dict[str, Any]]:
    events, current = [], {}
    for line in response.iter_lines():
        if not line:
            if current:
                events.append(current)
            current = {}
        elif line.startswith(("id:", "event:", "data:")):
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        events.append(current)
    return events


def test_up_job_runs_the_operations_and_records_everything(deployment: Deployment) -> None:
    response = put(deployment, ttl="24h")
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["requested_by"] == "writer" and job["kind"] == "up"
    done = wait_job(deployment.api, job["id"])
    assert done["state"] == "succeeded", done
    assert done["outputs"] == {"dynamodb-autoscaling": {"table_name": "orders"}, "token": "[secret]"}
    assert done["outcome"]["changes"] == {"create": 1} and done["duration_seconds"] > 0
    assert done["outcome"]["cost"]["idle"] >= 0
    assert "t0ps3cret" not in json.dumps(done)

    env = deployment.reader.get(f"/v1/environments/{BRANCH}").json()
    assert env["stack"] == STACK and env["status"] == "ready" and env["recipes"] == ["dynamodb-autoscaling"]
    assert env["last_job"]["id"] == job["id"] and env["expires_at"] and not env["expired"]
    assert env["monthly_cost"]["idle"] == done["outcome"]["cost"]["idle"]
    saved = deployment.project.state()[STACK]
    assert saved["tags"]["branch"] == BRANCH and saved["tags"]["ephemeral"] == "true"

    plain = deployment.reader.get(f"/v1/jobs/{job['id']}/events", params={"format": "json"}).json()
    lines = [e["line"] for e in plain["items"]]
    assert "+ created aws:dynamodb/table:Table orders" in " ".join(lines)  # the engine's own event stream
    assert [e["seq"] for e in plain["items"]] == list(range(1, len(lines) + 1))
    assert plain["items"][-1]["kind"] == "finished"
    with deployment.reader.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        replay = read_sse(stream)  # a finished job replays and closes
    assert [int(e["id"]) for e in replay] == [e["seq"] for e in plain["items"]]
    with deployment.reader.stream("GET", f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "2"}) as stream:
        resumed = read_sse(stream)
    assert [int(e["id"]) for e in resumed] == [e["seq"] for e in plain["items"]][2:]

    down = deployment.api.delete(f"/v1/environments/{BRANCH}")
    assert down.status_code == 202
    assert wait_job(deployment.api, down.json()["id"])["state"] == "succeeded"
    assert deployment.reader.get(f"/v1/environments/{BRANCH}").status_code == 404
    assert STACK not in deployment.project.state()
    listed = deployment.reader.get("/v1/jobs", params={"branch": BRANCH}).json()["items"]
    assert [j["kind"] for j in listed] == ["down", "up"]  # newest first


def test_queued_up_is_replaced_and_down_supersedes(deployment: Deployment) -> None:
    deployment.project.set_state(STACK, delay=3)
    first = put(deployment).json()
    wait_job(deployment.api, first["id"], ("running",))
    second = put(deployment).json()
    third = put(deployment).json()
    assert wait_job(deployment.api, second["id"], ("superseded",))["error"] == f"superseded by job {third['id']}"
    down = deployment.api.delete(f"/v1/environments/{BRANCH}").json()
    assert wait_job(deployment.api, third["id"], ("superseded",))["state"] == "superseded"
    assert wait_job(deployment.api, first["id"])["state"] == "succeeded"
    assert wait_job(deployment.api, down["id"])["state"] == "succeeded"
    runs = [json.loads(line) for line in Path(str(deployment.project.cli_state) + ".running").read_text().splitlines()]
    assert [r["op"] for r in runs if r["stack"] == STACK] == ["up", "destroy"]  # the superseded ups never ran


def test_cancel_queued_and_running_jobs(deployment: Deployment) -> None:
    deployment.project.set_state(STACK, delay=30)
    running_job = put(deployment).json()
    wait_job(deployment.api, running_job["id"], ("running",))
    queued = deployment.api.post(f"/v1/environments/{BRANCH}/sleep").json()
    cancelled = deployment.api.post(f"/v1/jobs/{queued['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not Path(str(deployment.project.cli_state) + ".running").exists():
        time.sleep(0.1)
    stop = deployment.api.post(f"/v1/jobs/{running_job['id']}/cancel")
    assert stop.status_code == 202
    finished = wait_job(deployment.api, running_job["id"], timeout=60)
    assert finished["state"] == "cancelled", finished
    assert not deployment.project.state()[STACK].get("locked")  # the engine stopped cleanly and unlocked
    assert deployment.api.post(f"/v1/jobs/{running_job['id']}/cancel").status_code == 409
    again = put(deployment)
    deployment.project.set_state(STACK, delay=0)
    assert wait_job(deployment.api, again.json()["id"])["state"] == "succeeded"
    assert deployment.api.get(f"/v1/jobs/{queued['id']}").json()["started_at"] is None


def test_plans_are_offline_priced_and_policy_checked(deployment: Deployment) -> None:
    response = deployment.reader.post("/v1/plans", json={"branch": "feature/plan", "recipes": "dynamodb-autoscaling"})
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["stack"] == naming.stack_name("feature/plan") and plan["recipes"] == ["dynamodb-autoscaling"]
    types = {r["type"] for r in plan["resources"]}
    assert "aws:dynamodb/table:Table" in types
    assert plan["cost"]["total"]["idle"] >= 0
    assert plan["policy"]["summary"]["mandatory"] == 0 and "violations" in plan["policy"]
    assert deployment.reader.get("/v1/jobs").json()["items"] == []


# ----------------------------------------------------------------- faults


def test_without_the_pulumi_cli_an_up_job_fails_clearly_and_the_service_stays(tmp_path: Path) -> None:
    project = make_project(tmp_path, with_pulumi=False)
    token = make_token(project, "writer", "write", None)
    with running(project, tmp_path, workers=1) as service, service.client(token) as api:
        job = api.put(f"/v1/environments/{BRANCH}", json={"recipes": "dynamodb-autoscaling"}).json()
        done = wait_job(api, job["id"])
        assert done["state"] == "failed" and "the Pulumi CLI is not installed" in done["error"]
        assert api.get("/healthz").status_code == 200
        assert api.post("/v1/plans", json={"recipes": "dynamodb-autoscaling"}).status_code == 200


def test_a_worker_killed_mid_job_is_lost_the_stack_usable_and_the_next_job_runs(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, "machine")
    try:
        dep.project.set_state(STACK, delay=60)
        job = put(dep).json()
        running_job = wait_job(dep.api, job["id"], ("running",))
        victim = next(w for w in dep.workers if running_job["worker"] and str(w.proc.pid) in running_job["worker"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not dep.project.state()[STACK].get("locked"):
            time.sleep(0.1)
        victim.kill()
        assert dep.project.state()[STACK].get("locked")  # the killed engine left its lock
        lost = wait_job(dep.api, job["id"], ("lost",), timeout=60)
        assert "heartbeat" in lost["error"]
        recovered = wait_event(dep.reader, job["id"], "recovered")
        assert "lock cleared" in recovered["line"], recovered
        assert not dep.project.state()[STACK].get("locked")
        dep.project.set_state(STACK, delay=0)
        nxt = put(dep).json()
        assert wait_job(dep.api, nxt["id"])["state"] == "succeeded"
    finally:
        dep.close()


def test_jobs_and_events_survive_a_restart(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    token = make_token(project, "writer", "write", None)
    with running(project, tmp_path, workers=1) as service, service.client(token) as api:
        job = api.put(f"/v1/environments/{BRANCH}", json={"recipes": "dynamodb-autoscaling"}).json()
        before = wait_job(api, job["id"])
        events = api.get(f"/v1/jobs/{job['id']}/events", params={"format": "json"}).json()["items"]
    with running(project, tmp_path, workers=1) as service, service.client(token) as api:
        assert api.get(f"/v1/jobs/{job['id']}").json() == before
        assert api.get(f"/v1/jobs/{job['id']}/events", params={"format": "json"}).json()["items"] == events
        assert api.get(f"/v1/environments/{BRANCH}").json()["status"] == "ready"


def test_a_non_loopback_bind_needs_a_token(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    refused = dbenv(project, "serve", "--host", "0.0.0.0", "--port", "9", "--workers", "0", timeout=60)
    assert refused.returncode == 2 and "no token exists" in refused.stderr
    worker = dbenv(project, "worker", "--database-url", "postgresql://dbenv@db.example.internal/dbenv")
    assert worker.returncode == 2 and "shared backend" in worker.stderr
    nourl = dbenv(project, "worker")
    assert nourl.returncode == 2 and "--database-url" in nourl.stderr
    bad = dbenv(project, "serve", "--database-url", "mysql://root:hunter2@x/db")
    assert bad.returncode == 2 and "hunter2" not in bad.stderr and "PostgreSQL URL" in bad.stderr


def test_schedules_queue_reap_resleep_and_drift_jobs_that_run(tmp_path: Path) -> None:
    """One tick of each schedule, called as procrastinate calls it, against the running service's database."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from automation.jobs import schedules, store
    from automation.jobs.runtime import Runtime, ServiceConfig

    dep = Deployment(tmp_path, "machine")
    try:
        deployed = {}
        for branch in ("feature/old", "feature/sleepy", "feature/live"):
            job = put(dep, branch).json()
            deployed[branch] = wait_job(dep.api, job["id"])
            assert deployed[branch]["state"] == "succeeded", deployed[branch]

        async def tick(schedule: Any, change: dict[str, Any] | None = None) -> list[int]:
            runtime = Runtime(ServiceConfig(project_dir=dep.project.root, schedules=False), dep.url or "")
            await runtime.open()
            try:
                if change:
                    async with runtime.pool.connection() as conn:
                        await store.update_environment(conn, change.pop("branch"), **change)
                return await schedule(runtime)
            finally:
                await runtime.close()

        expired = {"branch": "feature/old", "expires_at": datetime.now(UTC) - timedelta(hours=1)}
        reaped = asyncio.run(tick(schedules.reap_expired, expired))
        reap_job = wait_job(dep.api, reaped[0])
        assert len(reaped) == 1 and reap_job["kind"] == "down" and reap_job["branch"] == "feature/old"
        assert reap_job["state"] == "succeeded" and reap_job["requested_by"] == "schedule:reap"
        assert dep.reader.get("/v1/environments/feature/old").status_code == 404

        asleep = {"branch": "feature/sleepy", "asleep": True, "status": "asleep"}
        reslept = asyncio.run(tick(schedules.resleep_asleep, asleep))
        sleep_job = wait_job(dep.api, reslept[0])
        assert len(reslept) == 1 and sleep_job["kind"] == "sleep" and sleep_job["branch"] == "feature/sleepy"
        assert sleep_job["state"] == "succeeded", sleep_job  # nothing running on the (local) RDS to stop
        assert dep.reader.get("/v1/environments/feature/sleepy").json()["asleep"] is True

        drifted = asyncio.run(tick(schedules.check_drift))
        drift_jobs = [wait_job(dep.api, job_id) for job_id in drifted]
        assert {j["branch"] for j in drift_jobs} == {"feature/sleepy", "feature/live"}
        assert all(j["kind"] == "drift" and j["state"] == "succeeded" for j in drift_jobs), drift_jobs
        live = dep.reader.get("/v1/environments/feature/live").json()
        # The scripted preview always reports one create: that is drift, and the environment says so.
        assert live["drift"] == "1 create" and live["drift_checked_at"]
    finally:
        dep.close()


def test_environment_filters_and_cursor_pages(deployment: Deployment) -> None:
    """owner, status and expired filters; newest first; a cursor walks every row exactly once."""
    import psycopg

    from automation.jobs import database

    now = time.time()
    rows = [(f"feature/f{i:02d}", naming.stack_name(f"feature/f{i:02d}"), "ready" if i % 3 else "asleep",
             f"dev{i % 2}@example.com", i % 4 == 0) for i in range(23)]

    async def seed() -> None:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            for i, (branch, stack, status, owner, expired) in enumerate(rows):
                await conn.execute(
                    "INSERT INTO dbenv_environments (branch, stack, status, owner, expires_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s))",
                    (branch, stack, status, owner, now + (-3600 if expired else 3600), now - i))

    import asyncio

    conninfo = deployment.url or database.embedded(deployment.project.root / ".dbenv").conninfo
    asyncio.run(seed())
    api = deployment.reader
    seen, cursor = [], None
    while True:
        page = api.get("/v1/environments", params={"limit": 5, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["items"]) <= 5
        seen += [item["branch"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [branch for branch, *_ in rows]  # newest first (updated most recently), each once
    mine = api.get("/v1/environments", params={"owner": "dev1@example.com", "limit": 500}).json()["items"]
    assert {e["branch"] for e in mine} == {b for b, _, _, owner, _ in rows if owner == "dev1@example.com"}
    asleep = api.get("/v1/environments", params={"status": "asleep"}).json()["items"]
    assert {e["branch"] for e in asleep} == {b for b, _, status, _, _ in rows if status == "asleep"}
    expired = api.get("/v1/environments", params={"expired": "true"}).json()["items"]
    assert {e["branch"] for e in expired} == {b for b, *_, gone in rows if gone} and all(e["expired"] for e in expired)
    fresh = api.get("/v1/environments", params={"expired": "false", "limit": 500}).json()["items"]
    assert len(fresh) == sum(1 for *_, gone in rows if not gone)
    assert api.get("/v1/environments", params={"limit": 0}).status_code == 422
    assert api.get("/v1/environments", params={"expired": "maybe"}).status_code == 422


def test_environments_made_by_the_cli_join_and_leave_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """The sync schedule reads the backend as `dbenv ls` does: a stack `dbenv up` made appears, one
    `dbenv down` removed disappears."""
    import asyncio

    from automation.jobs import schedules
    from automation.jobs.runtime import Runtime, ServiceConfig

    dep = Deployment(tmp_path, "machine")
    try:
        cli_stack = naming.stack_name("feature/cli")
        dep.project.set_state(cli_stack, resources=3, tags={
            "branch": "feature/cli", "ephemeral": "true", "owner": "cli@example.com", "commit": "abc1234",
            "created-at": "2026-12-05T10:00:00Z", "expires-at": "2099-01-01T00:00:00Z",
            "cost-idle": "12.50", "cost-asleep": "1.00"})
        (tmp_path / "state").mkdir(exist_ok=True)  # the file backend `dbenv up` would have made
        for key in ("PATH", "FAKE_PULUMI_STATE", "PULUMI_CONFIG_PASSPHRASE"):
            monkeypatch.setenv(key, dep.project.env[key])

        async def sync() -> int | None:
            runtime = Runtime(ServiceConfig(project_dir=dep.project.root, env=dep.project.env, schedules=False),
                              dep.url or "")
            await runtime.open()
            try:
                return await schedules.sync_from_backend(runtime)
            finally:
                await runtime.close()

        assert asyncio.run(sync()) == 1
        env = dep.reader.get("/v1/environments/feature/cli").json()
        assert env["stack"] == cli_stack and env["status"] == "ready" and env["owner"] == "cli@example.com"
        assert env["monthly_cost"]["idle"] == 12.5 and env["monthly_cost"]["asleep"] == 1.0
        assert env["commit"] == "abc1234" and env["expires_at"].startswith("2099-01-01")

        state = dep.project.state()
        del state[cli_stack]
        dep.project.cli_state.write_text(json.dumps(state), encoding="utf-8")
        assert asyncio.run(sync()) == 0
        assert dep.reader.get("/v1/environments/feature/cli").status_code == 404
    finally:
        dep.close()


def test_a_job_over_its_timeout_is_stopped_and_fails_saying_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """A worker in this process (procrastinate's wait=False: it ends when the queue is empty) runs a job whose
    timeout is 2 s: the engine gets SIGINT, ends as Pulumi does ("update canceled"), the job fails saying why."""
    import asyncio

    import psycopg

    from automation.jobs.runtime import Runtime, ServiceConfig

    dep = Deployment(tmp_path, "machine", workers=0)
    try:
        dep.project.set_state(STACK, delay=60, tags={"branch": BRANCH, "ephemeral": "true"})
        for key in ("PATH", "FAKE_PULUMI_STATE", "PULUMI_CONFIG_PASSPHRASE", "AWS_ENDPOINT_URL"):
            monkeypatch.setenv(key, dep.project.env[key])
        job = put(dep).json()
        with psycopg.connect(dep.url or "", autocommit=True) as conn:  # the shortest job_timeout setting is 1m
            conn.execute("UPDATE dbenv_jobs SET timeout_seconds = 2 WHERE id = %s", (job["id"],))

        async def work() -> None:
            config = ServiceConfig(project_dir=dep.project.root, env=dep.project.env, schedules=False)
            runtime = Runtime(config, dep.url or "")
            await runtime.open()
            try:
                await runtime.app.run_worker_async(wait=False, install_signal_handlers=False, queues=["environments"])
            finally:
                await runtime.close()

        started = time.monotonic()
        asyncio.run(work())
        done = dep.api.get(f"/v1/jobs/{job['id']}").json()
        assert done["state"] == "failed", done
        assert done["error"].startswith("timed out after 2s") and "update canceled" in done["error"], done["error"]
        assert time.monotonic() - started < 45  # stopped long before the engine's 60 s
        assert not dep.project.state()[STACK].get("locked")  # Pulumi's clean stop released the lock
    finally:
        dep.close()
