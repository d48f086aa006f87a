"""`dbenv policy check` end to end (plan or file -> pack process -> analyzer protocol -> table/JSON/exit code)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from automation.cli import app
from automation.planning import policy_check

pytestmark = pytest.mark.policy

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/0d9f1c5e-3a8b-4c4f-9d55-1b2c3d4e5f60"
GOOD_DB = {"type": "aws:rds/instance:Instance", "name": "good-db",
           "inputs": {"engine": "postgres", "engineVersion": "16.4", "storageEncrypted": True, "kmsKeyId": KEY_ARN,
                      "iamDatabaseAuthenticationEnabled": True, "copyTagsToSnapshot": True,
                      "enabledCloudwatchLogsExports": ["postgresql", "upgrade"]}}
BAD_DB = {"type": "aws:rds/instance:Instance", "name": "plain-db",
          "inputs": {"engine": "mysql", "storageEncrypted": False, "iamDatabaseAuthenticationEnabled": True,
                     "publiclyAccessible": True, "copyTagsToSnapshot": True, "parameterGroupName": "mysql-tls",
                     "enabledCloudwatchLogsExports": ["audit", "error", "general", "slowquery"]}}
TLS_GROUP = {"type": "aws:rds/parameterGroup:ParameterGroup", "name": "mysql-tls",
             "inputs": {"name": "mysql-tls", "family": "mysql8.4",
                        "parameters": [{"name": "require_secure_transport", "value": "1"}]}}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["policy", "check", *args])


def write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_clean_file_passes(tmp_path: Path) -> None:
    result = invoke("--from", str(write(tmp_path, "plan.json", {"resources": [GOOD_DB]})))
    assert result.exit_code == 0, result.output
    assert "No policy violations." in result.output
    assert "passed: 0 mandatory, 0 advisory" in result.output


def test_mandatory_violation_fails_with_a_table(tmp_path: Path) -> None:
    result = invoke("--from", str(write(tmp_path, "plan.json", {"resources": [GOOD_DB, BAD_DB, TLS_GROUP]})))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split() == ["POLICY", "LEVEL", "RESOURCE", "MESSAGE"]
    assert any(line.split()[:3] == ["rds-storage-encrypted", "mandatory", "plain-db"] for line in lines)
    assert any(line.split()[:3] == ["rds-no-public-access", "advisory", "plain-db"] for line in lines)
    assert lines[-1].startswith("FAILED: 1 mandatory, 1 advisory")


def test_json_output_shape(tmp_path: Path) -> None:
    result = invoke("--from", str(write(tmp_path, "plan.json", {"resources": [BAD_DB, TLS_GROUP]})), "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert set(document) == {"violations", "exempted", "not_applicable", "summary"}
    violation = next(v for v in document["violations"] if v["policy"] == "rds-storage-encrypted")
    assert violation == {
        "policy": "rds-storage-encrypted", "level": "mandatory", "resource": "plain-db",
        "type": "aws:rds/instance:Instance", "urn": "urn:pulumi:offline::db-recipes::aws:rds/instance:Instance::plain-db",
        "message": violation["message"],
    }
    assert violation["message"].startswith("unencrypted storage: storageEncrypted is false\nRemediation: ")
    summary = document["summary"]
    assert (summary["mandatory"], summary["advisory"], summary["passed"], summary["resources"]) == (1, 1, False, 2)
    assert summary["pack"] == "db-recipes-guard@0.1.0"


def test_policy_config_exemption_and_levels(tmp_path: Path) -> None:
    config = write(tmp_path, "policy.json", {
        "rds-storage-encrypted": {"exemptions": [{"resource": "plain-db", "reason": "demo source"}]},
        "rds-no-public-access": "mandatory",
    })
    plan = write(tmp_path, "plan.json", {"resources": [BAD_DB, TLS_GROUP]})
    result = invoke("--from", str(plan), "--policy-config", str(config), "--json")
    document = json.loads(result.stdout)
    assert [(v["policy"], v["level"]) for v in document["violations"]] == [("rds-no-public-access", "mandatory")]
    assert document["exempted"] == [{"policy": "rds-storage-encrypted", "resource": "plain-db",
                                     "type": "aws:rds/instance:Instance", "urn": document["exempted"][0]["urn"],
                                     "reason": "demo source"}]
    assert result.exit_code == 1


@pytest.mark.parametrize(("content", "error"), [
    (None, "cannot read resource file"),
    ("{not json", "is not valid JSON"),
    ({"resources": {"type": "x"}}, "expected an object with a 'resources' list"),
    ({"resources": [{"type": "aws:rds/instance:Instance", "inputs": {}}]}, "resources[0]: 'name' must be"),
    ({"resources": [{"type": "t", "name": "n", "inputs": []}]}, "'inputs' must be an object"),
])
def test_bad_resource_file_exits_2_with_one_line(tmp_path: Path, content: Any, error: str) -> None:
    path = tmp_path / "plan.json" if content is None else write(tmp_path, "plan.json", content)
    result = invoke("--from", str(path))
    assert result.exit_code == 2
    assert error in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("config", "error"), [
    ({"no-such-policy": "mandatory"}, "unknown policy 'no-such-policy'"),
    ({"rds-storage-encrypted": "strict"}, "'strict' is not an enforcement level"),
    ({"rds-storage-encrypted": {"exemptions": [{"resource": "x"}]}}, "'reason' is required"),
    ("[1, 2]", "expected an object of policy name -> config"),
    (None, "cannot read policy config"),
])
def test_bad_policy_config_exits_2(tmp_path: Path, config: Any, error: str) -> None:
    plan = write(tmp_path, "plan.json", {"resources": [GOOD_DB]})
    path = tmp_path / "missing.json" if config is None else write(tmp_path, "policy.json", config)
    result = invoke("--from", str(plan), "--policy-config", str(path))
    assert result.exit_code == 2
    assert error in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_from_excludes_plan_options(tmp_path: Path) -> None:
    result = invoke("--from", str(write(tmp_path, "plan.json", {"resources": []})), "--recipes", "all")
    assert result.exit_code == 2 and "--from checks a resource file" in result.stderr


def test_the_pack_is_never_imported(tmp_path: Path) -> None:
    invoke("--from", str(write(tmp_path, "plan.json", {"resources": [GOOD_DB]})))
    assert "db_guard" not in sys.modules and "pulumi_policy" not in sys.modules


def test_a_pack_that_cannot_start_is_reported(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\n", encoding="utf-8")
    (tmp_path / "__main__.py").write_text("raise SystemExit('pack is broken: missing module x')\n", encoding="utf-8")
    target = policy_check.target_from_document({"resources": [GOOD_DB]})
    with pytest.raises(policy_check.PackError, match="pack is broken"):
        policy_check.check(lambda: target, project="p", stack="s", pack_dir=tmp_path)
    with pytest.raises(policy_check.PolicyCheckError, match="not a policy pack"):
        policy_check.check(lambda: target, project="p", stack="s", pack_dir=tmp_path / "missing")


def test_plan_markers_are_encoded_as_the_engine_encodes_them() -> None:
    encoded = policy_check.encode_value({"a": "[unknown]", "b": ["[secret]", {"c": 1}], "d": None})
    assert encoded == {
        "a": "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "b": [{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "[secret]"},
              {"c": 1}],
        "d": None,
    }


def test_stack_tags_come_from_the_provider_default_tags() -> None:
    target = policy_check.target_from_document({"project": "p", "stack": "s", "resources": [
        {"type": "pulumi:providers:aws", "name": "aws",
         "inputs": {"defaultTags": json.dumps({"tags": {"ephemeral": "true", "branch": "feature/x"}})}},
    ]})
    assert policy_check.stack_tags(target) == {"pulumi:project": "p", "ephemeral": "true", "branch": "feature/x"}
    decoded = policy_check.target_from_document({"resources": [
        {"type": "pulumi:providers:aws", "name": "aws", "inputs": {"defaultTags": {"tags": {"ephemeral": "false"}}}},
    ]})
    assert policy_check.stack_tags(decoded)["ephemeral"] == "false"


def declared_exemptions() -> set[tuple[str, str]]:
    config = json.loads(policy_check.DEFAULT_POLICY_CONFIG.read_text(encoding="utf-8"))
    return {(policy, e["resource"]) for policy, entry in config.items() if isinstance(entry, dict)
            for e in entry.get("exemptions", [])}


@pytest.mark.parametrize("durable", [False, True])
def test_all_recipes_pass_with_only_the_declared_exemptions(durable: bool) -> None:
    """Our own recipes are the pack's first customers: zero mandatory violations, only declared exemptions used."""
    result = invoke("--branch", "main", "--recipes", "all", "--json", *(["--durable"] if durable else []))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    mandatory = [v for v in document["violations"] if v["level"] == "mandatory"]
    assert mandatory == []
    used = {(e["policy"], e["resource"]) for e in document["exempted"]}
    # Every declared exemption is still needed; a branch stack snapshots its demo source without a replica.
    replica = {("rds-storage-encrypted", "encrypt-existing-replica")}
    assert used == (declared_exemptions() if durable else declared_exemptions() - replica)
    assert document["summary"]["resources"] > 50


