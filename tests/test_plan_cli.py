from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from automation.cli import app
from automation.planning.plan import SECRET_MARKER, build_plan
from components import naming

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_plan_json_has_the_documented_shape() -> None:
    result = invoke("plan", "--branch", "feature/ABC-123_fix", "--recipes", "aurora-serverless", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"project", "stack", "resources"}
    assert doc["project"] == "db-recipes"
    assert doc["stack"] == naming.stack_name("feature/ABC-123_fix")
    urns = {r["urn"] for r in doc["resources"]}
    for res in doc["resources"]:
        assert set(res) == {"urn", "type", "name", "parent", "inputs", "dependencies"}
        assert res["parent"] is None or res["parent"] in urns
        assert set(res["dependencies"]) <= urns
    cluster = next(r for r in doc["resources"] if r["type"] == "aws:rds/cluster:Cluster")
    assert cluster["inputs"]["storageEncrypted"] is True
    assert cluster["parent"].endswith("db-recipes:aurora:ServerlessPostgres::aurora")


def test_plan_marks_branch_stacks_ephemeral_and_tags_them() -> None:
    doc = json.loads(invoke("plan", "-b", "feature/x", "-r", "aurora-serverless", "--json").stdout)
    provider = next(r for r in doc["resources"] if r["type"] == "pulumi:providers:aws")
    # Provider inputs reach the engine as JSON strings, and the plan keeps them so.
    tags = json.loads(provider["inputs"]["defaultTags"])["tags"]
    assert tags == {"project": "db-recipes", "stack": doc["stack"], "branch": "feature/x",
                    "ephemeral": "true", "managed-by": "pulumi"}
    cluster = next(r for r in doc["resources"] if r["type"] == "aws:rds/cluster:Cluster")
    assert cluster["inputs"]["deletionProtection"] is False
    durable = json.loads(invoke("plan", "-b", "feature/x", "-r", "aurora-serverless", "--durable", "--json").stdout)
    cluster = next(r for r in durable["resources"] if r["type"] == "aws:rds/cluster:Cluster")
    assert cluster["inputs"]["deletionProtection"] is True


def test_plan_reads_a_stack_config_file(tmp_path: Path) -> None:
    config = tmp_path / "Pulumi.dev.yaml"
    config.write_text(
        "config:\n  aws:region: eu-central-1\n  db-recipes:recipes: [aurora-serverless]\n"
        "  db-recipes:aurora-serverless:\n    max_capacity: 16\n"
    )
    doc = json.loads(invoke("plan", "-b", "dev", "--config", str(config), "--json").stdout)
    cluster = next(r for r in doc["resources"] if r["type"] == "aws:rds/cluster:Cluster")
    assert cluster["inputs"]["serverlessv2ScalingConfiguration"]["maxCapacity"] == 16
    assert cluster["inputs"]["kmsKeyId"].startswith("arn:aws:kms:eu-central-1:123456789012:key/")


def test_plan_tree_groups_by_component() -> None:
    result = invoke("plan", "-b", "dev", "-r", "aurora-serverless")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    component = lines.index("  * db-recipes:aurora:ServerlessPostgres  aurora")
    assert lines[component + 1].startswith("    + aws:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "bad..name", "-r", "all"], "invalid branch name"),
        (["-b", "x", "-r", "aurora-serverless,nosql"], "unknown recipe 'nosql'"),
        (["-b", "x"], "choose recipes"),
        (["-b", "x", "-r", "all", "--config", "/nonexistent/Pulumi.x.yaml"], "cannot read config file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = invoke("plan", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("config: [1, 2", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("config:\n  db-recipes:recipes: all\n  db-recipes:aurora-serverless: {colour: red}\n", "unknown key 'colour'"),
        ("config:\n  db-recipes:recipes: all\n  db-recipes:password:\n    secure: AAAB\n", "encrypted secret"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "Pulumi.x.yaml"
    config.write_text(text)
    result = invoke("plan", "-b", "x", "-r", "aurora-serverless", "--config", str(config))
    assert result.exit_code == 2
    assert message in result.stderr


def test_main_program_builds_the_same_graph_as_the_plan() -> None:
    config = {"db-recipes:recipes": ["aurora-serverless"], "aws:region": "us-west-2"}
    via_main = build_plan(config, stack="dev", program=lambda: runpy.run_path(str(ROOT / "__main__.py")))
    via_plan = build_plan(config, stack="dev")
    assert [(r.type, r.name, r.parent) for r in via_main.resources] == [
        (r.type, r.name, r.parent) for r in via_plan.resources]
    assert via_main.by_name("aurora-cluster").inputs == via_plan.by_name("aurora-cluster").inputs


def test_secrets_never_get_a_value() -> None:
    doc = build_plan({"db-recipes:recipes": ["aurora-serverless"]}, stack="dev").to_json()
    provider = next(r for r in doc["resources"] if r["type"] == "pulumi:providers:aws")
    assert "secretKey" not in provider["inputs"] or provider["inputs"]["secretKey"] == SECRET_MARKER


def test_plan_json_carries_lambda_code_in_the_engines_archive_form() -> None:
    result = invoke("plan", "-b", "dev", "-r", "rds-proxy", "--json")
    assert result.exit_code == 0, result.output
    function = next(r for r in json.loads(result.stdout)["resources"] if r["type"] == "aws:lambda/function:Function")
    code = function["inputs"]["code"]
    assert code["4dabf18193072939515e22adb298388d"] == "0def7320c3a5731c473e5ecbe6d01bc7"
    assert code["path"].endswith(".zip") and Path(code["path"]).is_file()
