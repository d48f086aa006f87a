"""Pull requests drive environments: the jobs a GitHub delivery queues, the one comment and status they keep.

- The webhook route (automation.service.webhooks, only with a webhook secret) verifies the
  delivery, records it and calls ``dispatch`` in the same transaction: a redelivery of a recorded
  id queues nothing.
- A pull request's jobs run the project at the head commit: a mirror per repository, a worktree
  per job at the exact sha (checkout.Mirrors); the service's own state folder stays the state.
- Each job keeps one comment per pull request up to date (found by its hidden marker) and a commit
  status on the head sha; a GitHub failure is written to the job's log and never changes the job.
- GitHub never redelivers a failed delivery by itself ("Handling failed webhook deliveries": you can
  redeliver for 3 days); ``sweep`` lists the App's hook deliveries and asks again for each failed one
  the service has not recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from automation.github import checkout, comment, events
from automation.github.client import App, GitHubClient, GitHubError, missed_deliveries
from automation.jobs import store

log = logging.getLogger("dbenv.service")
SWEEP_CRON = "*/15 * * * *"
SWEEP_WINDOW = timedelta(days=3)  # how long GitHub keeps deliveries for redelivery


@dataclass(frozen=True)
class GitHubConfig:
    secret: bytes
    api_url: str
    token: str | None
    app_id: str | None
    app_key: str | None
    repos: tuple[str, ...]
    allow_forks: bool
    remote: str
    max_bytes: int
    public_url: str
    parent: str | None
    mirrors_root: Path
    bot_login: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> GitHubConfig | None:
        """None without a webhook secret: then there is no webhook route at all."""
        from automation import inputs

        values = settings.values
        if not values.get("github_webhook_secret"):
            return None
        key = None
        if values.get("github_app_key_file"):
            key = inputs.read_text(Path(values["github_app_key_file"]), "github_app_key_file")
        return cls(secret=values["github_webhook_secret"].encode(), api_url=values["github_api_url"],
                   token=values.get("github_token"), app_id=values.get("github_app_id"), app_key=key,
                   repos=tuple(values.get("github_repos") or ()), allow_forks=bool(values["github_allow_forks"]),
                   remote=values["github_remote"], max_bytes=int(values["github_webhook_max_bytes"]),
                   public_url=values["public_url"].rstrip("/"), parent=values.get("parent"),
                   mirrors_root=settings.state_root / "service" / "mirrors", bot_login=values.get("github_bot_login"))

    def client(self, installation_id: int | None, on_line: Any = None) -> GitHubClient:
        app = App(self.app_id, self.app_key) if self.app_id and self.app_key else None
        return GitHubClient(base_url=self.api_url, token=None if app else self.token, app=app,
                            installation_id=installation_id, on_line=on_line)

    def remote_for(self, repo: str) -> str:
        return self.remote.replace("{repo}", repo)


# ------------------------------------------------------------------ what a delivery queues


async def dispatch(runtime: Any, config: GitHubConfig, conn: Any,
                   parsed: events.Action | events.Ignored) -> tuple[int, dict[str, Any]]:
    if isinstance(parsed, events.Ignored):
        return 200, {"ignored": parsed.reason}
    if parsed.kind == "pong":
        return 200, {"pong": True}
    if not events.repo_allowed(parsed.repo, config.repos):
        return 200, {"ignored": f"repository {parsed.repo} is not in the github_repos setting"}
    where = {"repo": parsed.repo, "pr": parsed.pr, "installation_id": parsed.installation_id}
    requested = f"github:{parsed.author or parsed.repo}"
    if parsed.kind == "refusal":
        job, _ = await runtime.enqueue_on(conn, kind="notify", branch=None, stack=None, requested_by=requested,
                                          inputs={"github": where, "status": "refused", "message": parsed.reply},
                                          source="github")
        return 202, {"jobs": [job["id"]]}
    if parsed.kind == "command":
        job, _ = await runtime.enqueue_on(conn, kind="resolve", branch=None, stack=None, requested_by=requested,
                                          inputs={"github": where, "command": parsed.command,
                                                  "argument": parsed.argument, "author": parsed.author},
                                          source="github")
        return 202, {"jobs": [job["id"]]}
    assert parsed.pull is not None
    job = await queue_for_pull(runtime, config, conn, parsed.kind, parsed.pull, where, requested)
    return 202, {"jobs": [job["id"]]}


async def queue_for_pull(runtime: Any, config: GitHubConfig, conn: Any, kind: str, pull: events.PullRequest,
                         where: Mapping[str, Any], requested_by: str) -> dict[str, Any]:
    """The job a pull request event or command asks for, under the fork policy."""
    from components import naming

    approved = await store.approved_shas(conn, pull.repo, pull.number)
    decision = events.fork_decision(fork=pull.fork, sha=pull.sha, operation=kind, allow_forks=config.allow_forks,
                                    approved_shas=approved)
    github = {**where, "sha": pull.sha, "branch": pull.branch, "base": pull.base_branch}
    if decision.mode == "refused":
        job, _ = await runtime.enqueue_on(conn, kind="notify", branch=pull.branch, stack=None,
                                          requested_by=requested_by, source="github", commit_sha=pull.sha,
                                          inputs={"github": github, "status": "refused", "message": decision.reason})
        return job
    stack = naming.stack_name(pull.branch)
    if decision.mode == "plan-only" or kind == "plan":
        job, _ = await runtime.enqueue_on(conn, kind="plan", branch=pull.branch, stack=None, requested_by=requested_by,
                                          source="github", commit_sha=pull.sha,
                                          inputs={"github": github, "message": decision.reason or None,
                                                  "from": await _parent(conn, config, pull)})
        return job
    inputs: dict[str, Any] = {"github": github}
    if kind == "up":
        inputs["from"] = await _parent(conn, config, pull)

    async def remember(conn: Any, job_id: int) -> None:
        if kind != "up":
            return
        if await store.get_environment(conn, pull.branch) is None:
            await store.upsert_environment(conn, pull.branch, stack, status="pending", parent=inputs["from"],
                                           github_repo=pull.repo, github_pr=pull.number, last_job_id=job_id)
        else:
            await store.update_environment(conn, pull.branch, github_repo=pull.repo, github_pr=pull.number,
                                           last_job_id=job_id)

    job, _ = await runtime.enqueue_on(conn, kind=kind, branch=pull.branch, stack=stack, requested_by=requested_by,
                                      inputs=inputs, source="github", commit_sha=pull.sha, after_insert=remember)
    return job


async def _parent(conn: Any, config: GitHubConfig, pull: events.PullRequest) -> str | None:
    """The parent setting, else the base branch's environment if the service has one, else none (fresh)."""
    if config.parent:
        return config.parent
    if pull.base_branch and pull.base_branch != pull.branch and await store.get_environment(conn, pull.base_branch):
        return pull.base_branch
    return None


