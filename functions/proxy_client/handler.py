"""A Lambda that connects to MySQL/MariaDB through an RDS Proxy with an IAM auth token over TLS.

Events:

- ``{"action": "health"}``: runs ``SELECT 1`` and returns the server version
  and the connect + query latency in milliseconds.
- ``{"action": "query", "sql": "SELECT ... WHERE id = %s", "params": [42],
  "max_rows": 10}``: runs one read-only statement (SELECT, WITH, SHOW,
  DESCRIBE/DESC, EXPLAIN without ANALYZE) with PyMySQL ``%s`` placeholders
  (write ``%%`` for a literal ``%`` when params are given), inside a READ ONLY transaction, and returns at most ``max_rows`` rows
  (default and upper bound: ``MAX_ROWS``). Comments, several statements,
  ``INTO`` and locking reads are refused before anything is sent.

Every answer is a JSON object with ``ok``; a refused event gets
``{"ok": false, "status": 400, "error": "..."}`` and a database failure
``{"ok": false, "status": 502, "error": "..."}``. The database user's grants
remain the real boundary; the statement checks and the read-only transaction
are defence in depth.

Environment variables:

- ``DB_HOST`` (required): the proxy endpoint.
- ``DB_PORT``: default 3306.
- ``DB_USER`` (required): the database user IAM authentication logs in as.
- ``DB_NAME``: the default database; empty for none.
- ``DB_REGION``: region for the auth token; default ``AWS_REGION`` (set by Lambda).
- ``DB_TLS``: ``verify-full`` (default: CA-verified certificate and host name),
  ``verify-ca``, or ``off`` (plaintext, only for local test servers; RDS
  refuses IAM tokens without TLS).
- ``DB_CA_BUNDLE``: PEM file of CAs to trust; default ``global-bundle.pem``
  next to this file when present (the RDS bundle), else the system store.
- ``DB_CONNECT_TIMEOUT``: seconds, 1..60, default 5.
- ``DB_QUERY_TIMEOUT``: seconds to wait for a result, 1..300, default 30.
- ``MAX_ROWS``: row cap, 1..1000, default 100.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pymysql

logger = logging.getLogger("proxy_client")
logger.setLevel(logging.INFO)

TLS_MODES = ("verify-full", "verify-ca", "off")
ACTIONS = ("health", "query")
BUNDLED_CA = Path(__file__).with_name("global-bundle.pem")
READ_ONLY_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN")
# Keywords that turn a read into a write (WITH ... UPDATE/DELETE), a file or variable export
# (SELECT ... INTO) or a locking read, wherever they appear outside quotes.
FORBIDDEN_KEYWORDS = (("INTO",), ("UPDATE",), ("DELETE",), ("LOCK", "IN", "SHARE", "MODE"), ("FOR", "SHARE"))
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
MAX_SQL_LENGTH = 10_000
MAX_PARAMS = 100


class BadRequest(ValueError):
    """The event asks for something this function does not do."""


@dataclass(frozen=True)
class Settings:
    host: str
    user: str
    region: str
    port: int = 3306
    database: str | None = None
    tls_mode: str = "verify-full"
    ca_bundle: str | None = None
    connect_timeout: int = 5
    query_timeout: int = 30
    max_rows: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        missing = [name for name in ("DB_HOST", "DB_USER") if not env.get(name)]
        region = env.get("DB_REGION") or env.get("AWS_REGION")
        if not region:
            missing.append("DB_REGION (or AWS_REGION)")
        if missing:
            raise ValueError(f"missing environment variables: {', '.join(missing)}")
        tls_mode = env.get("DB_TLS", "verify-full").strip().lower()
        if tls_mode not in TLS_MODES:
            raise ValueError(f"DB_TLS: {tls_mode!r} is not one of {', '.join(TLS_MODES)}")
        ca_bundle = env.get("DB_CA_BUNDLE") or (str(BUNDLED_CA) if BUNDLED_CA.is_file() else None)
        if tls_mode != "off" and ca_bundle and not Path(ca_bundle).is_file():
            raise ValueError(f"DB_CA_BUNDLE: {ca_bundle!r} is not a readable file")
        return cls(
            host=env["DB_HOST"], user=env["DB_USER"], region=str(region),
            port=_int_env(env, "DB_PORT", 3306, 1, 65535), database=env.get("DB_NAME") or None,
            tls_mode=tls_mode, ca_bundle=ca_bundle,
            connect_timeout=_int_env(env, "DB_CONNECT_TIMEOUT", 5, 1, 60),
            query_timeout=_int_env(env, "DB_QUERY_TIMEOUT", 30, 1, 300),
            max_rows=_int_env(env, "MAX_ROWS", 100, 1, 1000),
        )


def _int_env(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not an integer in {low}..{high}") from None
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is outside {low}..{high}")
    return value


# --- Connecting ----------------------------------------------------------------------------------


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_mode == "off":
        return None
    context = ssl.create_default_context(cafile=settings.ca_bundle)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = settings.tls_mode == "verify-full"
    return context


def tls_hint(settings: Settings, message: str) -> str:
    """Why a certificate may not verify: RDS CAs are not in the system trust store."""
    if settings.tls_mode == "off" or settings.ca_bundle or "certificate verify failed" not in message:
        return ""
    return (" (no CA bundle: set DB_CA_BUNDLE or ship the RDS global-bundle.pem next to handler.py; "
            "the system trust store does not hold the RDS CAs)")


def auth_token(settings: Settings, rds_client: Any | None = None) -> str:
    """A 15-minute IAM auth token: a presigned ``connect`` URL signed with the function's role."""
    client = rds_client or boto3.client("rds", region_name=settings.region)
    return client.generate_db_auth_token(DBHostname=settings.host, Port=settings.port,
                                         DBUsername=settings.user, Region=settings.region)


