"""A job row -> the operations layer call the CLI makes for the same verb, and what the job keeps of it.

This is the only place the service calls ``automation.operations``: ``up``, ``down``, ``sleep``,
``wake``, ``preview`` (drift: a preview that expects no changes), each with the same settings
resolution as ``dbenv`` (``workspace.load_settings``: the job's inputs act as flags).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from automation.jobs import store

Emit = Callable[..., None]
SHARED_STACK = "shared"
log = logging.getLogger("dbenv.service")


class Operations:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.pulls: Any = None  # PullRequestJobs, when the GitHub webhook is configured

    def attach(self, runtime: Any) -> None:
        github = getattr(self.config, "github", None)
        if github is not None:
            from automation.jobs.pull_requests import PullRequestJobs

            self.pulls = PullRequestJobs(github, runtime)

    # ------------------------------------------------------------ settings

    def settings_for(self, row: Mapping[str, Any], checkout: Path | None = None) -> Any:
        """The job's settings: its inputs act as flags. A pull request's job reads the project (dbenv.toml,
        hooks, usage file) from the checkout at its commit and keeps state in the service's state folder."""
        from automation import workspace
        from automation.jobs.runtime import JOB_ENV

        inputs = row["inputs"] or {}
        flags = {"branch": row["branch"], "recipes": inputs.get("recipes"), "ttl": inputs.get("ttl"),
                 "parent": inputs.get("from")}
        env = {**self.config.env, JOB_ENV: str(row["id"])}
        if checkout is not None:
            home = workspace.load_settings(self.config.project_dir, env=self.config.env)
            env["DBENV_STATE_DIR"] = str(home.state_root)
        return workspace.load_settings(checkout or self.config.project_dir, flags=flags, env=env)

    # ------------------------------------------------------------ run (a worker thread)

    def run(self, row: Mapping[str, Any], emit: Emit) -> Any:
        from automation.jobs.runtime import Result

        kind, inputs = row["kind"], row["inputs"] or {}
        github = inputs.get("github")
        if kind in ("resolve", "notify", "plan") and self.pulls is None:
            raise ValueError(f"a {kind} job needs the GitHub settings (github_webhook_secret)")
        if kind == "resolve":
            return Result(outcome=self.pulls.resolve(row, emit))
        if kind == "notify":
            return Result(outcome={"message": inputs.get("message")})
        if github and self.pulls is not None:
            with self.pulls.project_at(github, emit) as path:
                return self.operate(row, emit, path)
        return self.operate(row, emit, None)

    def operate(self, row: Mapping[str, Any], emit: Emit, checkout: Path | None) -> Any:
        from automation.jobs.runtime import Result
        from automation.operations import lifecycle
        from automation.operations.events import Tracker, describe

        settings = self.settings_for(row, checkout)
        tracker = Tracker()

        def on_event(event: Any) -> None:
            for kind, item in tracker.apply(event):
                line = describe(kind, item, tracker)
                if line:
                    emit("engine", line, {"what": kind})

        def on_line(line: str) -> None:
            emit("step", line)

        kind, inputs = row["kind"], row["inputs"] or {}
        if kind == "plan":
            from automation.planning import review

            prepared = lifecycle.validate(settings)
            result = review.review(prepared, settings.project_dir)
            return Result(outcome={"stack": prepared.stack, "review": result,
                                   "cost": result["cost"]["monthly"]})
        if kind == "up":
            deployed = lifecycle.up(settings, config_values=inputs.get("config"), on_event=on_event, on_line=on_line)
            outcome, estimate = deployed.outcome, deployed.estimate
            cost = _cost(estimate)
            tags = dict(outcome.tags)
            extra = self._pull_request_review(settings, inputs, on_line) if inputs.get("github") else {}
            return Result(
                outcome={"stack": outcome.stack, "result": outcome.result, "changes": dict(outcome.changes or {}),
                         "cost": cost, "tags": tags, **extra},
                outputs=deployed.outputs,
                environment={"recipes": list(inputs.get("recipes_resolved") or []), "status": "ready",
                             "owner": tags.get("owner"), "commit_sha": row["commit_sha"] or tags.get("commit"),
                             "parent": tags.get("parent"), "ephemeral": tags.get("ephemeral") == "true",
                             "created_at": _time(tags.get("created-at")), "expires_at": _time(tags.get("expires-at")),
                             "asleep": False, "cost_idle": cost.get("idle"), "cost_asleep": cost.get("asleep"),
                             "cost_active": cost.get("active"), "outputs": deployed.outputs})
        if kind == "down":
            down = lifecycle.down(settings, on_event=on_event)
            return Result(outcome={"stack": down.stack, "existed": down.existed, "changes": dict(down.changes or {})})
        if kind in ("sleep", "wake"):
            report = getattr(lifecycle, kind)(settings, on_line=on_line)
            data = report.to_json() if hasattr(report, "to_json") else {}
            return Result(outcome={"report": data}, environment={"asleep": kind == "sleep",
                                                                 "status": "asleep" if kind == "sleep" else "ready"})
        if kind in ("preview", "drift"):
            preview = lifecycle.preview(settings, config_values=inputs.get("config"), on_event=on_event,
                                        on_line=on_line)
            changes = {op: n for op, n in dict(preview.changes).items() if n and op != "same"}
            drift = ", ".join(f"{n} {op}" for op, n in sorted(changes.items())) or "none"
            return Result(outcome={"changes": dict(preview.changes), "drift": drift},
                          environment={"drift": drift, "drift_checked_at": datetime.now(UTC)} if kind == "drift"
                          else None)
        raise ValueError(f"unknown job kind {kind!r}")

    def _pull_request_review(self, settings: Any, inputs: Mapping[str, Any], on_line: Any) -> dict[str, Any]:
        """What a pull request's comment adds to an up: the offline policy verdicts, and the schema diff."""
        from automation.operations import lifecycle
        from automation.planning import review

        extra: dict[str, Any] = {}
        try:
            extra["review"] = {"policy": review.review(lifecycle.validate(settings), settings.project_dir)["policy"]}
        except Exception as err:  # noqa: BLE001 - the comment says what could not be checked
            on_line(f"policy verdicts unavailable: {' '.join(str(err).split())[:300]}")
        if inputs.get("from"):
            extra["schema_diff"] = lifecycle.schema_diff_text(settings, inputs["from"])
        return extra

    def backend_environments(self) -> list[dict[str, Any]] | None:
        """Every branch stack the Pulumi backend holds, as `dbenv ls` reads it (None when it cannot be read)."""
        from automation import workspace
        from automation.operations import errors, lifecycle
        from automation.operations.engine import ASLEEP

        try:
            settings = workspace.load_settings(self.config.project_dir, env=self.config.env)
            infos = lifecycle.environments_for(settings, read_only=True).list()
        except (*errors.USAGE, *errors.FAILED) as err:
            log.info("environments sync skipped: %s", " ".join(str(err).split())[:200])
            return None
        return [{"branch": info.branch, "stack": info.stack, "owner": info.owner, "commit_sha": info.commit,
                 "parent": info.parent, "ephemeral": info.ephemeral, "created_at": info.created_at,
                 "expires_at": info.expires_at, "asleep": info.sleep_state == ASLEEP,
                 "cost_idle": info.cost_idle, "cost_asleep": info.cost_asleep}
                for info in infos if info.branch and info.stack != SHARED_STACK]

    def describe_failure(self, err: BaseException) -> str:
        from automation.operations import errors

        if isinstance(err, errors.USAGE + errors.FAILED):
            return " ".join(str(err).split())
        from automation.jobs.runtime import _job_error

        return _job_error(err)

    def unlock(self, row: Mapping[str, Any]) -> str:
        """After a lost job: make the stack usable again the way `dbenv cancel` does."""
        from automation.operations import errors, lifecycle

        try:
            settings = self.settings_for(row)
            lifecycle.environments_for(settings).cancel(row["stack"])
        except errors.NotFound:
            return f"stack {row['stack']}: no stack to unlock"
        except Exception as err:  # noqa: BLE001 - recovery is best effort and says what it could not do
            return f"stack {row['stack']}: could not clear the lock ({' '.join(str(err).split())[:200]}); " \
                   "run `dbenv cancel` once no update runs"
        return (f"stack {row['stack']}: lock cleared; if the engine was mid-operation, the next update warns of "
                "pending operations and a refresh clears them")

    # ------------------------------------------------------------ record (the event loop)

    async def record(self, conn: Any, row: Mapping[str, Any], state: str, result: Any) -> None:
        """Keep the environment row in step with what the job did."""
        branch, stack, kind = row["branch"], row["stack"], row["kind"]
        if not branch or not stack:
            return
        if kind == "down" and state == store.SUCCEEDED:
            await store.delete_environment(conn, branch)
            return
        env = getattr(result, "environment", None) if state == store.SUCCEEDED else None
        existing = await store.get_environment(conn, branch)
        if env:
            if existing is None:
                await store.upsert_environment(conn, branch, stack, last_job_id=row["id"], **env)
            else:
                await store.update_environment(conn, branch, last_job_id=row["id"], **env)
        elif existing is not None:
            status = existing["status"] if state == store.SUCCEEDED else f"{kind} {state}"
            await store.update_environment(conn, branch, last_job_id=row["id"], status=status)
        elif kind == "up":
            await store.upsert_environment(conn, branch, stack, status=f"up {state}", last_job_id=row["id"])


def _cost(estimate: Any) -> dict[str, float]:
    if estimate is None:
        return {}
    # cost.py's scenarios: idle (deployed, no traffic), usage (the usage profile: active), asleep.
    return {"idle": round(estimate.total("idle"), 2), "asleep": round(estimate.total("asleep"), 2),
            "active": round(estimate.total("usage"), 2)}


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
