"""Secrets Manager single-user rotation for an RDS MySQL/MariaDB or PostgreSQL user.

Secrets Manager invokes ``lambda_handler`` four times per rotation with
``{"SecretId", "ClientRequestToken", "Step"}``; the steps are createSecret,
setSecret, testSecret and finishSecret, and each one is idempotent because
Secrets Manager retries any step that fails. The semantics follow AWS's
published single-user rotation functions: rotation must be enabled, the token
must be a version of the secret, a token that is already AWSCURRENT is a no-op
and any other token must be AWSPENDING.

The secret is a JSON object with the keys ``engine`` (mysql, mariadb,
aurora-mysql, postgres, aurora-postgresql), ``host``, ``username``,
``password`` and optionally ``port`` and ``dbname``.

Differences from the reference functions, all on the safe side:

- TLS to the database is required by default and never silently dropped.
- setSecret checks right after the change that the new password logs in and
  puts the old one back if it does not, so a failed setSecret never leaves
  the database with a password that no staged version holds.
- PostgreSQL: the password is sent as a SCRAM-SHA-256 (or md5) verifier
  computed here, so the plaintext never reaches server logs. A login the
  server accepted without asking for a password (``trust`` authentication)
  proves nothing about the password, so it never counts as "already set".
- When no staged password logs in, setSecret also tries the newest versions
  without stages: an abandoned rotation may have left its password there.
- Passwords, secret strings and connection secrets are never logged.

IAM the function needs: ``secretsmanager:DescribeSecret``, ``GetSecretValue``,
``PutSecretValue``, ``UpdateSecretVersionStage`` and ``ListSecretVersionIds``
on the secret (plus ``kms:Decrypt``/``kms:GenerateDataKey`` on its key when it
is customer-managed), ``secretsmanager:GetRandomPassword`` on ``*`` (it names
no resource), and network access to Secrets Manager and the database port.

Environment variables (all optional):

- ``SECRETS_MANAGER_ENDPOINT``: Secrets Manager endpoint URL (e.g. a VPC
  endpoint); default: the regional endpoint boto3 picks.
- ``EXCLUDE_CHARACTERS``: characters GetRandomPassword must not use;
  default ``/@"'\\`` and space (unsafe in connection strings and SQL).
- ``PASSWORD_LENGTH``: length of generated passwords, 16..128, default 32.
- ``DB_TLS``: ``verify-full`` (default: TLS, CA-verified certificate and
  host name), ``verify-ca`` (TLS, CA-verified certificate) or ``off``
  (plaintext; only for local test servers).
- ``DB_CA_BUNDLE``: PEM file of CAs to trust; default ``global-bundle.pem``
  next to this file when present (the RDS bundle), else the system store.
- ``DB_CONNECT_TIMEOUT``: seconds per connection attempt, 1..60, default 5.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pg8000.native
import pymysql
from botocore.exceptions import ClientError
from scramp.utils import saslprep

logger = logging.getLogger("rotation")
logger.setLevel(logging.INFO)

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
MYSQL_ENGINES = ("mysql", "mariadb", "aurora-mysql")
POSTGRES_ENGINES = ("postgres", "aurora-postgresql")
DEFAULT_EXCLUDE_CHARACTERS = "/@\"'\\ "
TLS_MODES = ("verify-full", "verify-ca", "off")
BUNDLED_CA = Path(__file__).with_name("global-bundle.pem")
# MySQL error numbers that mean "these credentials were refused".
MYSQL_AUTH_ERRORS = frozenset({1045, 1698})
# PostgreSQL SQLSTATEs for refused credentials (28000 also covers "no pg_hba entry").
POSTGRES_AUTH_ERRORS = frozenset({"28P01", "28000"})
# PostgreSQL authentication requests that carry a password proof: cleartext, md5, SASL.
POSTGRES_PASSWORD_AUTH_CODES = frozenset({3, 5, 10})
SCRAM_ITERATIONS = 4096
# How many versions without stages setSecret tries when no staged password logs in.
MAX_UNSTAGED_VERSIONS = 5


class RotationError(ValueError):
    """A rotation step cannot proceed; the message is safe to log (no secret values)."""


class DatabaseUnreachable(RotationError):
    """The database could not be reached or refused the TLS handshake."""


@dataclass(frozen=True)
class Settings:
    tls_mode: str = "verify-full"
    ca_bundle: str | None = None
    connect_timeout: int = 5
    exclude_characters: str = DEFAULT_EXCLUDE_CHARACTERS
    password_length: int = 32
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        tls_mode = env.get("DB_TLS", "verify-full").strip().lower()
        if tls_mode not in TLS_MODES:
            raise RotationError(f"DB_TLS: {tls_mode!r} is not one of {', '.join(TLS_MODES)}")
        ca_bundle = env.get("DB_CA_BUNDLE") or (str(BUNDLED_CA) if BUNDLED_CA.is_file() else None)
        if tls_mode != "off" and ca_bundle and not Path(ca_bundle).is_file():
            raise RotationError(f"DB_CA_BUNDLE: {ca_bundle!r} is not a readable file")
        return cls(
            tls_mode=tls_mode,
            ca_bundle=ca_bundle,
            connect_timeout=_int_setting(env, "DB_CONNECT_TIMEOUT", 5, 1, 60),
            exclude_characters=env.get("EXCLUDE_CHARACTERS", DEFAULT_EXCLUDE_CHARACTERS),
            password_length=_int_setting(env, "PASSWORD_LENGTH", 32, 16, 128),
            endpoint_url=env.get("SECRETS_MANAGER_ENDPOINT") or None,
        )


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RotationError(f"{name}: {raw!r} is not an integer in {low}..{high}") from None
    if not low <= value <= high:
        raise RotationError(f"{name}: {value} is outside {low}..{high}")
    return value


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for database connections, or None when DB_TLS is off."""
    if settings.tls_mode == "off":
        return None
    context = ssl.create_default_context(cafile=settings.ca_bundle)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = settings.tls_mode == "verify-full"
    return context


