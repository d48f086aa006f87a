"""Where stacks live and how the engine is reached: settings, backend, secrets, the Pulumi CLI.

Settings come from four layers, lowest first: built-in defaults, the project
file (``dbenv.toml``, or ``[tool.dbenv]`` in ``pyproject.toml``), environment
variables, and command-line flags. Every effective value remembers which
layer it came from, so ``dbenv config show`` can say why a value is what it is.

Nothing here imports ``pulumi.automation`` at module level: ``dbenv --help``
and the offline commands must start fast.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

PROJECT = "db-recipes"
STATE_DIR = ".dbenv"
CONFIG_FILE = "dbenv.toml"
PASSPHRASE_FILE = "passphrase"
TARGETS = ("local", "aws")
# Stack tags on DIY (file://, s3://) backends arrived in 3.211; inline destroy needs 3.181.
MIN_PULUMI_VERSION = "3.211.0"
INSTALL_HINT = "install it with `dbenv install-pulumi` or `curl -fsSL https://get.pulumi.com | sh`"
MAX_TTL = timedelta(days=30)
_TTL = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_TTL_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DIY_SCHEMES = ("file://", "s3://", "gs://", "azblob://")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the key, where it came from and what is allowed."""


class PulumiCliError(RuntimeError):
    """The Pulumi CLI is missing or too old."""


def parse_ttl(value: str, key: str = "ttl") -> timedelta:
    """``90m``, ``72h``, ``3d``, ``1w`` -> timedelta (at most 30 days; ephemeral means short-lived)."""
    match = _TTL.match(str(value))
    if not match:
        raise SettingsError(f"{key}: {value!r} is not a duration; use a number and a unit m, h, d or w (e.g. 72h)")
    amount, unit = int(match.group(1)), match.group(2)
    ttl = timedelta(**{_TTL_UNITS[unit]: amount})
    if ttl <= timedelta(0):
        raise SettingsError(f"{key}: {value!r} must be longer than zero")
    if ttl > MAX_TTL:
        raise SettingsError(f"{key}: {value!r} is longer than the 30d maximum for an ephemeral environment")
    return ttl


def format_duration(delta: timedelta) -> str:
    """A short human duration: ``3d4h``, ``5h12m``, ``42m`` (negative values get a leading ``-``)."""
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{sign}{days}d{hours}h"
    if hours:
        return f"{sign}{hours}h{minutes}m"
    return f"{sign}{minutes}m"


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    env: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("target", "local", "DBENV_TARGET", "local (moto server on 127.0.0.1) or aws"),
    Setting("region", "us-east-1", "DBENV_REGION", "AWS region of the stacks"),
    Setting("ttl", "72h", "DBENV_TTL", "lifetime of a branch environment before `dbenv reap` removes it"),
    Setting("recipes", None, "DBENV_RECIPES", "default --recipes ('all' or a comma-separated list)"),
    Setting("backend", None, "PULUMI_BACKEND_URL", "state backend for --target aws: s3://..., file://..., "
            "or empty for Pulumi Cloud (the local target always uses .dbenv/state)"),
    Setting("secrets_provider", None, "DBENV_SECRETS_PROVIDER", "secrets provider for --target aws "
            "(awskms://..., or empty for passphrase / Pulumi Cloud)"),
    Setting("org", "organization", "DBENV_ORG", "organization part of fully qualified stack names "
            "('organization' on file/s3 backends, your org on Pulumi Cloud)"),
    Setting("shared_network", None, "DBENV_SHARED_NETWORK", "branch stacks use the shared stack's VPC "
            "(default: false on local, true on aws)"),
    Setting("policy_pack", "policies", "DBENV_POLICY_PACK", "policy pack directory attached to up and preview"),
    Setting("parallel", 4, "DBENV_PARALLEL", "how many stacks `dbenv reap` destroys at once"),
    Setting("config", None, "DBENV_CONFIG", "default --config file (Pulumi stack config YAML)"),
    Setting("post_clone", None, "DBENV_POST_CLONE", "SQL files run once on a fresh clone, e.g. masking "
            "(a list; comma-separated in the variable)"),
    Setting("migrate", None, "DBENV_MIGRATE", "shell command run after every up with the branch database's "
            "connection in its environment (e.g. alembic upgrade head)"),
    Setting("seed", None, "DBENV_SEED", "SQL files run once on a branch database created without a parent"),
    Setting("budget", None, "DBENV_BUDGET", "USD a month: `up`/`preview` refuse a change whose idle estimate is higher"),
    Setting("sleep_after", "12h", "DBENV_SLEEP_AFTER", "`dbenv reap` sleeps a branch idle this long since its last up/wake"),
)
SETTING_KEYS = tuple(s.key for s in SETTINGS)


