"""The whole path for real: `up -> outputs -> ls -> down` through the Pulumi engine.

Deploys to the local moto server with a file backend, so it needs no cloud
account, but it does need the `pulumi` CLI (>= 3.211) and the aws resource
plugin; tests/conftest.py skips the `engine` marker where the CLI is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from automation import local_aws, workspace
from automation.operations import environments as envs
from automation.operations.prepare import prepare
from components import naming

pytestmark = pytest.mark.engine

BRANCH = "engine/smoke-test"


def _aws_plugin_installed() -> bool:
    plugins = Path.home() / ".pulumi" / "plugins"
    return any(plugins.glob("resource-aws-v*"))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[envs.Environments]:
    if not _aws_plugin_installed():
        pytest.skip("needs the pulumi aws resource plugin (pulumi plugin install resource aws)")
    (tmp_path / "dbenv.toml").write_text('target = "local"\nrecipes = "dynamodb-autoscaling"\nttl = "2h"\n'
                                         f'policy_pack = "{tmp_path / "no-pack"}"\n', encoding="utf-8")
    settings = workspace.load_settings(tmp_path, env={})
    service = envs.Environments(settings)
    try:
        yield service
    finally:
        service.local.stop()


def _tables(endpoint: str) -> list[str]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=local_aws.ACCESS_KEY, aws_secret_access_key=local_aws.SECRET_KEY)
    return client.list_tables()["TableNames"]


def test_up_outputs_ls_down_leaves_nothing_behind(service: envs.Environments) -> None:
    prepared = prepare(service.settings, branch=BRANCH)  # branch as a flag, like `dbenv up --branch`
    events: list[object] = []
    outcome = service.up(prepared, on_event=events.append)
    assert outcome.result == "succeeded"
    assert "dynamodb-autoscaling" in outcome.outputs
    assert any(getattr(e, "res_outputs_event", None) for e in events)

    endpoint = service.local.status().endpoint
    assert endpoint and _tables(endpoint)

    stack = naming.stack_name(BRANCH)
    assert "dynamodb-autoscaling" in service.outputs(stack)
    listed = {info.stack: info for info in service.list()}
    assert listed[stack].ephemeral and listed[stack].branch == BRANCH and not listed[stack].expired
    assert listed[stack].resource_count and listed[stack].last_result == "succeeded"

    second = service.up(prepared)  # idempotent: nothing to change
    assert second.result == "succeeded"
    assert set(second.changes or {}) <= {"same"}

    down = service.down(BRANCH)
    assert down.existed
    assert _tables(endpoint) == []
    assert stack not in {info.stack for info in service.list()}
    assert not service.down(BRANCH).existed
