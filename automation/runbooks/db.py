"""Everyday database access to a branch's stack: IAM-auth connections and Data API queries.

``connection`` turns a recipe's stack outputs into a ``psql``/``mysql`` command that
authenticates with an IAM auth token over verified TLS; ``run_query`` runs SQL through the
RDS Data API with the cluster's secret. Both take boto3 clients from the caller, so they work
the same against AWS and against the local endpoint.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


class DbError(Exception):
    """A database command cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Endpoint:
    """Where a recipe's database is, in its stack outputs."""

    engine: str  # "postgres" or "mysql"
    host_key: str
    port_key: str
    database_key: str | None = None
    secret_key: str | None = None  # the output holding the admin secret's ARN (username, password)


# The recipes whose databases take IAM auth tokens; iam-auth grants on the Aurora cluster.
ENDPOINTS: dict[str, Endpoint] = {
    "aurora-serverless": Endpoint("postgres", "endpoint", "port", "database_name", "master_user_secret_arn"),
    "rds-proxy": Endpoint("mysql", "proxy_endpoint", "port", "database_name", "secret_arn"),
    "encrypt-existing": Endpoint("mysql", "address", "port"),
    "dms-migration": Endpoint("mysql", "target_address", "target_port"),
    "secret-rotation": Endpoint("mysql", "address", "port", "database_name", "secret_arn"),
}
ALIASES = {"iam-auth": "aurora-serverless", "data-api": "aurora-serverless"}


@dataclass(frozen=True)
class Connection:
    engine: str
    host: str
    port: int
    user: str
    database: str | None
    region: str
    ca_bundle: Path | None = None

    def with_ca_bundle(self, ca_bundle: Path) -> Connection:
        return replace(self, ca_bundle=ca_bundle)

    @property
    def password_variable(self) -> str:
        return "PGPASSWORD" if self.engine == "postgres" else "MYSQL_PWD"

    def argv(self) -> list[str]:
        if self.engine == "postgres":
            dsn = (f"host={self.host} port={self.port} user={self.user} dbname={self.database or 'postgres'} "
                   f"sslmode=verify-full sslrootcert={self.ca_bundle}")
            return ["psql", dsn]
        argv = ["mysql", f"--host={self.host}", f"--port={self.port}", f"--user={self.user}",
                f"--ssl-ca={self.ca_bundle}", "--ssl-mode=VERIFY_IDENTITY",
                # IAM tokens travel as cleartext passwords, which the TLS above protects.
                "--enable-cleartext-plugin"]
        return [*argv, self.database] if self.database else argv

    def shell_command(self) -> str:
        """A command to paste: the token is made by the AWS CLI when it runs, never printed."""
        token = (f"$(aws rds generate-db-auth-token --hostname {shlex.quote(self.host)} --port {self.port} "
                 f"--username {shlex.quote(self.user)} --region {shlex.quote(self.region)})")
        return f'{self.password_variable}="{token}" ' + " ".join(shlex.quote(a) for a in self.argv())

    def environment(self, token: str) -> dict[str, str]:
        return {**os.environ, self.password_variable: token}


def connection(outputs: Mapping[str, Any], recipe: str, *, user: str, region: str,
               ca_bundle: Path | None = None) -> Connection:
    """The connection to ``recipe``'s database from the stack outputs (``{recipe: {...}}``)."""
    name = check_connect_args(recipe, user)
    endpoint = ENDPOINTS[name]
    recipe_outputs = outputs.get(name)
    if not isinstance(recipe_outputs, Mapping):
        raise DbError(f"the stack has no {name} outputs: deploy it with `dbenv up --recipes {name}`")
    host, port = recipe_outputs.get(endpoint.host_key), recipe_outputs.get(endpoint.port_key)
    if not host or not port:
        raise DbError(f"the {name} outputs lack {endpoint.host_key}/{endpoint.port_key}: is the stack deployed?")
    database = recipe_outputs.get(endpoint.database_key) if endpoint.database_key else None
    return Connection(endpoint.engine, str(host).split(":")[0], int(port), user, database, region, ca_bundle)


def check_connect_args(recipe: str, user: str) -> str:
    """The recipe whose database to reach (aliases resolved), after checking recipe and user; DbError if bad."""
    name = ALIASES.get(recipe, recipe)
    if name not in ENDPOINTS:
        raise DbError(f"--recipe: {recipe[:60]!r} has no database to connect to "
                      f"(choose one of: {', '.join([*ENDPOINTS, *ALIASES])})")
    if not user or not user.isascii() or not user.replace("_", "a").isalnum() or len(user) > 63:
        raise DbError(f"--user: {user[:60]!r} is not a database user name (letters, digits, '_', at most 63)")
    return name