# --- Lambda entry point --------------------------------------------------------------------------


def lambda_handler(event: Mapping[str, Any], context: Any) -> None:
    secret_id, token, step = parse_event(event)
    settings = Settings.from_env()
    client = boto3.client("secretsmanager", endpoint_url=settings.endpoint_url)
    logger.info("%s: secret %s version %s", step, secret_id, token)
    try:
        if not version_needs_rotation(client, secret_id, token):
            return
        STEP_FUNCTIONS[step](client, secret_id, token, settings)
    except RotationError as err:
        logger.error("%s failed for secret %s version %s: %s", step, secret_id, token, err)
        raise
    except ClientError as err:
        logger.error("%s failed for secret %s version %s: Secrets Manager %s", step, secret_id, token,
                     err.response.get("Error", {}).get("Code"))
        raise


def parse_event(event: Mapping[str, Any]) -> tuple[str, str, str]:
    if not isinstance(event, Mapping):
        raise RotationError("event: expected an object with SecretId, ClientRequestToken and Step")
    values = []
    for key in ("SecretId", "ClientRequestToken", "Step"):
        value = event.get(key)
        if not isinstance(value, str) or not value:
            raise RotationError(f"event.{key}: a non-empty string is required")
        values.append(value)
    if values[2] not in STEPS:
        raise RotationError(f"event.Step: {values[2]!r} is not one of {', '.join(STEPS)}")
    return values[0], values[1], values[2]


def version_needs_rotation(client: Any, secret_id: str, token: str) -> bool:
    """Check rotation is enabled and the token is AWSPENDING; False when it is already AWSCURRENT."""
    metadata = client.describe_secret(SecretId=secret_id)
    if not metadata.get("RotationEnabled", False):
        raise RotationError(f"secret {secret_id} is not enabled for rotation")
    stages = metadata.get("VersionIdsToStages", {})
    if token not in stages:
        raise RotationError(f"version {token} is not a version of secret {secret_id}")
    if "AWSCURRENT" in stages[token]:
        logger.info("version %s is already AWSCURRENT for secret %s; nothing to do", token, secret_id)
        return False
    if "AWSPENDING" not in stages[token]:
        raise RotationError(f"version {token} of secret {secret_id} is not AWSPENDING (another rotation "
                            "may have replaced it)")
    return True


