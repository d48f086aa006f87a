"""`dbenv up` with --post-clone / --seed / --migrate: checked before the engine runs, run after it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import boto3
import pulumi.automation as auto
import pytest
from moto import mock_aws

from automation import workspace
from automation.operations import environments as envs
from automation.operations.engine import Engine
from automation.operations.errors import OperationFailed
from automation.operations.prepare import Prepared, prepare_hooks
from automation.runbooks import db
from tests.schema_fixtures import query
from tests.test_cli_env import BRANCH, project, run  # noqa: F401 - the fixture is used by name
from tests.test_environments import FakeAutomation


def test_a_bad_sql_file_exits_2_before_the_engine_runs(project: FakeAutomation, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "bad.sql").write_text("SELECT 'open", encoding="utf-8")
    for args, message in ((["--seed", str(tmp_path / "missing.sql")], "seed: cannot read"),
                          (["--post-clone", str(tmp_path / "bad.sql")], "unterminated ' quote"),
                          (["--migrate", " "], "migrate: expected a shell command")):
        result = run("up", "-b", BRANCH, "-y", *args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert run("ls").output.strip() == "no environments"


def test_settings_read_hooks_from_dbenv_toml(tmp_path: Path) -> None:
    (tmp_path / "dbenv.toml").write_text('post_clone = ["sql/mask.sql"]\nseed = "seed.sql"\n'
                                         'migrate = "alembic upgrade head"\n', encoding="utf-8")
    settings = workspace.load_settings(tmp_path, env={})
    # paths in the project file are relative to the project
    assert settings.values["post_clone"] == (str(tmp_path / "sql/mask.sql"),)
    assert settings.values["seed"] == (str(tmp_path / "seed.sql"),)
    assert settings.sources["migrate"] == "dbenv.toml"
    flagged = workspace.load_settings(tmp_path, env={"DBENV_SEED": "a.sql,b.sql"}, flags={"migrate": "make migrate"})
    # paths in a variable or flag are relative to the working directory
    assert flagged.values["seed"] == (str(Path.cwd() / "a.sql"), str(Path.cwd() / "b.sql"))
    assert flagged.values["migrate"] == "make migrate"
    (tmp_path / "dbenv.toml").write_text("seed = 3\n", encoding="utf-8")
    with pytest.raises(workspace.SettingsError, match="seed .*expected a list of file paths"):
        workspace.load_settings(tmp_path, env={})


def test_local_target_says_the_hooks_are_skipped(project: FakeAutomation, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "seed.sql").write_text("CREATE TABLE t (id INT);", encoding="utf-8")
    result = run("up", "-b", BRANCH, "-y", "--json", "--seed", str(tmp_path / "seed.sql"), "--migrate", "false")
    assert result.exit_code == 0, result.output
    assert "post_clone/seed/migrate skipped" in result.stderr
    assert json.loads(result.stdout)["result"] == "succeeded"


@pytest.mark.db
@pytest.mark.aws
def test_hooks_run_on_the_branch_database_after_the_deploy(databases: Callable[[str], str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    # The local MariaDB speaks no TLS: the stand-in for "verified against the RDS CA bundle" is no TLS.
    monkeypatch.setattr(db, "ca_bundle", lambda given=None: None)
    database = databases("mysql")
    (tmp_path / "seed.sql").write_text("CREATE TABLE seeded (id INT); INSERT INTO seeded VALUES (7);", encoding="utf-8")
    settings = workspace.load_settings(tmp_path, env={}, flags={"target": "aws", "seed": [str(tmp_path / "seed.sql")],
                                                                "migrate": "echo migrated $MYSQL_DATABASE"})
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="rds-proxy-admin", SecretString=json.dumps({"username": "root", "password": ""}))["ARN"]
        outputs = {"rds-proxy": auto.OutputValue({"proxy_endpoint": "127.0.0.1", "port": 3306,
                                                  "database_name": database, "secret_arn": arn}, False)}
        prepared = Prepared(stack="feature-x", branch=BRANCH, config={}, recipes=("rds-proxy",),
                                 region="us-east-1", ephemeral=True, shared_network=False, ttl=settings.ttl)
        hooks = prepare_hooks(settings, prepared)
        service = envs.Environments(settings, Engine(settings, auto=FakeAutomation(), command=object()))
        lines: list[str] = []
        service.run_data_hooks(prepared, outputs, hooks, on_line=lines.append)
        assert query("mysql", database, "SELECT id FROM seeded") == [(7,)]
        assert lines == ["ran seed seed.sql (2 statements)", "migrate: echo migrated $MYSQL_DATABASE",
                         f"migrated {database}"]
        failing = prepare_hooks(workspace.load_settings(tmp_path, env={}, flags={"migrate": "exit 4"}), prepared)
        with pytest.raises(OperationFailed, match="deployed, then migrate: 'exit 4' exited with 4"):
            service.run_data_hooks(prepared, outputs, failing, on_line=lines.append)