# ------------------------------------------------------------------ jobs (worker side, in a thread)


class PullRequestJobs:
    """What a worker does for pull-request jobs: checkout, resolve commands, and keep GitHub told."""

    def __init__(self, config: GitHubConfig, runtime: Any) -> None:
        self.config = config
        self.runtime = runtime
        self.mirrors = checkout.Mirrors(config.mirrors_root, config.remote_for)

    @contextmanager
    def project_at(self, github: Mapping[str, Any], emit: Any) -> Any:
        """The repository at the job's exact commit (a worktree, removed afterwards)."""
        emit("step", f"checking out {github['repo']} at {github['sha']}")
        with self.mirrors.worktree(github["repo"], github["sha"], github.get("pr")) as path:
            yield Path(path)

    def resolve(self, row: Mapping[str, Any], emit: Any) -> dict[str, Any]:
        """A `/dbenv` comment: read the pull request's head now, then queue what it asks for."""
        inputs = row["inputs"]
        where = inputs["github"]
        with self.config.client(where.get("installation_id"), lambda line: emit("github", line)) as client:
            pull = client.get_pull_request(where["repo"], int(where["pr"]))
        command = inputs["command"]
        if command == "approve":
            sha = events.approval_for(inputs.get("argument"), pull.sha)
            if sha is None:
                return self._queue(self._notify(where, pull, events.stale_approval_reply(inputs.get("argument"),
                                                                                          pull.sha)))
            self._call(store.approve, pull.repo, pull.number, sha, inputs.get("author") or "unknown")
            emit("step", f"approved {sha} for {pull.repo}#{pull.number} by {inputs.get('author')}")
            command = "up"
        return self._queue(("pull", command, pull, where, row["requested_by"]))

    def _notify(self, where: Mapping[str, Any], pull: events.PullRequest, message: str) -> tuple[Any, ...]:
        return ("notify", where, pull, message)

    def _queue(self, what: tuple[Any, ...]) -> dict[str, Any]:
        async def queue() -> dict[str, Any]:
            async with self.runtime.pool.connection() as conn, conn.transaction():
                if what[0] == "notify":
                    _, where, pull, message = what
                    job, _ = await self.runtime.enqueue_on(
                        conn, kind="notify", branch=pull.branch, stack=None, requested_by="github", source="github",
                        inputs={"github": {**where, "sha": pull.sha, "branch": pull.branch}, "status": "refused",
                                "message": message})
                    return job
                _, command, pull, where, requested = what
                if command in ("up", "down", "plan"):
                    return await queue_for_pull(self.runtime, self.config, conn, command, pull, where, requested)
                from components import naming

                job, _ = await self.runtime.enqueue_on(
                    conn, kind=command, branch=pull.branch, stack=naming.stack_name(pull.branch),
                    requested_by=requested, source="github", commit_sha=pull.sha,
                    inputs={"github": {**where, "sha": pull.sha, "branch": pull.branch}})
                return job

        job = self._call_coroutine(queue())
        return {"queued": job["id"], "kind": job["kind"]}

    def _call(self, function: Any, *args: Any) -> Any:
        async def run() -> Any:
            async with self.runtime.pool.connection() as conn:
                return await function(conn, *args)

        return self._call_coroutine(run())

    def _call_coroutine(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.runtime.loop).result(timeout=60)

    # -------------------------------------------------------- telling GitHub

    def tell(self, row: Mapping[str, Any], status: str, emit: Any, *, outcome: Mapping[str, Any] | None = None,
             outputs: Mapping[str, Any] | None = None, message: str | None = None,
             environment: Mapping[str, Any] | None = None, parent_cost: Any = None) -> None:
        """Edit the pull request's comment and set the commit status; failures go to the job log only."""
        where = (row["inputs"] or {}).get("github") or {}
        repo = where.get("repo") or (environment or {}).get("github_repo")
        pr = where.get("pr") or (environment or {}).get("github_pr")
        if not repo or not pr:
            return
        outcome = outcome or {}
        review = outcome.get("review") or {}
        cost = outcome.get("cost") or (review.get("cost") or {}).get("total")
        data = comment.EnvironmentComment(
            repo=repo, pr=int(pr), status=status, stack=row["stack"] or (environment or {}).get("stack"),
            branch=row["branch"], sha=where.get("sha") or row["commit_sha"],
            parent=(row["inputs"] or {}).get("from") or (environment or {}).get("parent"),
            outputs=outputs or {}, cost=_cost(cost), parent_cost=parent_cost, policies=_verdicts(review),
            schema_diff=outcome.get("schema_diff"), expires_at=(outcome.get("tags") or {}).get("expires-at"),
            job_url=f"{self.config.public_url}/jobs/{row['id']}", message=message)
        try:
            with self.config.client(where.get("installation_id"), lambda line: emit("github", line)) as client:
                client.upsert_comment(repo, int(pr), comment.marker(repo, int(pr)), comment.render(data),
                                      author=self.config.bot_login)
                sha = where.get("sha") or row["commit_sha"]
                if sha:
                    client.set_status(repo, sha, comment.commit_state(status), comment.status_line(data),
                                      target_url=data.job_url)
        except (GitHubError, OSError, ValueError) as err:
            emit("github", f"could not update the pull request: {err}")


