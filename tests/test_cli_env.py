"""The `dbenv` environment commands through typer's CliRunner, over the pulumi.automation stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from automation import cli
from automation.commands import common
from automation.operations import environments as envs
from automation.operations.engine import Engine, format_time, parse_time
from components import naming
from tests.scripted_pulumi import scripted_project
from tests.test_environments import NOW, FakeAutomation, StubLocal, _tags

runner = CliRunner()
BRANCH = "feature/x"
STACK = naming.stack_name(BRANCH)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAutomation]:
    """A project dir as cwd, a clean environment, and every Environments built over one fake backend."""
    (tmp_path / "dbenv.toml").write_text('recipes = "dynamodb-autoscaling"\n', encoding="utf-8")
    # The local file backend exists once anything was deployed; read-only commands look for it.
    (tmp_path / ".dbenv" / "state").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for key in ("DBENV_TARGET", "DBENV_TTL", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "CI", "NO_COLOR"):
        monkeypatch.delenv(key, raising=False)
    fake = FakeAutomation()

    def environments(settings: Any, *, read_only: bool = False) -> envs.Environments:
        engine = Engine(settings, auto=fake, command=object(), read_only=read_only)
        return envs.Environments(settings, engine, local=StubLocal(), identity=lambda: ("dev@example.com", "abc"),
                                 clock=lambda: NOW)

    monkeypatch.setattr(common, "environments", environments)
    yield fake


def run(*args: str) -> Any:
    return runner.invoke(cli.app, list(args))


@pytest.mark.parametrize("command", [["up"], ["preview"], ["down"], ["ls"], ["outputs"], ["reap"], ["cancel"],
                                     ["shared", "up"], ["shared", "down"], ["shared", "outputs"], ["local", "start"],
                                     ["local", "stop"], ["local", "status"], ["config", "show"], ["install-pulumi"],
                                     ["plan"], ["policy", "check"], ["db", "connect"], ["db", "query"], ["policy"],
                                     ["shared"], ["local"], ["config"], ["db"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example: dbenv" in result.output


def test_up_prints_outputs_as_json_without_secret_values(project: FakeAutomation) -> None:
    result = run("up", "--branch", BRANCH, "--yes", "--json", "--ttl", "24h")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stack"] == STACK and data["result"] == "succeeded"
    assert data["outputs"]["admin_password"] == "[secret]"
    assert data["outputs"]["aurora-serverless"]["endpoint"] == "db.local"
    assert data["tags"]["expires-at"] == "2026-11-28T12:00:00Z"
    assert "hunter2" not in result.output


def test_up_text_lists_outputs_and_progress_lines(project: FakeAutomation) -> None:
    result = run("up", "-b", BRANCH, "-y")
    assert result.exit_code == 0, result.output
    assert f"stack {STACK} (branch {BRANCH}): succeeded" in result.stdout
    assert "endpoint: db.local" in result.stdout and "admin_password: '[secret]'" in result.stdout
    assert "+ created aws:rds/cluster:Cluster aurora-cluster" in result.stderr


def test_up_needs_yes_off_a_terminal(project: FakeAutomation) -> None:
    result = run("up", "-b", BRANCH)
    assert result.exit_code == 2 and "pass --yes" in result.stderr
    assert project.backend.calls == []


@pytest.mark.parametrize(("args", "message"), [
    (["--branch", "bad branch"], "invalid branch name"),
    (["--recipes", "nope"], "unknown recipe 'nope'"),
    (["--ttl", "forever"], "not a duration"),
    (["--target", "gcp"], "not a target"),
    (["--config", "missing.yaml"], "cannot read config file"),
])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(project: FakeAutomation, args: list[str],
                                                             message: str) -> None:
    base = {"--branch": BRANCH}
    argv = ["up", "--yes"] + (args if "--branch" in args else ["--branch", base["--branch"], *args])
    result = run(*argv)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert project.backend.calls == [] and project.backend.stacks == {}


def test_engine_failure_exits_1_naming_the_resource(project: FakeAutomation) -> None:
    project.backend.script(STACK).fail_resource = "aurora-cluster"
    result = run("up", "-b", BRANCH, "-y")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dbenv: {STACK}: update failed: creating aurora-cluster: InvalidParameterValue")
    assert "(failed: aws:rds/cluster:Cluster aurora-cluster)" in last


def test_locked_stack_exits_1_and_mentions_cancel(project: FakeAutomation) -> None:
    project.backend.script(STACK).locked_times = 1
    result = run("up", "-b", BRANCH, "-y")
    assert result.exit_code == 1 and f"dbenv cancel --branch {BRANCH}" in result.stderr


def test_preview_reports_changes_and_pack(project: FakeAutomation) -> None:
    result = run("preview", "-b", BRANCH, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"stack": STACK, "changes": {"create": 3}, "policy_pack": None}


def test_down_protected_branch_needs_force(project: FakeAutomation) -> None:
    project.backend.add_stack(naming.stack_name("main"), {"ephemeral": "true"})
    refused = run("down", "-b", "main")
    assert refused.exit_code == 2 and "protected branch" in refused.stderr
    forced = run("down", "-b", "main", "--force")
    assert forced.exit_code == 0 and "destroyed and removed" in forced.stdout


def test_down_then_nothing_left(project: FakeAutomation) -> None:
    assert run("up", "-b", BRANCH, "-y").exit_code == 0
    result = run("down", "-b", BRANCH, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["existed"] is True
    assert project.backend.stacks == {}
    again = run("down", "-b", BRANCH)
    assert again.exit_code == 0 and "nothing to do" in again.stdout


def test_ls_text_and_json(project: FakeAutomation) -> None:
    project.backend.add_stack("old-1", _tags("old", NOW - timedelta(hours=2)), resources=4)
    project.backend.add_stack("new-1", _tags("new", NOW + timedelta(hours=30)))
    text = run("ls")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["STACK", "BRANCH", "PARENT", "CLONED", "AGE", "EXPIRES", "IN", "RESOURCES", "LAST",
                                "STATE", "SLEEP", "COST/MO"]
    assert lines[2].split() == ["old-1", "old", "-", "-", "3d2h", "-2h0m", "4", "succeeded", "expired", "awake", "-"]
    data = json.loads(run("ls", "--json").stdout)
    assert [row["stack"] for row in data] == ["new-1", "old-1"] and data[1]["expired"] is True


def test_outputs_masked_unless_show_secrets(project: FakeAutomation) -> None:
    run("up", "-b", BRANCH, "-y")
    masked = json.loads(run("outputs", "-b", BRANCH, "--json").stdout)
    assert masked["admin_password"] == "[secret]"
    shown = json.loads(run("outputs", "-b", BRANCH, "--json", "--show-secrets").stdout)
    assert shown["admin_password"] == "hunter2-secret"
    missing = run("outputs", "-b", "feature/none")
    assert missing.exit_code == 1 and "run `dbenv up` first" in missing.stderr


def test_reap_reports_each_and_exits_1_on_any_failure(project: FakeAutomation) -> None:
    project.backend.add_stack("a-1", _tags("a", NOW - timedelta(hours=3)))
    project.backend.add_stack("b-1", _tags("b", NOW - timedelta(hours=2)))
    project.backend.script("a-1").destroy_error = "deleting: DependencyViolation"
    result = run("reap")
    assert result.exit_code == 1
    assert "destroyed     b-1 (b)" in result.stdout
    assert "failed        a-1 (a): a-1: destroy failed: error: deleting: DependencyViolation" in result.stdout
    assert list(project.backend.stacks) == ["a-1"]


def test_reap_dry_run_json(project: FakeAutomation) -> None:
    project.backend.add_stack("a-1", _tags("a", NOW - timedelta(hours=3)))
    result = run("reap", "--dry-run", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [{"stack": "a-1", "branch": "a", "status": "would-destroy",
                                          "detail": "expired 3h0m ago"}]
    bad = run("reap", "--older-than", "soon")
    assert bad.exit_code == 2 and "--older-than" in bad.stderr


def test_config_show_json_names_sources(project: FakeAutomation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBENV_TTL", "12h")
    result = run("config", "show", "--json", "--target", "local")
    rows = {row["key"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["recipes"]["source"] == "dbenv.toml"
    assert rows["ttl"] == {"key": "ttl", "value": "12h", "source": "env DBENV_TTL"}
    assert rows["target"]["source"] == "flag --target"


def test_local_status_json_when_stopped(project: FakeAutomation) -> None:
    result = run("local", "status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"running": False, "endpoint": None, "pid": None}
    assert run("local", "stop").stdout.strip() == "not running"


def test_missing_pulumi_cli_is_one_line_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Engine, with no CLI anywhere: one line, exit 1, no local server, no state."""
    from automation import workspace

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dbenv.toml").write_text("", encoding="utf-8")
    monkeypatch.setattr(workspace, "find_pulumi", lambda *a, **k: None)
    result = run("up", "-b", BRANCH, "-r", "dynamodb-autoscaling", "-y")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"dbenv: the Pulumi CLI is not installed (not on PATH, not in "
                                     f"~/.pulumi/versions): {workspace.INSTALL_HINT}")
    assert not (tmp_path / ".dbenv" / "local").exists()