@dataclass(frozen=True)
class Settings:
    """The effective settings and, for each key, the layer it came from."""

    project_dir: Path
    values: Mapping[str, Any]
    sources: Mapping[str, str]
    passphrase_from_env: bool = False
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def target(self) -> str:
        return str(self.values["target"])

    @property
    def region(self) -> str:
        return str(self.values["region"])

    @property
    def ttl(self) -> timedelta:
        return parse_ttl(self.values["ttl"])

    @property
    def state_root(self) -> Path:
        return self.project_dir / STATE_DIR

    @property
    def work_root(self) -> Path:
        return self.state_root / "work"

    @property
    def local_dir(self) -> Path:
        return self.state_root / "local"

    @property
    def backend_url(self) -> str | None:
        """None means the CLI's default login (Pulumi Cloud)."""
        if self.target == "local":
            return (self.state_root / "state").resolve().as_uri()
        return self.values.get("backend") or None

    @property
    def diy_backend(self) -> bool:
        url = self.backend_url
        return url is not None and url.startswith(_DIY_SCHEMES)

    @property
    def secrets_provider(self) -> str | None:
        if self.target == "local":
            return "passphrase"
        provider = self.values.get("secrets_provider")
        if provider:
            return str(provider)
        return "passphrase" if self.diy_backend else None

    @property
    def shared_network(self) -> bool:
        value = self.values.get("shared_network")
        return self.target == "aws" if value is None else bool(value)

    @property
    def org(self) -> str:
        return str(self.values["org"])

    @property
    def parallel(self) -> int:
        return int(self.values["parallel"])

    def qualified(self, stack: str) -> str:
        """``org/project/stack``, the name StackReference wants."""
        return f"{self.org}/{PROJECT}/{stack}"

    def policy_pack_dir(self) -> Path | None:
        """The policy pack directory if it holds a pack, else None."""
        path = Path(str(self.values["policy_pack"]))
        path = path if path.is_absolute() else self.project_dir / path
        return path if (path / "PulumiPolicy.yaml").is_file() else None

    def work_dir(self, stack: str) -> Path:
        """Each stack gets its own work dir: the CLI rewrites a work dir's current-stack file."""
        return self.work_root / stack

    def lock_dir(self, stack: str) -> Path | None:
        """Where a file backend keeps the stack's lock files (None for other backends)."""
        url = self.backend_url
        if not url or not url.startswith("file://"):
            return None
        return Path(url[len("file://"):]) / ".pulumi" / "locks" / self.org / PROJECT / stack


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory (upwards) holding dbenv.toml or a pyproject.toml; else ``start``."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / CONFIG_FILE).is_file() or (directory / "pyproject.toml").is_file():
            return directory
    return start


def read_project_file(project_dir: Path) -> tuple[dict[str, Any], str]:
    """The ``dbenv.toml`` table, else ``[tool.dbenv]`` of pyproject.toml, and a label for the source."""
    for path, label in ((project_dir / CONFIG_FILE, CONFIG_FILE), (project_dir / "pyproject.toml", None)):
        if not path.is_file():
            continue
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise SettingsError(f"{path.name}: cannot read it: {err}") from None
        if label is None:
            table = document.get("tool", {}).get("dbenv")
            if table is None:
                continue
            label = "pyproject.toml [tool.dbenv]"
        else:
            table = document
        if not isinstance(table, dict):
            raise SettingsError(f"{label}: expected a table of settings")
        unknown = sorted(set(table) - set(SETTING_KEYS))
        if unknown:
            raise SettingsError(f"{label}: unknown setting {unknown[0]!r} (valid: {', '.join(SETTING_KEYS)})")
        return dict(table), label
    return {}, "default"


