"""The proxy client's event handling and query logic; the database parts run against MariaDB."""

from __future__ import annotations

import decimal
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from tests.dbservers import MARIADB_PORT, mariadb_root


def no_connection() -> Any:
    pytest.fail("a refused event must not open a database connection")


@pytest.fixture
def settings(proxy_client: Any) -> Any:
    return proxy_client.Settings(host="127.0.0.1", port=MARIADB_PORT, user="root", region="us-east-1",
                                 tls_mode="off", max_rows=3)


@pytest.mark.parametrize("sql", [
    "SELECT 1",
    "  select id, name from items where name = 'a;b' ;  ",
    "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
    "SHOW TABLES",
    "DESCRIBE items",
    "EXPLAIN SELECT * FROM items",
    "(SELECT 1) UNION (SELECT 2)",
    "SELECT `into`, 'for update' FROM items",
    "SELECT REPLACE(name, 'a', 'b') FROM items WHERE name LIKE 'x%'",
])
def test_read_only_single_statements_are_accepted(proxy_client: Any, sql: str) -> None:
    assert proxy_client.check_read_only_sql(sql) == sql.strip().removesuffix(";").rstrip()


@pytest.mark.parametrize(("sql", "message"), [
    ("", "sql: a non-empty string is required"),
    (42, "sql: a non-empty string is required"),
    ("DELETE FROM items", "only read-only statements"),
    ("INSERT INTO items VALUES (1)", "only read-only statements"),
    ("SET PASSWORD = 'x'", "only read-only statements"),
    ("SELECT 1; DROP TABLE items", "only one statement"),
    ("SELECT 1;;", "only one statement"),
    ("SELECT 1 /*! ; DROP TABLE items */", "comments are not allowed"),
    ("SELECT 1 -- trailing", "comments are not allowed"),
    ("SELECT 1 # trailing", "comments are not allowed"),
    ("SELECT * FROM items INTO OUTFILE '/tmp/x'", "INTO is not allowed"),
    ("SELECT * FROM items FOR UPDATE", "UPDATE is not allowed"),
    ("SELECT * FROM items LOCK IN SHARE MODE", "LOCK IN SHARE MODE is not allowed"),
    ("WITH t AS (SELECT 1) DELETE FROM items", "DELETE is not allowed"),
    ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE"),
    ("SELECT 'unterminated", "unterminated"),
    ("SELECT " + "x" * 10_000, "longer than 10000"),
])
def test_anything_else_is_refused_clearly(proxy_client: Any, sql: Any, message: str) -> None:
    with pytest.raises(proxy_client.BadRequest, match=message):
        proxy_client.check_read_only_sql(sql)


@pytest.mark.parametrize(("event", "message"), [
    ({"action": "drop"}, "action: 'drop' is not one of health, query"),
    ({}, "action: None is not one of health, query"),
    ("health", "event: expected an object"),
    ({"action": "query", "sql": "UPDATE items SET name = 'x'"}, "only read-only statements"),
    ({"action": "query", "sql": "SELECT %s", "params": "1"}, "params: must be a list"),
    ({"action": "query", "sql": "SELECT %s", "params": [{"a": 1}]}, r"params\[0\]: dict is not"),
    ({"action": "query", "sql": "SELECT 1", "max_rows": 4}, r"max_rows: must be an integer in 1..3"),
    ({"action": "query", "sql": "SELECT 1", "max_rows": True}, r"max_rows: must be an integer in 1..3"),
])
def test_refused_events_get_a_400_without_touching_the_database(
        proxy_client: Any, settings: Any, event: Any, message: str) -> None:
    result = proxy_client.handle(event, no_connection, settings)
    assert result["ok"] is False and result["status"] == 400
    assert re.search(message, result["error"]), result["error"]


