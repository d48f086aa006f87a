"""post_clone / seed / migrate against the real PostgreSQL and MariaDB, each test on its own databases."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from automation.runbooks import access, hooks, schema_diff
from tests.schema_fixtures import ENGINES, query, run_sql, url

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
USERS = ("CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE, full_name VARCHAR(200), "
         "phone VARCHAR(40), birth_date DATE, password_hash VARCHAR(200))")


# ------------------------------------------------------------------ splitting (no database)


def test_split_respects_strings_comments_and_dollar_quotes() -> None:
    text = """
    INSERT INTO t VALUES ('a;b', 'it''s; fine'); -- a comment; with a semicolon
    /* block; comment */ CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
    DO $$ BEGIN PERFORM 1; END $$;
    SELECT "odd;name" FROM t;
    -- trailing comment only
    """
    statements = hooks.split_statements(text, "postgres")
    assert len(statements) == 4
    assert statements[0] == "INSERT INTO t VALUES ('a;b', 'it''s; fine')"
    assert "$body$ SELECT 1; $body$" in statements[1]
    assert statements[2] == "DO $$ BEGIN PERFORM 1; END $$"


def test_split_mysql_backslashes_backticks_and_hash_comments() -> None:
    text = "INSERT INTO t VALUES ('a\\';b'); # note; here\nSELECT `x;y` FROM t;"
    assert hooks.split_statements(text, "mysql") == ["INSERT INTO t VALUES ('a\\';b')", "# note; here\nSELECT `x;y` FROM t"]
    # In PostgreSQL a dollar sign after a name is not a quote, and a backslash is an ordinary character.
    assert hooks.split_statements("SELECT a$b FROM t; SELECT 'c\\'; SELECT 2", "postgres") == [
        "SELECT a$b FROM t", "SELECT 'c\\'", "SELECT 2"]


@pytest.mark.parametrize(("content", "message"), [
    (b"SELECT 'unterminated", "unterminated ' quote"),
    (b"SELECT 1; /* open", "unterminated /* comment"),
    (b"DO $x$ BEGIN", "unterminated $x$ quote"),
    (b"\xff\xfe SELECT 1", "not UTF-8"),
    (b"-- only a comment\n", "holds no SQL statement"),
])
def test_bad_sql_files_are_refused_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.sql"
    path.write_bytes(content)
    with pytest.raises(hooks.HookInputError, match=message.replace("$", r"\$").replace("*", r"\*")):
        hooks.read_sql_file(path, "postgres", "post_clone")


def test_oversized_and_missing_files(tmp_path: Path) -> None:
    big = tmp_path / "big.sql"
    big.write_bytes(b"SELECT 1;\n" * (hooks.MAX_SQL_BYTES // 10 + 1))
    with pytest.raises(hooks.HookInputError, match="the limit is"):
        hooks.read_sql_file(big, "postgres", "seed")
    with pytest.raises(hooks.HookInputError, match="seed: cannot read"):
        hooks.read_sql_file(tmp_path / "missing.sql", "postgres", "seed")
    with pytest.raises(hooks.HookInputError, match="migrate: expected a shell command"):
        hooks.check_command("   ")


# ------------------------------------------------------------------ against the real databases


def _file(tmp_path: Path, name: str, text: str, engine: str) -> hooks.SqlFile:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return hooks.read_sql_file(path, engine, "seed")


@pytest.mark.db
@pytest.mark.parametrize("engine", ENGINES)
def test_seed_runs_once_and_is_left_out_of_the_diff(engine: str, databases: Callable[[str], str],
                                                     tmp_path: Path) -> None:
    branch, parent = databases(engine), databases(engine)
    seed = _file(tmp_path, "seed.sql", "CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(50));\n"
                 "INSERT INTO items VALUES (1, 'a;b'), (2, 'it''s');", engine)
    target = access.from_url(url(engine, branch))
    first = hooks.run(hooks.Hooks(seed=(seed,)), target, cloned=False, on_line=lambda _: None)
    second = hooks.run(hooks.Hooks(seed=(seed,)), target, cloned=False, on_line=lambda _: None)
    assert first.ran == ["seed seed.sql (2 statements)"] and second.ran == []
    assert second.skipped == ["seed seed.sql (already applied)"]
    assert query(engine, branch, "SELECT id, note FROM items ORDER BY id") == [(1, "a;b"), (2, "it's")]
    run_sql(engine, parent, ["CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(50))"])
    result = schema_diff.diff(target, access.from_url(url(engine, parent)))
    assert not result.differs, result.summary()


@pytest.mark.db
@pytest.mark.parametrize("engine", ENGINES)
def test_a_failing_statement_names_file_and_number_and_rolls_back(engine: str, databases: Callable[[str], str],
                                                                  tmp_path: Path) -> None:
    database = databases(engine)
    run_sql(engine, database, ["CREATE TABLE items (id INT PRIMARY KEY)", "INSERT INTO items VALUES (1)"])
    bad = _file(tmp_path, "mask.sql", "UPDATE items SET id = 10;\nINSERT INTO items VALUES (11);\n"
                "UPDATE no_such_table SET x = 1;\nINSERT INTO items VALUES (12);", engine)
    target = access.from_url(url(engine, database))
    with pytest.raises(hooks.HookFailed, match=r"mask\.sql: statement 3 .*no_such_table") as failure:
        hooks.run_sql_files(target, "post_clone", (bad,))
    assert "rolled back" in str(failure.value)
    assert query(engine, database, "SELECT id FROM items ORDER BY id") == [(1,)]
    assert query(engine, database, f"SELECT count(*) FROM {schema_diff.LEDGER}") == [(0,)]


@pytest.mark.db
@pytest.mark.parametrize(("engine", "example"), [("postgres", "mask_users.sql"), ("mysql", "mask_users.mysql.sql")])
def test_the_example_masking_script_masks_a_users_table(engine: str, example: str, databases: Callable[[str], str]) -> None:
    database = databases(engine)
    run_sql(engine, database, [USERS, "INSERT INTO users VALUES (1, 'ann@corp.example', 'Ann Lee', '+1 555 0100', "
                               "'1990-07-14', 'bcrypt$abc'), (2, 'bob@corp.example', 'Bob Roe', NULL, NULL, 'x')"])
    masking = hooks.read_sql_file(EXAMPLES / example, engine, "post_clone")
    report = hooks.run(hooks.Hooks(post_clone=(masking,)), access.from_url(url(engine, database)), cloned=True,
                       on_line=lambda _: None)
    assert report.ran == [f"post_clone {example} ({len(masking.statements)} statements)"]
    rows = query(engine, database, "SELECT id, email, full_name, phone, birth_date, password_hash FROM users ORDER BY id")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(1, "user1@example.invalid", "User 1", None),
                                                        (2, "user2@example.invalid", "User 2", None)]
    assert str(rows[0][4]) == "1990-01-01" and rows[1][4] is None
    assert {r[5] for r in rows} == {"masked;no-login"}


@pytest.mark.db
def test_post_clone_and_seed_run_on_their_kind_of_database_only(databases: Callable[[str], str], tmp_path: Path) -> None:
    database = databases("postgres")
    seed = _file(tmp_path, "seed.sql", "CREATE TABLE seeded (id INT)", "postgres")
    mask = _file(tmp_path, "mask.sql", "CREATE TABLE masked (id INT)", "postgres")
    target = access.from_url(url("postgres", database))
    report = hooks.run(hooks.Hooks(post_clone=(mask,), seed=(seed,)), target, cloned=True, on_line=lambda _: None)
    assert report.ran == ["post_clone mask.sql (1 statements)"]
    assert report.skipped == ["seed seed.sql (the database is a clone)"]
    assert query("postgres", database, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'seeded'") == [(0,)]


MIGRATION = """
import os, sys
import pg8000.native, pymysql
if os.environ.get("PGHOST"):
    c = pg8000.native.Connection(user=os.environ["PGUSER"], host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
                                 database=os.environ["PGDATABASE"], password=os.environ.get("PGPASSWORD") or None)
    c.run("CREATE TABLE IF NOT EXISTS migrated (id INT)")
