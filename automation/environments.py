"""Per-branch stack lifecycle on the Automation API: up, preview, down, outputs, list, reap, shared.

Everything that can be checked without the engine (branch, recipes, config,
TTL, protection rules) is checked first; the engine is touched only after.
The one seam to Pulumi is ``Engine``: it turns settings into
``pulumi.automation`` calls (``create_or_select_stack``, ``select_stack``,
``LocalWorkspace``), and tests hand it a stand-in with the same functions,
methods, results and errors.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from automation import workspace as ws_mod
from automation.workspace import PROJECT, Settings, SettingsError

NAMESPACE = PROJECT
SHARED_STACK = "shared"
SECRET_MASK = "[secret]"
TAG_BRANCH, TAG_CREATED, TAG_EXPIRES = "branch", "created-at", "expires-at"
TAG_EPHEMERAL, TAG_OWNER, TAG_COMMIT, TAG_NETWORK = "ephemeral", "owner", "commit", "network"
# A clone's parent environment (its branch) and when its databases were cloned from it.
TAG_PARENT, TAG_CLONED = "parent", "cloned-at"
# Whether the branch's databases sleep (automation.sleep), and the monthly estimate `dbenv up` recorded.
TAG_SLEEP, TAG_SLEPT_AT, TAG_AWAKE_SINCE = "sleep-state", "slept-at", "awake-since"
TAG_COST_IDLE, TAG_COST_ASLEEP = "cost-idle", "cost-asleep"
ASLEEP, AWAKE = "asleep", "awake"
_PROTECTED = re.compile(r"^(main|master|production|staging|prod.*)$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LOCK_WAIT_DEFAULT = timedelta(minutes=15)
OnEvent = Callable[[Any], None]


class BadInput(ValueError):
    """Bad branch, recipes, config, TTL or target: exit 2, nothing touched."""


class Refused(Exception):
    """A protection rule said no (protected branch, not ephemeral, dependants): exit 2, nothing touched."""


class OperationFailed(Exception):
    """The engine reported a failure: exit 1."""

    def __init__(self, message: str, *, stack: str, failed_resources: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.stack = stack
        self.failed_resources = failed_resources


class StackLocked(OperationFailed):
    """Another update holds the stack's lock."""


class NotFound(Exception):
    """No such stack."""


# ------------------------------------------------------------------ pure rules


def is_protected(branch: str) -> bool:
    """main, master, prod*, production and staging are never torn down without --force."""
    return bool(_PROTECTED.match(branch))


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def make_tags(*, branch: str, now: datetime, ttl: timedelta, owner: str, commit: str | None,
              existing: Mapping[str, str], shared_network: bool) -> dict[str, str]:
    """The dbenv tags of a branch stack. created-at survives re-deploys; every up renews expires-at."""
    created = existing.get(TAG_CREATED) if parse_time(existing.get(TAG_CREATED)) else None
    return {
        TAG_BRANCH: branch,
        TAG_CREATED: created or format_time(now),
        TAG_EXPIRES: format_time(now + ttl),
        TAG_EPHEMERAL: "true",
        TAG_OWNER: owner or "unknown",
        TAG_COMMIT: commit or "unknown",
        TAG_NETWORK: "shared" if shared_network else "own",
    }


def clone_tags(parent: str | None, *, now: datetime, existing: Mapping[str, str]) -> dict[str, str]:
    """parent and cloned-at of a clone; cloned-at is the first up from that parent (the databases
    are restored once: their restore inputs are creation-only), so it survives re-deploys."""
    if parent is None:
        return {}
    kept = existing.get(TAG_CLONED) if existing.get(TAG_PARENT) == parent and parse_time(existing.get(TAG_CLONED)) \
        else None
    return {TAG_PARENT: parent, TAG_CLONED: kept or format_time(now)}


def mask_outputs(outputs: Mapping[str, Any], show_secrets: bool = False) -> dict[str, Any]:
    """``OutputValue`` map -> plain values; secret ones become ``[secret]`` unless asked for."""
    return {key: (out.value if (show_secrets or not out.secret) else SECRET_MASK) for key, out in outputs.items()}


