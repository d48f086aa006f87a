"""The local moto server, for real: start, health, a boto3 call, stop, stale pid files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from automation import local_aws
from automation.local_aws import LocalAws

pytestmark = pytest.mark.aws


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalAws]:
    local = LocalAws(tmp_path / "local")
    yield local
    local.stop()


def test_not_running_without_a_pid_file(server: LocalAws) -> None:
    status = server.status()
    assert status.to_json() == {"running": False, "endpoint": None, "pid": None}
    assert server.stop() is False


def test_start_status_call_stop(server: LocalAws) -> None:
    started = server.start()
    assert started.running and started.endpoint and started.endpoint.startswith("http://127.0.0.1:")
    record = json.loads(server.pid_file.read_text(encoding="utf-8"))
    assert record["pid"] == started.pid and started.endpoint.endswith(f":{record['port']}")
    assert server.status() == started
    assert server.start().pid == started.pid  # already running: no second server

    client = boto3.client("dynamodb", endpoint_url=started.endpoint, region_name="us-east-1",
                          aws_access_key_id=local_aws.ACCESS_KEY, aws_secret_access_key=local_aws.SECRET_KEY)
    client.create_table(TableName="orders", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    assert client.list_tables()["TableNames"] == ["orders"]
    assert server.log_file.exists()

    assert server.stop() is True
    assert not server.pid_file.exists()
    assert not local_aws.healthy(started.endpoint)
    assert server.status().running is False


def test_restart_reuses_the_port(server: LocalAws) -> None:
    first = server.start()
    server.stop()
    second = server.start()
    assert second.endpoint == first.endpoint and second.pid != first.pid


def test_stale_pid_file_is_detected_and_cleaned(server: LocalAws) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    server.directory.mkdir(parents=True)
    server.pid_file.write_text(json.dumps({"pid": gone.pid, "port": local_aws.free_port()}), encoding="utf-8")
    status = server.status()
    assert status.running is False and status.stale_cleaned
    assert not server.pid_file.exists()
    assert server.stop() is False


def test_pid_of_another_process_is_not_mistaken_for_the_server(server: LocalAws) -> None:
    server.directory.mkdir(parents=True)
    server.pid_file.write_text(json.dumps({"pid": os.getpid(), "port": local_aws.free_port()}), encoding="utf-8")
    assert server.status().running is False
    assert not server.pid_file.exists()


def test_garbage_pid_file_is_stale(server: LocalAws) -> None:
    server.directory.mkdir(parents=True)
    server.pid_file.write_text("not json", encoding="utf-8")
    assert server.status().running is False
    started = server.start()
    assert started.running


def test_a_server_that_dies_at_start_is_reported(tmp_path: Path) -> None:
    broken = LocalAws(tmp_path / "local", python=str(tmp_path / "no-python"))
    with pytest.raises(OSError):
        broken.start(timeout=5)
    failing = LocalAws(tmp_path / "local2", python=sys.executable)
    failing.directory.mkdir(parents=True)
    # A port that is not a number makes moto's argument parser exit at once.
    with pytest.raises(local_aws.LocalAwsError, match="exited with code"):
        _start_with_args(failing, ["-p", "not-a-port"])


def _start_with_args(server: LocalAws, args: list[str]) -> None:
    """Start with a python that appends bad arguments (moto exits at once)."""
    wrapper = server.directory / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@" {" ".join(args)}\n', encoding="utf-8")
    wrapper.chmod(0o755)
    LocalAws(server.directory, python=str(wrapper)).start(timeout=20)


def test_aws_env_points_tools_at_the_server() -> None:
    env = local_aws.aws_env("http://127.0.0.1:1234", "eu-west-1")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1234" and env["AWS_REGION"] == "eu-west-1"


def test_parallel_starts_share_one_server(server: LocalAws) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(pool.map(lambda _: LocalAws(server.directory).start(), range(3)))
    assert len({status.pid for status in statuses}) == 1
    assert all(status.running for status in statuses)


def test_a_port_another_program_listens_on_is_refused_before_anything_is_written(server: LocalAws) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind((local_aws.HOST, 0))
        other.listen()
        busy = other.getsockname()[1]
        with pytest.raises(local_aws.PortUnavailable, match=f"port {busy} .* in use"):
            server.start(port=busy)
    assert not server.directory.exists()


def test_a_port_other_than_the_running_servers_is_refused(server: LocalAws) -> None:
    started = server.start()
    other_port = local_aws.free_port()
    with pytest.raises(local_aws.PortUnavailable, match=f"already runs at {started.endpoint}"):
        server.start(port=other_port)
    assert server.status().pid == started.pid
    assert server.start(port=int(started.endpoint.rsplit(":", 1)[1])).pid == started.pid
