"""The rotation function against PostgreSQL and moto Secrets Manager.

The local server trusts TCP logins, so a login proves nothing about a
password: these tests read the stored verifier (pg_authid.rolpassword) and
check it against the password in the secret with scramp, independently of the
function's own hashing.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pg8000.native
import pytest

from tests.dbservers import (
    POSTGRES_PORT,
    DbUser,
    RotationHarness,
    TcpRelay,
    postgres_superuser,
    postgres_verifier,
    verifier_matches,
)

pytestmark = [pytest.mark.db, pytest.mark.aws]

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def account(role: DbUser, port: int = POSTGRES_PORT, **overrides: Any) -> dict[str, Any]:
    return {"engine": "postgres", "host": "127.0.0.1", "port": port, "username": role.name,
            "password": role.password, "dbname": "postgres", **overrides}


@pytest.fixture(autouse=True)
def capture_rotation_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="rotation")


def test_full_rotation_changes_the_stored_verifier(
        rotation_harness: RotationHarness, postgres_role: DbUser, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    h = rotation_harness
    before = postgres_verifier(postgres_role.name)
    assert verifier_matches(before, postgres_role.password)
    arn = h.create_secret(account(postgres_role))

    token = h.rotate(arn)

    new_password = h.value(arn, "AWSCURRENT")["password"]
    after = postgres_verifier(postgres_role.name)
    assert "AWSCURRENT" in h.stages(arn)[token] and new_password != postgres_role.password
    assert after != before
    assert verifier_matches(after, new_password)
    assert not verifier_matches(after, postgres_role.password)
    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err
    # trust authentication is noticed and does not count as "the new password already works"
    assert "without checking any password" in text and "setSecret: changed the password" in text
    assert new_password not in text and postgres_role.password not in text and after not in text


def test_every_step_is_idempotent_when_retried(rotation_harness: RotationHarness, postgres_role: DbUser) -> None:
    h = rotation_harness
    arn = h.create_secret(account(postgres_role))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")
    pending = h.value(arn, "AWSPENDING")
    for step in ("createSecret", "setSecret", "setSecret", "testSecret", "testSecret", "finishSecret",
                 "finishSecret", *STEPS):
        h.step(arn, token, step)
    assert h.value(arn, "AWSCURRENT") == pending
    assert verifier_matches(postgres_verifier(postgres_role.name), pending["password"])


def test_md5_servers_get_an_md5_verifier(rotation_harness: RotationHarness, postgres_role: DbUser) -> None:
    admin = postgres_superuser()
    admin.run(f"ALTER ROLE {pg8000.native.identifier(postgres_role.name)} SET password_encryption = 'md5'")
    admin.close()
    h = rotation_harness
    arn = h.create_secret(account(postgres_role))
    h.rotate(arn)
    password = h.value(arn, "AWSCURRENT")["password"]
    expected = "md5" + hashlib.md5((password + postgres_role.name).encode()).hexdigest()
    assert postgres_verifier(postgres_role.name) == expected


def test_database_down_during_set_secret_is_reported_and_changes_nothing(
        rotation_harness: RotationHarness, postgres_role: DbUser, postgres_relay: TcpRelay,
        caplog: pytest.LogCaptureFixture) -> None:
    h = rotation_harness
    before = postgres_verifier(postgres_role.name)
    arn = h.create_secret(account(postgres_role, port=postgres_relay.port))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")
    postgres_relay.stop()

    with pytest.raises(h.handler.DatabaseUnreachable, match="cannot connect to"):
        h.step(arn, token, "setSecret")

    assert "setSecret failed for secret" in caplog.text
    assert postgres_verifier(postgres_role.name) == before
    postgres_relay.start()
    for step in STEPS[1:]:
        h.step(arn, token, step)
    assert verifier_matches(postgres_verifier(postgres_role.name), h.value(arn, "AWSCURRENT")["password"])


def test_a_concurrent_rotation_is_refused_and_changes_nothing(
        rotation_harness: RotationHarness, postgres_role: DbUser) -> None:
    h = rotation_harness
    before = postgres_verifier(postgres_role.name)
    arn = h.create_secret(account(postgres_role))
    first = h.start_rotation(arn)
    h.step(arn, first, "createSecret")
    second = h.start_rotation(arn)

    with pytest.raises(h.handler.RotationError, match="is not AWSPENDING"):
        h.step(arn, first, "setSecret")

    assert postgres_verifier(postgres_role.name) == before
    h.rotate(arn, second)
    assert verifier_matches(postgres_verifier(postgres_role.name), h.value(arn, "AWSCURRENT")["password"])


def test_a_role_name_that_needs_quoting_is_rotated(rotation_harness: RotationHarness) -> None:
    admin = postgres_superuser()
    name = 'Rot "Quoted" Role'
    admin.run(f"CREATE ROLE {pg8000.native.identifier(name)} LOGIN PASSWORD 'initial-pass-1'")
    try:
        h = rotation_harness
        arn = h.create_secret({"engine": "postgres", "host": "127.0.0.1", "port": POSTGRES_PORT,
                               "username": name, "password": "initial-pass-1", "dbname": "postgres"})
        h.rotate(arn)
        assert verifier_matches(postgres_verifier(name), h.value(arn, "AWSCURRENT")["password"])
    finally:
        admin.run(f"DROP ROLE IF EXISTS {pg8000.native.identifier(name)}")
        admin.close()


def test_scram_verifier_matches_scramp(rotation: Any) -> None:
    verifier = rotation.scram_verifier("pa ss:wörd$", salt=b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert verifier_matches(verifier, "pa ss:wörd$")
    assert not verifier_matches(verifier, "pa ss:word$")
