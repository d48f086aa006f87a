"""Branches cloned from a parent environment (`dbenv up --from staging`).

The clone's resources under Pulumi mocks (exact restore inputs per engine, the instance-after-cluster
dependency, the parent's outputs as placeholders), the refusals before anything is created at the
Automation API seam (tests/test_environments.py's scripted stand-in), ls and down, the data hooks on a
fresh clone against the real PostgreSQL and MariaDB, and what a clone costs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi.automation as auto
import pytest
from typer.testing import CliRunner

from automation import cli
from automation.operations.engine import format_time
from automation.operations.errors import BadInput
from automation.operations.prepare import prepare, prepare_hooks
from automation.planning import cost, plan
from automation.runbooks import access, hooks
from automation.workspace import SettingsError, load_settings
from components import naming, recipes
from components.config import ConfigError
from tests.schema_fixtures import query, run_sql, url
from tests.test_cli_env import project  # noqa: F401 - the CLI fixture over the scripted Automation API
from tests.test_environments import NOW, FakeAutomation, _tags, make_service, prepared

BRANCH, PARENT = "feature/x", "staging"
STACK, PARENT_STACK = naming.stack_name(BRANCH), naming.stack_name(PARENT)
QUALIFIED = f"organization/db-recipes/{PARENT_STACK}"
CLONED = "aurora-serverless,rds-proxy,dynamodb-autoscaling"
runner = CliRunner()


def clone_plan(recipe_list: str = CLONED, **extra: Any) -> plan.Plan:
    config = {"db-recipes:recipes": recipe_list, "db-recipes:ephemeral": True, "db-recipes:parent": QUALIFIED,
              "aws:region": "us-east-1", **extra}
    return plan.build_plan(config, stack=STACK)


def parent_outputs(result: plan.Plan) -> dict[str, Any]:
    """What the offline plan stood in for the parent's outputs (the StackReference's placeholder)."""
    _, state = plan.Placeholders(result.region, stack_config=None).resource(
        "pulumi:pulumi:StackReference", "parent", {"name": QUALIFIED})
    return state["outputs"]


# ------------------------------------------------------------------ the clone under mocks


def test_aurora_is_a_copy_on_write_clone_under_the_branchs_key_with_instances_after_it() -> None:
    result = clone_plan()
    # The StackReference is read, not registered: the plan records it as a dependency and a placeholder note.
    reference = f"urn:pulumi:{STACK}::db-recipes::pulumi:pulumi:Stack$pulumi:pulumi:StackReference::parent"
    assert {note["stack"] for note in result.placeholders} == {QUALIFIED}
    cluster = result.by_name("aurora-cluster")
    parent_cluster = naming.Namer.for_stack(PARENT_STACK).rds("aurora")
    assert cluster.inputs["restoreToPointInTime"] == {
        "sourceClusterIdentifier": parent_cluster, "restoreType": "copy-on-write", "useLatestRestorableTime": True}
    assert reference in cluster.dependencies
    # The branch's own key (RestoreDBClusterToPointInTime KmsKeyId may differ from the source's).
    key = result.by_name("stack-key")
    assert key.urn in cluster.dependencies and cluster.inputs["kmsKeyId"].startswith("arn:aws:kms:")
    assert cluster.inputs["kmsKeyId"] == cluster.inputs["masterUserSecretKmsKeyId"]
    # A restore takes its database and master user from the source; the version is the parent's.
    assert "databaseName" not in cluster.inputs and "masterUsername" not in cluster.inputs
    assert cluster.inputs["engineVersion"] == "16.6"
    assert cluster.inputs["iamDatabaseAuthenticationEnabled"] is True and cluster.inputs["manageMasterUserPassword"]
    assert cluster.inputs["dbClusterParameterGroupName"] and cluster.inputs["vpcSecurityGroupIds"]
    for instance in result.of_type("aws:rds/clusterInstance:ClusterInstance"):
        assert cluster.urn in instance.dependencies


def test_mysql_is_a_point_in_time_restore_that_keeps_the_parents_storage_key() -> None:
    result = clone_plan()
    instance = result.by_name("mysql-instance")
    outputs = parent_outputs(result)
    assert instance.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": outputs["mysql"]["identifier"], "useLatestRestorableTime": True}
    assert instance.inputs["kmsKeyId"] == outputs["mysql"]["storage_kms_key_arn"]
    # Its managed secret is under the branch's key, not the parent's.
    branch_key = result.by_name("aurora-cluster").inputs["kmsKeyId"]
    assert instance.inputs["masterUserSecretKmsKeyId"] == branch_key != instance.inputs["kmsKeyId"]
    assert instance.inputs["storageEncrypted"] is True and instance.inputs["engineVersion"] == "8.4"
    assert "dbName" not in instance.inputs and "username" not in instance.inputs


def test_dynamodb_is_restored_to_the_latest_time_under_the_branchs_key() -> None:
    result = clone_plan()
    table = result.by_name("dynamodb-table")
    assert table.inputs["restoreSourceName"] == parent_outputs(result)["dynamodb-autoscaling"]["table_name"]
    assert table.inputs["restoreToLatestTime"] is True
    assert table.inputs["serverSideEncryption"]["kmsKeyArn"] == result.by_name("aurora-cluster").inputs["kmsKeyId"]


def test_the_plan_says_the_parent_is_assumed_and_which_clone_keeps_the_parents_key() -> None:
    result = clone_plan()
    notes = [n["note"] for n in result.placeholders]
    assert "assumed to exist" in notes[0]
    assert any(n.startswith("Aurora: copy-on-write clone") and "this stack's key" in n for n in notes)
    assert any(n.startswith("RDS MySQL") and "keeps the parent's key" in n for n in notes)
    assert any(n.startswith("DynamoDB") and "point-in-time recovery" in n for n in notes)
    tree = plan.render_tree(result)
    assert "placeholder: parent: RDS MySQL: point-in-time restore" in tree
    # A newer major on the branch is planned with that version for the parent (the parent is assumed).
    newer = clone_plan("aurora-serverless", **{"db-recipes:aurora-serverless": {"engine_version": "17.4"}})
    assert newer.by_name("aurora-cluster").inputs["engineVersion"] == "17.4"


def test_everything_else_is_created_fresh_and_no_parent_means_no_reference() -> None:
    result = clone_plan("encrypt-existing")
    assert not result.placeholders
    assert all("restoreToPointInTime" not in r.inputs for r in result.of_type("aws:rds/instance:Instance"))
    fresh = plan.build_plan({"db-recipes:recipes": CLONED, "db-recipes:ephemeral": True}, stack=STACK)
    assert not fresh.placeholders
    assert "restoreToPointInTime" not in fresh.by_name("aurora-cluster").inputs
    assert fresh.by_name("aurora-cluster").inputs["databaseName"] == "app"


@pytest.mark.parametrize(("raw", "message"), [
    ({"parent": f"organization/db-recipes/{STACK}"}, "cannot be its own parent"),
    ({"parent": "staging"}, "a stack name like organization/db-recipes/"),
    ({"parent": QUALIFIED, "aurora-serverless": {"restore": {"source_identifier": "other"}}},
     "give a restore or a parent, not both"),
    ({"parent": QUALIFIED, "mysql": {"restore": {"snapshot_identifier": "nightly"}}},
     "db-recipes:mysql.restore"),
])
def test_config_refuses_a_parent_it_cannot_clone(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        recipes.parse_config({"recipes": CLONED, **raw}, stack=STACK)


def test_cloned_databases_are_the_stacks_own_databases_only() -> None:
    config = recipes.parse_config({"recipes": "all", "parent": QUALIFIED}, stack=STACK)
    assert config.cloned_databases == ("aurora-serverless", "mysql", "dynamodb-autoscaling")
    own = recipes.parse_config({"recipes": "rds-proxy", "parent": QUALIFIED, "rds-proxy": {"database": "own"}},
                               stack=STACK)
    assert own.cloned_databases == ()


# ------------------------------------------------------------------ settings


def test_parent_precedence_flag_over_env_over_dbenv_toml(tmp_path: Path) -> None:
    (tmp_path / "dbenv.toml").write_text('parent = "main"\n', encoding="utf-8")
    assert load_settings(tmp_path, env={}).values["parent"] == "main"
    from_env = load_settings(tmp_path, env={"DBENV_PARENT": "staging"})
    assert (from_env.values["parent"], from_env.sources["parent"]) == ("staging", "env DBENV_PARENT")
    flag = load_settings(tmp_path, flags={"parent": "release/1"}, env={"DBENV_PARENT": "staging"})
    assert (flag.values["parent"], flag.sources["parent"]) == ("release/1", "flag --parent")
    with pytest.raises(SettingsError, match="parent"):
        load_settings(tmp_path, flags={"parent": "a..b"}, env={})


def test_prepare_names_the_parent_stack_and_refuses_the_branch_itself(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path, parent=PARENT)
    ready = prepared(service, recipes=CLONED)
    assert (ready.parent, ready.parent_stack) == (PARENT, PARENT_STACK)
    assert ready.config["db-recipes:parent"] == QUALIFIED
    with pytest.raises(BadInput, match="cannot be its own parent"):
        prepared(service, branch=PARENT, recipes=CLONED)


# ------------------------------------------------------------------ refusals at the Automation API seam


def add_parent(fake: FakeAutomation, outputs: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> None:
    state = fake.backend.add_stack(PARENT_STACK, {"branch": PARENT, "ephemeral": "false", **(tags or {})})
    values = outputs if outputs is not None else {
        "aurora-serverless": {"cluster_identifier": "staging-aurora", "engine_version": "16.6"},
        "mysql": {"identifier": "staging-mysql", "engine_version": "8.4.5", "storage_kms_key_arn": "arn:k",
                  "backup_retention_days": 7},
        "dynamodb-autoscaling": {"table_name": "staging-items", "point_in_time_recovery": True},
    }
    state.outputs = {key: auto.OutputValue(value, False) for key, value in values.items()}


def assert_nothing_created(fake: FakeAutomation) -> None:
    assert STACK not in fake.backend.stacks
    assert not fake.backend.ops("create") and not fake.backend.ops("up")


@pytest.mark.parametrize(("outputs", "tags", "message"), [
    ({}, None, "has no aurora-serverless database"),
    ({"aurora-serverless": {"cluster_identifier": "c"}}, None, "outputs lack engine_version"),
    ({"aurora-serverless": {"cluster_identifier": "c", "engine_version": "15.7"}}, None,
     "runs 15.7 and this branch wants 16.6"),
    (None, {"parent": BRANCH}, "a branch cannot be the parent of its own parent"),
])
def test_up_refuses_a_parent_it_cannot_clone_before_anything_is_created(
        tmp_path: Path, outputs: dict[str, Any] | None, tags: dict[str, str] | None, message: str) -> None:
    service, fake = make_service(tmp_path, parent=PARENT)
    add_parent(fake, outputs, tags)
    with pytest.raises(BadInput, match=message):
        service.up(prepared(service, recipes="aurora-serverless"))
    assert_nothing_created(fake)


def test_a_missing_parent_mysql_backups_and_dynamodb_pitr_are_named(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path, parent=PARENT)
    with pytest.raises(BadInput, match=rf"parent 'staging' \(stack {PARENT_STACK}\) does not exist"):
        service.preview(prepared(service, recipes=CLONED))
    add_parent(fake, {
        "aurora-serverless": {"cluster_identifier": "c", "engine_version": "16.4"},
        "mysql": {"identifier": "m", "engine_version": "8.0.40", "storage_kms_key_arn": "k", "backup_retention_days": 0},
        "dynamodb-autoscaling": {"table_name": "t", "point_in_time_recovery": False},
    })
    with pytest.raises(BadInput) as refused:
        service.up(prepared(service, recipes=CLONED))
    text = str(refused.value)
    assert "runs 8.0.40 and this branch wants 8.4" in text
    assert "table t has point-in-time recovery off" in text and "16.4" not in text
    assert_nothing_created(fake)
    fake.backend.stacks[PARENT_STACK].outputs["mysql"] = auto.OutputValue(
        {"identifier": "m", "engine_version": "8.4.3", "storage_kms_key_arn": "k", "backup_retention_days": 0}, False)
    with pytest.raises(BadInput, match="keeps no automated backups"):
        service.up(prepared(service, recipes="rds-proxy"))


def test_up_from_a_parent_tags_parent_and_clone_time_and_runs_post_clone(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    service, fake = make_service(tmp_path, parent=PARENT)
    add_parent(fake)
    seen: list[bool] = []
    monkeypatch.setattr(service, "run_data_hooks", lambda *a, cloned=False, **k: seen.append(cloned))
    outcome = service.up(prepared(service, recipes=CLONED), hooks=object())
    tags = fake.backend.stacks[STACK].tags
    assert tags["parent"] == PARENT and tags["cloned-at"] == format_time(NOW) == outcome.tags["cloned-at"]
    assert fake.backend.stacks[STACK].config["db-recipes:parent"].value == QUALIFIED
    assert seen == [True]
    later, _ = make_service(tmp_path, parent=PARENT)
    later.engine = service.engine
    later.clock = lambda: NOW.replace(hour=18)
    later.run_data_hooks = lambda *a, cloned=False, **k: seen.append(cloned)  # type: ignore[method-assign]
    later.up(prepared(later, recipes=CLONED), hooks=object())
    assert fake.backend.stacks[STACK].tags["cloned-at"] == format_time(NOW)
    fresh, fake2 = make_service(tmp_path / "fresh")
    fresh.run_data_hooks = lambda *a, cloned=False, **k: seen.append(cloned)  # type: ignore[method-assign]
    fresh.up(prepared(fresh, recipes=CLONED), hooks=object())
    assert seen[-1] is False and "parent" not in fake2.backend.stacks[STACK].tags


def test_down_of_a_clone_never_touches_its_parent(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path, parent=PARENT)
    add_parent(fake)
    service.up(prepared(service, recipes=CLONED))
    before = (dict(fake.backend.stacks[PARENT_STACK].tags), dict(fake.backend.stacks[PARENT_STACK].outputs))
    calls = len(fake.backend.calls)
    outcome = service.down(BRANCH)
    assert outcome.existed and STACK not in fake.backend.stacks
    assert PARENT_STACK in fake.backend.stacks
    assert before == (dict(fake.backend.stacks[PARENT_STACK].tags), dict(fake.backend.stacks[PARENT_STACK].outputs))
    assert all(stack != PARENT_STACK for _, stack, _ in fake.backend.calls[calls:])


def test_list_shows_parent_and_clone_time(tmp_path: Path) -> None:
    service, fake = make_service(tmp_path)
    fake.backend.add_stack(STACK, {**_tags(BRANCH, NOW), "parent": PARENT, "cloned-at": "2026-11-27T10:00:00Z"})
    info = next(i for i in service.list() if i.stack == STACK)
    assert info.parent == PARENT and info.to_json()["cloned_at"] == "2026-11-27T10:00:00Z"


# ------------------------------------------------------------------ the CLI


def test_cli_up_from_a_missing_parent_exits_2_and_creates_nothing(project: FakeAutomation) -> None:  # noqa: F811
    result = runner.invoke(cli.app, ["up", "-b", BRANCH, "--from", PARENT, "-y"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr
    assert_nothing_created(project)
    itself = runner.invoke(cli.app, ["up", "-b", BRANCH, "--parent", BRANCH, "-y"])
    assert itself.exit_code == 2 and "cannot be its own parent" in itself.stderr


def test_cli_up_from_ls_and_down(project: FakeAutomation) -> None:  # noqa: F811
    add_parent(project)
    up = runner.invoke(cli.app, ["up", "-b", BRANCH, "--from", PARENT, "-y"])
    assert up.exit_code == 0, up.output
    assert f"cloned from {PARENT} at 2026-11-27T12:00:00Z" in up.stdout
    rows = runner.invoke(cli.app, ["ls"]).stdout.splitlines()
    assert rows[0].split()[:4] == ["STACK", "BRANCH", "PARENT", "CLONED"]
    clone_row = next(line.split() for line in rows if line.startswith(STACK))
    assert clone_row[1:4] == [BRANCH, PARENT, "2026-11-27T12:00:00Z"]
    listed = json.loads(runner.invoke(cli.app, ["ls", "--json"]).stdout)
    assert {row["stack"]: row["parent"] for row in listed} == {STACK: PARENT, PARENT_STACK: None}
    down = runner.invoke(cli.app, ["down", "-b", BRANCH])
    assert down.exit_code == 0 and PARENT_STACK in project.backend.stacks and STACK not in project.backend.stacks


def test_cli_plan_and_policy_check_name_the_parent_flag_without_collision(project: FakeAutomation) -> None:  # noqa: F811
    shown = runner.invoke(cli.app, ["plan", "-b", BRANCH, "--from", PARENT, "-r", "dynamodb-autoscaling", "--json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    table = next(r for r in document["resources"] if r["name"] == "dynamodb-table")
    assert table["inputs"]["restoreToLatestTime"] is True
    assert any("assumed to exist" in note["note"] for note in document["placeholders"])
    both = runner.invoke(cli.app, ["policy", "check", "--from", "plan.json", "--parent", PARENT])
    assert both.exit_code == 2 and "--from names a resource file" in both.stderr


@pytest.mark.policy
def test_a_cloned_branch_is_policy_clean(project: FakeAutomation) -> None:  # noqa: F811
    checked = runner.invoke(cli.app, ["policy", "check", "-b", BRANCH, "--parent", PARENT, "-r", "all", "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert not [v for v in report["violations"] if v["level"] == "mandatory"]


# ------------------------------------------------------------------ post_clone on a fresh clone, real databases


@pytest.mark.db
@pytest.mark.parametrize(("engine", "example"), [("postgres", "mask_users.sql"), ("mysql", "mask_users.mysql.sql")])
def test_up_from_a_parent_masks_the_clone_once_then_migrates(
        engine: str, example: str, databases: Callable[[str], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    database = databases(engine)
    run_sql(engine, database, ["CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE, "
                               "full_name VARCHAR(200), phone VARCHAR(40), birth_date DATE, password_hash VARCHAR(200))",
                               "INSERT INTO users VALUES (1, 'ann@corp.example', 'Ann Lee', '+1 555 0100', "
                               "'1990-07-14', 'bcrypt$abc')"])
    examples = Path(__file__).resolve().parent.parent / "examples"
    seed = tmp_path / "seed.sql"
    seed.write_text("CREATE TABLE seeded (id INT);", encoding="utf-8")
    service, fake = make_service(tmp_path, parent=PARENT, target="aws", secrets_provider="awskms://alias/dbenv",
                                 shared_network=False, post_clone=[str(examples / example)], seed=[str(seed)],
                                 migrate="echo migrated on $DATABASE_URL_ENGINE_CHECK")
    add_parent(fake)
    reached: list[dict[str, Any]] = []

    def branch_database(outputs: Any, **kwargs: Any) -> Any:
        # The seam where the branch's outputs become a connection: here, the local server's database.
        reached.append(dict(outputs))
        return access.from_url(url(engine, database))

    monkeypatch.setattr(access, "from_outputs", branch_database)
    monkeypatch.setattr("automation.operations.preflight.check", lambda *a, **k: None)
    ready = prepare(service.settings, branch=BRANCH, recipes="aurora-serverless" if engine == "postgres"
                         else "rds-proxy", check_engine=False)
    lines: list[str] = []
    for _ in range(2):
        service.up(ready, hooks=prepare_hooks(service.settings, ready), on_line=lines.append)
    assert reached and "aurora-serverless" in reached[0]
    assert lines.count(f"ran post_clone {example} ({len(hooks.read_sql_file(examples / example, engine, 'post_clone').statements)} statements)") == 1
    assert lines.count("migrate: echo migrated on $DATABASE_URL_ENGINE_CHECK") == 2
    assert query(engine, database, "SELECT email, full_name FROM users") == [("user1@example.invalid", "User 1")]
    seeded = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'seeded'"
    assert query(engine, database, seeded) == [(0,)]


# ------------------------------------------------------------------ what a clone costs


def test_a_clone_is_priced_by_what_it_adds() -> None:
    table = cost.load_prices()
    aurora_gb = table.price("us-east-1", "aurora.storage").usd
    gp3_gb = table.price("us-east-1", "rds.storage.gp3").usd
    config = {"db-recipes:recipes": CLONED, "db-recipes:ephemeral": True, "aws:region": "us-east-1"}
    fresh = cost.estimate_stack(config, STACK)
    clone = cost.estimate_stack({**config, "db-recipes:parent": QUALIFIED}, STACK)

    def component(estimate: Any, resource: str, prefix: str) -> Any:
        priced = next(r for r in estimate.resources if r.resource.name == resource)
        return next(c for c in priced.components if c.name.startswith(prefix))

    # Aurora: a fresh cluster's 1 GB (the default usage) idles at $0.10; a clone shares the parent's pages.
    assert component(fresh, "aurora-cluster", "Aurora storage").monthly("idle") == pytest.approx(1 * aurora_gb)
    shared = component(clone, "aurora-cluster", "Aurora storage")
    assert "copy-on-write clone" in shared.name and shared.monthly("idle") == 0.0
    assert shared.monthly("usage") == pytest.approx(1 * aurora_gb)
    # RDS point-in-time restore: its own 20 GB gp3, as a fresh instance.
    assert component(clone, "mysql-instance", "storage (gp3, 20 GB)").monthly("idle") == pytest.approx(20 * gp3_gb)
    assert clone.total("idle") == pytest.approx(fresh.total("idle") - aurora_gb)
    assert round(fresh.total("idle") - clone.total("idle"), 2) == 0.10