# --- Secrets Manager access ----------------------------------------------------------------------


def is_not_found(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def get_secret_dict(client: Any, secret_id: str, stage: str, token: str | None = None) -> dict[str, Any]:
    """The secret version as a validated dict. Raises ClientError when the version has no value."""
    request = {"SecretId": secret_id, "VersionStage": stage}
    if token:
        request["VersionId"] = token
    response = client.get_secret_value(**request)
    try:
        secret = json.loads(response["SecretString"])
    except (KeyError, TypeError, ValueError):
        raise RotationError(f"secret {secret_id} {stage}: SecretString is not a JSON object") from None
    validate_secret(secret, f"secret {secret_id} {stage}")
    return secret


def validate_secret(secret: Any, where: str) -> None:
    if not isinstance(secret, dict):
        raise RotationError(f"{where}: SecretString is not a JSON object")
    for key in ("engine", "host", "username", "password"):
        if not isinstance(secret.get(key), str) or not secret[key]:
            raise RotationError(f"{where}: key {key!r} must be a non-empty string")
    if secret["engine"] not in MYSQL_ENGINES + POSTGRES_ENGINES:
        raise RotationError(f"{where}: engine {secret['engine']!r} is not one of "
                            f"{', '.join(MYSQL_ENGINES + POSTGRES_ENGINES)}")
    port = secret.get("port")
    if port is not None and not str(port).isdigit():
        raise RotationError(f"{where}: port {port!r} is not a number")


def get_optional_secret_dict(client: Any, secret_id: str, stage: str) -> dict[str, Any] | None:
    try:
        return get_secret_dict(client, secret_id, stage)
    except ClientError as err:
        if is_not_found(err):
            return None
        raise
    except RotationError as err:
        logger.warning("ignoring %s: %s", stage, err)
        return None


def same_account(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Single-user rotation changes one user on one server; versions must agree on which."""
    return (a["engine"], a["host"], str(a.get("port", "")), a["username"]) == (
        b["engine"], b["host"], str(b.get("port", "")), b["username"])


# --- Database access -----------------------------------------------------------------------------


@dataclass
class Session:
    """An open database login. ``password_checked`` is False when the server never asked for one."""

    connection: Any
    password_checked: bool
    engine: str

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - closing a dead connection must not mask the real outcome
            logger.debug("closing the database connection failed", exc_info=True)


def is_postgres(secret: Mapping[str, Any]) -> bool:
    return secret["engine"] in POSTGRES_ENGINES


def where(secret: Mapping[str, Any]) -> str:
    default_port = 5432 if is_postgres(secret) else 3306
    return f"{secret['username']}@{secret['host']}:{secret.get('port', default_port)}"


def login(secret: Mapping[str, Any], settings: Settings) -> Session | None:
    """Log in with the secret; None when the server refused the credentials.

    Raises DatabaseUnreachable for network and TLS failures: those say nothing
    about the password, so callers must not go on trying other passwords.
    """
    try:
        if is_postgres(secret):
            return _postgres_login(secret, settings)
        return _mysql_login(secret, settings)
    except DatabaseUnreachable as err:
        raise DatabaseUnreachable(f"{err}{tls_hint(settings, str(err))}") from None


def tls_hint(settings: Settings, message: str) -> str:
    """Why a certificate may not verify: RDS CAs are not in the system trust store."""
    if settings.tls_mode == "off" or settings.ca_bundle or "certificate verify failed" not in message:
        return ""
    return (" (no CA bundle: set DB_CA_BUNDLE or ship the RDS global-bundle.pem next to handler.py; "
            "the system trust store does not hold the RDS CAs)")


def _mysql_login(secret: Mapping[str, Any], settings: Settings) -> Session | None:
    context = tls_context(settings)
    tls: dict[str, Any] = {"ssl_disabled": True} if context is None else {"ssl": context}
    try:
        connection = pymysql.connect(
            host=secret["host"], port=int(secret.get("port", 3306)), user=secret["username"],
            password=secret["password"], database=secret.get("dbname") or None,
            connect_timeout=settings.connect_timeout, autocommit=True, **tls)
    except pymysql.err.OperationalError as err:
        code = err.args[0] if err.args else None
        if code in MYSQL_AUTH_ERRORS:
            logger.info("the server refused the credentials for %s (MySQL error %s)", where(secret), code)
            return None
        raise DatabaseUnreachable(f"cannot connect to {where(secret)}: {err}") from None
    return Session(connection, password_checked=True, engine="mysql")


class _PostgresConnection(pg8000.native.Connection):
    """Records whether the server asked for a password during the handshake."""

    password_checked = False

    def handle_AUTHENTICATION_REQUEST(self, data: bytes, context: Any) -> None:  # noqa: N802 - pg8000's name
        if int.from_bytes(data[:4], "big") in POSTGRES_PASSWORD_AUTH_CODES:
            self.password_checked = True
        super().handle_AUTHENTICATION_REQUEST(data, context)


def _postgres_login(secret: Mapping[str, Any], settings: Settings) -> Session | None:
    context = tls_context(settings)
    try:
        connection = _PostgresConnection(
            user=secret["username"], password=secret["password"], host=secret["host"],
            port=int(secret.get("port", 5432)), database=secret.get("dbname") or "postgres",
            timeout=settings.connect_timeout, ssl_context=context if context is not None else False)
    except pg8000.native.DatabaseError as err:
        fields = err.args[0] if err.args and isinstance(err.args[0], dict) else {}
        if fields.get("C") in POSTGRES_AUTH_ERRORS:
            logger.info("the server refused the credentials for %s (SQLSTATE %s)", where(secret), fields["C"])
            return None
        raise DatabaseUnreachable(f"cannot log in to {where(secret)}: {fields.get('M', err)}") from None
    except (pg8000.native.InterfaceError, OSError, ssl.SSLError) as err:
        raise DatabaseUnreachable(f"cannot connect to {where(secret)}: {err}") from None
    if not connection.password_checked:
        logger.warning("%s accepted the login without checking any password (trust authentication)",
                       where(secret))
    return Session(connection, password_checked=connection.password_checked, engine="postgres")


def set_password(session: Session, secret: Mapping[str, Any]) -> None:
    """Make ``secret['password']`` the password of the logged-in user."""
    try:
        if session.engine == "postgres":
            _postgres_set_password(session.connection, secret["password"])
        else:
            _mysql_set_password(session.connection, secret["password"])
    except (pymysql.err.MySQLError, pg8000.native.Error) as err:
        raise RotationError(f"cannot change the password of {where(secret)}: {safe_error(err)}") from None


def safe_error(err: Exception) -> str:
    """A driver error without text that may quote the statement (and so the password)."""
    if isinstance(err, pymysql.err.MySQLError):
        code = err.args[0] if err.args else None
        # 1064 (syntax error) quotes the statement near the error.
        return f"MySQL error {code}" if code == 1064 or len(err.args) < 2 else f"MySQL error {code}: {err.args[1]}"
    fields = err.args[0] if err.args and isinstance(err.args[0], dict) else {}
    return f"SQLSTATE {fields.get('C', '?')}: {fields.get('M', type(err).__name__)}"


def _mysql_set_password(connection: Any, password: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        version = str(cursor.fetchone()[0])
        # SET PASSWORD for the session's own account needs no privilege (MariaDB's ALTER USER
        # does); MariaDB and MySQL < 8 hash with PASSWORD(), MySQL 8 takes the plain string.
        major = version.split(".", 1)[0]
        expression = "PASSWORD(%s)" if "mariadb" in version.lower() or (major.isdigit() and int(major) < 8) \
            else "%s"
        # PyMySQL quotes the parameter as a string literal, honouring NO_BACKSLASH_ESCAPES.
        cursor.execute(f"SET PASSWORD = {expression}", (password,))


def _postgres_set_password(connection: Any, password: str) -> None:
    role, encryption = connection.run("SELECT current_user, current_setting('password_encryption')")[0]
    verifier = scram_verifier(password) if encryption == "scram-sha-256" else md5_verifier(password, role)
    # Utility statements take no bind parameters: quote the role and the verifier instead.
    connection.run(f"ALTER ROLE {pg8000.native.identifier(role)} WITH PASSWORD "
                   f"{pg8000.native.literal(verifier)}")


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores in pg_authid.rolpassword (RFC 5802/7677)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    try:
        prepared = saslprep(password).encode("utf-8")
    except Exception:  # noqa: BLE001 - PostgreSQL also falls back to the raw bytes when SASLprep fails
        prepared = password.encode("utf-8")
    salted = hashlib.pbkdf2_hmac("sha256", prepared, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def md5_verifier(password: str, role: str) -> str:
    # PostgreSQL's md5 scheme is md5(password || role name); only used when the server still stores md5.
    return "md5" + hashlib.md5((password + role).encode("utf-8")).hexdigest()  # noqa: S324


def smoke_test(session: Session) -> None:
    if session.engine == "postgres":
        session.connection.run("SELECT NOW()")
        return
    with session.connection.cursor() as cursor:
        cursor.execute("SELECT NOW()")
        cursor.fetchone()


# --- The four steps ------------------------------------------------------------------------------


def create_secret(client: Any, secret_id: str, token: str, settings: Settings) -> None:
    """Store a new random password as the AWSPENDING version ``token``, unless it already has one."""
    current = get_secret_dict(client, secret_id, "AWSCURRENT")
    try:
        get_secret_dict(client, secret_id, "AWSPENDING", token)
        logger.info("createSecret: version %s already holds a pending password", token)
        return
    except ClientError as err:
        if not is_not_found(err):
            raise
    password = client.get_random_password(
        PasswordLength=settings.password_length, ExcludeCharacters=settings.exclude_characters,
    )["RandomPassword"]
    pending = {**current, "password": password}
    client.put_secret_value(SecretId=secret_id, ClientRequestToken=token, SecretString=json.dumps(pending),
                            VersionStages=["AWSPENDING"])
    logger.info("createSecret: stored a new pending password in version %s", token)


def set_secret(client: Any, secret_id: str, token: str, settings: Settings) -> None:
    """Make the AWSPENDING password the database password, logging in with AWSCURRENT or AWSPREVIOUS."""
    current = get_secret_dict(client, secret_id, "AWSCURRENT")
    pending = get_secret_dict(client, secret_id, "AWSPENDING", token)
    previous = get_optional_secret_dict(client, secret_id, "AWSPREVIOUS")
    if not same_account(current, pending):
        raise RotationError("setSecret: AWSPENDING names another engine, host, port or user than AWSCURRENT")

    session = login(pending, settings)
    if session is not None:
        session.close()
        if session.password_checked:
            logger.info("setSecret: the pending password already logs in as %s", where(pending))
            return

    candidates = _known_passwords(client, secret_id, token, pending, current, previous)
    session, (label, used) = _login_with_known_password(pending, candidates, settings)
    try:
        set_password(session, pending)
        logger.info("setSecret: changed the password of %s (logged in with %s)", where(pending), label)
        _confirm_or_revert(session, pending, used, settings)
    finally:
        session.close()


def _known_passwords(client: Any, secret_id: str, token: str, pending: Mapping[str, Any],
                     current: Mapping[str, Any], previous: Mapping[str, Any] | None,
                     ) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Credentials that may still be the database's, most likely first, fetched only when needed."""
    yield "AWSCURRENT", current
    if previous is not None:
        if same_account(previous, pending):
            yield "AWSPREVIOUS", previous
        else:
            logger.warning("setSecret: AWSPREVIOUS names another account; not trying it")
    # A rotation abandoned after its setSecret (its version lost AWSPENDING before finishSecret)
    # left its password in the database and in a version without stages; without this the user
    # would be locked out of every staged version.
    for version_id, secret in _unstaged_versions(client, secret_id, token):
        if same_account(secret, pending):
            yield f"unstaged version {version_id}", secret


def _unstaged_versions(client: Any, secret_id: str, token: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        versions = client.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True,
                                                  MaxResults=100)["Versions"]
    except ClientError as err:
        logger.warning("setSecret: cannot list unstaged versions (%s)", err.response.get("Error", {}).get("Code"))
        return
    unstaged = [v for v in versions if not v.get("VersionStages") and v["VersionId"] != token]
    unstaged.sort(key=lambda v: (v.get("CreatedDate") is not None, v.get("CreatedDate")), reverse=True)
    for version in unstaged[:MAX_UNSTAGED_VERSIONS]:
        version_id = version["VersionId"]
        try:
            response = client.get_secret_value(SecretId=secret_id, VersionId=version_id)
            secret = json.loads(response["SecretString"])
            validate_secret(secret, f"version {version_id}")
        except (ClientError, KeyError, TypeError, ValueError):
            continue  # no value, not JSON or not a database secret: nothing to try
        yield version_id, secret


def _login_with_known_password(pending: Mapping[str, Any], candidates: Iterable[tuple[str, Mapping[str, Any]]],
                               settings: Settings) -> tuple[Session, tuple[str, Mapping[str, Any]]]:
    for label, secret in candidates:
        session = login(secret, settings)
        if session is not None:
            return session, (label, secret)
    raise RotationError(f"setSecret: the server refused the AWSPENDING, AWSCURRENT, AWSPREVIOUS and unstaged "
                        f"versions' passwords for {where(pending)}; the database password was not changed")


def _confirm_or_revert(session: Session, pending: Mapping[str, Any], old: Mapping[str, Any],
                       settings: Settings) -> None:
    """Prove the new password logs in; otherwise put the old one back so nobody is locked out."""
    try:
        check = login(pending, settings)
    except DatabaseUnreachable as err:
        check, reason = None, str(err)
    else:
        reason = "the server refused it"
    if check is not None:
        check.close()
        return
    set_password(session, old)
    raise RotationError(f"setSecret: the new password did not log in as {where(pending)} ({reason}); "
                        "the previous password was restored")


def test_secret(client: Any, secret_id: str, token: str, settings: Settings) -> None:
    """Log in with the AWSPENDING password and run a query."""
    pending = get_secret_dict(client, secret_id, "AWSPENDING", token)
    session = login(pending, settings)
    if session is None:
        raise RotationError(f"testSecret: the server refused the AWSPENDING password for {where(pending)}")
    try:
        smoke_test(session)
    finally:
        session.close()
    logger.info("testSecret: the pending password logs in as %s", where(pending))


def finish_secret(client: Any, secret_id: str, token: str, settings: Settings) -> None:
    """Move AWSCURRENT to ``token``; Secrets Manager then labels the old version AWSPREVIOUS."""
    stages = client.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    current_version = next((version for version, labels in stages.items() if "AWSCURRENT" in labels), None)
    if current_version == token:
        logger.info("finishSecret: version %s is already AWSCURRENT", token)
        return
    client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token,
                                       RemoveFromVersionId=current_version)
    # Both "AWSPENDING on the AWSCURRENT version" and "no AWSPENDING" are valid end states; the
    # second leaves nothing that a later RotateSecret (or moto) can mistake for a rotation in progress.
    client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    logger.info("finishSecret: version %s is now AWSCURRENT (was %s)", token, current_version)


STEP_FUNCTIONS: dict[str, Callable[[Any, str, str, Settings], None]] = {
    "createSecret": create_secret,
    "setSecret": set_secret,
    "testSecret": test_secret,
    "finishSecret": finish_secret,
}
