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
from collections.abc import Callable, Mapping
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
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}
_LONGEST = timedelta(days=999_999_999)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_DIY_SCHEMES = ("file://", "s3://", "gs://", "azblob://")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the key, where it came from and what is allowed."""


class PulumiCliError(RuntimeError):
    """The Pulumi CLI is missing or too old."""


def parse_duration(value: Any, key: str, maximum: timedelta | None = None) -> timedelta:
    """``90m``, ``72h``, ``3d``, ``1w`` -> timedelta, at most ``maximum`` (else at most what timedelta holds)."""
    match = _TTL.match(str(value))
    if not match:
        raise SettingsError(f"{key}: {str(value)[:40]!r} is not a duration; use a number and a unit m, h, d or w "
                            "(e.g. 72h)")
    digits, unit = match.group(1).lstrip("0") or "0", match.group(2)
    amount = int(digits) if len(digits) <= 18 else 10**18  # past 18 digits it is too long anyway
    if amount <= 0:
        raise SettingsError(f"{key}: {value!r} must be longer than zero")
    limit = maximum or _LONGEST
    # Compare in minutes before building a timedelta: a huge number must not overflow it.
    if amount * _UNIT_MINUTES[unit] > limit // timedelta(minutes=1):
        longest = f"the {limit.days}d maximum" if maximum else f"{limit.days}d, the longest duration there is"
        raise SettingsError(f"{key}: {str(value)[:40]!r} is longer than {longest}")
    return timedelta(minutes=amount * _UNIT_MINUTES[unit])


def parse_ttl(value: Any, key: str = "ttl") -> timedelta:
    """A branch environment's lifetime: at most 30 days (ephemeral means short-lived)."""
    return parse_duration(value, key, MAX_TTL)


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


def _choice(noun: str, *allowed: str) -> Callable[[Any, str], Any]:
    def parse(value: Any, where: str) -> Any:
        if value not in allowed:
            raise SettingsError(f"{where}: {str(value)[:40]!r} is not a {noun} (allowed: {', '.join(allowed)})")
        return value
    return parse


def _region(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _REGION.match(value):
        raise SettingsError(f"{where}: {str(value)[:60]!r} is not an AWS region name like us-east-1")
    return value


def _duration(value: Any, where: str) -> Any:
    parse_ttl(value, where)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _recipes(value: Any, where: str) -> str:
    # dbenv.toml may list them: recipes = ["aurora-serverless", "data-api"]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return _text(value, where)


def _branch_name(value: Any, where: str) -> str:
    from components import naming

    try:
        return naming.validate_branch(_text(value, where))
    except naming.InvalidName as err:
        raise SettingsError(f"{where}: {err}") from None


def _whole(low: int, high: int) -> Callable[[Any, str], int]:
    def parse(value: Any, where: str) -> int:
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) and len(str(value)) < 10 else None
        except ValueError:
            number = None
        if number is None:
            raise SettingsError(f"{where}: expected a whole number, got {str(value)[:40]!r}")
        if not low <= number <= high:
            raise SettingsError(f"{where}: must be {low}..{high}, got {number}")
        return number
    return parse


def _pattern(regex: str, what: str) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        if not isinstance(value, str) or not re.match(regex, value):
            raise SettingsError(f"{where}: {str(value)[:60]!r} is not {what}")
        return value
    return parse


def _database_url(value: Any, where: str) -> str:
    # The URL may carry a password: an error shows it redacted.
    if not isinstance(value, str) or not re.match(r"^postgres(ql)?://", value, re.IGNORECASE):
        shown = redact_url(str(value))[:60]
        raise SettingsError(f"{where}: {shown!r} is not a PostgreSQL URL; use postgresql://USER@HOST:PORT/DB, "
                            "or leave it out for the embedded database")
    return value


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise SettingsError(f"{where}: expected a list of strings, got {str(value)[:60]!r}")
    return tuple(item.strip() for item in items if item.strip())


