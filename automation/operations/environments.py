"""Per-branch stack lifecycle on the Automation API: up, preview, down, outputs, list, reap, shared.

Everything that can be checked without the engine (branch, recipes, config, TTL, protection
rules) is checked first (``operations.prepare``); the engine is touched only after, through
``operations.engine.Engine``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from automation import workspace as ws_mod
from automation.operations.engine import (
    ASLEEP,
    AWAKE,
    TAG_BRANCH,
    TAG_CLONED,
    TAG_COMMIT,
    TAG_COST_ASLEEP,
    TAG_COST_IDLE,
    TAG_CREATED,
    TAG_EPHEMERAL,
    TAG_EXPIRES,
    TAG_NETWORK,
    TAG_OWNER,
    TAG_PARENT,
    TAG_SLEEP,
    Engine,
    clone_tags,
    config_values,
    engine_error,
    format_time,
    lock_details,
    make_tags,
    mask_outputs,
    parse_time,
    utcnow,
)
from automation.operations.errors import BadInput, NotFound, OperationFailed, Refused, StackLocked
from automation.operations.prepare import NAMESPACE, SHARED_STACK, Prepared, parent_problems, prepare_shared
from automation.workspace import Settings

_PROTECTED = re.compile(r"^(main|master|production|staging|prod.*)$")
LOCK_WAIT_DEFAULT = timedelta(minutes=15)
OnEvent = Callable[[Any], None]


def is_protected(branch: str) -> bool:
    """main, master, prod*, production and staging are never torn down without --force."""
    return bool(_PROTECTED.match(branch))


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class UpOutcome:
    stack: str
    branch: str | None
    outputs: Mapping[str, Any]
    result: str
    changes: Mapping[str, int] | None
    tags: Mapping[str, str]


@dataclass(frozen=True)
class PreviewOutcome:
    stack: str
    changes: Mapping[str, int]
    policy_pack: str | None


@dataclass(frozen=True)
class DownOutcome:
    stack: str
    branch: str | None
    existed: bool
    changes: Mapping[str, int] | None = None


@dataclass(frozen=True)
class EnvInfo:
    stack: str
    branch: str | None
    ephemeral: bool
    created_at: datetime | None
    expires_at: datetime | None
    owner: str | None
    commit: str | None
    resource_count: int | None
    last_result: str | None
    last_update: datetime | None
    locked: bool
    network: str | None = None
    now: datetime = field(default_factory=utcnow, repr=False)
    tags: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def parent(self) -> str | None:
        return self.tags.get(TAG_PARENT)

    @property
    def cloned_at(self) -> datetime | None:
        return parse_time(self.tags.get(TAG_CLONED))

    @property
    def sleep_state(self) -> str:
        return self.tags.get(TAG_SLEEP, AWAKE)

    @property
    def monthly_cost(self) -> float | None:
        """What still bills: the idle estimate while awake, the asleep one while asleep."""
        return self.cost_asleep if self.sleep_state == ASLEEP else self.cost_idle

    @property
    def cost_idle(self) -> float | None:
        """The idle monthly estimate `dbenv up` recorded on the stack."""
        return _tag_money(self.tags.get(TAG_COST_IDLE))

    @property
    def cost_asleep(self) -> float | None:
        return _tag_money(self.tags.get(TAG_COST_ASLEEP))

    @property
    def expired(self) -> bool:
        return self.ephemeral and self.expires_at is not None and self.expires_at <= self.now

    @property
    def age(self) -> timedelta | None:
        return self.now - self.created_at if self.created_at else None

    def to_json(self) -> dict[str, Any]:
        age = self.age
        return {
            "stack": self.stack, "branch": self.branch, "ephemeral": self.ephemeral,
            "created_at": format_time(self.created_at) if self.created_at else None,
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
            "age_seconds": int(age.total_seconds()) if age is not None else None,
            "expired": self.expired, "locked": self.locked, "owner": self.owner, "commit": self.commit,
            "resource_count": self.resource_count, "last_result": self.last_result,
            "last_update": format_time(self.last_update) if self.last_update else None,
            "parent": self.parent,
            "cloned_at": format_time(self.cloned_at) if self.cloned_at else None,
            "sleep": self.sleep_state,
            "monthly_cost": self.monthly_cost,
        }


@dataclass(frozen=True)
class ReapResult:
    stack: str
    branch: str | None
    status: str  # destroyed | failed | would-destroy | skipped
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "branch": self.branch, "status": self.status, "detail": self.detail}


class _Recorder:
    """Keeps what a failure message needs (failed resources, error diagnostics) and forwards events."""

    def __init__(self, forward: OnEvent | None) -> None:
        self.forward = forward
        self.failed: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            if event.res_op_failed_event is not None:
                meta = event.res_op_failed_event.metadata
                self.failed.append(f"{meta.type} {meta.urn.rsplit('::', 1)[-1]}")
            diag = event.diagnostic_event
            if diag is not None and diag.severity == "error" and diag.message.strip():
                self.errors.append(diag.message.strip())
        if self.forward is not None:
            self.forward(event)


# ------------------------------------------------------------------ the service


class Environments:
    """The lifecycle of branch stacks and the shared stack."""

    def __init__(self, settings: Settings, engine: Engine | None = None, *, local: Any = None,
                 identity: Callable[[], tuple[str, str | None]] | None = None,
                 clock: Callable[[], datetime] = utcnow, sleep: Callable[[float], None] = time.sleep,
                 lock_wait: timedelta = LOCK_WAIT_DEFAULT, read_only: bool = False) -> None:
        self.settings = settings
        self.engine = engine or Engine(settings, read_only=read_only)
        self._local = local
        self._identity = identity or _git_identity
        self.clock = clock
        self.sleep = sleep
        self.lock_wait = lock_wait
        self._start_lock = threading.Lock()

    def _no_state(self) -> bool:
        no_state = getattr(self.engine, "no_state", None)
        return bool(no_state and no_state())

    # -- programs

    def provider_settings(self) -> Any:
        """The local target points every service the recipes use at the moto server (started once)."""
        if self.settings.target != "local":
            return None
        from automation import local_aws
        from components.recipes import ProviderSettings

        with self._start_lock:  # reap destroys in parallel: start one server, not several
            endpoint = self.local.ensure_running()
        return ProviderSettings(endpoint_url=endpoint, services=local_aws.SERVICES,
                                access_key=local_aws.ACCESS_KEY, secret_key=local_aws.SECRET_KEY)

    @property
    def local(self) -> Any:
        if self._local is None:
            from automation.local_aws import LocalAws

            self._local = LocalAws(self.settings.local_dir)
        return self._local

    def branch_program(self) -> Callable[[], None]:
        provider = self.provider_settings()

        def program() -> None:
            from components import recipes

            recipes.export(recipes.build(recipes.read_stack_config(), provider))

        return program

    def shared_program(self) -> Callable[[], None]:
        provider = self.provider_settings()

        def program() -> None:
            from components import recipes

            recipes.export(recipes.build_shared(recipes.read_shared_config(), provider))

        return program

    def policy_packs(self) -> list[str] | None:
        pack = self.settings.policy_pack_dir()
        return [str(pack)] if pack else None

    def policy_pack_configs(self) -> list[str] | None:
        """The pack's default config (its exemptions) beside the pack, as `dbenv policy check` loads it."""
        from automation.planning.policy_check import POLICY_CONFIG_FILE

        pack = self.settings.policy_pack_dir()
        config = pack / POLICY_CONFIG_FILE if pack else None
        return [str(config)] if config is not None and config.is_file() else None

    # -- commands

    def up(self, prepared: Prepared, *, on_event: OnEvent | None = None, wait: bool = False,
           hooks: Any = None, on_line: Callable[[str], None] | None = None) -> UpOutcome:
        self.engine.command()  # a missing CLI is reported before anything starts
        self.check_parent(prepared)
        if prepared.shared_network:
            self.ensure_shared(on_event=on_event)
        self._preflight(prepared)
        program = self.shared_program() if prepared.stack == SHARED_STACK else self.branch_program()
        recorder = _Recorder(on_event)

        def attempt() -> tuple[Any, dict[str, str]]:
            stack = self.engine.stack(prepared.stack, program)
            self._sync_config(stack, prepared.config)
            tags = self._sync_tags(stack, prepared)
            owner_commit = tags.get(TAG_COMMIT, "")
            result = stack.up(on_event=recorder, color="never", policy_packs=self.policy_packs(),
                              policy_pack_configs=self.policy_pack_configs(),
                              message=f"dbenv up {prepared.branch or prepared.stack} @ {owner_commit}")
            return result, tags

        result, tags = self._guarded(prepared.stack, prepared.branch, attempt, wait, recorder, "update")
        changes = _changes(result.summary.resource_changes)
        if hooks:
            # A clone gets post_clone (once: the hooks record what ran in the database), a database
            # made without a parent gets seed; both then migrate.
            self.run_data_hooks(prepared, result.outputs, hooks, on_line=on_line or (lambda _: None),
                                cloned=prepared.parent is not None)
        return UpOutcome(prepared.stack, prepared.branch, result.outputs, result.summary.result, changes, tags)

    def preview(self, prepared: Prepared, *, on_event: OnEvent | None = None, wait: bool = False) -> PreviewOutcome:
        self.engine.command()
        self.check_parent(prepared)
        self._preflight(prepared)
        program = self.shared_program() if prepared.stack == SHARED_STACK else self.branch_program()
        recorder = _Recorder(on_event)
        packs = self.policy_packs()

        def attempt() -> Any:
            stack = self.engine.stack(prepared.stack, program)
            self._sync_config(stack, prepared.config)
            return stack.preview(on_event=recorder, color="never", policy_packs=packs,
                                 policy_pack_configs=self.policy_pack_configs())

        result = self._guarded(prepared.stack, prepared.branch, attempt, wait, recorder, "preview")
        return PreviewOutcome(prepared.stack, _changes(result.change_summary) or {},
                              packs[0] if packs else None)

    def down(self, branch: str, *, force: bool = False, on_event: OnEvent | None = None,
             wait: bool = False) -> DownOutcome:
        from components import naming

        try:
            naming.validate_branch(branch)
        except naming.InvalidName as err:
            raise BadInput(str(err)) from None
        if is_protected(branch) and not force:
            raise Refused(f"{branch!r} is a protected branch (main, master, prod*, production, staging): "
                          "pass --force to tear it down anyway")
        return self._destroy(naming.stack_name(branch), branch, force=force, on_event=on_event, wait=wait)

    def _destroy(self, stack_name: str, branch: str | None, *, force: bool, on_event: OnEvent | None,
                 wait: bool, require_ephemeral: bool = True) -> DownOutcome:
        try:
            stack = self.engine.stack(stack_name, None, create=False)
        except self.engine.auto.StackNotFoundError:
            return DownOutcome(stack_name, branch, existed=False)
        tags = stack.list_tags()
        if require_ephemeral and tags.get(TAG_EPHEMERAL) != "true" and not force:
            raise Refused(f"stack {stack_name} is not tagged ephemeral=true (it was not made by `dbenv up`): "
                          "pass --force to destroy it anyway")
        program = self.shared_program() if stack_name == SHARED_STACK else self.branch_program()
        recorder = _Recorder(on_event)

        def attempt() -> Any:
            # run_program: the local endpoint URL lives in the provider's state; running the
            # program hands destroy the current one.
            return stack.destroy(on_event=recorder, color="never", remove=True, program=program,
                                 run_program=True if self.settings.target == "local" else None)

        result = self._guarded(stack_name, branch, attempt, wait, recorder, "destroy")
        return DownOutcome(stack_name, branch, existed=True, changes=_changes(result.summary.resource_changes))

    def outputs(self, stack_name: str, *, show_secrets: bool = False) -> dict[str, Any]:
        if self._no_state():
            raise NotFound(f"no environment {stack_name}: run `dbenv up` first")
        try:
            stack = self.engine.stack(stack_name, None, create=False)
        except self.engine.auto.StackNotFoundError:
            raise NotFound(f"no environment {stack_name}: run `dbenv up` first") from None
        return mask_outputs(stack.outputs(), show_secrets)

    def cancel(self, stack_name: str) -> None:
        try:
            stack = self.engine.stack(stack_name, None, create=False)
        except self.engine.auto.StackNotFoundError:
            raise NotFound(f"no environment {stack_name}") from None
        try:
            stack.cancel()
        except self.engine.auto.CommandError as err:
            raise OperationFailed(f"{stack_name}: cancel failed: {engine_error(err)}", stack=stack_name) from None

    def list(self) -> list[EnvInfo]:
        """Every stack of the project, with its dbenv tags and last update."""
        if self._no_state():
            return []
        workspace = self.engine.workspace()
        now = self.clock()
        infos = []
        for summary in workspace.list_stacks():
            tags = workspace.list_tags(summary.name)
            last = self._last_update(summary.name)
            infos.append(EnvInfo(
                stack=summary.name, branch=tags.get(TAG_BRANCH), ephemeral=tags.get(TAG_EPHEMERAL) == "true",
                created_at=parse_time(tags.get(TAG_CREATED)), expires_at=parse_time(tags.get(TAG_EXPIRES)),
                owner=tags.get(TAG_OWNER), commit=tags.get(TAG_COMMIT), resource_count=summary.resource_count,
                last_result=last.result if last else None,
                last_update=_aware(last.end_time or last.start_time) if last else _aware(summary.last_update),
                locked=bool(summary.update_in_progress) or self._lock_files(summary.name)
                or (last is not None and last.result == "in-progress"),
                network=tags.get(TAG_NETWORK),
                now=now,
                tags=tags,
            ))
        return sorted(infos, key=lambda e: e.stack)

    def reap(self, *, dry_run: bool = False, older_than: timedelta | None = None,
             on_result: Callable[[ReapResult], None] | None = None) -> list[ReapResult]:
        """Destroy and remove expired ephemeral stacks, ``settings.parallel`` at a time."""
        now = self.clock()
        candidates = [env for env in self.list() if env.ephemeral and env.stack != SHARED_STACK
                      and (env.expired or (older_than is not None and env.age is not None and env.age >= older_than))]
        candidates.sort(key=lambda env: (env.expires_at or now, env.stack))
        results: list[ReapResult] = []

        def report(result: ReapResult) -> None:
            results.append(result)
            if on_result is not None:
                on_result(result)

        runnable = []
        for env in candidates:
            if env.branch and is_protected(env.branch):
                report(ReapResult(env.stack, env.branch, "skipped", "protected branch: use `dbenv down --force`"))
            elif dry_run:
                report(ReapResult(env.stack, env.branch, "would-destroy", _expiry_note(env, now)))
            else:
                runnable.append(env)
        if not runnable:
            return results
        with ThreadPoolExecutor(max_workers=self.settings.parallel, thread_name_prefix="dbenv-reap") as pool:
            futures = {pool.submit(self._reap_one, env): env for env in runnable}
            for future in as_completed(futures):
                report(future.result())
        return results

    def _reap_one(self, env: EnvInfo) -> ReapResult:
        try:
            outcome = self._destroy(env.stack, env.branch, force=False, on_event=None, wait=False)
        except (OperationFailed, Refused, NotFound) as err:
            return ReapResult(env.stack, env.branch, "failed", str(err))
        except Exception as err:  # noqa: BLE001 - one stack's surprise must not stop the others
            return ReapResult(env.stack, env.branch, "failed", f"{type(err).__name__}: {err}")
        return ReapResult(env.stack, env.branch, "destroyed" if outcome.existed else "gone",
                          _changes_note(outcome.changes))

    # -- the parent of a clone

    def check_parent(self, prepared: Prepared) -> dict[str, Any]:
        """Before anything is created: the parent exists, is not this branch's own clone, and has each
        database this stack clones on the same engine major (DynamoDB: with point-in-time recovery;
        MySQL: with automated backups). BadInput naming what is missing; the parent's outputs."""
        if prepared.parent is None or prepared.parent_stack is None:
            return {}
        where = f"parent {prepared.parent!r} (stack {prepared.parent_stack})"
        try:
            stack = self.engine.stack(prepared.parent_stack, None, create=False)
        except self.engine.auto.StackNotFoundError:
            raise BadInput(f"{where} does not exist: deploy it first (`dbenv up --branch {prepared.parent}`) "
                           "or name another parent") from None
        grandparent = stack.list_tags().get(TAG_PARENT)
        if grandparent is not None and grandparent == prepared.branch:
            raise BadInput(f"{where} is itself a clone of {prepared.branch!r}: a branch cannot be the parent of "
                           "its own parent")
        outputs = mask_outputs(stack.outputs())
        problems = parent_problems(prepared.stack_config, outputs)
        if problems:
            raise BadInput(f"{where} cannot be cloned: {'; '.join(problems)}")
        return outputs

    # -- data hooks (post_clone, seed, migrate) on the branch database

    def run_data_hooks(self, prepared: Prepared, outputs: Mapping[str, Any], hooks: Any, *,
                       on_line: Callable[[str], None], cloned: bool = False) -> None:
        """After the engine's up: OperationFailed (exit 1) on a failure; the environment stays."""
        from automation.runbooks import access, db
        from automation.runbooks import hooks as data_hooks

        if self.settings.target == "local":
            on_line("post_clone/seed/migrate skipped: the local target's databases are API records "
                    "with no database server behind them")
            return
        try:
            import boto3

            target = access.from_outputs(mask_outputs(outputs), recipe=None, region=prepared.region,
                                         client=lambda service: boto3.client(service, region_name=prepared.region),
                                         data_api=False, label=prepared.stack)
            data_hooks.run(hooks, target, cloned=cloned, on_line=on_line, cwd=self.settings.project_dir)
        except (db.DbError, data_hooks.HookFailed) as err:
            raise OperationFailed(f"{prepared.stack}: deployed, then {err}", stack=prepared.stack) from None

    # -- the shared stack

    def shared_exists(self) -> bool:
        try:
            stack = self.engine.stack(SHARED_STACK, None, create=False)
        except self.engine.auto.StackNotFoundError:
            return False
        return "network" in stack.outputs()

    def ensure_shared(self, *, on_event: OnEvent | None = None) -> bool:
        """Deploy the shared stack on first need; True if it had to be created."""
        if self.shared_exists():
            return False
        self.up(prepare_shared(self.settings), on_event=on_event)
        return True

    def shared_down(self, *, force: bool = False, on_event: OnEvent | None = None, wait: bool = False) -> DownOutcome:
        users = [env.stack for env in self.list() if env.stack != SHARED_STACK and env.network == "shared"]
        if users and not force:
            raise Refused(f"the shared stack is used by {', '.join(users)}: tear those down first, or pass --force")
        return self._destroy(SHARED_STACK, None, force=True, on_event=on_event, wait=wait, require_ephemeral=False)

    # -- helpers

    def _preflight(self, prepared: Prepared) -> None:
        from automation.operations import preflight

        try:
            preflight.check(prepared.config, prepared.recipes, prepared.region, self.provider_settings())
        except preflight.PreflightError as err:
            raise BadInput(str(err)) from None

    def _sync_config(self, stack: Any, config: Mapping[str, Any]) -> None:
        """Make the stack's config exactly ``config``: set every key, drop our stale ones."""
        auto = self.engine.auto
        wanted = config_values(config)
        current = stack.get_all_config()
        stale = [key for key in current if key.startswith(f"{NAMESPACE}:") and key not in wanted]
        if stale:
            stack.remove_all_config(stale)
        stack.set_all_config({key: auto.ConfigValue(value=value) for key, value in wanted.items()})

    def _sync_tags(self, stack: Any, prepared: Prepared) -> dict[str, str]:
        """Tag before deploying: a failed first deploy still leaves a stack that reap can find."""
        existing = stack.list_tags()
        owner, commit = self._identity()
        if prepared.ephemeral:
            tags = make_tags(branch=prepared.branch or prepared.stack, now=self.clock(), ttl=prepared.ttl,
                             owner=owner, commit=commit, existing=existing, shared_network=prepared.shared_network)
        else:
            tags = {TAG_EPHEMERAL: "false", TAG_OWNER: owner or "unknown", TAG_COMMIT: commit or "unknown",
                    TAG_CREATED: existing.get(TAG_CREATED) or format_time(self.clock())}
        tags.update(clone_tags(prepared.parent, now=self.clock(), existing=existing))
        for key, value in tags.items():
            if existing.get(key) != value:
                stack.set_tag(key, value)
        return tags

    def _guarded(self, stack_name: str, branch: str | None, attempt: Callable[[], Any], wait: bool,
                 recorder: _Recorder, verb: str) -> Any:
        """Run ``attempt``; map engine errors; with ``wait``, retry a locked stack with backoff."""
        auto = self.engine.auto
        delay, waited = 2.0, 0.0
        while True:
            try:
                return attempt()
            except auto.ConcurrentUpdateError as err:
                if not wait or waited >= self.lock_wait.total_seconds():
                    raise StackLocked(self._locked_message(stack_name, branch, err, waited), stack=stack_name) from None
                self.sleep(delay)
                waited += delay
                delay = min(delay * 2, 60.0)
            except auto.CommandError as err:
                detail = recorder.errors[0] if recorder.errors else engine_error(err)
                failed = tuple(dict.fromkeys(recorder.failed))
                where = f" (failed: {', '.join(failed)})" if failed else ""
                raise OperationFailed(f"{stack_name}: {verb} failed: {detail}{where}", stack=stack_name,
                                      failed_resources=failed) from None

    def _locked_message(self, stack_name: str, branch: str | None, err: BaseException, waited: float) -> str:
        lock = lock_details(err)
        files = self._lock_file_names(stack_name)
        where = lock or (f"lock file {files[0]}" if files else "another update is in progress")
        target = f"--branch {branch}" if branch else f"--stack {stack_name}"
        after = f" after waiting {waited:.0f}s" if waited else ""
        return (f"stack {stack_name} is locked{after} ({where}); if no update is running, clear the lock with "
                f"`dbenv cancel {target}`, or retry with --wait")

    def _lock_file_names(self, stack_name: str) -> list[str]:
        lock_dir = self.settings.lock_dir(stack_name)
        if lock_dir is None or not lock_dir.is_dir():
            return []
        return sorted(str(p) for p in lock_dir.iterdir())

    def _lock_files(self, stack_name: str) -> bool:
        return bool(self._lock_file_names(stack_name))

    def _last_update(self, stack_name: str) -> Any:
        try:
            stack = self.engine.stack(stack_name, None, create=False)
            return stack.info(show_secrets=False)
        except self.engine.auto.CommandError:
            return None



def _git_identity() -> tuple[str, str | None]:
    from automation import gitinfo

    return gitinfo.current_user(), gitinfo.current_commit()


def _tag_money(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _changes(op_map: Mapping[Any, int] | None) -> dict[str, int] | None:
    if op_map is None:
        return None
    return {str(getattr(op, "value", op)): count for op, count in op_map.items()}


def _changes_note(changes: Mapping[str, int] | None) -> str:
    if not changes:
        return ""
    return ", ".join(f"{count} {op}" for op, count in sorted(changes.items()) if count)


def _expiry_note(env: EnvInfo, now: datetime) -> str:
    if env.expires_at is not None and env.expires_at <= now:
        return f"expired {ws_mod.format_duration(now - env.expires_at)} ago"
    return f"older than requested (age {ws_mod.format_duration(env.age or timedelta(0))})"
