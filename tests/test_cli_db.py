"""`dbenv db connect` and `dbenv db query` through typer's CliRunner."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests
from moto import mock_aws
from typer.testing import CliRunner

from automation import cli
from automation.operations import lifecycle
from components import naming
from tests.test_db_runbook import OUTPUTS, PEM

runner = CliRunner()
BRANCH = "feature/db"


class OutputsOnly:
    """Stands in for Environments where the db commands call it: outputs of one stack."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        self.values = outputs
        self.asked: list[tuple[str, bool]] = []

    def outputs(self, stack: str, *, show_secrets: bool = False) -> dict[str, Any]:
        self.asked.append((stack, show_secrets))
        return self.values


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OutputsOnly:
    (tmp_path / "dbenv.toml").write_text('target = "aws"\nregion = "us-east-1"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for key in ("DBENV_TARGET", "DBENV_REGION"):
        monkeypatch.delenv(key, raising=False)
    fake = OutputsOnly(OUTPUTS)
    monkeypatch.setattr(lifecycle, "environments_for", lambda settings, **_: fake)
    return fake


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(PEM)
    return path


def run(*args: str) -> Any:
    return runner.invoke(cli.app, list(args))


def test_connect_prints_a_command_without_a_token(stack: OutputsOnly, bundle: Path) -> None:
    result = run("db", "connect", "-b", BRANCH, "--recipe", "aurora-serverless", "--user", "app_user",
                 "--ca-bundle", str(bundle))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('PGPASSWORD="$(aws rds generate-db-auth-token')
    assert "sslmode=verify-full" in result.stdout and "X-Amz" not in result.stdout
    assert stack.asked == [(naming.stack_name(BRANCH), False)]


def test_connect_exec_runs_the_client_with_a_fresh_token(stack: OutputsOnly, bundle: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, Any] = {}

    def fake_exec(file: str, argv: list[str], env: dict[str, str]) -> None:
        ran.update(file=file, argv=argv, env=env)

    monkeypatch.setattr(os, "execvpe", fake_exec)
    result = run("db", "connect", "-b", BRANCH, "--recipe", "rds-proxy", "-u", "dbadmin",
                 "--ca-bundle", str(bundle), "--exec")
    assert result.exit_code == 0, result.output
    assert ran["file"] == "mysql" and "--ssl-mode=VERIFY_IDENTITY" in ran["argv"]
    token = ran["env"]["MYSQL_PWD"]
    assert token.startswith("p.proxy-abc.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=dbadmin")
    assert token not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--recipe", "dynamodb-autoscaling", "-u", "x"], "no database to connect to"),
     (["--recipe", "aurora-serverless", "-u", "x;drop"], "--user"),
     (["--recipe", "aurora-serverless", "-u", "x", "--ca-bundle", "/nonexistent.pem"], "cannot read")],
)
def test_connect_bad_input(stack: OutputsOnly, args: list[str], message: str) -> None:
    result = run("db", "connect", "-b", BRANCH, *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.aws
def test_query_prints_a_table_and_json(stack: OutputsOnly) -> None:
    with mock_aws():
        requests.post(
            "http://motoapi.amazonaws.com/moto-api/static/rds-data/statement-results",
            json={"results": [{"records": [[{"longValue": 11}, {"stringValue": "widget"}]],
                               "columnMetadata": [{"label": "id"}, {"label": "name"}]}]},
            timeout=5,
        )
        text = run("db", "query", "-b", BRANCH, "select id, name from items where id > :min", "--param", "min=10")
        as_json = run("db", "query", "-b", BRANCH, "select id, name from items where id > :min", "-p", "min=10",
                      "--json")
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0].split() == ["id", "name"]
    assert "11  widget" in text.stdout and "(1 row)" in text.stdout
    assert json.loads(as_json.stdout) == {"columns": ["id", "name"], "rows": [[11, "widget"]], "records_updated": 0}


def test_query_bad_param_and_missing_data_api(stack: OutputsOnly) -> None:
    bad = run("db", "query", "-b", BRANCH, "select 1", "--param", "oops")
    assert bad.exit_code == 2 and "--param" in bad.stderr
    stack.values = {"aurora-serverless": {**OUTPUTS["aurora-serverless"], "data_api_enabled": False}}
    off = run("db", "query", "-b", BRANCH, "select 1")
    assert off.exit_code == 2 and "Data API off" in off.stderr


def test_db_commands_have_help_with_an_example() -> None:
    for command in (["db", "connect"], ["db", "query"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Example: dbenv db" in result.output
