"""The pack's fast path (policies/db_guard/fastpath.py) gives the verdicts of the SDK's own code paths.

Two packs over the real analyzer protocol, one with DB_GUARD_FASTPATH=off, against the recipes' plans and a
stack with unknown values, exemptions, not-applicable and undetermined verdicts: the reports must be equal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automation.planning import plan as planning
from automation.planning import policy_check
from automation.planning.policy_check import PackProcess

pytestmark = pytest.mark.policy

STACK = "urn:pulumi:t::db-recipes::"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def packs() -> Iterator[tuple[PackProcess, PackProcess]]:
    mp = pytest.MonkeyPatch()
    with policy_check.running_pack(project="db-recipes", stack="fast") as fast:
        mp.setenv("DB_GUARD_FASTPATH", "off")
        try:
            with policy_check.running_pack(project="db-recipes", stack="fast") as sdk_only:
                yield fast, sdk_only
        finally:
            mp.undo()


def _both(packs: tuple[PackProcess, PackProcess], target: policy_check.Target,
          config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    fast, sdk_only = packs
    return (policy_check.analyze(fast, target, config).to_json(),
            policy_check.analyze(sdk_only, target, config).to_json())


@pytest.mark.parametrize("ephemeral", [True, False])
def test_the_recipes_plans_get_the_same_report(packs: tuple[PackProcess, PackProcess], ephemeral: bool) -> None:
    config = planning.merge_config({}, recipes="all", branch="fastpath", ephemeral=ephemeral)
    target = policy_check.target_from_plan(planning.build_plan(config, stack="fastpath"))
    rules = policy_check.read_policy_config(policy_check.DEFAULT_POLICY_CONFIG)
    fast, sdk_only = _both(packs, target, rules)
    assert fast["violations"] or fast["not_applicable"]  # the comparison compares something
    assert fast == sdk_only


def _res(type_token: str, name: str, deps: tuple[str, ...] = (), **inputs: Any) -> dict[str, Any]:
    return {"urn": f"{STACK}{type_token}::{name}", "type": type_token, "name": name, "inputs": inputs,
            "dependencies": [f"{STACK}{d}" for d in deps], "parent": None}


def test_unknowns_exemptions_and_undetermined_verdicts_are_the_same(packs: tuple[PackProcess, PackProcess]) -> None:
    secret, rotation = "aws:secretsmanager/secret:Secret", "aws:secretsmanager/secretRotation:SecretRotation"
    resources = [
        _res("pulumi:providers:aws", "aws", region="us-east-1", defaultTags=json.dumps({"tags": {"ephemeral": "false"}})),
        _res("aws:rds/instance:Instance", "db", engine="postgres", storageEncrypted="[unknown]",
             iamDatabaseAuthenticationEnabled="[unknown]", publiclyAccessible="true"),
        _res("aws:rds/cluster:Cluster", "restored", engine="aurora-postgresql", snapshotIdentifier="elsewhere"),
        _res("aws:kms/key:Key", "key", enableKeyRotation="[unknown]", policy="[secret]"),
        _res(secret, "admin"),
        _res(rotation, "rot", deps=(f"{secret}::admin",), secretId="[unknown]", rotationRules="[unknown]"),
        _res("aws:dynamodb/table:Table", "t", billingMode="PROVISIONED", readCapacity=5, writeCapacity=5),
        _res("aws:lambda/function:Function", "fn", runtime="python3.8", environment={"variables": {"DB_PASSWORD": "x"}}),
    ]
    target = policy_check.target_from_document({"project": "db-recipes", "stack": "t", "resources": resources})
    config = {"rds-storage-encrypted": {"exemptions": [{"resource": "restored", "reason": "restored elsewhere"}]},
              "lambda-supported-runtime": "mandatory"}
    fast, sdk_only = _both(packs, target, config)
    assert fast["violations"] and fast["not_applicable"] and fast["exempted"]
    assert fast == sdk_only


def test_the_fast_path_installs_on_the_sdk_this_project_pins() -> None:
    """Else the pack would silently run the SDK's slow paths (the comparisons above would compare those)."""
    code = ("import json, sys; sys.path.insert(0, 'policies')\n"
            "from db_guard import fastpath\n"
            "from pulumi_policy import policy as sdk\n"
            "installed = fastpath.install()\n"
            "servicer = sdk._PolicyAnalyzerServicer\n"
            "print(json.dumps([installed, servicer.Analyze.__wrapped__.__name__,\n"
            "                  servicer.AnalyzeStack.__wrapped__.__name__]))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, "Analyze", "analyze_stack"]