def connect_kwargs(settings: Settings, password: str) -> dict[str, Any]:
    """PyMySQL arguments. TLS is either required or explicitly disabled: PyMySQL's default would
    try TLS and quietly continue in plaintext when the server does not offer it."""
    context = tls_context(settings)
    tls: dict[str, Any] = {"ssl_disabled": True} if context is None else {"ssl": context}
    return {
        "host": settings.host, "port": settings.port, "user": settings.user, "password": password,
        "database": settings.database, "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.query_timeout, "write_timeout": settings.query_timeout,
        "autocommit": False, "charset": "utf8mb4", **tls,
    }


def iam_connect(settings: Settings) -> Any:
    # The token goes to the server as a cleartext password (mysql_clear_password), hence TLS.
    return pymysql.connect(**connect_kwargs(settings, auth_token(settings)))


# --- Statement checks ----------------------------------------------------------------------------


def _scan_sql(sql: str) -> tuple[str, int]:
    """The statement with quoted text blanked out, and the number of statement separators.

    Comments are refused outright: MySQL executes ``/*! ... */`` comments as SQL.
    """
    out: list[str] = []
    separators = 0
    i = 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"`":
            end = _end_of_quoted(sql, i)
            out.append(char + " " * (end - i - 1) + char)
            i = end + 1
            continue
        if char == "#" or sql.startswith("--", i) or sql.startswith("/*", i):
            raise BadRequest("sql: comments are not allowed")
        if char == ";":
            separators += 1
        out.append(char)
        i += 1
    return "".join(out), separators


