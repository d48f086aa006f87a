"""How a runbook reaches a branch database: a URL, or the stack's outputs and AWS credentials.

From the outputs, in this order: the RDS Data API where the Aurora cluster has it on (no network
path needed; reads only), else a direct TLS connection verified against the RDS CA bundle, as
the IAM user given (a 15-minute token made at run time) or as the admin secret's user (its
password read from Secrets Manager at run time). Nothing here prints a password or token.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automation.runbooks.db import ALIASES, ENDPOINTS, DbError

DRIVERS = {"postgres": "postgresql+pg8000", "mysql": "mysql+pymysql"}
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
_SCHEMES = {"postgresql": "postgres", "postgres": "postgres", "postgresql+pg8000": "postgres",
            "mysql": "mysql", "mariadb": "mysql", "mysql+pymysql": "mysql", "mariadb+pymysql": "mysql"}


@dataclass(frozen=True)
class Access:
    """A direct connection: where, as whom, and the CA bundle TLS is verified against (None: no TLS)."""

    engine: str  # postgres | mysql
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str | None
    ca_bundle: Path | None = None
    label: str = ""
    iam: bool = False

    def driver_url(self) -> Any:
        from sqlalchemy.engine import URL

        return URL.create(DRIVERS[self.engine], username=self.user, password=self.password or None,
                          host=self.host, port=self.port, database=self.database)

    def connect_args(self) -> dict[str, Any]:
        if self.ca_bundle is None:
            return {}
        if self.engine == "postgres":
            return {"ssl_context": ssl.create_default_context(cafile=str(self.ca_bundle))}
        return {"ssl": {"ca": str(self.ca_bundle), "check_hostname": True}}

    def sqlalchemy_engine(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        return create_engine(self.driver_url(), connect_args=self.connect_args(), poolclass=NullPool)

    def environment(self) -> dict[str, str]:
        """The variables a migration tool, psql or mysql reads (the password is the run-time one)."""
        quoted = f"{urllib.parse.quote(self.user, safe='')}:{urllib.parse.quote(self.password, safe='')}"
        location = f"{self.host}:{self.port}/{urllib.parse.quote(self.database or '', safe='')}"
        if self.engine == "postgres":
            mode = "verify-full" if self.ca_bundle else "prefer"
            query = {"sslmode": mode, **({"sslrootcert": str(self.ca_bundle)} if self.ca_bundle else {})}
            env = {"DATABASE_URL": f"postgresql://{quoted}@{location}?{urllib.parse.urlencode(query)}",
                   "PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user, "PGPASSWORD": self.password,
                   "PGDATABASE": self.database or "postgres", "PGSSLMODE": mode}
            if self.ca_bundle:
                env["PGSSLROOTCERT"] = str(self.ca_bundle)
            return env
        query = {"ssl-mode": "VERIFY_IDENTITY", "ssl-ca": str(self.ca_bundle)} if self.ca_bundle else {}
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        env = {"DATABASE_URL": f"mysql://{quoted}@{location}{suffix}", "MYSQL_HOST": self.host,
               "MYSQL_TCP_PORT": str(self.port), "MYSQL_USER": self.user, "MYSQL_PWD": self.password,
               "MYSQL_DATABASE": self.database or ""}
        if self.iam:
            # IAM tokens travel as cleartext passwords (under TLS); libmysqlclient asks for this switch.
            env["LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN"] = "1"
        return env


@dataclass(frozen=True)
class DataApiAccess:
    """An Aurora cluster through the RDS Data API, with the cluster's secret."""

    client: Any = field(repr=False)
    cluster_arn: str
    secret_arn: str
    database: str
    label: str = ""
    engine: str = "postgres"

    def sqlalchemy_engine(self) -> Any:
        from automation.runbooks import data_api_sql

        return data_api_sql.engine(self.client, self.cluster_arn, self.secret_arn, self.database)


def from_url(text: str, option: str = "--url") -> Access:
    """``postgresql://user:pw@host:port/db`` or ``mysql://...`` (``mariadb://`` too) as an Access."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise DbError(f"{option}: not a database URL (expected postgresql://user@host:port/db "
                      "or mysql://user@host:port/db)") from None
    engine = _SCHEMES.get(url.drivername)
    if engine is None:
        raise DbError(f"{option}: {url.drivername!r} is not supported (postgresql://, mysql:// or mariadb://; "
                      "drivers pg8000 and pymysql)")
    if not url.host:
        raise DbError(f"{option}: the URL names no host")
    if url.query:
        raise DbError(f"{option}: URL options ({', '.join(sorted(url.query))}) are not supported")
    return Access(engine, url.host, url.port or DEFAULT_PORTS[engine], url.username or "",
                  url.password or "", url.database, None,
                  label=url.render_as_string(hide_password=True))


def pick_recipe(outputs: Mapping[str, Any], recipe: str | None) -> str:
    """The recipe whose database is meant: the one named, else the first the stack has."""
    if recipe is not None:
        name = ALIASES.get(recipe, recipe)
        if name not in ENDPOINTS:
            raise DbError(f"--recipe: {recipe!r} has no database (choose one of: {', '.join(ENDPOINTS)})")
        if not isinstance(outputs.get(name), Mapping):
            raise DbError(f"the stack has no {name} outputs: deploy it with `dbenv up --recipes {name}`")
        return name
    for name in ENDPOINTS:
        if isinstance(outputs.get(name), Mapping):
            return name
    raise DbError("the stack has no database outputs (aurora-serverless, rds-proxy, ...): is it deployed?")


def from_outputs(outputs: Mapping[str, Any], *, recipe: str | None, region: str,
                 client: Callable[[str], Any], user: str | None = None, ca_bundle: Path | None = None,
                 data_api: bool = True, label: str = "") -> Access | DataApiAccess:
    """How to reach a stack's database; ``client(service)`` makes boto3 clients for its account."""
    from automation.runbooks import db

    name = pick_recipe(outputs, recipe)
    values = outputs[name]
    endpoint = ENDPOINTS[name]
    if data_api and name == "aurora-serverless" and values.get("data_api_enabled") and not user:
        cluster_arn, secret_arn, database = db.data_api_target(outputs)
        return DataApiAccess(client("rds-data"), cluster_arn, secret_arn, database, label=f"{label} (Data API)")
    if user:
        conn = db.connection(outputs, name, user=user, region=region)
        token = db.auth_token(client("rds"), conn)
        return Access(conn.engine, conn.host, conn.port, user, token, conn.database, db.ca_bundle(ca_bundle),
                      label=label, iam=True)
    secret_arn = values.get(endpoint.secret_key) if endpoint.secret_key else None
    if not secret_arn:
        raise DbError(f"the {name} outputs name no admin secret: pass --user for an IAM-auth user")
    username, password = _secret_login(client("secretsmanager"), str(secret_arn))
    conn = db.connection(outputs, name, user=username, region=region)
    return Access(conn.engine, conn.host, conn.port, username, password, conn.database, db.ca_bundle(ca_bundle),
                  label=label)


def _secret_login(secrets: Any, secret_arn: str) -> tuple[str, str]:
    import json

    import botocore.exceptions

    try:
        # Name the stage: the current password, never a pending one mid-rotation.
        value = secrets.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")["SecretString"]
        login = json.loads(value)
        return str(login["username"]), str(login["password"])
    except botocore.exceptions.ClientError as err:
        raise DbError(f"cannot read the admin secret: {err.response.get('Error', {}).get('Message', err)}") from None
    except (KeyError, TypeError, ValueError):
        raise DbError("the admin secret holds no username/password JSON") from None