def config_values(config: Mapping[str, Any]) -> dict[str, str]:
    """Pulumi config holds strings: structured values travel as JSON (``parse_config`` decodes them)."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def engine_error(err: BaseException) -> str:
    """The engine's own error lines from a CommandError (its text carries the CLI's stdout and stderr)."""
    text = str(err).strip()
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if "error:" in line and line[line.index("error:"):] not in lines:
            lines.append(line[line.index("error:"):])
    if lines:
        return "; ".join(lines[:3])
    return text.splitlines()[-1].strip() if text else type(err).__name__


def lock_details(err: BaseException) -> str:
    """The lock the engine names (DIY backends print the lock file, who and when)."""
    for raw in str(err).splitlines():
        if ".pulumi/locks" in raw or "created by" in raw or "Another update" in raw:
            return raw.strip()
    return ""


# ------------------------------------------------------------------ input -> stack config


@dataclass(frozen=True)
class Prepared:
    """A validated request: the stack, its Pulumi config and what it was made from."""

    stack: str
    branch: str | None
    config: dict[str, Any]
    recipes: tuple[str, ...]
    region: str
    ephemeral: bool
    shared_network: bool
    ttl: timedelta
    # The parent environment (a branch) whose databases this stack's are cloned from, and its stack.
    parent: str | None = None
    parent_stack: str | None = None
    # The parsed stack config (components.recipes.StackConfig): what is cloned, on which engines.
    stack_config: Any = field(default=None, repr=False, compare=False)


def prepare(settings: Settings, *, branch: str | None = None, recipes: str | None = None,
            config_file: Path | None = None, ephemeral: bool | None = None, check_engine: bool = True) -> Prepared:
    """Validate everything about a branch stack before any stack is touched (BadInput on any problem).

    The one place where settings become a stack config: ``dbenv plan`` and ``dbenv policy check``
    plan exactly what ``dbenv preview`` and ``dbenv up`` deploy. Precedence, per value: flags and
    ``DBENV_*`` variables, then the stack config file's own keys (``aws:region``,
    ``db-recipes:recipes``, ``db-recipes:ephemeral``), then dbenv.toml, then defaults. The keyword
    arguments act as flags (for callers from Python). ``check_engine`` False skips the checks that
    only matter to the engine (the aws target's secrets provider), for offline plans.
    """
    from automation.planning import plan as planning
    from components import naming
    from components import recipes as registry
    from components.config import ConfigError

    try:
        branch = naming.validate_branch(branch) if branch is not None else settings.branch
        if check_engine:
            ws_mod.check_aws_target(settings)
        ttl = settings.ttl
        file = config_file or settings.config_file
        base = planning.read_config_file(file) if file else {}
        chosen = _chosen(settings, "recipes", recipes, base.get(f"{NAMESPACE}:recipes"))
        if chosen is None:
            raise BadInput("choose recipes with --recipes (e.g. --recipes all), DBENV_RECIPES, `recipes` in "
                           f"dbenv.toml, or {NAMESPACE}:recipes in the --config file")
        check_recipes(chosen)
        if ephemeral is None:
            ephemeral = not _chosen(settings, "durable", None, _file_flag(base, f"{NAMESPACE}:ephemeral", invert=True))
        region = str(_chosen(settings, "region", None, base.get("aws:region")))
    except (naming.InvalidName, SettingsError, planning.PlanError) as err:
        raise BadInput(str(err)) from None
    config = planning.merge_config(base, recipes=chosen, branch=branch, ephemeral=ephemeral)
    config["aws:region"] = region
    parent = settings.values.get("parent")
    parent_stack = None
    if parent is not None:
        if parent == branch:
            raise BadInput(f"parent: branch {branch!r} cannot be its own parent: name another environment "
                           "with --from (e.g. the branch it was made from)")
        parent_stack = naming.stack_name(parent)
        config[f"{NAMESPACE}:parent"] = settings.qualified(parent_stack)
    if settings.shared_network:
        network = config.get(f"{NAMESPACE}:network") or {}
        try:
            network = json.loads(network) if isinstance(network, str) else dict(network)
        except (ValueError, TypeError):
            raise BadInput(f"{NAMESPACE}:network: expected a mapping, got {str(network)[:60]!r}") from None
        config[f"{NAMESPACE}:network"] = {**network, "shared_stack": settings.qualified(SHARED_STACK)}
    stack = naming.stack_name(branch)
    own = {key[len(NAMESPACE) + 1:]: value for key, value in config.items() if key.startswith(f"{NAMESPACE}:")}
    try:
        parsed = registry.parse_config(own, stack=stack, region=region)
    except ConfigError as err:
        raise BadInput(str(err)) from None
    return Prepared(stack=stack, branch=branch, config=config, recipes=parsed.recipes, region=region,
                    ephemeral=ephemeral, shared_network=settings.shared_network, ttl=ttl, parent=parent,
                    parent_stack=parent_stack, stack_config=parsed)


def _chosen(settings: Settings, key: str, override: Any, from_config_file: Any) -> Any:
    """A value by precedence: override (a flag from Python), flag or env, the config file, dbenv.toml, default."""
    if override is not None:
        return override
    explicit = settings.sources[key].startswith(("flag", "env"))
    if explicit or from_config_file is None:
        return settings.values[key]
    return from_config_file


def _file_flag(base: Mapping[str, Any], key: str, *, invert: bool) -> bool | None:
    """A boolean of the config file (``db-recipes:ephemeral``), inverted to the durable setting."""
    if key not in base:
        return None
    value = ws_mod._as_bool(base[key], key)  # noqa: SLF001 - the one boolean parser of settings
    return None if value is None else (not value if invert else value)


def check_recipes(selection: Any) -> None:
    """``all`` alone or known recipe names: say which name is unknown, and why ``all`` stands alone."""
    from components import recipes as registry

    if not isinstance(selection, str):
        return  # a YAML list from the config file: parse_config names its faults
    names = [part.strip() for part in selection.split(",") if part.strip()]
    valid = ", ".join(registry.RECIPE_NAMES)
    for name in names:
        if name != "all" and name not in registry.RECIPES:
            raise BadInput(f"recipes: unknown recipe {name[:60]!r} (valid: all, {valid})")
    if "all" in names and len(names) > 1:
        raise BadInput(f"recipes: 'all' already means every recipe and cannot be combined with names "
                       f"(got {selection[:80]!r}): use --recipes all, or list only the names you want")
    if not names:
        raise BadInput(f"recipes: the list is empty: use 'all' or names out of {valid}")


def prepare_shared(settings: Settings, config_file: Path | None = None) -> Prepared:
    """The shared stack's config: region and network settings only."""
    from automation.planning import plan as planning
    from components import recipes as registry
    from components.config import ConfigError

    try:
        ws_mod.check_aws_target(settings)
        base = planning.read_config_file(config_file) if config_file else {}
    except (SettingsError, planning.PlanError) as err:
        raise BadInput(str(err)) from None
    region = str(base.get("aws:region") or settings.region)
    config: dict[str, Any] = {"aws:region": region}
    if f"{NAMESPACE}:network" in base:
        config[f"{NAMESPACE}:network"] = base[f"{NAMESPACE}:network"]
    try:
        registry.parse_shared_config({k[len(NAMESPACE) + 1:]: v for k, v in config.items()
                                      if k.startswith(f"{NAMESPACE}:")}, stack=SHARED_STACK, region=region)
    except ConfigError as err:
        raise BadInput(str(err)) from None
    return Prepared(stack=SHARED_STACK, branch=None, config=config, recipes=(), region=region,
                    ephemeral=False, shared_network=False, ttl=settings.ttl)


# ------------------------------------------------------------------ the seam


class Engine:
    """Settings -> ``pulumi.automation`` stacks and workspaces, each stack in its own work dir."""

    def __init__(self, settings: Settings, *, auto: Any = None, command: Any = None, read_only: bool = False) -> None:
        self.settings = settings
        self._auto = auto
        self._command = command
        self._lock = threading.Lock()
        # Read-only commands (ls, outputs, reap --dry-run) leave no trace: their work dirs live in a
        # temporary folder, and no passphrase file is created.
        self.read_only = read_only
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def work_root(self) -> Path:
        if not self.read_only:
            return self.settings.work_root
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="dbenv-")
        return Path(self._scratch.name)

    def no_state(self) -> bool:
        """True when a read-only command finds no local state at all: nothing to read, nothing to create."""
        url = self.settings.backend_url or ""
        return self.read_only and url.startswith("file://") and not Path(url[len("file://"):]).is_dir()

    @property
    def auto(self) -> Any:
        if self._auto is None:
            import pulumi.automation as auto

            self._auto = auto
        return self._auto

    def command(self) -> Any:
        with self._lock:
            if self._command is None:
                self._command = ws_mod.pulumi_command()
            return self._command

    def options(self, work_dir: Path, program: Any = None) -> Any:
        auto = self.auto
        work_dir.mkdir(parents=True, exist_ok=True)
        url = self.settings.backend_url
        return auto.LocalWorkspaceOptions(
            work_dir=str(work_dir),
            program=program,
            env_vars=ws_mod.engine_env(self.settings, create=not self.read_only),
            secrets_provider=self.settings.secrets_provider,
            project_settings=auto.ProjectSettings(
                name=PROJECT, runtime="python", main=str(self.settings.project_dir),
                backend=auto.ProjectBackend(url=url) if url else None,
            ),
            pulumi_command=self.command(),
        )

    def stack(self, name: str, program: Any, *, create: bool = True) -> Any:
        """Create-or-select (``create``) or select the stack; StackNotFoundError passes through."""
        if self.settings.diy_backend and not self.read_only:
            # A file backend must exist before the CLI can log in to it.
            url = self.settings.backend_url or ""
            if url.startswith("file://"):
                Path(url[len("file://"):]).mkdir(parents=True, exist_ok=True)
        work_dir = self.work_root / name
        opts = self.options(work_dir, program)
        factory = self.auto.create_or_select_stack if create else self.auto.select_stack
        if program is None:
            # Without a program the API wants the work dir named, as for a program on disk.
            return factory(name, work_dir=str(work_dir), opts=opts)
        return factory(name, project_name=PROJECT, program=program, opts=opts)

    def workspace(self) -> Any:
        """A workspace for project-wide calls (list stacks, tags); it never selects a stack."""
        url = self.settings.backend_url or ""
        if url.startswith("file://") and not self.read_only:
            Path(url[len("file://"):]).mkdir(parents=True, exist_ok=True)
        opts = self.options(self.work_root / "_project")
        return self.auto.LocalWorkspace(**opts.__dict__)


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
        return _tag_money(self.tags.get(TAG_COST_ASLEEP if self.sleep_state == ASLEEP else TAG_COST_IDLE))

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
        from automation import preflight

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