else:
    c = pymysql.connect(host=os.environ["MYSQL_HOST"], port=int(os.environ["MYSQL_TCP_PORT"]),
                        user=os.environ["MYSQL_USER"], password=os.environ["MYSQL_PWD"],
                        database=os.environ["MYSQL_DATABASE"], autocommit=True)
    c.cursor().execute("CREATE TABLE IF NOT EXISTS migrated (id INT)")
print("applied 1 migration to", os.environ["DATABASE_URL"].split("@")[1].split("?")[0], flush=True)
print("to stderr too", file=sys.stderr, flush=True)
"""


@pytest.mark.db
@pytest.mark.parametrize("engine", ENGINES)
def test_migrate_runs_with_the_connection_in_its_environment(engine: str, databases: Callable[[str], str],
                                                             tmp_path: Path) -> None:
    database = databases(engine)
    script = tmp_path / "migrate.py"
    script.write_text(MIGRATION, encoding="utf-8")
    lines: list[str] = []
    hooks.run(hooks.Hooks(migrate=f"{sys.executable} {script}"), access.from_url(url(engine, database)),
              cloned=False, on_line=lines.append)
    port = 5432 if engine == "postgres" else 3306
    assert f"applied 1 migration to 127.0.0.1:{port}/{database}" in lines and "to stderr too" in lines
    assert query(engine, database, "SELECT count(*) FROM migrated") == [(0,)]


@pytest.mark.db
def test_a_failing_migration_fails_with_its_exit_code(databases: Callable[[str], str]) -> None:
    database = databases("postgres")
    lines: list[str] = []
    with pytest.raises(hooks.HookFailed, match="exited with 3; the environment is left"):
        hooks.run_migrate("echo migrating; exit 3", access.from_url(url("postgres", database)), lines.append)
    assert lines == ["migrating"]


def test_environment_carries_tls_and_quotes_the_password(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    pg = access.Access("postgres", "db.example", 5432, "app", "p@ss/word", "app", bundle)
    env = pg.environment()
    assert env["DATABASE_URL"] == (f"postgresql://app:p%40ss%2Fword@db.example:5432/app?sslmode=verify-full"
                                   f"&sslrootcert={str(bundle).replace('/', '%2F')}")
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == str(bundle) and env["PGPASSWORD"] == "p@ss/word"
    my = access.Access("mysql", "db.example", 3306, "app", "tok", "app", bundle, iam=True).environment()
    assert my["MYSQL_TCP_PORT"] == "3306" and my["MYSQL_PWD"] == "tok" and my["LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN"] == "1"
    assert "ssl-mode=VERIFY_IDENTITY" in my["DATABASE_URL"]
    assert "p@ss" not in repr(pg)
