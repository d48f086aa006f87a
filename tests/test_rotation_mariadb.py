"""The rotation function against MariaDB (logins really checked) and moto Secrets Manager."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.dbservers import MARIADB_PORT, DbUser, RotationHarness, TcpRelay, mariadb_root

pytestmark = [pytest.mark.db, pytest.mark.aws]

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
UNSAFE = set("/@\"'\\ ")


def account(user: DbUser, port: int = MARIADB_PORT, **overrides: Any) -> dict[str, Any]:
    return {"engine": "mariadb", "host": "127.0.0.1", "port": port, "username": user.name,
            "password": user.password, **overrides}


def logged_text(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


@pytest.fixture(autouse=True)
def capture_rotation_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="rotation")


def test_full_rotation_changes_the_password_on_the_server_and_in_the_secret(
        rotation_harness: RotationHarness, mariadb_user: DbUser, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))

    token = h.rotate(arn)

    new = h.value(arn, "AWSCURRENT")
    assert "AWSCURRENT" in h.stages(arn)[token]
    assert new["password"] != mariadb_user.password
    assert len(new["password"]) == 32 and not UNSAFE & set(new["password"])
    assert {k: v for k, v in new.items() if k != "password"} == {
        k: v for k, v in account(mariadb_user).items() if k != "password"}
    assert mariadb_user.mysql_login_works(new["password"])
    assert not mariadb_user.mysql_login_works()
    assert h.value(arn, "AWSPREVIOUS")["password"] == mariadb_user.password
    text = logged_text(caplog, capsys)
    assert "setSecret: changed the password" in text and "testSecret: the pending password logs in" in text
    assert new["password"] not in text and mariadb_user.password not in text


def test_every_step_is_idempotent_when_retried(rotation_harness: RotationHarness, mariadb_user: DbUser) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    token = h.start_rotation(arn)

    h.step(arn, token, "createSecret")
    pending = h.value(arn, "AWSPENDING")
    h.step(arn, token, "createSecret")
    assert h.value(arn, "AWSPENDING") == pending, "a retried createSecret must keep the pending password"
    for step in ("setSecret", "setSecret", "testSecret", "testSecret", "finishSecret", "finishSecret"):
        h.step(arn, token, step)
        assert mariadb_user.mysql_login_works(pending["password"])
    # Secrets Manager may retry any step after the rotation finished: all are no-ops now.
    for step in STEPS:
        h.step(arn, token, step)
    assert h.value(arn, "AWSCURRENT") == pending
    assert mariadb_user.mysql_login_works(pending["password"])


def test_exclude_characters_and_length_come_from_the_environment(
        rotation_harness: RotationHarness, mariadb_user: DbUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCLUDE_CHARACTERS", "abcdefghijklm/@\"'\\ ")
    monkeypatch.setenv("PASSWORD_LENGTH", "20")
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    h.rotate(arn)
    password = h.value(arn, "AWSCURRENT")["password"]
    assert len(password) == 20 and not set(password) & (UNSAFE | set("abcdefghijklm"))
    assert mariadb_user.mysql_login_works(password)


def test_database_down_during_set_secret_is_reported_and_changes_nothing(
        rotation_harness: RotationHarness, mariadb_user: DbUser, mariadb_relay: TcpRelay,
        caplog: pytest.LogCaptureFixture) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user, port=mariadb_relay.port))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")
    mariadb_relay.stop()

    with pytest.raises(h.handler.DatabaseUnreachable, match="cannot connect to"):
        h.step(arn, token, "setSecret")

    assert "setSecret failed for secret" in caplog.text
    assert mariadb_user.mysql_login_works(h.value(arn, "AWSCURRENT")["password"])
    mariadb_relay.start()
    for step in STEPS[1:]:
        h.step(arn, token, step)
    assert mariadb_user.mysql_login_works(h.value(arn, "AWSCURRENT")["password"])
    assert not mariadb_user.mysql_login_works()


def test_database_down_during_test_secret_never_locks_the_user_out(
        rotation_harness: RotationHarness, mariadb_user: DbUser, mariadb_relay: TcpRelay) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user, port=mariadb_relay.port))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")
    h.step(arn, token, "setSecret")
    mariadb_relay.stop()

    with pytest.raises(h.handler.DatabaseUnreachable):
        h.step(arn, token, "testSecret")

    # The database holds the AWSPENDING password, which Secrets Manager's retry will finish.
    assert mariadb_user.mysql_login_works(h.value(arn, "AWSPENDING")["password"])
    mariadb_relay.start()
    h.step(arn, token, "testSecret")
    h.step(arn, token, "finishSecret")
    assert mariadb_user.mysql_login_works(h.value(arn, "AWSCURRENT")["password"])


def test_set_secret_falls_back_to_the_previous_password(
        rotation_harness: RotationHarness, mariadb_user: DbUser, mariadb_set_password: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    h.rotate(arn)
    # The database went back to the AWSPREVIOUS password (e.g. restored from a snapshot).
    mariadb_set_password(mariadb_user.name, h.value(arn, "AWSPREVIOUS")["password"])
    assert not mariadb_user.mysql_login_works(h.value(arn, "AWSCURRENT")["password"])

    h.rotate(arn)

    assert "logged in with AWSPREVIOUS" in caplog.text
    assert mariadb_user.mysql_login_works(h.value(arn, "AWSCURRENT")["password"])


def test_wrong_current_password_is_reported_and_changes_nothing(
        rotation_harness: RotationHarness, mariadb_user: DbUser, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user, password="not-the-database-password"))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")

    with pytest.raises(h.handler.RotationError, match="refused the AWSPENDING, AWSCURRENT, AWSPREVIOUS"):
        h.step(arn, token, "setSecret")

    assert mariadb_user.mysql_login_works(), "the database password must be untouched"
    assert not mariadb_user.mysql_login_works(h.value(arn, "AWSPENDING")["password"])
    assert "AWSCURRENT" not in h.stages(arn)[token]
    text = logged_text(caplog, capsys)
    assert "not-the-database-password" not in text and h.value(arn, "AWSPENDING")["password"] not in text


def test_a_pending_version_already_present_is_used_not_replaced(
        rotation_harness: RotationHarness, mariadb_user: DbUser) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    token = h.start_rotation(arn)
    chosen = account(mariadb_user, password="Chosen-Earlier-9x")
    h.client.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(chosen),
                              VersionStages=["AWSPENDING"])

    h.rotate(arn, token)

    assert h.value(arn, "AWSCURRENT")["password"] == "Chosen-Earlier-9x"
    assert mariadb_user.mysql_login_works("Chosen-Earlier-9x")


def test_set_secret_is_a_no_op_when_the_pending_password_already_logs_in(
        rotation_harness: RotationHarness, mariadb_user: DbUser, mariadb_set_password: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")
    # An earlier setSecret attempt changed the password and then timed out.
    mariadb_set_password(mariadb_user.name, h.value(arn, "AWSPENDING")["password"])

    h.step(arn, token, "setSecret")

    assert "the pending password already logs in" in caplog.text
    assert "changed the password" not in caplog.text


@pytest.mark.parametrize("interrupted_before", ["setSecret", "testSecret", "finishSecret"])
def test_a_concurrent_rotation_is_refused_and_the_next_one_recovers(
        rotation_harness: RotationHarness, mariadb_user: DbUser, interrupted_before: str) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    first = h.start_rotation(arn)
    for step in STEPS[:STEPS.index(interrupted_before)]:
        h.step(arn, first, step)
    second = h.start_rotation(arn)  # takes AWSPENDING away from the first token

    with pytest.raises(h.handler.RotationError, match="is not AWSPENDING"):
        h.step(arn, first, interrupted_before)

    h.rotate(arn, second)
    assert "AWSCURRENT" in h.stages(arn)[second] and "AWSCURRENT" not in h.stages(arn)[first]
    assert mariadb_user.mysql_login_works(h.value(arn, "AWSCURRENT")["password"])


def test_tokens_that_are_not_pending_versions_are_refused(
        rotation_harness: RotationHarness, mariadb_user: DbUser) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    with pytest.raises(h.handler.RotationError, match="not enabled for rotation"):
        h.step(arn, "4b3f2a1e-0000-4000-8000-000000000000", "createSecret")
    h.start_rotation(arn)
    with pytest.raises(h.handler.RotationError, match="is not a version of secret"):
        h.step(arn, "4b3f2a1e-0000-4000-8000-000000000000", "createSecret")
    with pytest.raises(h.handler.RotationError, match="Step: 'rotate' is not one of createSecret"):
        h.step(arn, "4b3f2a1e-0000-4000-8000-000000000000", "rotate")
    assert mariadb_user.mysql_login_works()


def test_a_secret_for_an_unknown_engine_is_refused(rotation_harness: RotationHarness, mariadb_user: DbUser) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user, engine="oracle"))
    token = h.start_rotation(arn)
    with pytest.raises(h.handler.RotationError, match="engine 'oracle' is not one of mysql, mariadb"):
        h.step(arn, token, "createSecret")


def test_a_database_server_that_is_down_fails_the_test_with_a_clear_message() -> None:
    relay = TcpRelay(MARIADB_PORT)  # reserves a free port; never started, so nothing listens there
    with pytest.raises(pytest.fail.Exception, match="is not reachable on 127.0.0.1.*do not skip"):
        mariadb_root(port=relay.port)


def test_set_secret_restores_the_old_password_when_the_new_one_cannot_log_in(
        rotation_harness: RotationHarness, mariadb_user: DbUser) -> None:
    h = rotation_harness
    arn = h.create_secret(account(mariadb_user))
    token = h.start_rotation(arn)
    h.step(arn, token, "createSecret")
    # One connection per user: the check login with the new password, made while the session that
    # changed it is still open, is refused.
    root = mariadb_root()
    with root.cursor() as cursor:
        cursor.execute("ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS 1", (mariadb_user.name,))
    root.close()

    with pytest.raises(h.handler.RotationError, match="the previous password was restored"):
        h.step(arn, token, "setSecret")

    assert mariadb_user.mysql_login_works(h.value(arn, "AWSCURRENT")["password"])
    assert not mariadb_user.mysql_login_works(h.value(arn, "AWSPENDING")["password"])
