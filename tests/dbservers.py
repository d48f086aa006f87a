"""Fixtures for the ``db`` tier: the local MariaDB and PostgreSQL servers that stand in for RDS.

A test that needs a server and finds it down fails with a message saying so;
it never skips. Each test gets its own database user with a random name,
dropped afterwards. ``TcpRelay`` sits between a function and a server so a
test can take "the database" down and bring it back.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import ipaddress
import json
import secrets
import socket
import socketserver
import ssl
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pg8000.native
import pymysql
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws
from scramp import ScramMechanism

HOST = "127.0.0.1"
MARIADB_PORT = 3306
POSTGRES_PORT = 5432
FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


def load_function(name: str) -> ModuleType:
    """Import ``functions/<name>/handler.py`` under a unique module name (every function has a handler.py)."""
    path = FUNCTIONS / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"{name}_handler", path)
    assert spec is not None and spec.loader is not None, f"no function at {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def rotation() -> ModuleType:
    return load_function("rotation")


@pytest.fixture(scope="session")
def proxy_client() -> ModuleType:
    return load_function("proxy_client")


def server_down(name: str, port: int, err: Exception) -> None:
    pytest.fail(f"{name} is not reachable on {HOST}:{port} ({err}). The db test tier needs it running "
                f"there; start the server, do not skip these tests.", pytrace=False)


def mariadb_root(port: int = MARIADB_PORT) -> Any:
    try:
        return pymysql.connect(host=HOST, port=port, user="root", password="", autocommit=True,
                               ssl_disabled=True, connect_timeout=3)
    except pymysql.err.OperationalError as err:
        server_down("MariaDB (root, empty password)", port, err)


def postgres_superuser(port: int = POSTGRES_PORT) -> Any:
    try:
        return pg8000.native.Connection(user="postgres", host=HOST, port=port, ssl_context=False, timeout=3)
    except (pg8000.native.InterfaceError, pg8000.native.DatabaseError) as err:
        server_down("PostgreSQL (user postgres, trust)", port, err)


def random_password() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class DbUser:
    name: str
    password: str
    port: int

    def mysql_login_works(self, password: str | None = None, port: int | None = None) -> bool:
        """Whether MariaDB accepts ``password`` (default: the user's) for this user."""
        try:
            pymysql.connect(host=HOST, port=port or self.port, user=self.name,
                            password=self.password if password is None else password,
                            ssl_disabled=True, connect_timeout=3).close()
            return True
        except pymysql.err.OperationalError as err:
            if err.args[0] == 1045:
                return False
            raise


@pytest.fixture
def mariadb_user() -> Iterator[DbUser]:
    """A fresh MariaDB user 'rot_<random>'@'%' with a random password and no privileges."""
    root = mariadb_root()
    user = DbUser(f"rot_{secrets.token_hex(5)}", random_password(), MARIADB_PORT)
    with root.cursor() as cursor:
        cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user.name, user.password))
    try:
        yield user
    finally:
        with root.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS %s@'%%'", (user.name,))
        root.close()


@pytest.fixture
def mariadb_set_password() -> Any:
    """Set a MariaDB user's password as an administrator would (outside the rotation)."""

    def set_password(name: str, password: str) -> None:
        root = mariadb_root()
        with root.cursor() as cursor:
            cursor.execute("SET PASSWORD FOR %s@'%%' = PASSWORD(%s)", (name, password))
        root.close()

    return set_password


@pytest.fixture
def postgres_role() -> Iterator[DbUser]:
    """A fresh PostgreSQL login role with a random name and password (SCRAM-stored)."""
    admin = postgres_superuser()
    role = DbUser(f"rot_{secrets.token_hex(5)}", random_password(), POSTGRES_PORT)
    admin.run(f"CREATE ROLE {pg8000.native.identifier(role.name)} LOGIN PASSWORD "
              f"{pg8000.native.literal(role.password)}")
    try:
        yield role
    finally:
        admin.run(f"DROP ROLE IF EXISTS {pg8000.native.identifier(role.name)}")
        admin.close()


def postgres_verifier(role: str) -> str | None:
    """The stored password verifier of ``role`` (pg_authid.rolpassword)."""
    admin = postgres_superuser()
    try:
        rows = admin.run("SELECT rolpassword FROM pg_authid WHERE rolname = :name", name=role)
    finally:
        admin.close()
    return rows[0][0] if rows else None


def verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier was made from ``password`` (RFC 5802 StoredKey)."""
    assert verifier is not None and verifier.startswith("SCRAM-SHA-256$"), "not a SCRAM verifier"
    iterations_salt, keys = verifier[len("SCRAM-SHA-256$"):].split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    _, expected, _, _ = ScramMechanism("SCRAM-SHA-256").make_auth_info(
        password, iteration_count=int(iterations), salt=base64.b64decode(salt))
    return base64.b64decode(stored_key) == expected


class TcpRelay:
    """A TCP relay on 127.0.0.1 to a database port that a test can stop (database down) and restart.

    With ``postgres_tls`` it also answers PostgreSQL's SSLRequest and terminates TLS with that
    context, so the plaintext local server looks like a TLS-only one to the client.
    """

    def __init__(self, target_port: int, postgres_tls: ssl.SSLContext | None = None) -> None:
        self.target_port = target_port
        self.postgres_tls = postgres_tls
        self.tls_sessions = 0
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        self._server: socketserver.ThreadingTCPServer | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        relay = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                relay._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer((HOST, self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Close the listening port and cut every open connection, like a crashed server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _serve(self, client: socket.socket) -> None:
        if self.postgres_tls is not None:
            request = client.recv(8)
            if request != POSTGRES_SSL_REQUEST:
                client.close()  # a TLS-only server: plaintext startup packets are refused
                return
            client.sendall(b"S")
            try:
                client = self.postgres_tls.wrap_socket(client, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate
            with self._lock:
                self.tls_sessions += 1
        upstream = socket.create_connection((HOST, self.target_port), timeout=5)
        upstream.settimeout(None)
        with self._lock:
            self._open.update({client, upstream})
        back = threading.Thread(target=self._copy, args=(upstream, client), daemon=True)
        back.start()
        self._copy(client, upstream)
        back.join(timeout=5)
        with self._lock:
            self._open.difference_update({client, upstream})

    @staticmethod
    def _copy(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


POSTGRES_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def self_signed_certificate(directory: Path, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()
                            ) -> tuple[Path, Path]:
    """A throw-away CA-less server certificate (cert.pem, key.pem) for the given names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db-recipes test server")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_tls_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
def mariadb_relay() -> Iterator[TcpRelay]:
    mariadb_root().close()
    relay = TcpRelay(MARIADB_PORT)
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture
def postgres_relay() -> Iterator[TcpRelay]:
    postgres_superuser().close()
    relay = TcpRelay(POSTGRES_PORT)
    relay.start()
    yield relay
    relay.stop()


ROTATION_LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:rotate-db-secret"


class RotationHarness:
    """Secrets Manager (moto, in-process) plus the rotation function's handler, driven as the service drives it."""

    def __init__(self, client: Any, handler: ModuleType) -> None:
        self.client = client
        self.handler = handler

    def create_secret(self, value: dict[str, Any]) -> str:
        name = f"db/{secrets.token_hex(4)}"
        return self.client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]

    def start_rotation(self, arn: str) -> str:
        """Register a new AWSPENDING token the way Secrets Manager does before it calls createSecret.

        moto cannot invoke the Lambda ARN: it raises ResourceNotFoundException after
        enabling rotation and staging the token as AWSPENDING with no value.
        """
        token = str(uuid.uuid4())
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            self.client.rotate_secret(SecretId=arn, ClientRequestToken=token, RotationLambdaARN=ROTATION_LAMBDA_ARN,
                                      RotationRules={"AutomaticallyAfterDays": 30})
        assert self.stages(arn)[token] == ["AWSPENDING"]
        return token

    def step(self, arn: str, token: str, step: str) -> None:
        self.handler.lambda_handler({"SecretId": arn, "ClientRequestToken": token, "Step": step}, None)

    def rotate(self, arn: str, token: str | None = None) -> str:
        token = token or self.start_rotation(arn)
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            self.step(arn, token, step)
        return token

    def value(self, arn: str, stage: str) -> dict[str, Any]:
        # Always name the stage: moto without VersionStage can return a stale version.
        return json.loads(self.client.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])

    def version_value(self, arn: str, version_id: str) -> dict[str, Any]:
        return json.loads(self.client.get_secret_value(SecretId=arn, VersionId=version_id)["SecretString"])

    def stages(self, arn: str) -> dict[str, list[str]]:
        return self.client.describe_secret(SecretId=arn)["VersionIdsToStages"]


@pytest.fixture
def rotation_harness(rotation: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[RotationHarness]:
    """moto Secrets Manager and the rotation handler, with TLS to the (TLS-less) local servers turned off."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_REGION": "us-east-1", "DB_TLS": "off"}.items():
        monkeypatch.setenv(name, value)
    for name in ("SECRETS_MANAGER_ENDPOINT", "EXCLUDE_CHARACTERS", "PASSWORD_LENGTH", "DB_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield RotationHarness(boto3.client("secretsmanager", region_name="us-east-1"), rotation)
