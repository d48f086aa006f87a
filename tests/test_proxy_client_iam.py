"""The proxy client's IAM path: botocore's real token generator (moto credentials) and TLS to the driver."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from moto import mock_aws

from tests.dbservers import MARIADB_PORT, mariadb_root

pytestmark = pytest.mark.aws

PROXY = "app-proxy.proxy-c1x2y3z4.eu-west-1.rds.amazonaws.com"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
                        "AWS_SESSION_TOKEN": "session-token", "AWS_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def assert_auth_token(token: str, host: str, port: int, user: str, region: str) -> None:
    assert token.startswith(f"{host}:{port}/?Action=connect&DBUser={user}&"), token
    query = parse_qs(urlsplit(f"https://{token}").query, strict_parsing=True)
    assert query["Action"] == ["connect"] and query["DBUser"] == [user]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert re.fullmatch(rf"[A-Z0-9]+/\d{{8}}/{region}/rds-db/aws4_request", query["X-Amz-Credential"][0])
    assert re.fullmatch(r"\d{8}T\d{6}Z", query["X-Amz-Date"][0])
    assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-SignedHeaders"] == ["host"]
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"][0])


def test_the_auth_token_is_a_presigned_connect_url(proxy_client: Any, aws: None) -> None:
    settings = proxy_client.Settings(host=PROXY, port=3306, user="app_user", region="eu-west-1")
    token = proxy_client.auth_token(settings)
    assert_auth_token(token, PROXY, 3306, "app_user", "eu-west-1")
    assert parse_qs(urlsplit(f"https://{token}").query)["X-Amz-Security-Token"] == ["session-token"]


def test_the_driver_gets_the_token_as_password_and_is_asked_for_verified_tls(
        proxy_client: Any, aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_connect(**kwargs: Any) -> Any:
        seen.update(kwargs)
        raise ConnectionRefusedError("stop here")

    monkeypatch.setattr(proxy_client.pymysql, "connect", fake_connect)
    settings = proxy_client.Settings.from_env({"DB_HOST": PROXY, "DB_PORT": "3306", "DB_USER": "app_user",
                                               "DB_NAME": "shop", "AWS_REGION": "eu-west-1"})
    with pytest.raises(ConnectionRefusedError):
        proxy_client.iam_connect(settings)

    assert (seen["host"], seen["port"], seen["user"], seen["database"]) == (PROXY, 3306, "app_user", "shop")
    assert_auth_token(seen["password"], PROXY, 3306, "app_user", "eu-west-1")
    assert "ssl_disabled" not in seen
    context = seen["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.db
def test_the_handler_never_falls_back_to_plaintext(proxy_client: Any, aws: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mariadb_root().close()  # the server is up (and has no TLS): the refusal below is the client's
    monkeypatch.setenv("DB_HOST", "127.0.0.1")
    monkeypatch.setenv("DB_PORT", str(MARIADB_PORT))
    monkeypatch.setenv("DB_USER", "root")
    monkeypatch.delenv("DB_TLS", raising=False)
    result = proxy_client.lambda_handler({"action": "health"}, None)
    assert result["ok"] is False and result["status"] == 502
    assert "SSL is required" in result["error"]


@pytest.mark.db
def test_the_handler_logs_in_with_the_token_and_never_logs_it(
        proxy_client: Any, aws: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    mariadb_root().close()
    monkeypatch.setenv("DB_HOST", "127.0.0.1")
    monkeypatch.setenv("DB_PORT", str(MARIADB_PORT))
    monkeypatch.setenv("DB_USER", "root")
    monkeypatch.setenv("DB_TLS", "off")
    tokens: list[str] = []
    real_token = proxy_client.auth_token
    monkeypatch.setattr(proxy_client, "auth_token", lambda s: tokens.append(real_token(s)) or tokens[-1])

    result = proxy_client.lambda_handler({"action": "health"}, None)

    # root has an empty password here, so the server refusing "using password: YES" shows the token was sent.
    assert result["status"] == 502 and "using password: YES" in result["error"]
    assert len(tokens) == 1
    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err + str(result)
    assert "health failed: " in caplog.text and "on 127.0.0.1:" in caplog.text
    assert tokens[0] not in text and tokens[0].split("X-Amz-Signature=")[1] not in text
