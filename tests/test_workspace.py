from __future__ import annotations

import os
import re
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from automation import workspace
from automation.workspace import SettingsError, load_settings, parse_ttl

# ----------------------------------------------------------------- TTL


@pytest.mark.parametrize(("text", "expected"), [("90m", timedelta(minutes=90)), ("72h", timedelta(hours=72)),
                                                ("3d", timedelta(days=3)), ("1w", timedelta(weeks=1)),
                                                (" 12 h ", timedelta(hours=12)), ("30d", timedelta(days=30))])
def test_parse_ttl(text: str, expected: timedelta) -> None:
    assert parse_ttl(text) == expected


@pytest.mark.parametrize(("text", "message"), [("72", "not a duration"), ("h", "not a duration"),
                                               ("-1h", "not a duration"), ("0h", "longer than zero"),
                                               ("31d", "30d maximum"), ("1y", "not a duration")])
def test_bad_ttl_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_ttl(text)


def test_format_duration() -> None:
    assert workspace.format_duration(timedelta(days=3, hours=4, minutes=5)) == "3d4h"
    assert workspace.format_duration(timedelta(hours=5, minutes=12)) == "5h12m"
    assert workspace.format_duration(timedelta(minutes=42)) == "42m"
    assert workspace.format_duration(-timedelta(hours=2)) == "-2h0m"


# ----------------------------------------------------------------- settings precedence


def test_defaults_work_on_a_laptop(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    assert settings.target == "local"
    assert settings.backend_url == (tmp_path / ".dbenv" / "state").resolve().as_uri()
    assert settings.secrets_provider == "passphrase"
    assert settings.shared_network is False
    assert settings.ttl == timedelta(hours=72)
    assert all(source == "default" for source in settings.sources.values())


def test_file_then_env_then_flag(tmp_path: Path) -> None:
    (tmp_path / "dbenv.toml").write_text('target = "aws"\nttl = "24h"\nregion = "eu-west-1"\n'
                                         'backend = "s3://state-bucket/dbenv"\n'
                                         'secrets_provider = "awskms://alias/dbenv"\n', encoding="utf-8")
    settings = load_settings(tmp_path, env={"DBENV_TTL": "12h"}, flags={"ttl": "6h", "target": None})
    assert settings.values["target"] == "aws" and settings.sources["target"] == "dbenv.toml"
    assert settings.values["ttl"] == "6h" and settings.sources["ttl"] == "flag --ttl"
    assert settings.values["region"] == "eu-west-1"
    assert settings.backend_url == "s3://state-bucket/dbenv" and settings.diy_backend
    assert settings.secrets_provider == "awskms://alias/dbenv"
    assert settings.shared_network is True  # aws default
    env_only = load_settings(tmp_path, env={"DBENV_TTL": "12h"})
    assert env_only.values["ttl"] == "12h" and env_only.sources["ttl"] == "env DBENV_TTL"


def test_pyproject_tool_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.dbenv]\nshared_network = true\n',
                                             encoding="utf-8")
    settings = load_settings(tmp_path, env={})
    assert settings.shared_network is True
    assert settings.sources["shared_network"] == "pyproject.toml [tool.dbenv]"


def test_dbenv_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.dbenv]\nregion = "ap-south-1"\n', encoding="utf-8")
    (tmp_path / "dbenv.toml").write_text('region = "eu-central-1"\n', encoding="utf-8")
    assert load_settings(tmp_path, env={}).region == "eu-central-1"


def test_local_target_ignores_the_aws_backend(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={"PULUMI_BACKEND_URL": "s3://bucket"})
    assert settings.values["backend"] == "s3://bucket"
    assert settings.backend_url.startswith("file://")


@pytest.mark.parametrize(("toml", "message"), [
    ('target = "gcp"', r"target \(from dbenv.toml\): 'gcp' is not a target \(allowed: local, aws\)"),
    ('ttl = "forever"', "ttl .from dbenv.toml.: 'forever' is not a duration"),
    ('colour = "blue"', "unknown setting 'colour'"),
    ('shared_network = "maybe"', "shared_network .from dbenv.toml.: expected true or false"),
    ("parallel = 0", "parallel .from dbenv.toml.: must be 1..32"),
    ('backend = "ftp://x"', "not a backend URL"),
    ('secrets_provider = "plain"', "not a secrets provider"),
    ("target = ", "is not valid TOML"),
])
def test_bad_settings_name_key_and_source(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "dbenv.toml").write_text(toml + "\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=message):
        load_settings(tmp_path, env={})


def test_find_project_dir_walks_up(tmp_path: Path) -> None:
    (tmp_path / "dbenv.toml").write_text("", encoding="utf-8")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert workspace.find_project_dir(nested) == tmp_path.resolve()


def test_describe_settings_says_where_values_come_from(tmp_path: Path) -> None:
    (tmp_path / "dbenv.toml").write_text('region = "eu-west-1"\n', encoding="utf-8")
    rows = {row["key"]: row for row in workspace.describe_settings(
        load_settings(tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "pw"}, flags={"ttl": "1h"}))}
    assert rows["region"] == {"key": "region", "value": "eu-west-1", "source": "dbenv.toml"}
    assert rows["ttl"]["source"] == "flag --ttl"
    assert rows["effective secrets provider"]["source"] == "env PULUMI_CONFIG_PASSPHRASE"
    assert rows["effective backend"]["source"] == "derived from target"