def test_all_recipes_without_the_default_config_flag_the_demo_source(tmp_path: Path) -> None:
    """The exemption, not a gap in the policy, is what lets the demo source through."""
    result = invoke("--branch", "main", "--recipes", "all", "--json",
                    "--policy-config", str(write(tmp_path, "empty.json", {})))
    assert result.exit_code == 1
    mandatory = [(v["policy"], v["resource"]) for v in json.loads(result.stdout)["violations"]
                 if v["level"] == "mandatory"]
    assert set(mandatory) == declared_exemptions() - {("rds-storage-encrypted", "encrypt-existing-replica")}


def test_strict_makes_what_the_plan_cannot_prove_fail(tmp_path: Path) -> None:
    """A copy of a snapshot outside the stack, without its own key: advisory by default, mandatory with --strict."""
    copy = {"type": "aws:rds/snapshotCopy:SnapshotCopy", "name": "shared-copy",
            "inputs": {"sourceDbSnapshotIdentifier": "arn:aws:rds:us-east-1:999999999999:snapshot:shared",
                       "targetDbSnapshotIdentifier": "shared-copy"}}
    path = str(write(tmp_path, "plan.json", {"resources": [copy]}))
    lenient = invoke("--from", path, "--json")
    assert lenient.exit_code == 0, lenient.output
    document = json.loads(lenient.stdout)
    assert document["summary"]["undetermined"] == 2 and document["summary"]["mandatory"] == 0
    messages = {v["policy"]: v["message"] for v in document["violations"]}
    assert messages["rds-snapshot-copy-cmk"].startswith("cannot verify offline: copy of arn:aws:rds:us-east-1:"
                                                        "999999999999:snapshot:shared, which is not in this stack")
    strict = invoke("--from", path, "--strict")
    assert strict.exit_code == 1
    assert strict.output.splitlines()[-1].startswith("FAILED: 2 mandatory, 0 advisory (2 of the violations "
                                                     "undetermined)")