def parent_problems(stack_config: Any, outputs: Mapping[str, Any]) -> list[str]:
    """What keeps a parent's outputs from being cloned into ``stack_config``'s databases (empty: nothing)."""
    from components.aurora_serverless import parse_version
    from components.branch_databases import PARENT_OUTPUTS
    from components.parts import mysql_major

    problems: list[str] = []
    for database in stack_config.cloned_databases:
        values = outputs.get(database)
        if not isinstance(values, Mapping):
            problems.append(f"it has no {database} database (output {database!r}) to clone")
            continue
        missing = [key for key in PARENT_OUTPUTS[database] if values.get(key) in (None, "")]
        if missing:
            problems.append(f"its {database} outputs lack {', '.join(missing)} (run `dbenv up` on the parent "
                            "once more to export them)")
            continue
        if database == "aurora-serverless":
            wanted = stack_config.args("aurora-serverless").engine_version
            theirs = str(values["engine_version"])
            try:
                same = parse_version(theirs)[0] == parse_version(wanted)[0]
            except ValueError:
                same = False
            if not same:
                problems.append(f"its Aurora PostgreSQL runs {theirs} and this branch wants {wanted}: a clone keeps "
                                "the parent's major version; set aurora-serverless.engine_version to the same major")
        elif database == "mysql":
            wanted = stack_config.mysql.engine_version
            theirs = str(values["engine_version"])
            try:
                same = mysql_major(theirs) == mysql_major(wanted)
            except ValueError:
                same = False
            if not same:
                problems.append(f"its RDS MySQL runs {theirs} and this branch wants {wanted}: a point-in-time "
                                "restore keeps the parent's major version; set mysql.engine_version to the same major")
            elif not int(values["backup_retention_days"] or 0):
                problems.append("its RDS MySQL keeps no automated backups (backup retention 0), which a "
                                "point-in-time restore needs")
        elif database == "dynamodb-autoscaling" and values["point_in_time_recovery"] is not True:
            problems.append(f"its DynamoDB table {values['table_name']} has point-in-time recovery off, which a "
                            "restore to the latest time needs: set dynamodb-autoscaling.point_in_time_recovery: true "
                            "on the parent (durable stacks have it on by default) and `dbenv up` it")
    return problems


def prepare_hooks(settings: Settings, prepared: Prepared) -> Any:
    """post_clone, seed and migrate from the settings, every SQL file read and checked (BadInput)."""
    from automation.runbooks import db
    from automation.runbooks import hooks as data_hooks

    names = [db.ALIASES.get(recipe, recipe) for recipe in prepared.recipes]
    engine = next((db.ENDPOINTS[name].engine for name in db.ENDPOINTS if name in names), "postgres")

    def paths(key: str) -> list[Path]:
        # load_settings made every path absolute (relative to the project, or to the cwd for flags)
        return [Path(item) for item in settings.values.get(key) or ()]

    try:
        return data_hooks.load(post_clone=paths("post_clone"), seed=paths("seed"),
                               migrate=settings.values.get("migrate"), engine=engine)
    except data_hooks.HookInputError as err:
        raise BadInput(str(err)) from None


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