def _end_of_quoted(sql: str, start: int) -> int:
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\" and quote != "`":
            i += 2
            continue
        if sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i
        i += 1
    raise BadRequest("sql: unterminated quoted string or identifier")


def check_read_only_sql(sql: Any) -> str:
    """The statement without a trailing ';' if it is a single read-only statement, else BadRequest."""
    if not isinstance(sql, str) or not sql.strip():
        raise BadRequest("sql: a non-empty string is required")
    if len(sql) > MAX_SQL_LENGTH:
        raise BadRequest(f"sql: longer than {MAX_SQL_LENGTH} characters")
    statement = sql.strip()
    scanned, separators = _scan_sql(statement)
    if scanned.endswith(";"):
        statement, scanned, separators = statement[:-1].rstrip(), scanned[:-1].rstrip(), separators - 1
    if separators:
        raise BadRequest("sql: only one statement is allowed")
    first = re.match(r"[\s(]*([A-Za-z]+)\b", scanned)
    if first is None or first.group(1).upper() not in READ_ONLY_KEYWORDS:
        raise BadRequest(f"sql: only read-only statements are allowed ({', '.join(READ_ONLY_KEYWORDS)})")
    words = [word.upper() for word in WORD.findall(scanned)]
    if words[0] == "EXPLAIN" and "ANALYZE" in words[:3]:
        raise BadRequest("sql: EXPLAIN ANALYZE runs the statement and is not allowed")
    for keyword in FORBIDDEN_KEYWORDS:
        if any(tuple(words[i:i + len(keyword)]) == keyword for i in range(len(words))):
            raise BadRequest(f"sql: {' '.join(keyword)} is not allowed in a read-only query")
    return statement


def check_params(params: Any) -> list[Any]:
    if params is None:
        return []
    if not isinstance(params, list):
        raise BadRequest("params: must be a list of strings, numbers, booleans or nulls")
    if len(params) > MAX_PARAMS:
        raise BadRequest(f"params: at most {MAX_PARAMS} values")
    for index, value in enumerate(params):
        if value is not None and not isinstance(value, str | int | float | bool):
            raise BadRequest(f"params[{index}]: {type(value).__name__} is not a string, number, boolean or null")
    return params


def check_max_rows(event: Mapping[str, Any], cap: int) -> int:
    value = event.get("max_rows", cap)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cap:
        raise BadRequest(f"max_rows: must be an integer in 1..{cap}")
    return value


# --- Running -------------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """Database values as JSON-safe values."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def health(connect: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    connection = connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1, VERSION()")
            one, version = cursor.fetchone()
        latency_ms = (time.perf_counter() - started) * 1000
    finally:
        connection.close()
    return {"ok": one == 1, "action": "health", "select_1": one, "server_version": version,
            "latency_ms": round(latency_ms, 2)}


def run_query(connect: Callable[[], Any], sql: str, params: list[Any], max_rows: int) -> dict[str, Any]:
    connection = connect()
    try:
        with connection.cursor() as cursor:
            # The server stops a SELECT after the rows we return plus one (to detect truncation), so
            # a large result is never sent. (Through RDS Proxy this SET pins the session to one
            # database connection until we disconnect, moments later.)
            cursor.execute("SET SESSION sql_select_limit = %s", (max_rows + 1,))
            # The server refuses any write inside a READ ONLY transaction, whatever the checks missed.
            cursor.execute("START TRANSACTION READ ONLY")
            # With no params, PyMySQL must not %-format the SQL (LIKE 'a%' stays as written).
            cursor.execute(sql, params if params else None)
            columns = [column[0] for column in cursor.description or ()]
            rows = cursor.fetchmany(max_rows + 1)
        truncated = len(rows) > max_rows
        return {"ok": True, "action": "query", "columns": columns,
                "rows": [[json_value(value) for value in row] for row in rows[:max_rows]],
                "row_count": min(len(rows), max_rows), "truncated": truncated}
    finally:
        connection.close()


def handle(event: Any, connect: Callable[[], Any], settings: Settings) -> dict[str, Any]:
    """Validate the event, then run it with ``connect`` (a factory of PyMySQL connections)."""
    try:
        if not isinstance(event, Mapping):
            raise BadRequest(f"event: expected an object with action ({', '.join(ACTIONS)})")
        action = event.get("action")
        if action not in ACTIONS:
            raise BadRequest(f"action: {action!r} is not one of {', '.join(ACTIONS)}")
        if action == "query":
            sql = check_read_only_sql(event.get("sql"))
            params = check_params(event.get("params"))
            max_rows = check_max_rows(event, settings.max_rows)
    except BadRequest as err:
        logger.warning("refused event: %s", err)
        return {"ok": False, "status": 400, "error": str(err)}
    try:
        if action == "health":
            return health(connect)
        return run_query(connect, sql, params, max_rows)
    except pymysql.err.MySQLError as err:
        message = f"{action} failed: {err}{tls_hint(settings, str(err))}"
        logger.error("%s on %s:%s as %s", message, settings.host, settings.port, settings.user)
        return {"ok": False, "status": 502, "error": message}


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return handle(event, lambda: iam_connect(settings), settings)
