"""The one seam to Pulumi, and the dbenv tags on a stack.

``Engine`` turns settings into ``pulumi.automation`` calls (``create_or_select_stack``,
``select_stack``, ``LocalWorkspace``), each stack in its own work dir; tests hand it a stand-in
with the same functions, methods, results and errors. The pure rules beside it read and write
the tags every branch stack carries and shape what the engine returns.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from automation import workspace as ws_mod
from automation.workspace import PROJECT, Settings

SECRET_MASK = "[secret]"
TAG_BRANCH, TAG_CREATED, TAG_EXPIRES = "branch", "created-at", "expires-at"
TAG_EPHEMERAL, TAG_OWNER, TAG_COMMIT, TAG_NETWORK = "ephemeral", "owner", "commit", "network"
# A clone's parent environment (its branch) and when its databases were cloned from it.
TAG_PARENT, TAG_CLONED = "parent", "cloned-at"
# Whether the branch's databases sleep (operations.sleep), and the monthly estimate `dbenv up` recorded.
TAG_SLEEP, TAG_SLEPT_AT, TAG_AWAKE_SINCE = "sleep-state", "slept-at", "awake-since"
TAG_COST_IDLE, TAG_COST_ASLEEP = "cost-idle", "cost-asleep"
ASLEEP, AWAKE = "asleep", "awake"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# ------------------------------------------------------------------ tags and engine results


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