def check_sql(sql: str) -> str:
    if not sql.strip():
        raise DbError("SQL: the statement is empty")
    return sql


def auth_token(rds_client: Any, conn: Connection) -> str:
    """An IAM auth token (valid 15 minutes), signed locally by botocore."""
    return rds_client.generate_db_auth_token(
        DBHostname=conn.host, Port=conn.port, DBUsername=conn.user, Region=conn.region)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "db-recipes"


def ca_bundle(given: Path | None = None, *, cache_dir: Path | None = None, url: str = CA_BUNDLE_URL,
              timeout: float = 20.0) -> Path:
    """The RDS CA bundle: ``given``, else the cached copy, else downloaded once into the cache."""
    if given is not None:
        _check_pem(given, "--ca-bundle")
        return given
    target = (cache_dir or default_cache_dir()) / "global-bundle.pem"
    if target.is_file():
        _check_pem(target, "cached CA bundle")
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URL or a test's
            body = response.read()
    except (urllib.error.URLError, OSError) as err:
        raise DbError(f"cannot download the RDS CA bundle from {url} ({err}): pass --ca-bundle FILE") from None
    if PEM_MARKER not in body:
        raise DbError(f"{url} did not return a PEM certificate bundle: pass --ca-bundle FILE")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
        handle.write(body)
    os.replace(handle.name, target)  # atomic: a concurrent reader never sees half a file
    return target


def _check_pem(path: Path, label: str) -> None:
    from automation import inputs

    try:
        head = inputs.read_bytes(path, label)
    except inputs.InputError as err:
        raise DbError(str(err)) from None
    if PEM_MARKER not in head:
        raise DbError(f"{label}: {path} holds no PEM certificate")


# ------------------------------------------------------------------ Data API queries


def parse_params(pairs: Sequence[str]) -> list[dict[str, Any]]:
    """``name=value`` pairs -> Data API SqlParameters (ints, floats, true/false, null typed)."""
    params = []
    seen = set()
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name or not name.replace("_", "a").isalnum():
            raise DbError(f"--param: expected name=value with a name of letters, digits and '_', got {pair!r}")
        if name in seen:
            raise DbError(f"--param: {name!r} is given twice")
        seen.add(name)
        params.append({"name": name, "value": _field(text)})
    return params


def _field(text: str) -> dict[str, Any]:
    if text == "null":
        return {"isNull": True}
    if text in ("true", "false"):
        return {"booleanValue": text == "true"}
    try:
        return {"longValue": int(text)}
    except ValueError:
        pass
    try:
        return {"doubleValue": float(text)}
    except ValueError:
        return {"stringValue": text}


def _value(field: Mapping[str, Any]) -> Any:
    if field.get("isNull"):
        return None
    for key in ("stringValue", "longValue", "doubleValue", "booleanValue"):
        if key in field:
            return field[key]
    if "blobValue" in field:
        return field["blobValue"].hex() if isinstance(field["blobValue"], bytes) else field["blobValue"]
    if "arrayValue" in field:
        array = field["arrayValue"]
        for values in array.values():
            return [_value(v) if isinstance(v, Mapping) else v for v in values]
    return None


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    updated: int

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "records_updated": self.updated}


def data_api_target(outputs: Mapping[str, Any]) -> tuple[str, str, str]:
    """(cluster ARN, secret ARN, database) of the stack's Aurora cluster."""
    aurora = outputs.get("aurora-serverless")
    if not isinstance(aurora, Mapping):
        raise DbError("the stack has no aurora-serverless outputs: deploy it with `dbenv up --recipes data-api`")
    if not aurora.get("data_api_enabled"):
        raise DbError("the stack's Aurora cluster has the Data API off: add data-api to its recipes")
    return aurora["cluster_arn"], aurora["master_user_secret_arn"], aurora.get("database_name") or "postgres"


def run_query(client: Any, *, cluster_arn: str, secret_arn: str, database: str, sql: str,
              params: Sequence[Mapping[str, Any]] = ()) -> QueryResult:
    check_sql(sql)
    response = client.execute_statement(
        resourceArn=cluster_arn, secretArn=secret_arn, database=database, sql=sql,
        parameters=list(params), includeResultMetadata=True)
    columns = [c.get("label") or c.get("name") or f"column{i + 1}"
               for i, c in enumerate(response.get("columnMetadata") or [])]
    rows = [[_value(field) for field in record] for record in response.get("records") or []]
    if rows and not columns:
        columns = [f"column{i + 1}" for i in range(len(rows[0]))]
    return QueryResult(columns, rows, int(response.get("numberOfRecordsUpdated") or 0))


def render_table(result: QueryResult) -> str:
    if not result.columns:
        return f"{result.updated} records updated"
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(result.columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
    return "\n".join(lines)
