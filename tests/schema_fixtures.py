"""Per-test databases on the local PostgreSQL and MariaDB, created empty and dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pg8000.native
import pytest

from tests.dbservers import HOST, MARIADB_PORT, POSTGRES_PORT, mariadb_root, postgres_superuser

ENGINES = ("postgres", "mysql")


def url(engine: str, database: str) -> str:
    if engine == "postgres":
        return f"postgresql://postgres@{HOST}:{POSTGRES_PORT}/{database}"
    return f"mysql://root@{HOST}:{MARIADB_PORT}/{database}"


def run_sql(engine: str, database: str, statements: list[str]) -> None:
    if engine == "postgres":
        connection = pg8000.native.Connection(user="postgres", host=HOST, port=POSTGRES_PORT, database=database)
        try:
            for statement in statements:
                connection.run(statement)
        finally:
            connection.close()
        return
    root = mariadb_root()
    try:
        with root.cursor() as cursor:
            cursor.execute(f"USE `{database}`")
            for statement in statements:
                cursor.execute(statement)
    finally:
        root.close()


def query(engine: str, database: str, sql: str) -> list[tuple]:
    if engine == "postgres":
        connection = pg8000.native.Connection(user="postgres", host=HOST, port=POSTGRES_PORT, database=database)
        try:
            return [tuple(row) for row in connection.run(sql)]
        finally:
            connection.close()
    root = mariadb_root()
    try:
        with root.cursor() as cursor:
            cursor.execute(f"USE `{database}`")
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        root.close()


def _admin(engine: str, statement: str) -> None:
    """One statement as the server's administrator, outside any database."""
    if engine == "postgres":
        admin = postgres_superuser()
        admin.run(statement)
        admin.close()
        return
    root = mariadb_root()
    with root.cursor() as cursor:
        cursor.execute(statement.replace('"', "`"))
    root.close()


@pytest.fixture
def databases() -> Iterator[Callable[[str], str]]:
    """``make(engine)`` -> the name of a new, empty database on that engine; all dropped at the end."""
    made: list[tuple[str, str]] = []

    def make(engine: str) -> str:
        name = f"dbenv_t_{secrets.token_hex(5)}"
        _admin(engine, f'CREATE DATABASE "{name}"')
        made.append((engine, name))
        return name

    yield make
    for engine, name in made:
        _admin(engine, f'DROP DATABASE IF EXISTS "{name}"' + (" WITH (FORCE)" if engine == "postgres" else ""))
