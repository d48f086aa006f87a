"""What runs on a branch database after `dbenv up`: post-clone SQL, seed SQL, the migration command.

- ``post_clone``: SQL files run once on a fresh clone before anyone uses it (masking personal data).
- ``seed``: SQL files run once on a database created without a parent.
- ``migrate``: a shell command run after every ``up``, with the database's connection in its
  environment (``DATABASE_URL``, ``PG*`` / ``MYSQL_*``; the password fetched at run time).

SQL files are user input: each is bounded, UTF-8, split into statements (strings, quoted names,
comments and PostgreSQL dollar quotes respected) and checked before anything runs. A file runs in
one transaction where the engine allows it (PostgreSQL rolls back DDL too; MySQL commits DDL
implicitly). What ran is recorded in the table ``dbenv_hooks`` of the database itself, so "once"
survives re-runs; the schema diff leaves that table out.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automation.runbooks.schema_diff import LEDGER

MAX_SQL_BYTES = 1024 * 1024
MAX_STATEMENTS = 10_000
# The same DDL on PostgreSQL and MySQL/MariaDB.
_LEDGER_DDL = (f"CREATE TABLE IF NOT EXISTS {LEDGER} (kind VARCHAR(16) NOT NULL, file VARCHAR(255) NOT NULL, "
               "sha256 CHAR(64) NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
               "PRIMARY KEY (kind, file))")


class HookInputError(ValueError):
    """A SQL file or command that cannot be used: exit 2, nothing has run."""


class HookFailed(Exception):
    """A statement or the migration command failed: exit 1, the environment stays for inspection."""


@dataclass(frozen=True)
class SqlFile:
    path: Path
    statements: tuple[str, ...]
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Hooks:
    post_clone: tuple[SqlFile, ...] = ()
    seed: tuple[SqlFile, ...] = ()
    migrate: str | None = None

    def __bool__(self) -> bool:
        return bool(self.post_clone or self.seed or self.migrate)


# ------------------------------------------------------------------ reading and splitting


def split_statements(text: str, engine: str) -> list[str]:
    """SQL text -> statements, split on ``;`` outside strings, quoted names, comments and dollar quotes."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        end = _skip(text, i, engine)
        if end is not None:
            current.append(text[i:end])
            i = end
        elif char == ";":
            _flush(current, statements)
            current = []
            i += 1
        else:
            current.append(char)
            i += 1
    _flush(current, statements)
    return statements


def _skip(text: str, i: int, engine: str) -> int | None:
    """The end of a string, quoted name, comment or dollar quote starting at ``i`` (None: none starts)."""
    char, pair = text[i], text[i:i + 2]
    if pair == "--" or (char == "#" and engine == "mysql"):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if pair == "/*":
        end = text.find("*/", i + 2)
        if end < 0:
            raise HookInputError("an unterminated /* comment")
        return end + 2
    if char in ("'", '"') or (char == "`" and engine == "mysql"):
        return _quoted_end(text, i, char, backslash=engine == "mysql" and char != "`")
    if char == "$" and engine == "postgres":
        tag_end = text.find("$", i + 1)
        tag = text[i:tag_end + 1] if tag_end > 0 else ""
        if tag and (tag == "$$" or tag[1:-1].replace("_", "a").isalnum()) and not tag[1].isdigit():
            close = text.find(tag, tag_end + 1)
            if close < 0:
                raise HookInputError(f"an unterminated {tag} quote")
            return close + len(tag)
    return None


