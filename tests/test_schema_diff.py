"""`dbenv db diff` between pairs of real databases on PostgreSQL and MariaDB, and through the Data API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from automation.cli import app
from automation.runbooks import access, data_api_sql, schema_diff
from tests.data_api_server import DataApiServer
from tests.schema_fixtures import ENGINES, run_sql, url

pytestmark = pytest.mark.db

BASE = [
    "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL, name VARCHAR(50) DEFAULT 'anon', "
    "nick VARCHAR(20), legacy_flag INT)",
    "CREATE TABLE teams (id INT PRIMARY KEY, code VARCHAR(10))",
    "CREATE TABLE members (id INT PRIMARY KEY, user_id INT, team_id INT, "
    "CONSTRAINT fk_members_team FOREIGN KEY (team_id) REFERENCES teams (id))",
    "CREATE INDEX ix_users_nick ON users (nick)",
    "ALTER TABLE teams ADD CONSTRAINT uq_teams_code UNIQUE (code)",
    "CREATE TABLE old_audit (id INT PRIMARY KEY)",
    "CREATE VIEW v_users AS SELECT id, email FROM users",
    "CREATE VIEW v_gone AS SELECT id FROM teams",
    "CREATE VIEW v_same AS SELECT id FROM users",
]
# v_users depends on users.email: PostgreSQL alters a column only when no view uses it.
MODIFY = {"postgres": ["DROP VIEW v_users","ALTER TABLE users ALTER COLUMN email TYPE VARCHAR(200)",
                       "ALTER TABLE users ALTER COLUMN email DROP NOT NULL",
                       "ALTER TABLE users ALTER COLUMN name SET DEFAULT 'guest'",
                       "ALTER TABLE members DROP CONSTRAINT fk_members_team"],
          "mysql": ["DROP VIEW v_users", "ALTER TABLE users MODIFY email VARCHAR(200) NULL",
                    "ALTER TABLE users ALTER COLUMN name SET DEFAULT 'guest'",
                    "ALTER TABLE members DROP FOREIGN KEY fk_members_team"]}
BRANCH = [
    "ALTER TABLE users ADD COLUMN age INT NOT NULL DEFAULT 0",
    "ALTER TABLE users DROP COLUMN legacy_flag",
    "DROP INDEX ix_users_nick ON users",
    "CREATE INDEX ix_users_email ON users (email)",
    "ALTER TABLE users ADD CONSTRAINT uq_users_nick UNIQUE (nick)",
    "ALTER TABLE members ADD CONSTRAINT fk_members_user FOREIGN KEY (user_id) REFERENCES users (id)",
    "CREATE TABLE orders (id INT PRIMARY KEY, user_id INT NOT NULL)",
    "DROP TABLE old_audit",
    "DROP VIEW v_gone",
    "CREATE VIEW v_new AS SELECT id FROM orders",
    "CREATE VIEW v_users AS SELECT id, email, name FROM users",
]
EXPECTED = {
    ("table", "added", None, "orders"), ("table", "removed", None, "old_audit"),
    ("column", "added", "users", "age"), ("column", "removed", "users", "legacy_flag"),
    ("column", "changed", "users", "email"), ("column", "changed", "users", "name"),
    ("index", "added", "users", "ix_users_email"), ("index", "removed", "users", "ix_users_nick"),
    ("unique", "added", "users", "uq_users_nick"),
    ("foreign_key", "added", "members", "fk_members_user"), ("foreign_key", "removed", "members", "fk_members_team"),
    ("view", "added", None, "v_new"), ("view", "removed", None, "v_gone"), ("view", "changed", None, "v_users"),
}


def pg_drop_index(statement: str) -> str:
    return statement.replace(" ON users", "")


def build(engine: str, database: str, extra: list[str]) -> None:
    statements = BASE + extra
    if engine == "postgres":
        statements = [pg_drop_index(s) if s.startswith("DROP INDEX") else s for s in statements]
    run_sql(engine, database, statements)


def diff_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["db", "diff", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("engine", ENGINES)
def test_identical_schemas_exit_0(engine: str, databases: Callable[[str], str]) -> None:
    branch, parent = databases(engine), databases(engine)
    build(engine, branch, [])
    build(engine, parent, [])
    code, output = diff_cli("--url-branch", url(engine, branch), "--url-parent", url(engine, parent), "--exit-code")
    assert code == 0, output
    assert output.strip().endswith(": identical")


@pytest.mark.parametrize("engine", ENGINES)
def test_every_kind_of_difference_is_found(engine: str, databases: Callable[[str], str]) -> None:
    branch, parent = databases(engine), databases(engine)
    build(engine, parent, [])
    build(engine, branch, MODIFY[engine] + BRANCH)
    code, output = diff_cli("--url-branch", url(engine, branch), "--url-parent", url(engine, parent),
                            "--json", "--exit-code")
    assert code == 1, output
    report = json.loads(output)
    assert report["differs"] and report["dialect"] in ("postgresql", "mysql", "mariadb")
    found = {(c["kind"], c["change"], c["table"], c["name"]) for c in report["changes"]}
    missing = EXPECTED - found
    assert not missing, f"not reported: {missing}"
    # MariaDB backs a new foreign key with an index of the same name: that is a real difference too.
    extra = found - EXPECTED
    assert extra <= ({("index", "added", "members", "fk_members_user")} if engine == "mysql" else set()), extra
    changes = {(c["table"], c["name"]): c for c in report["changes"] if c["kind"] == "column"}
    email = changes[("users", "email")]["detail"]
    assert email["type"]["parent"] == "VARCHAR(100)" and email["type"]["branch"] == "VARCHAR(200)"
    assert email["nullable"] == {"parent": False, "branch": True}
    name_default = changes[("users", "name")]["detail"]["default"]
    assert "anon" in name_default["parent"] and "guest" in name_default["branch"]
    age = changes[("users", "age")]["detail"]
    assert age["nullable"] is False and age["default"].strip("'") == "0"
    fk = next(c for c in report["changes"] if c["name"] == "fk_members_user" and c["kind"] == "foreign_key")
    assert fk["detail"]["columns"] == ["user_id"] and fk["detail"]["referred_table"] == "users"


@pytest.mark.parametrize("engine", ENGINES)
def test_summary_reads_as_what_the_branch_changed(engine: str, databases: Callable[[str], str]) -> None:
    branch, parent = databases(engine), databases(engine)
    build(engine, parent, [])
    build(engine, branch, ["ALTER TABLE users ADD COLUMN age INT NOT NULL DEFAULT 0", "DROP TABLE old_audit"])
    code, output = diff_cli("--url-branch", url(engine, branch), "--url-parent", url(engine, parent))
    assert code == 0, output  # without --exit-code a difference is not a failure
    lines = output.strip().splitlines()
    assert lines[0].endswith(": 2 differences")
    assert re.search(r"\+ column users\.age INTEGER(\(11\))? NOT NULL DEFAULT ", output), output
    assert any(line.strip().startswith("- table old_audit") for line in lines)
    assert "root@" in lines[0] or "postgres@" in lines[0]


def test_different_engines_and_bad_urls_exit_2(databases: Callable[[str], str]) -> None:
    pg, my = databases("postgres"), databases("mysql")
    code, output = diff_cli("--url-branch", url("postgres", pg), "--url-parent", url("mysql", my))
    assert code == 2 and "its own kind" in output
    code, output = diff_cli("--url-branch", "oracle://x@h/db", "--url-parent", url("mysql", my))
    assert code == 2 and "'oracle' is not supported" in output
    code, output = diff_cli("--url-branch", url("mysql", my))
    assert code == 2 and "--against PARENT" in output


def test_unreachable_database_exits_1_without_the_password(databases: Callable[[str], str]) -> None:
    parent = databases("postgres")
    code, output = diff_cli("--url-branch", "postgresql://postgres:hunter2@127.0.0.1:5432/no_such_db_here",
                            "--url-parent", url("postgres", parent))
    assert code == 1
    assert "no_such_db_here" in output and "hunter2" not in output and "Traceback" not in output


CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:feature-x"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-feature-x-AbCdEf"


def test_the_data_api_path_reflects_through_execute_statement(databases: Callable[[str], str]) -> None:
    branch, parent = databases("postgres"), databases("postgres")
    build("postgres", parent, [])
    build("postgres", branch, MODIFY["postgres"] + BRANCH)
    with DataApiServer(CLUSTER, SECRET) as server:
        client = boto3.client("rds-data", region_name="us-east-1", endpoint_url=server.endpoint,
                              aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
        through_api = access.DataApiAccess(client, CLUSTER, SECRET, branch, label="feature/x (Data API)")
        direct = access.from_url(url("postgres", parent))
        result = schema_diff.diff(through_api, direct)
        assert server.calls and all(call["database"] == branch for call in server.calls)
        assert all(call["includeResultMetadata"] for call in server.calls)
    found = {(c.kind, c.change, c.table, c.name) for c in result.changes}
    assert found == EXPECTED
    # The same comparison over direct connections agrees with the Data API one.
    assert schema_diff.diff(access.from_url(url("postgres", branch)), direct).changes == result.changes


def test_the_loopback_endpoint_speaks_execute_statement(databases: Callable[[str], str]) -> None:
    database = databases("postgres")
    run_sql("postgres", database, ["CREATE TABLE t (id INT, name TEXT, tags TEXT[], price NUMERIC(6,2), raw BYTEA)",
                                   "INSERT INTO t VALUES (1, 'a;b', ARRAY['x','y'], 9.50, '\\x0102'), "
                                   "(2, NULL, NULL, NULL, NULL)"])
    with DataApiServer(CLUSTER, SECRET) as server:
        client = boto3.client("rds-data", region_name="us-east-1", endpoint_url=server.endpoint,
                              aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
        response = client.execute_statement(resourceArn=CLUSTER, secretArn=SECRET, database=database,
                                            sql="SELECT id, name, tags, price, raw FROM t WHERE id >= :min ORDER BY id",
                                            parameters=[{"name": "min", "value": {"longValue": 1}}],
                                            includeResultMetadata=True)
        assert [c["typeName"] for c in response["columnMetadata"]] == ["int4", "text", "_text", "numeric", "bytea"]
        first, second = response["records"]
        assert first[0] == {"longValue": 1} and first[1] == {"stringValue": "a;b"}
        assert first[2] == {"arrayValue": {"stringValues": ["x", "y"]}}
        assert first[3] == {"stringValue": "9.50"} and first[4] == {"blobValue": b"\x01\x02"}
        assert all(field == {"isNull": True} for field in second[1:])
        as_json = client.execute_statement(resourceArn=CLUSTER, secretArn=SECRET, database=database,
                                           sql="SELECT id, name FROM t ORDER BY id", formatRecordsAs="JSON")
        assert json.loads(as_json["formattedRecords"]) == [{"id": 1, "name": "a;b"}, {"id": 2, "name": None}]
        assert "records" not in as_json
        with pytest.raises(client.exceptions.DatabaseErrorException, match="no_such_table"):
            client.execute_statement(resourceArn=CLUSTER, secretArn=SECRET, database=database,
                                     sql="SELECT * FROM no_such_table")
        with pytest.raises(client.exceptions.ForbiddenException):
            client.execute_statement(resourceArn=CLUSTER, secretArn=SECRET + "x", database=database, sql="SELECT 1")
        cursor = data_api_sql.connect(client, CLUSTER, SECRET, database).cursor()
        cursor.execute("SELECT name FROM t WHERE name = :name", {"name": "a;b"})
        assert cursor.fetchall() == [("a;b",)] and cursor.description[0][0] == "name"


def test_stack_outputs_choose_the_data_api_else_the_admin_secret() -> None:
    clients: list[str] = []

    def client(service: str) -> str:
        clients.append(service)
        return service

    outputs = {"aurora-serverless": {"endpoint": "c.cluster-x.us-east-1.rds.amazonaws.com", "port": 5432,
                                     "database_name": "app", "cluster_arn": CLUSTER, "master_user_secret_arn": SECRET,
                                     "data_api_enabled": True}}
    chosen = access.from_outputs(outputs, recipe=None, region="us-east-1", client=client, label="feature/x")
    assert isinstance(chosen, access.DataApiAccess) and chosen.database == "app" and clients == ["rds-data"]
    assert chosen.label == "feature/x (Data API)"
    no_secret = {"encrypt-existing": {"address": "e.x.us-east-1.rds.amazonaws.com", "port": 3306}}
    with pytest.raises(access.DbError, match="pass --user"):
        access.from_outputs(no_secret, recipe=None, region="us-east-1", client=client)
    with pytest.raises(access.DbError, match="no database outputs"):
        access.from_outputs({"dynamodb-autoscaling": {}}, recipe=None, region="us-east-1", client=client)


def test_the_parent_setting_is_the_default_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --against, the diff compares with the `parent` setting (here DBENV_PARENT)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dbenv.toml").write_text("", encoding="utf-8")
    monkeypatch.setenv("DBENV_PARENT", "staging")
    code, output = diff_cli("--branch", "staging")
    assert code == 2 and "the parent 'staging' is the branch itself" in output
    monkeypatch.delenv("DBENV_PARENT")
    code, output = diff_cli("--branch", "feature/x")
    assert code == 2 and "`parent` in dbenv.toml" in output
