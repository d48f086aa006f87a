"""TLS is the rotation function's default, and it never falls back to plaintext."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.dbservers import (
    MARIADB_PORT,
    POSTGRES_PORT,
    DbUser,
    RotationHarness,
    TcpRelay,
    postgres_superuser,
    postgres_verifier,
    self_signed_certificate,
    server_tls_context,
    verifier_matches,
)


def test_default_settings_require_a_verified_certificate_and_host_name(rotation: Any) -> None:
    settings = rotation.Settings.from_env({})
    context = rotation.tls_context(settings)
    assert settings.tls_mode == "verify-full"
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_verify_ca_checks_the_certificate_but_not_the_host_name(rotation: Any) -> None:
    context = rotation.tls_context(rotation.Settings.from_env({"DB_TLS": "verify-ca"}))
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname


def test_tls_off_must_be_asked_for(rotation: Any) -> None:
    assert rotation.tls_context(rotation.Settings.from_env({"DB_TLS": "off"})) is None


@pytest.mark.parametrize(("env", "message"), [
    ({"DB_TLS": "yes"}, "DB_TLS: 'yes' is not one of verify-full, verify-ca, off"),
    ({"DB_CA_BUNDLE": "no-such-bundle.pem"}, "DB_CA_BUNDLE: 'no-such-bundle.pem' is not a readable file"),
    ({"PASSWORD_LENGTH": "8"}, "PASSWORD_LENGTH: 8 is outside 16..128"),
    ({"DB_CONNECT_TIMEOUT": "soon"}, "DB_CONNECT_TIMEOUT: 'soon' is not an integer in 1..60"),
])
def test_bad_settings_are_refused_naming_the_variable(rotation: Any, env: dict[str, str], message: str) -> None:
    with pytest.raises(rotation.RotationError, match=message):
        rotation.Settings.from_env(env)


@pytest.mark.parametrize("event", [
    {"SecretId": "s", "ClientRequestToken": "t"},
    {"SecretId": "", "ClientRequestToken": "t", "Step": "setSecret"},
    "createSecret",
])
def test_malformed_events_are_refused(rotation: Any, event: Any) -> None:
    with pytest.raises(rotation.RotationError, match="event"):
        rotation.parse_event(event)


@pytest.mark.db
@pytest.mark.aws
def test_default_tls_refuses_a_mariadb_without_tls(
        rotation_harness: RotationHarness, mariadb_user: DbUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_TLS")
    h = rotation_harness
    arn = h.create_secret({"engine": "mysql", "host": "127.0.0.1", "port": MARIADB_PORT,
                           "username": mariadb_user.name, "password": mariadb_user.password})
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")

    with pytest.raises(h.handler.DatabaseUnreachable, match="SSL is required"):
        h.step(arn, token, "setSecret")

    assert mariadb_user.mysql_login_works(), "no plaintext fallback may have changed the password"


@pytest.mark.db
@pytest.mark.aws
def test_default_tls_refuses_a_postgresql_without_tls(
        rotation_harness: RotationHarness, postgres_role: DbUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_TLS")
    before = postgres_verifier(postgres_role.name)
    h = rotation_harness
    arn = h.create_secret({"engine": "postgres", "host": "127.0.0.1", "port": POSTGRES_PORT,
                           "username": postgres_role.name, "password": postgres_role.password})
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")

    with pytest.raises(h.handler.DatabaseUnreachable, match="Server refuses SSL"):
        h.step(arn, token, "setSecret")

    assert postgres_verifier(postgres_role.name) == before


def test_driver_errors_that_may_quote_the_statement_are_reduced_to_their_code(rotation: Any) -> None:
    syntax = pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax near 'Secret-Pass-1'")
    assert rotation.safe_error(syntax) == "MySQL error 1064"
    policy = pymysql.err.OperationalError(1819, "Your password does not satisfy the current policy requirements")
    assert rotation.safe_error(policy) == "MySQL error 1819: Your password does not satisfy the current policy " \
                                          "requirements"


@pytest.fixture
def tls_postgres(tmp_path: Path) -> Iterator[tuple[TcpRelay, Path]]:
    """PostgreSQL behind a TLS-only front whose certificate names 127.0.0.1 (and a CA file for it)."""
    postgres_superuser().close()
    cert, key = self_signed_certificate(tmp_path, ips=("127.0.0.1",))
    relay = TcpRelay(POSTGRES_PORT, postgres_tls=server_tls_context(cert, key))
    relay.start()
    yield relay, cert
    relay.stop()


def tls_account(role: DbUser, port: int) -> dict[str, Any]:
    return {"engine": "postgres", "host": "127.0.0.1", "port": port, "username": role.name,
            "password": role.password, "dbname": "postgres"}


@pytest.mark.db
@pytest.mark.aws
def test_rotation_over_verified_tls(rotation_harness: RotationHarness, postgres_role: DbUser,
                                    tls_postgres: tuple[TcpRelay, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    relay, ca_file = tls_postgres
    monkeypatch.delenv("DB_TLS")
    monkeypatch.setenv("DB_CA_BUNDLE", str(ca_file))
    h = rotation_harness
    arn = h.create_secret(tls_account(postgres_role, relay.port))

    h.rotate(arn)

    assert relay.tls_sessions >= 3  # setSecret (twice) and testSecret all went through TLS
    new_password = h.value(arn, "AWSCURRENT")["password"]
    assert verifier_matches(postgres_verifier(postgres_role.name), new_password)


@pytest.mark.db
@pytest.mark.aws
def test_an_untrusted_certificate_is_refused_with_a_hint(
        rotation_harness: RotationHarness, postgres_role: DbUser, tls_postgres: tuple[TcpRelay, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    relay, _ = tls_postgres
    monkeypatch.delenv("DB_TLS")
    before = postgres_verifier(postgres_role.name)
    h = rotation_harness
    arn = h.create_secret(tls_account(postgres_role, relay.port))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")

    with pytest.raises(h.handler.DatabaseUnreachable, match="certificate verify failed.*set DB_CA_BUNDLE"):
        h.step(arn, token, "setSecret")

    assert relay.tls_sessions == 0
    assert postgres_verifier(postgres_role.name) == before


@pytest.mark.db
@pytest.mark.aws
def test_verify_full_checks_the_host_name_and_verify_ca_does_not(
        rotation_harness: RotationHarness, postgres_role: DbUser, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    postgres_superuser().close()
    cert, key = self_signed_certificate(tmp_path, dns_names=("db.other.example",))
    relay = TcpRelay(POSTGRES_PORT, postgres_tls=server_tls_context(cert, key))
    relay.start()
    try:
        monkeypatch.setenv("DB_TLS", "verify-full")
        monkeypatch.setenv("DB_CA_BUNDLE", str(cert))
        h = rotation_harness
        arn = h.create_secret(tls_account(postgres_role, relay.port))
        token = h.start_rotation(arn)
        h.step(arn, token, "createSecret")
        with pytest.raises(h.handler.DatabaseUnreachable, match="IP address mismatch|doesn't match"):
            h.step(arn, token, "setSecret")

        monkeypatch.setenv("DB_TLS", "verify-ca")
        for step in ("setSecret", "testSecret", "finishSecret"):
            h.step(arn, token, step)
        assert relay.tls_sessions >= 2
    finally:
        relay.stop()