def _quoted_end(text: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    while j < len(text):
        if backslash and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if text[j + 1:j + 2] == quote:  # a doubled quote stands for itself
                j += 2
                continue
            return j + 1
        j += 1
    raise HookInputError(f"an unterminated {quote} quote")


def _flush(current: list[str], statements: list[str]) -> None:
    statement = "".join(current).strip()
    if statement and _has_code(statement):
        statements.append(statement)


def _has_code(statement: str) -> bool:
    """Whether anything but comments is left (a file may end with a comment after the last ``;``)."""
    lines = [line for line in statement.splitlines() if not line.strip().startswith(("--", "#"))]
    text = "\n".join(lines).strip()
    while text.startswith("/*") and "*/" in text:
        text = text[text.index("*/") + 2:].strip()
    return bool(text)


def read_sql_file(path: Path, engine: str, option: str) -> SqlFile:
    """A SQL file checked before anything runs: exists, at most 1 MiB, UTF-8, splits into statements."""
    from automation import inputs

    try:
        raw = inputs.read_bytes(path, "SQL file", limit=MAX_SQL_BYTES)
        text = inputs.decode(raw, f"SQL file {path}")
    except inputs.InputError as err:
        raise HookInputError(f"{option}: {err}") from None
    try:
        statements = split_statements(text, engine)
    except HookInputError as err:
        raise HookInputError(f"{option}: {path}: {err}") from None
    if not statements:
        raise HookInputError(f"{option}: {path} holds no SQL statement")
    if len(statements) > MAX_STATEMENTS:
        raise HookInputError(f"{option}: {path} has {len(statements)} statements (at most {MAX_STATEMENTS})")
    return SqlFile(path, tuple(statements), hashlib.sha256(raw).hexdigest())


def check_command(command: str | None, option: str = "migrate") -> str | None:
    if command is None:
        return None
    if not str(command).strip() or "\x00" in str(command):
        raise HookInputError(f"{option}: expected a shell command, got {command!r}")
    return str(command)


def load(*, post_clone: Sequence[Path], seed: Sequence[Path], migrate: str | None, engine: str) -> Hooks:
    """Read and check every file, split in the dialect of the branch database (``postgres`` or ``mysql``)."""
    return Hooks(post_clone=tuple(read_sql_file(p, engine, "post_clone") for p in post_clone),
                 seed=tuple(read_sql_file(p, engine, "seed") for p in seed),
                 migrate=check_command(migrate))


# ------------------------------------------------------------------ running


@dataclass
class Report:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _Session:
    """One driver connection; statements run exactly as written (no parameter parsing)."""

    def __init__(self, access: Any) -> None:
        self.engine = access.engine
        args = access.connect_args()
        if self.engine == "postgres":
            import pg8000.native

            self.connection = pg8000.native.Connection(
                user=access.user, password=access.password or None, host=access.host, port=access.port,
                database=access.database or "postgres", timeout=30, ssl_context=args.get("ssl_context", False))
        else:
            import pymysql

            self.connection = pymysql.connect(
                host=access.host, port=access.port, user=access.user, password=access.password,
                database=access.database, connect_timeout=30, autocommit=True, **args)

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.engine == "postgres":
            if params:
                named = {f"p{i}": value for i, value in enumerate(params)}
                for i in range(len(params)):
                    statement = statement.replace("%s", f":p{i}", 1)
                rows = self.connection.run(statement, **named)
            else:
                rows = self.connection.run(statement)
            return [tuple(r) for r in rows or []]
        with self.connection.cursor() as cursor:
            cursor.execute(statement, tuple(params) if params else None)
            return [tuple(r) for r in cursor.fetchall() or []]

    def close(self) -> None:
        self.connection.close()


def _error_text(err: BaseException) -> str:
    first = err.args[0] if err.args else None
    if isinstance(first, dict):
        return str(first.get("M", first))
    if len(err.args) >= 2 and isinstance(first, int):
        return f"({first}) {err.args[1]}"
    return str(err) or type(err).__name__


def _connect(access: Any) -> _Session:
    try:
        return _Session(access)
    except Exception as err:  # noqa: BLE001 - any driver or network failure is one line
        raise HookFailed(f"cannot connect to the branch database {access.label or access.host}: "
                         f"{_error_text(err)}") from None


def run_sql_files(access: Any, kind: str, files: Sequence[SqlFile], report: Report | None = None) -> Report:
    """Run each file not yet recorded for ``kind``; one transaction per file; stop at the first failure."""
    report = report or Report()
    if not files:
        return report
    session = _connect(access)
    try:
        session.run(_LEDGER_DDL)
        done = {row[0] for row in session.run(f"SELECT file FROM {LEDGER} WHERE kind = %s", [kind])}
        for sql_file in files:
            if sql_file.name in done:
                report.skipped.append(f"{kind} {sql_file.name} (already applied)")
                continue
            _run_file(session, kind, sql_file)
            report.ran.append(f"{kind} {sql_file.name} ({len(sql_file.statements)} statements)")
    finally:
        session.close()
    return report


def _run_file(session: _Session, kind: str, sql_file: SqlFile) -> None:
    session.run("BEGIN" if session.engine == "postgres" else "START TRANSACTION")
    for number, statement in enumerate(sql_file.statements, start=1):
        try:
            session.run(statement)
        except Exception as err:  # noqa: BLE001 - the database's message, with where it happened
            _rollback(session)
            first_line = statement.strip().splitlines()[0][:80]
            raise HookFailed(f"{kind} {sql_file.path}: statement {number} ({first_line!r}) failed: "
                             f"{_error_text(err)}; the file's changes were rolled back"
                             + (" (MySQL commits DDL as it runs)" if session.engine == "mysql" else "")) from None
    session.run(f"INSERT INTO {LEDGER} (kind, file, sha256) VALUES (%s, %s, %s)",
                [kind, sql_file.name, sql_file.sha256])
    session.run("COMMIT")


def _rollback(session: _Session) -> None:
    try:
        session.run("ROLLBACK")
    except Exception:  # noqa: BLE001, S110 - the connection may be gone; the failure is already reported
        pass


def run_migrate(command: str, access: Any, on_line: Callable[[str], None], *,
                cwd: Path | None = None) -> None:
    """Run the migration command through the shell with the connection in its environment; stream output."""
    env = {**os.environ, **access.environment()}
    try:
        process = subprocess.Popen(command, shell=True, env=env, cwd=cwd, stdout=subprocess.PIPE,  # noqa: S602 - the user's own command
                                   stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
    except OSError as err:
        raise HookFailed(f"migrate: cannot start {command!r}: {err.strerror}") from None
    assert process.stdout is not None
    for line in process.stdout:
        on_line(line.rstrip("\n"))
    code = process.wait()
    if code != 0:
        raise HookFailed(f"migrate: {command!r} exited with {code}; the environment is left for inspection")


def run(hooks: Hooks, access: Any, *, cloned: bool, on_line: Callable[[str], None],
        cwd: Path | None = None) -> Report:
    """post_clone (on a clone) or seed (on a database made without a parent), then migrate."""
    report = Report()
    if cloned:
        run_sql_files(access, "post_clone", hooks.post_clone, report)
        report.skipped += [f"seed {f.name} (the database is a clone)" for f in hooks.seed]
    else:
        run_sql_files(access, "seed", hooks.seed, report)
        report.skipped += [f"post_clone {f.name} (the database is not a clone)" for f in hooks.post_clone]
    for line in report.ran:
        on_line(f"ran {line}")
    if hooks.migrate:
        on_line(f"migrate: {hooks.migrate}")
        run_migrate(hooks.migrate, access, on_line, cwd=cwd)
        report.ran.append("migrate")
    return report
