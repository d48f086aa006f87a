"""The pack under the real engine: `pulumi preview --policy-pack policies` (needs the pulumi CLI and aws plugin).

A throw-away Python project with one unencrypted RDS instance is previewed on
a file backend with placeholder AWS credentials (a preview of new resources
makes no AWS calls). The pack is a copy of ``policies/`` whose runtime is the
Python on PATH (this virtualenv) instead of a virtualenv of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.policy, pytest.mark.engine]

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = '''
import pulumi_aws as aws

aws.rds.Instance(
    "plain-db",
    engine="mysql",
    instance_class="db.t4g.micro",
    allocated_storage=20,
    username="dbadmin",
    manage_master_user_password=True,
    storage_encrypted=False,
    iam_database_authentication_enabled=True,
    skip_final_snapshot=True,
)
'''


def _project(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    program = tmp_path / "program"
    program.mkdir()
    (program / "Pulumi.yaml").write_text(
        "name: policy-engine-test\nruntime:\n  name: python\n  options:\n"
        f"    virtualenv: {Path(sys.prefix).as_posix()}\n", encoding="utf-8")
    (program / "__main__.py").write_text(PROGRAM, encoding="utf-8")
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "policies", pack, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.1.0\n", encoding="utf-8")
    backend = tmp_path / "state"
    backend.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "policy-engine-test",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    pulumi = shutil.which("pulumi")
    assert pulumi is not None
    subprocess.run([pulumi, "stack", "init", "test"], cwd=program, env=env, check=True, capture_output=True)
    for key, value in (("aws:region", "us-east-1"), ("aws:skipCredentialsValidation", "true"),
                       ("aws:skipRequestingAccountId", "true"), ("aws:skipMetadataApiCheck", "true")):
        subprocess.run([pulumi, "config", "set", key, value], cwd=program, env=env, check=True, capture_output=True)
    return program, pack, env


def _preview(program: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    pulumi = shutil.which("pulumi")
    assert pulumi is not None
    return subprocess.run([pulumi, "preview", "--non-interactive", *args], cwd=program, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_engine_blocks_an_unencrypted_instance(tmp_path: Path) -> None:
    program, pack, env = _project(tmp_path)
    result = _preview(program, env, "--policy-pack", str(pack))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "rds-storage-encrypted" in output and "mandatory" in output


def _offline_mandatory(tmp_path: Path) -> set[str]:
    """The mandatory policies the offline checker finds on the same instance (the program's inputs)."""
    document = {"project": "policy-engine-test", "stack": "test", "resources": [{
        "urn": "urn:pulumi:test::policy-engine-test::aws:rds/instance:Instance::plain-db",
        "type": "aws:rds/instance:Instance", "name": "plain-db",
        "inputs": {"engine": "mysql", "instanceClass": "db.t4g.micro", "allocatedStorage": 20, "username": "dbadmin",
                   "manageMasterUserPassword": True, "storageEncrypted": False,
                   "iamDatabaseAuthenticationEnabled": True, "skipFinalSnapshot": True}}]}
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps(document), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "automation.cli", "policy", "check", "--from", str(resources),
                             "--json"], cwd=ROOT, capture_output=True, text=True, check=False)
    report = json.loads(result.stdout)
    return {v["policy"] for v in report["violations"] if v["level"] == "mandatory"}


def test_engine_honours_the_same_exemption_config(tmp_path: Path) -> None:
    """Exempting the instance from every mandatory policy the offline check reports lets the engine pass."""
    mandatory = _offline_mandatory(tmp_path)
    assert "rds-storage-encrypted" in mandatory
    program, pack, env = _project(tmp_path)
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({name: {"exemptions": [{"resource": "plain-db", "reason": "engine test"}]}
                                  for name in sorted(mandatory)}), encoding="utf-8")
    result = _preview(program, env, "--policy-pack", str(pack), "--policy-pack-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