def test_shared_commands(project: FakeAutomation) -> None:
    project.backend.script("shared").outputs = {"network": envs_output({"vpc_id": "vpc-1"})}
    up = run("shared", "up", "--json")
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["outputs"]["network"] == {"vpc_id": "vpc-1"}
    assert json.loads(run("shared", "outputs", "--json").stdout) == {"network": {"vpc_id": "vpc-1"}}
    down = run("shared", "down")
    assert down.exit_code == 0 and "destroyed" in down.stdout


def envs_output(value: Any) -> Any:
    import pulumi.automation as auto

    return auto.OutputValue(value, False)


def test_time_format_round_trip() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time(format_time(moment)) == moment
    assert parse_time("garbage") is None


# ----------------------------------------------------------------- no stand-in above the CLI binary
#
# The whole `dbenv` command line over the real pulumi.automation package; only the `pulumi`
# binary is the scripted one from tests/scripted_pulumi.py (engine events travel over its real gRPC
# event stream). The program itself is not run: that needs the real engine (tests/test_engine.py).


@pytest.fixture
def real_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project, state = scripted_project(tmp_path, monkeypatch)
    (project / "policies").mkdir()
    (project / "policies" / "PulumiPolicy.yaml").write_text("runtime: python\n", encoding="utf-8")
    monkeypatch.chdir(project)
    return state


