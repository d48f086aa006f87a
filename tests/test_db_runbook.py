from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from moto import mock_aws

from automation.runbooks import db

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
OUTPUTS = {
    "aurora-serverless": {
        "endpoint": "x.cluster-abc.us-east-1.rds.amazonaws.com", "port": 5432, "database_name": "app",
        "cluster_arn": "arn:aws:rds:us-east-1:123456789012:cluster:x",
        "master_user_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1-AbCdEf",
        "data_api_enabled": True,
    },
    "rds-proxy": {"proxy_endpoint": "p.proxy-abc.us-east-1.rds.amazonaws.com", "port": 3306, "database_name": "app"},
    "encrypt-existing": {"address": "e.abc.us-east-1.rds.amazonaws.com", "port": 3306},
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(PEM)
    return path


def test_postgres_connection_verifies_tls_and_never_prints_a_token(bundle: Path) -> None:
    conn = db.connection(OUTPUTS, "aurora-serverless", user="app_user", region="us-east-1", ca_bundle=bundle)
    assert conn.argv() == ["psql", f"host=x.cluster-abc.us-east-1.rds.amazonaws.com port=5432 user=app_user "
                                   f"dbname=app sslmode=verify-full sslrootcert={bundle}"]
    command = conn.shell_command()
    assert command.startswith('PGPASSWORD="$(aws rds generate-db-auth-token --hostname '
                              'x.cluster-abc.us-east-1.rds.amazonaws.com --port 5432 --username app_user '
                              '--region us-east-1)" psql ')
    assert "X-Amz-Signature" not in command


def test_iam_auth_and_data_api_connect_to_the_aurora_cluster(bundle: Path) -> None:
    conn = db.connection(OUTPUTS, "iam-auth", user="app_user", region="us-east-1", ca_bundle=bundle)
    assert conn.engine == "postgres" and conn.port == 5432


def test_mysql_connection_flags(bundle: Path) -> None:
    conn = db.connection(OUTPUTS, "rds-proxy", user="dbadmin", region="eu-west-1", ca_bundle=bundle)
    argv = conn.argv()
    assert argv[0] == "mysql"
    assert "--ssl-mode=VERIFY_IDENTITY" in argv and f"--ssl-ca={bundle}" in argv
    assert "--enable-cleartext-plugin" in argv and argv[-1] == "app"
    assert conn.shell_command().startswith('MYSQL_PWD="$(aws rds generate-db-auth-token')
    no_db = db.connection(OUTPUTS, "encrypt-existing", user="admin", region="eu-west-1", ca_bundle=bundle)
    assert no_db.argv()[-1] == "--enable-cleartext-plugin"


@pytest.mark.parametrize(
    ("recipe", "user", "message"),
    [("dynamodb-autoscaling", "u", "no database to connect to"), ("dms-migration", "u", "no dms-migration outputs"),
     ("aurora-serverless", "bad user;", "--user")],
)
def test_connection_errors(bundle: Path, recipe: str, user: str, message: str) -> None:
    with pytest.raises(db.DbError, match=message):
        db.connection(OUTPUTS, recipe, user=user, region="us-east-1", ca_bundle=bundle)


@pytest.mark.aws
def test_token_comes_from_botocores_signer(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    conn = db.connection(OUTPUTS, "rds-proxy", user="dbadmin", region="eu-west-1", ca_bundle=bundle)
    token = db.auth_token(boto3.client("rds", region_name="eu-west-1"), conn)
    assert token.startswith("p.proxy-abc.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=dbadmin&")
    assert "X-Amz-Signature=" in token and "X-Amz-Expires=900" in token
    assert conn.environment(token)["MYSQL_PWD"] == token


class _PemHandler(http.server.BaseHTTPRequestHandler):
    body = PEM
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pem_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PemHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _PemHandler.hits, _PemHandler.body = 0, PEM
    yield f"http://127.0.0.1:{server.server_address[1]}/global-bundle.pem"
    server.shutdown()


def test_ca_bundle_is_downloaded_once_and_cached(tmp_path: Path, pem_server: str) -> None:
    first = db.ca_bundle(cache_dir=tmp_path, url=pem_server)
    second = db.ca_bundle(cache_dir=tmp_path, url=pem_server)
    assert first == second == tmp_path / "global-bundle.pem"
    assert first.read_bytes() == PEM
    assert _PemHandler.hits == 1


def test_ca_bundle_rejects_a_non_pem_download(tmp_path: Path, pem_server: str) -> None:
    _PemHandler.body = b"<html>captive portal</html>"
    with pytest.raises(db.DbError, match="did not return a PEM"):
        db.ca_bundle(cache_dir=tmp_path, url=pem_server)
    assert not (tmp_path / "global-bundle.pem").exists()


def test_ca_bundle_unreachable_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(db.DbError, match="pass --ca-bundle FILE"):
        db.ca_bundle(cache_dir=tmp_path, url="http://127.0.0.1:9/none.pem", timeout=2)


def test_given_ca_bundle_is_checked(tmp_path: Path, bundle: Path) -> None:
    assert db.ca_bundle(bundle) == bundle
    with pytest.raises(db.DbError, match="cannot read"):
        db.ca_bundle(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(db.DbError, match="no PEM certificate"):
        db.ca_bundle(junk)


def test_params_are_typed() -> None:
    assert db.parse_params(["id=7", "ratio=0.5", "name=ann", "flag=true", "gone=null", "text=a=b"]) == [
        {"name": "id", "value": {"longValue": 7}},
        {"name": "ratio", "value": {"doubleValue": 0.5}},
        {"name": "name", "value": {"stringValue": "ann"}},
        {"name": "flag", "value": {"booleanValue": True}},
        {"name": "gone", "value": {"isNull": True}},
        {"name": "text", "value": {"stringValue": "a=b"}},
    ]


@pytest.mark.parametrize("bad", ["noequals", "=1", "bad-name=1", "a b=1"])
def test_bad_params(bad: str) -> None:
    with pytest.raises(db.DbError, match="--param"):
        db.parse_params([bad])


def test_duplicate_params() -> None:
    with pytest.raises(db.DbError, match="twice"):
        db.parse_params(["a=1", "a=2"])


@pytest.mark.aws
@mock_aws
def test_query_through_the_data_api() -> None:
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/rds-data/statement-results",
        json={"results": [{
            "records": [[{"longValue": 1}, {"stringValue": "ann"}, {"isNull": True}],
                        [{"longValue": 2}, {"stringValue": "bob"}, {"booleanValue": True}]],
            "columnMetadata": [{"name": "id", "label": "id"}, {"name": "name", "label": "name"},
                               {"name": "flag", "label": "flag"}],
            "numberOfRecordsUpdated": 0,
        }]},
        timeout=5,
    )
    cluster, secret, database = db.data_api_target(OUTPUTS)
    client = boto3.client("rds-data", region_name="us-east-1")
    result = db.run_query(client, cluster_arn=cluster, secret_arn=secret, database=database,
                          sql="select id, name, flag from people where id > :min", params=db.parse_params(["min=0"]))
    assert result.columns == ["id", "name", "flag"]
    assert result.rows == [[1, "ann", None], [2, "bob", True]]
    assert result.to_json()["records_updated"] == 0


def test_data_api_needs_the_flag() -> None:
    off = {"aurora-serverless": {**OUTPUTS["aurora-serverless"], "data_api_enabled": False}}
    with pytest.raises(db.DbError, match="Data API off"):
        db.data_api_target(off)
    with pytest.raises(db.DbError, match="no aurora-serverless outputs"):
        db.data_api_target({})