def test_aws_target_with_diy_backend_needs_kms_or_passphrase(tmp_path: Path) -> None:
    (tmp_path / "dbenv.toml").write_text('target = "aws"\nbackend = "s3://b"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="secrets_provider"):
        workspace.check_aws_target(load_settings(tmp_path, env={}))
    workspace.check_aws_target(load_settings(tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "pw"}))
    kms = load_settings(tmp_path, env={"DBENV_SECRETS_PROVIDER": "awskms://alias/dbenv"})
    workspace.check_aws_target(kms)
    assert kms.secrets_provider == "awskms://alias/dbenv"


def test_pulumi_cloud_when_aws_has_no_backend(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, flags={"target": "aws"}, env={})
    assert settings.backend_url is None and settings.secrets_provider is None
    workspace.check_aws_target(settings)
    assert "PULUMI_BACKEND_URL" not in workspace.engine_env(settings)


# ----------------------------------------------------------------- passphrase


def test_passphrase_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    env = workspace.engine_env(settings)
    path = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert path == tmp_path.resolve() / ".dbenv" / "passphrase"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text(encoding="utf-8")
    assert len(first) >= 32
    path.chmod(0o644)
    workspace.engine_env(settings)
    assert path.read_text(encoding="utf-8") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert env["PULUMI_BACKEND_URL"] == settings.backend_url


def test_user_passphrase_is_not_replaced(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "mine"})
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in workspace.engine_env(settings)
    assert not (tmp_path / ".dbenv" / "passphrase").exists()


# ----------------------------------------------------------------- the Pulumi CLI


def _fake_cli(root: Path, version: str) -> Path:
    """A `pulumi` executable that answers `pulumi version` like the real one."""
    binary = root / "bin" / "pulumi"
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\necho v{version}\n", encoding="utf-8")
    binary.chmod(0o755)
    return binary


def test_cli_found_on_path_then_in_versions(tmp_path: Path) -> None:
    on_path = _fake_cli(tmp_path / "opt", "3.250.0")
    assert workspace.find_pulumi(tmp_path, lambda _: str(on_path)) == on_path.resolve()
    home = tmp_path / "home"
    _fake_cli(home / ".pulumi" / "versions" / "3.9.0", "3.9.0")
    _fake_cli(home / ".pulumi" / "versions" / "3.250.0", "3.250.0")
    assert workspace.find_pulumi(home, lambda _: None) == home / ".pulumi" / "versions" / "3.250.0" / "bin" / "pulumi"
    assert workspace.find_pulumi(tmp_path / "empty", lambda _: None) is None


def test_cli_on_path_outside_a_bin_folder_is_used_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", raising=False)
    tools = tmp_path / "tools"
    tools.mkdir()
    binary = tools / "pulumi"
    binary.write_text("#!/bin/sh\necho v3.150.0\n", encoding="utf-8")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    found = workspace.find_pulumi()
    assert found == binary.resolve()
    with pytest.raises(workspace.PulumiCliError, match=f"the Pulumi CLI {re.escape(str(binary))} is too old"):
        workspace.pulumi_command(found)
    binary.write_text("#!/bin/sh\necho v3.272.0\n", encoding="utf-8")
    assert str(workspace.pulumi_command(found).version) == "3.272.0"


@pytest.mark.parametrize(("version", "message"), [("3.100.0", "older than 3.211.0"), ("latest", "is not a version"),
                                                  ("3.2", "is not a version")])
def test_install_version_below_minimum_or_malformed_is_refused(version: str, message: str) -> None:
    with pytest.raises(workspace.SettingsError, match=message):
        workspace.check_install_version(version)
    assert str(workspace.check_install_version("v3.272.0")) == "3.272.0"


def test_missing_cli_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(workspace, "find_pulumi", lambda *a, **k: None)
    with pytest.raises(workspace.PulumiCliError, match="not installed.*dbenv install-pulumi"):
        workspace.pulumi_command()


def test_too_old_cli_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", raising=False)
    binary = _fake_cli(tmp_path, "3.150.0")
    with pytest.raises(workspace.PulumiCliError, match=r"too old.*>= 3\.211\.0"):
        workspace.pulumi_command(binary)


def test_recent_cli_is_accepted(tmp_path: Path) -> None:
    binary = _fake_cli(tmp_path, "3.272.0")
    command = workspace.pulumi_command(binary)
    assert str(command.version) == "3.272.0"
    assert command.command == os.path.join(str(tmp_path), "bin", "pulumi")


def test_broken_cli_is_reported(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "pulumi"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 3\n", encoding="utf-8")
    binary.chmod(0o755)
    with pytest.raises(workspace.PulumiCliError, match="cannot run the Pulumi CLI"):
        workspace.pulumi_command(binary)


def test_lock_dir_only_for_file_backends(tmp_path: Path) -> None:
    local = load_settings(tmp_path, env={})
    assert local.lock_dir("s1") == (tmp_path / ".dbenv" / "state").resolve() / ".pulumi" / "locks" / \
        "organization" / "db-recipes" / "s1"
    assert load_settings(tmp_path, flags={"target": "aws"}, env={}).lock_dir("s1") is None