def comment_status(kind: str, state: str) -> str:
    """A finished job -> what the pull request's comment says."""
    if state == store.SUCCEEDED:
        return {"down": "removed", "plan": "plan-only", "notify": "refused"}.get(kind, "succeeded")
    return state if state in comment.STATUSES else "failed"


def _cost(figures: Mapping[str, Any] | None) -> comment.Cost | None:
    if not figures or figures.get("idle") is None:
        return None
    return comment.Cost(idle=float(figures["idle"]), asleep=float(figures.get("asleep") or 0),
                        active=float(figures.get("active", figures.get("usage")) or 0))


def _verdicts(review: Mapping[str, Any]) -> list[comment.PolicyVerdict] | None:
    policy = review.get("policy")
    if not policy:
        return None

    @dataclass(frozen=True)
    class _Violation:
        policy: str
        resource: str
        message: str

    violations = [_Violation(v["policy"], v["resource"], v["message"]) for v in policy.get("violations", [])]
    return comment.policy_verdicts(policy.get("levels") or {}, violations)


# ------------------------------------------------------------------ missed deliveries


async def sweep(runtime: Any, config: GitHubConfig) -> list[int]:
    """Ask GitHub to redeliver every failed delivery of the last 3 days the service never recorded."""
    if not (config.app_id and config.app_key):
        return []  # listing a hook's deliveries needs the App's JWT

    def listed() -> list[Any]:
        with config.client(None) as client:
            return client.list_hook_deliveries(since=datetime.now(UTC) - SWEEP_WINDOW)

    deliveries = await asyncio.to_thread(listed)
    async with runtime.pool.connection() as conn:
        known = await store.known_deliveries(conn, [d.guid for d in deliveries])
    missed = missed_deliveries(deliveries, known)

    def redeliver() -> list[int]:
        asked = []
        with config.client(None) as client:
            for delivery in missed:
                try:
                    client.redeliver(delivery.id)
                    asked.append(delivery.id)
                except GitHubError as err:
                    log.warning("github: redelivery of %s (%s) failed: %s", delivery.guid, delivery.event, err)
        return asked

    asked = await asyncio.to_thread(redeliver) if missed else []
    if asked:
        log.info("github: asked GitHub to redeliver %d missed deliveries", len(asked))
    return asked


def register_sweep(runtime: Any, config: GitHubConfig) -> None:
    task = "dbenv.schedule.github-sweep"

    @runtime.app.periodic(cron=SWEEP_CRON, periodic_id="github-sweep")
    @runtime.app.task(name=task, queue="schedules", queueing_lock=task)
    async def tick(timestamp: int) -> None:
        await sweep(runtime, config)


def cost_of(row: Mapping[str, Any] | None) -> comment.Cost | None:
    if not row or row.get("cost_idle") is None:
        return None
    return comment.Cost(idle=float(row["cost_idle"]), asleep=float(row["cost_asleep"] or 0),
                        active=float(row["cost_active"] or 0))