def load_settings(
    project_dir: Path | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Layer defaults < project file < environment < flags, then validate everything."""
    project_dir = (project_dir or find_project_dir()).resolve()
    env = dict(os.environ if env is None else env)
    file_values, file_label = read_project_file(project_dir)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        values[setting.key], sources[setting.key] = setting.default, "default"
        if setting.key in file_values:
            values[setting.key], sources[setting.key] = file_values[setting.key], file_label
        if setting.env and env.get(setting.env):
            values[setting.key], sources[setting.key] = env[setting.env], f"env {setting.env}"
        flag = (flags or {}).get(setting.key)
        if flag is not None:
            values[setting.key], sources[setting.key] = flag, f"flag --{setting.key.replace('_', '-')}"
    _validate(values, sources)
    return Settings(project_dir=project_dir, values=values, sources=sources,
                    passphrase_from_env=bool(env.get("PULUMI_CONFIG_PASSPHRASE")), env=env)


def _validate(values: dict[str, Any], sources: Mapping[str, str]) -> None:
    def where(key: str) -> str:
        return f"{key} (from {sources[key]})"

    if values["target"] not in TARGETS:
        raise SettingsError(f"{where('target')}: {values['target']!r} is not a target (allowed: local, aws)")
    parse_ttl(values["ttl"], where("ttl"))
    values["shared_network"] = _as_bool(values["shared_network"], where("shared_network"))
    try:
        values["parallel"] = int(values["parallel"])
    except (TypeError, ValueError):
        raise SettingsError(f"{where('parallel')}: expected a whole number, got {values['parallel']!r}") from None
    if not 1 <= values["parallel"] <= 32:
        raise SettingsError(f"{where('parallel')}: must be 1..32, got {values['parallel']}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(values["org"])):
        raise SettingsError(f"{where('org')}: {values['org']!r} is not an organization name")
    for key in ("post_clone", "seed"):
        values[key] = _as_paths(values[key], where(key))
    backend = values.get("backend")
    if backend and not re.match(r"^(file|s3|gs|azblob|https?)://", str(backend)):
        raise SettingsError(f"{where('backend')}: {backend!r} is not a backend URL (file://, s3://, gs://, "
                            "azblob://, https://)")
    provider = values.get("secrets_provider")
    if provider and not re.match(r"^(passphrase|default|(awskms|azurekeyvault|gcpkms|hashivault)://)", str(provider)):
        raise SettingsError(f"{where('secrets_provider')}: {provider!r} is not a secrets provider "
                            "(passphrase, awskms://..., azurekeyvault://..., gcpkms://..., hashivault://...)")


def _as_paths(value: Any, key: str) -> tuple[str, ...]:
    """A list of file paths: a TOML list, a flag given several times, or one comma-separated string."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise SettingsError(f"{key}: expected a list of SQL file paths, got {value!r}")
    return tuple(item.strip() for item in items if item.strip())


def _as_bool(value: Any, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise SettingsError(f"{key}: expected true or false, got {value!r}")


def describe_settings(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting: key, effective value, source; plus the derived backend and secrets provider."""
    rows = [{"key": s.key, "value": settings.values[s.key], "source": settings.sources[s.key]} for s in SETTINGS]
    derived = "derived from target" if settings.target == "local" else settings.sources["backend"]
    rows.append({"key": "effective backend", "value": settings.backend_url or "Pulumi Cloud (pulumi login)",
                 "source": derived})
    rows.append({"key": "effective secrets provider", "value": settings.secrets_provider or "Pulumi Cloud",
                 "source": "env PULUMI_CONFIG_PASSPHRASE" if settings.passphrase_from_env
                 and settings.secrets_provider == "passphrase" else derived})
    rows.append({"key": "effective shared_network", "value": settings.shared_network,
                 "source": settings.sources["shared_network"] if settings.values["shared_network"] is not None
                 else "derived from target"})
    return rows


# ------------------------------------------------------------------ secrets


def passphrase_env(settings: Settings) -> dict[str, str]:
    """Environment for the passphrase secrets provider: the user's variable, or a 0600 file in .dbenv/."""
    if settings.secrets_provider != "passphrase" or settings.passphrase_from_env:
        return {}
    return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(ensure_passphrase_file(settings.state_root))}


def ensure_passphrase_file(state_root: Path) -> Path:
    """Create ``.dbenv/passphrase`` (random, mode 0600) once; tighten its mode if someone loosened it."""
    state_root.mkdir(parents=True, exist_ok=True)
    path = state_root / PASSPHRASE_FILE
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # a parallel dbenv made it first: use theirs
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(32))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def check_aws_target(settings: Settings) -> None:
    """The aws target needs a way to encrypt secrets: a KMS key, Pulumi Cloud, or a passphrase from the user."""
    if settings.target != "aws":
        return
    if settings.diy_backend and settings.secrets_provider == "passphrase" and not settings.passphrase_from_env:
        raise SettingsError(
            f"backend {settings.backend_url} with target aws needs secrets_provider (e.g. awskms://alias/dbenv) "
            "or PULUMI_CONFIG_PASSPHRASE: a passphrase kept on one machine cannot be shared by CI"
        )


def engine_env(settings: Settings) -> dict[str, str]:
    """Variables every engine command of a stack gets."""
    env = {"PULUMI_SKIP_UPDATE_CHECK": "true", **passphrase_env(settings)}
    url = settings.backend_url
    if url:
        env["PULUMI_BACKEND_URL"] = url
    return env


# ------------------------------------------------------------------ the Pulumi CLI


def find_pulumi_root(home: Path | None = None, path_lookup: Any = shutil.which) -> Path | None:
    """The install root (the directory holding ``bin/pulumi``): on PATH, else the newest ~/.pulumi/versions/*."""
    on_path = path_lookup("pulumi")
    if on_path:
        return Path(on_path).resolve().parent.parent
    home = home or Path.home()
    candidates = [p for p in (home / ".pulumi" / "versions").glob("*") if (p / "bin" / "pulumi").is_file()]
    if candidates:
        return max(candidates, key=lambda p: _version_key(p.name))
    if (home / ".pulumi" / "bin" / "pulumi").is_file():
        return home / ".pulumi"
    return None


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3]) or (0,)