def _state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_up_ls_outputs_down_through_the_real_automation_api(real_api: Path) -> None:
    up_result = run("up", "-b", BRANCH, "--yes", "--json")
    assert up_result.exit_code == 0, up_result.output
    data = json.loads(up_result.stdout)
    assert data["outputs"] == {"dynamodb-autoscaling": {"table_name": "orders"}, "token": "[secret]"}
    assert data["result"] == "succeeded" and data["changes"] == {"create": 1}
    assert "+ created aws:dynamodb/table:Table orders" in up_result.stderr  # via the gRPC event stream
    saved = _state(real_api)[STACK]
    assert saved["tags"]["branch"] == BRANCH and saved["tags"]["ephemeral"] == "true"
    assert saved["policy_packs"] == [str(Path.cwd() / "policies")]
    assert "--client" in " ".join(saved["last_args"]) and "auto.inline" in saved["last_args"]
    assert "t0ps3cret" not in up_result.output

    listed = json.loads(run("ls", "--json").stdout)
    assert [(row["stack"], row["branch"], row["resource_count"], row["last_result"]) for row in listed] == [
        (STACK, BRANCH, 2, "succeeded")]
    outputs = json.loads(run("outputs", "-b", BRANCH, "--json").stdout)
    assert outputs["token"] == "[secret]"

    down_result = run("down", "-b", BRANCH)
    assert down_result.exit_code == 0, down_result.output
    assert "- deleted aws:dynamodb/table:Table orders" in down_result.stderr
    assert STACK not in _state(real_api)
    assert json.loads(run("ls", "--json").stdout) == []


def test_engine_failure_and_lock_through_the_real_automation_api(real_api: Path) -> None:
    assert run("up", "-b", BRANCH, "--yes").exit_code == 0
    state = _state(real_api)
    state[STACK]["fail"] = "ValidationException: bad capacity"
    real_api.write_text(json.dumps(state), encoding="utf-8")
    failed = run("up", "-b", BRANCH, "--yes")
    assert failed.exit_code == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        f"dbenv: {STACK}: update failed: error: creating orders: ValidationException: bad capacity; "
        "error: update failed")
    state = _state(real_api)
    state[STACK].update(fail=None, locked=True)
    real_api.write_text(json.dumps(state), encoding="utf-8")
    locked = run("down", "-b", BRANCH)
    assert locked.exit_code == 1
    assert f"locks/organization/db-recipes/{STACK}/1.json: created by ci@runner" in locked.stderr
    assert f"dbenv cancel --branch {BRANCH}" in locked.stderr


def test_aws_branch_stacks_create_the_shared_stack_once(real_api: Path) -> None:
    toml = Path("dbenv.toml")
    toml.write_text(toml.read_text(encoding="utf-8").replace("shared_network = false", "shared_network = true"),
                    encoding="utf-8")
    assert run("up", "-b", BRANCH, "--yes").exit_code == 0
    assert run("up", "-b", "feature/y", "--yes").exit_code == 0
    state = _state(real_api)
    assert len(state["shared"]["history"]) == 1 and state["shared"]["tags"]["ephemeral"] == "false"
    assert json.loads(state[STACK]["config"]["db-recipes:network"]) == {
        "shared_stack": "organization/db-recipes/shared"}
    refused = run("shared", "down")
    assert refused.exit_code == 2 and STACK in refused.stderr
    assert run("down", "-b", BRANCH).exit_code == 0 and run("down", "-b", "feature/y").exit_code == 0
    assert run("shared", "down").exit_code == 0 and _state(real_api) == {}