def _path_list(value: Any, where: str) -> tuple[str, ...]:
    """A list of file paths: a TOML list, a flag given several times, or one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise SettingsError(f"{where}: expected a list of file paths, got {str(value)[:60]!r}")
    return tuple(item.strip() for item in items if item.strip())


def _usd(value: Any, where: str) -> float:
    try:
        amount = float(value) if not isinstance(value, bool) and len(str(value)) < 20 else None
    except (TypeError, ValueError):
        amount = None
    if amount is None or amount != amount or amount in (float("inf"), float("-inf")):
        raise SettingsError(f"{where}: expected USD a month (a number), got {str(value)[:40]!r}")
    if amount < 0:
        raise SettingsError(f"{where}: must be 0 or more, got {amount:g}")
    return amount


def _as_bool(value: Any, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise SettingsError(f"{key}: expected true or false, got {str(value)[:40]!r}")


@dataclass(frozen=True)
class Setting:
    """One dbenv setting: its key (also the dbenv.toml key and the flag name), default, variable, help.

    ``parse`` checks and normalises a value (raising SettingsError naming ``where``); ``in_file`` is
    False for settings that make no sense in a project file (the branch); ``path`` marks a file
    path (a flag or variable is relative to the working directory, a project file's to the project).
    """

    key: str
    default: Any
    env: str | None
    help: str
    parse: Callable[[Any, str], Any] | None = None
    in_file: bool = True
    path: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("branch", None, "DBENV_BRANCH", "git branch of the environment (default: the current branch)",
            _text, in_file=False),
    Setting("recipes", None, "DBENV_RECIPES", "default --recipes ('all' or a comma-separated list)", _recipes),
    Setting("config", None, "DBENV_CONFIG", "default --config file (Pulumi stack config YAML)", _text, path=True),
    Setting("target", "local", "DBENV_TARGET", "local (moto server on 127.0.0.1) or aws", _choice("target", *TARGETS)),
    Setting("region", "us-east-1", "DBENV_REGION", "AWS region of the stacks", _region),
    Setting("durable", False, "DBENV_DURABLE", "plan and deploy durable stacks (not ephemeral: no expiry, "
            "kept by `dbenv reap`)", _as_bool),
    Setting("ttl", "72h", "DBENV_TTL", "lifetime of a branch environment before `dbenv reap` removes it", _duration),
    Setting("backend", None, "PULUMI_BACKEND_URL", "state backend for --target aws: s3://..., file://..., "
            "or empty for Pulumi Cloud (the local target always uses .dbenv/state)",
            _pattern(r"^(file|s3|gs|azblob|https?)://", "a backend URL (file://, s3://, gs://, azblob://, https://)")),
    Setting("secrets_provider", None, "DBENV_SECRETS_PROVIDER", "secrets provider for --target aws "
            "(awskms://..., or empty for passphrase / Pulumi Cloud)",
            _pattern(r"^(passphrase|default|(awskms|azurekeyvault|gcpkms|hashivault)://)",
                     "a secrets provider (passphrase, awskms://..., azurekeyvault://..., gcpkms://..., hashivault://...)")),
    Setting("org", "organization", "DBENV_ORG", "organization part of fully qualified stack names "
            "('organization' on file/s3 backends, your org on Pulumi Cloud)",
            _pattern(r"^[A-Za-z0-9_.-]+$", "an organization name")),
    Setting("shared_network", None, "DBENV_SHARED_NETWORK", "branch stacks use the shared stack's VPC "
            "(default: false on local, true on aws)", _as_bool),
    Setting("policy_pack", "policies", "DBENV_POLICY_PACK", "policy pack directory attached to up and preview",
            _text, path=True),
    Setting("parallel", 4, "DBENV_PARALLEL", "how many stacks `dbenv reap` destroys at once", _whole(1, 32)),
    Setting("parent", None, "DBENV_PARENT", "the environment (a branch, e.g. staging) whose databases a branch's "
            "are cloned from (flag --parent, or --from on up, preview, plan and cost)", _branch_name),
    Setting("post_clone", None, "DBENV_POST_CLONE", "SQL files run once on a fresh clone, e.g. masking "
            "(a list; comma-separated in the variable)", _path_list, path=True),
    Setting("migrate", None, "DBENV_MIGRATE", "shell command run after every up with the branch database's "
            "connection in its environment (e.g. alembic upgrade head)", _text),
    Setting("seed", None, "DBENV_SEED", "SQL files run once on a branch database created without a parent "
            "(a list; comma-separated in the variable)", _path_list, path=True),
    Setting("budget", None, "DBENV_BUDGET", "USD a month: `up`/`preview` refuse a change whose idle estimate is higher",
            _usd),
    Setting("sleep_after", "12h", "DBENV_SLEEP_AFTER", "`dbenv reap` sleeps a branch idle this long since its "
            "last up/wake", _duration),
    Setting("database_url", None, "DBENV_DATABASE_URL", "the service's PostgreSQL (jobs, events, tokens), shared "
            "by `dbenv serve` and every `dbenv worker` (default: an embedded one under .dbenv/service/)",
            _database_url),
    Setting("job_timeout", "2h", "DBENV_JOB_TIMEOUT", "the service stops a job (SIGINT to its engine) after this "
            "long", _duration),
    Setting("state_dir", None, "DBENV_STATE_DIR", "where dbenv keeps stack work dirs, local state and the service's "
            "embedded database (default: .dbenv in the project)", _text, path=True),
    Setting("public_url", "http://127.0.0.1:8080", "DBENV_PUBLIC_URL", "the service's address as people reach it "
            "(links in pull request comments and commit statuses)", _pattern(r"^https?://[^\s]+$", "an http(s) URL")),
    Setting("github_webhook_secret", None, "DBENV_GITHUB_WEBHOOK_SECRET", "the GitHub webhook's secret: "
            "POST /v1/webhooks/github exists only with it (a variable, never in a file)", _text, in_file=False),
    Setting("github_token", None, "DBENV_GITHUB_TOKEN", "a GitHub token for comments and statuses, instead of a "
            "GitHub App (a variable, never in a file)", _text, in_file=False),
    Setting("github_app_id", None, "DBENV_GITHUB_APP_ID", "the GitHub App's id (with github_app_key_file)",
            _pattern(r"^[0-9]{1,12}$", "a GitHub App id (digits)")),
    Setting("github_app_key_file", None, "DBENV_GITHUB_APP_KEY_FILE", "the GitHub App's private key (PEM file)",
            _text, path=True),
    Setting("github_api_url", "https://api.github.com", "DBENV_GITHUB_API_URL", "GitHub's REST API (GitHub "
            "Enterprise: https://HOST/api/v3)", _pattern(r"^https?://[^\s]+$", "an http(s) URL")),
    Setting("github_repos", None, "DBENV_GITHUB_REPOS", "repositories whose pull requests drive environments: "
            "owner/repo, * globs allowed (a list; comma-separated in the variable)", _string_list),
    Setting("github_allow_forks", False, "DBENV_GITHUB_ALLOW_FORKS", "a fork's pull request gets the offline plan "
            "(no credentials, no hooks) until a member comments `/dbenv approve`", _as_bool),
    Setting("github_remote", "https://github.com/{repo}.git", "DBENV_GITHUB_REMOTE", "clone URL of a repository, "
            "{repo} standing for owner/name", _pattern(r"^(https?|ssh|git|file)://[^\s]*\{repo\}", "a URL with {repo}")),
    Setting("github_bot_login", None, "DBENV_GITHUB_BOT_LOGIN", "the login the service comments as (an App: "
            "its-slug[bot]): only its own comment is edited, whoever else types the marker",
            _pattern(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?$", "a GitHub login (e.g. dbenv-acme[bot])")),
    Setting("github_webhook_max_bytes", 5 * 1024 * 1024, "DBENV_GITHUB_WEBHOOK_MAX_BYTES", "largest webhook body "
            "accepted (GitHub sends at most 25 MB)", _whole(1024, 25 * 1024 * 1024)),
    Setting("heartbeat_timeout", 30, "DBENV_HEARTBEAT_TIMEOUT", "seconds without a worker heartbeat before the "
            "service marks that worker's running jobs lost", _whole(2, 3600)),
)
FILE_KEYS = tuple(s.key for s in SETTINGS if s.in_file)


@dataclass(frozen=True)
class Settings:
    """The effective settings and, for each key, the layer it came from."""

    project_dir: Path
    values: Mapping[str, Any]
    sources: Mapping[str, str]
    passphrase_from_env: bool = False
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def in_project(self) -> bool:
        """True when a dbenv.toml or pyproject.toml marks the project directory."""
        return (self.project_dir / CONFIG_FILE).is_file() or (self.project_dir / "pyproject.toml").is_file()

    @property
    def branch(self) -> str:
        """The branch setting, else the current git branch; a valid git branch name either way."""
        from automation import gitinfo
        from components import naming

        try:
            return naming.validate_branch(self.values["branch"] or gitinfo.current_branch(str(self.project_dir)))
        except (naming.InvalidName, gitinfo.GitError) as err:
            raise SettingsError(str(err)) from None

    @property
    def config_file(self) -> Path | None:
        value = self.values.get("config")
        return Path(value) if value else None

    @property
    def durable(self) -> bool:
        return bool(self.values["durable"])

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
    def sleep_after(self) -> timedelta:
        return parse_ttl(self.values["sleep_after"], "sleep_after")

    @property
    def job_timeout(self) -> timedelta:
        return parse_ttl(self.values["job_timeout"], "job_timeout")

    @property
    def budget(self) -> float | None:
        """USD a month, or None: no budget."""
        return self.values.get("budget")

    @property
    def state_root(self) -> Path:
        chosen = self.values.get("state_dir")
        return Path(chosen) if chosen else self.project_dir / STATE_DIR

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
    from automation import inputs

    for path, label in ((project_dir / CONFIG_FILE, CONFIG_FILE), (project_dir / "pyproject.toml", None)):
        if not path.is_file():
            continue
        try:
            document = inputs.read_toml(path, "project file")
        except inputs.InputError as err:
            raise SettingsError(str(err)) from None
        if label is None:
            tool = document.get("tool", {})
            table = tool.get("dbenv") if isinstance(tool, dict) else None
            if table is None:
                continue
            label = "pyproject.toml [tool.dbenv]"
        else:
            table = document
        if not isinstance(table, dict):
            raise SettingsError(f"{label}: expected a table of settings")
        unknown = sorted(set(table) - set(FILE_KEYS))
        if unknown:
            raise SettingsError(f"{label}: unknown setting {unknown[0][:40]!r} (valid: {', '.join(FILE_KEYS)})")
        return dict(table), label
    return {}, "default"


def load_settings(
    project_dir: Path | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every dbenv setting: flags > ``DBENV_*`` variables > dbenv.toml / [tool.dbenv] > defaults.

    This is the one resolution every command uses (``automation.commands.common.env_settings``);
    ``environments.prepare`` then turns settings into the stack config that plan, policy check,
    preview and up all hand to the program. To add a setting:

    1. add a ``Setting`` row to ``SETTINGS`` (key = dbenv.toml key, default, ``DBENV_<KEY>``
       variable, help, a ``parse`` function that checks and normalises the value and raises
       SettingsError naming ``where``; ``path=True`` for a file path; ``in_file=False`` if it
       makes no sense in dbenv.toml);
    2. add a typed property to ``Settings`` if callers need more than ``values[key]``;
    3. pass the command's flag as ``env_settings(<key>=flag)`` (None means "not given").

    ``dbenv config show`` and the README's settings table list the rows, so nothing else changes.
    """
    project_dir = (project_dir or find_project_dir()).resolve()
    env = dict(os.environ if env is None else env)
    file_values, file_label = read_project_file(project_dir)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        value, source, base = setting.default, "default", project_dir
        if setting.key in file_values:
            value, source = file_values[setting.key], file_label
        if setting.env and env.get(setting.env):
            value, source, base = env[setting.env], f"env {setting.env}", Path.cwd()
        flag = (flags or {}).get(setting.key)
        if flag is not None:
            value, source, base = flag, f"flag --{setting.key.replace('_', '-')}", Path.cwd()
        where = f"{setting.key} (from {source})"
        if value is not None and setting.parse is not None:
            value = setting.parse(str(value) if isinstance(value, Path) else value, where)
        if value is not None and setting.path:
            value = (tuple(_absolute(item, base, where) for item in value) if isinstance(value, tuple)
                     else _absolute(str(value), base, where))
        values[setting.key], sources[setting.key] = value, source
    return Settings(project_dir=project_dir, values=values, sources=sources,
                    passphrase_from_env=bool(env.get("PULUMI_CONFIG_PASSPHRASE")), env=env)


def _absolute(value: str, base: Path, where: str) -> str:
    if not value or "\x00" in value:
        raise SettingsError(f"{where}: {value!r} is not a file path")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


SECRET_SETTINGS = ("github_webhook_secret", "github_token")


def _shown(key: str, value: Any) -> Any:
    """A setting as `dbenv config show` prints it: secrets never, a database URL without its password."""
    if value is None:
        return None
    if key in SECRET_SETTINGS:
        return "[secret]"
    if key == "database_url":
        return redact_url(str(value))
    return value


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``: for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def describe_settings(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting: key, effective value, source; plus the derived backend and secrets provider."""
    rows = [{"key": s.key, "value": _shown(s.key, settings.values[s.key]), "source": settings.sources[s.key]}
            for s in SETTINGS]
    derived = "derived from target" if settings.target == "local" else settings.sources["backend"]
    rows.append({"key": "effective backend", "value": settings.backend_url or "Pulumi Cloud (pulumi login)",
                 "source": derived})
    rows.append({"key": "effective secrets provider", "value": settings.secrets_provider or "Pulumi Cloud",
                 "source": "env PULUMI_CONFIG_PASSPHRASE" if settings.passphrase_from_env
                 and settings.secrets_provider == "passphrase" else derived})
    try:
        branch, source = settings.branch, settings.sources["branch"] if settings.values["branch"] else "git"
    except SettingsError:
        branch, source = None, "git: no current branch (pass --branch)"
    rows.append({"key": "effective branch", "value": branch, "source": source})
    rows.append({"key": "effective shared_network", "value": settings.shared_network,
                 "source": settings.sources["shared_network"] if settings.values["shared_network"] is not None
                 else "derived from target"})
    return rows


# ------------------------------------------------------------------ secrets


def passphrase_env(settings: Settings, *, create: bool = True) -> dict[str, str]:
    """Environment for the passphrase secrets provider: the user's variable, or a 0600 file in .dbenv/.

    ``create`` False (read-only commands) uses the file only if it exists.
    """
    if settings.secrets_provider != "passphrase" or settings.passphrase_from_env:
        return {}
    if not create:
        path = settings.state_root / PASSPHRASE_FILE
        return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(path)} if path.is_file() else {}
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


def engine_env(settings: Settings, *, create: bool = True) -> dict[str, str]:
    """Variables every engine command of a stack gets."""
    env = {"PULUMI_SKIP_UPDATE_CHECK": "true", **passphrase_env(settings, create=create)}
    job = settings.env.get("DBENV_JOB_ID")
    if job:
        # A service job's engine processes carry its id: cancelling that job finds them by it.
        env["DBENV_JOB_ID"] = job
    url = settings.backend_url
    if url:
        env["PULUMI_BACKEND_URL"] = url
    return env


# ------------------------------------------------------------------ the Pulumi CLI


def find_pulumi(home: Path | None = None, path_lookup: Any = shutil.which) -> Path | None:
    """The real path of the ``pulumi`` binary: on PATH (in any folder), else the newest
    ``~/.pulumi/versions/*/bin/pulumi``, else ``~/.pulumi/bin/pulumi``."""
    on_path = path_lookup("pulumi")
    if on_path:
        return Path(on_path).resolve()
    home = home or Path.home()
    candidates = [p for p in (home / ".pulumi" / "versions").glob("*") if (p / "bin" / "pulumi").is_file()]
    if candidates:
        return max(candidates, key=lambda p: _version_key(p.name)) / "bin" / "pulumi"
    if (home / ".pulumi" / "bin" / "pulumi").is_file():
        return home / ".pulumi" / "bin" / "pulumi"
    return None


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3]) or (0,)


def pulumi_command(binary: Path | None = None) -> Any:
    """A ``PulumiCommand`` for the installed CLI, or PulumiCliError with one line saying what to do."""
    from pulumi.automation import InvalidVersionError, PulumiCommand
    from semver import VersionInfo

    binary = binary or find_pulumi()
    if binary is None:
        raise PulumiCliError(f"the Pulumi CLI is not installed (not on PATH, not in ~/.pulumi/versions): {INSTALL_HINT}")
    # PulumiCommand wants an install root holding bin/pulumi; a binary elsewhere was found on PATH,
    # and PulumiCommand without a root runs exactly that one.
    root = str(binary.parent.parent) if binary.parent.name == "bin" else None
    try:
        return PulumiCommand(root=root, version=VersionInfo.parse(MIN_PULUMI_VERSION))
    except InvalidVersionError as err:
        raise PulumiCliError(
            f"the Pulumi CLI {binary} is too old ({err}); dbenv needs >= {MIN_PULUMI_VERSION} "
            f"for stack tags on file/s3 backends: {INSTALL_HINT}"
        ) from None
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        raise PulumiCliError(f"cannot run the Pulumi CLI {binary}: {err}; {INSTALL_HINT}") from None


def check_install_version(version: str | None) -> Any:
    """The version ``dbenv install-pulumi`` may install (None: the SDK's own), or SettingsError."""
    from semver import VersionInfo

    if version is None:
        return None
    try:
        parsed = VersionInfo.parse(version.removeprefix("v"))
    except (ValueError, TypeError):
        raise SettingsError(f"--version: {version[:40]!r} is not a version like {MIN_PULUMI_VERSION}") from None
    if parsed < VersionInfo.parse(MIN_PULUMI_VERSION):
        raise SettingsError(f"--version: {version} is older than {MIN_PULUMI_VERSION}, the oldest dbenv works with")
    return parsed


def install_pulumi(version: Any = None) -> Any:
    """Download the CLI into ~/.pulumi/versions/<version> (needs the internet); ``version`` from check_install_version."""
    from pulumi.automation import PulumiCommand

    return PulumiCommand.install(version=version)