def pulumi_command(root: Path | None = None) -> Any:
    """A ``PulumiCommand`` for the installed CLI, or PulumiCliError with one line saying what to do."""
    from pulumi.automation import InvalidVersionError, PulumiCommand
    from semver import VersionInfo

    root = root or find_pulumi_root()
    if root is None:
        raise PulumiCliError(f"the Pulumi CLI is not installed (not on PATH, not in ~/.pulumi/versions): {INSTALL_HINT}")
    try:
        return PulumiCommand(root=str(root), version=VersionInfo.parse(MIN_PULUMI_VERSION))
    except InvalidVersionError as err:
        raise PulumiCliError(
            f"the Pulumi CLI in {root} is too old ({err}); dbenv needs >= {MIN_PULUMI_VERSION} "
            f"for stack tags on file/s3 backends: {INSTALL_HINT}"
        ) from None
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        raise PulumiCliError(f"cannot run the Pulumi CLI in {root}: {err}; {INSTALL_HINT}") from None


def install_pulumi(version: str | None = None) -> Any:
    """Download the CLI into ~/.pulumi/versions/<version> (needs the internet)."""
    from pulumi.automation import PulumiCommand
    from semver import VersionInfo

    return PulumiCommand.install(version=VersionInfo.parse(version) if version else None)