@pytest.mark.parametrize(("env", "message"), [
    ({"DB_USER": "app", "AWS_REGION": "us-east-1"}, "missing environment variables: DB_HOST"),
    ({"DB_HOST": "h", "DB_USER": "app"}, r"DB_REGION \(or AWS_REGION\)"),
    ({"DB_HOST": "h", "DB_USER": "app", "AWS_REGION": "us-east-1", "DB_TLS": "no"}, "DB_TLS: 'no' is not one of"),
    ({"DB_HOST": "h", "DB_USER": "app", "AWS_REGION": "us-east-1", "MAX_ROWS": "5000"}, "MAX_ROWS: 5000 is outside"),
])
def test_bad_environment_is_refused_naming_the_variable(proxy_client: Any, env: dict[str, str],
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        proxy_client.Settings.from_env(env)


def test_settings_from_environment(proxy_client: Any) -> None:
    settings = proxy_client.Settings.from_env({
        "DB_HOST": "p.proxy-x.eu-west-1.rds.amazonaws.com", "DB_PORT": "3307", "DB_USER": "app",
        "DB_NAME": "shop", "AWS_REGION": "eu-west-1", "MAX_ROWS": "50"})
    assert (settings.host, settings.port, settings.user, settings.database, settings.region, settings.max_rows,
            settings.tls_mode) == ("p.proxy-x.eu-west-1.rds.amazonaws.com", 3307, "app", "shop", "eu-west-1", 50,
                                   "verify-full")


# --- against MariaDB -----------------------------------------------------------------------------


@pytest.fixture
def shop(proxy_client: Any, settings: Any) -> Iterator[tuple[Any, Callable[[], Any]]]:
    """A throw-away database with a small table, and a connection factory for it."""
    name = f"pc_{secrets.token_hex(4)}"
    root = mariadb_root()
    with root.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE TABLE `{name}`.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(8,2), "
                       "added DATETIME, tag VARBINARY(4))")
        cursor.execute(f"INSERT INTO `{name}`.items VALUES (1, 'apple', 1.50, '2026-01-02 03:04:05', x'00ff'), "
                       "(2, 'banana', 0.25, NULL, NULL), (3, 'cherry%', 12.00, NULL, NULL), "
                       "(4, 'date', 3.10, NULL, NULL), (5, 'elder', 9.99, NULL, NULL)")
    db_settings = type(settings)(**{**settings.__dict__, "database": name})

    def connect() -> Any:
        return pymysql.connect(**proxy_client.connect_kwargs(db_settings, ""))

    try:
        yield db_settings, connect
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        root.close()


@pytest.mark.db
def test_health_runs_select_1_and_reports_the_server(proxy_client: Any, shop: Any) -> None:
    settings, connect = shop
    result = proxy_client.handle({"action": "health"}, connect, settings)
    assert result["ok"] is True and result["select_1"] == 1
    assert "MariaDB" in result["server_version"]
    assert isinstance(result["latency_ms"], float) and result["latency_ms"] >= 0


@pytest.mark.db
def test_query_with_params_returns_json_ready_rows(proxy_client: Any, shop: Any) -> None:
    settings, connect = shop
    result = proxy_client.handle({"action": "query", "sql": "SELECT * FROM items WHERE id = %s",
                                  "params": [1]}, connect, settings)
    assert result == {"ok": True, "action": "query", "columns": ["id", "name", "price", "added", "tag"],
                      "rows": [[1, "apple", "1.50", "2026-01-02T03:04:05", "AP8="]], "row_count": 1,
                      "truncated": False}
    assert decimal.Decimal(result["rows"][0][2]) == decimal.Decimal("1.50")


@pytest.mark.db
def test_the_row_cap_truncates_and_says_so(proxy_client: Any, shop: Any) -> None:
    settings, connect = shop
    capped = proxy_client.handle({"action": "query", "sql": "SELECT id FROM items ORDER BY id"}, connect, settings)
    assert capped["rows"] == [[1], [2], [3]] and capped["truncated"] is True and capped["row_count"] == 3
    smaller = proxy_client.handle({"action": "query", "sql": "SELECT id FROM items ORDER BY id", "max_rows": 1},
                                  connect, settings)
    assert smaller["rows"] == [[1]] and smaller["truncated"] is True
    exact = proxy_client.handle({"action": "query", "sql": "SELECT id FROM items WHERE id <= 3"},
                                connect, settings)
    assert exact["row_count"] == 3 and exact["truncated"] is False


@pytest.mark.db
def test_percent_signs_survive_without_params(proxy_client: Any, shop: Any) -> None:
    settings, connect = shop
    result = proxy_client.handle({"action": "query", "sql": "SELECT name FROM items WHERE name LIKE 'cherry%'"},
                                 connect, settings)
    assert result["rows"] == [["cherry%"]]


@pytest.mark.db
def test_the_server_refuses_writes_inside_the_read_only_transaction(proxy_client: Any, shop: Any) -> None:
    settings, connect = shop
    # run_query is below the statement checks: the server itself must refuse the write.
    with pytest.raises(pymysql.err.MySQLError, match="READ ONLY"):
        proxy_client.run_query(connect, "UPDATE items SET name = 'gone'", [], 3)
    names = proxy_client.handle({"action": "query", "sql": "SELECT COUNT(*) FROM items WHERE name = 'gone'"},
                                connect, settings)
    assert names["rows"] == [[0]]


@pytest.mark.db
def test_database_errors_get_a_502(proxy_client: Any, shop: Any) -> None:
    settings, connect = shop
    result = proxy_client.handle({"action": "query", "sql": "SELECT * FROM no_such_table"}, connect, settings)
    assert result["ok"] is False and result["status"] == 502 and "no_such_table" in result["error"]
