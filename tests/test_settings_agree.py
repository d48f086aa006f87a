"""plan, policy check, preview and up resolve the same settings into the same program inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from automation import cli
from automation.commands import common
from automation.operations import environments as envs
from automation.operations.engine import Engine, config_values
from automation.planning import plan as planning
from automation.planning import policy_check as checking
from components import naming
from tests.test_environments import NOW, FakeAutomation, StubLocal

runner = CliRunner()
BRANCH = "feature/agree"
STACK = naming.stack_name(BRANCH)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, FakeAutomation, dict]]:
    """A project whose dbenv.toml chooses recipes, region, config file and durability; every program input recorded."""
    (tmp_path / "dbenv.toml").write_text(
        'recipes = ["dynamodb-autoscaling", "secret-rotation"]\nregion = "eu-west-1"\n'
        'config = "stacks/Pulumi.dev.yaml"\nttl = "24h"\n', encoding="utf-8")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text(
        "config:\n  db-recipes:dynamodb-autoscaling:\n    table_name: orders\n", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / ".dbenv" / "state").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")  # a sub-directory: the project is found upwards
    monkeypatch.setattr("automation.workspace.find_project_dir", lambda start=None: tmp_path.resolve())
    for key in ("DBENV_TARGET", "DBENV_TTL", "DBENV_REGION", "DBENV_RECIPES", "DBENV_CONFIG", "DBENV_DURABLE",
                "DBENV_BRANCH", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"):
        monkeypatch.delenv(key, raising=False)
    fake = FakeAutomation()
    seen: dict[str, Any] = {}

    def environments(settings: Any, *, read_only: bool = False) -> envs.Environments:
        engine = Engine(settings, auto=fake, command=object(), read_only=read_only)
        return envs.Environments(settings, engine, local=StubLocal(), identity=lambda: ("dev@example.com", "abc"),
                                 clock=lambda: NOW)

    real_build = planning.build_plan

    def recording_build(config: Any, *, stack: str, **kw: Any) -> Any:
        seen.setdefault("build_plan", []).append((stack, dict(config)))
        return real_build(config, stack=stack, **kw)

    def recording_check(load_target: Any, *, stack: str, stack_config: Any = None, **kw: Any) -> Any:
        seen["policy_check"] = (stack, dict(stack_config or {}))
        load_target()
        return checking.Report(pack="p", version="1", project="db-recipes", stack=stack, resources=0, levels={},
                               stack_tags={})

    monkeypatch.setattr(common, "environments", environments)
    monkeypatch.setattr(planning, "build_plan", recording_build)
    monkeypatch.setattr(checking, "check", recording_check)
    yield tmp_path, fake, seen


def _deployed(fake: FakeAutomation) -> dict[str, Any]:
    return {key: value.value for key, value in fake.backend.stacks[STACK].config.items()}


@pytest.mark.parametrize(("flags", "env"), [
    ([], {}),
    (["--recipes", "dynamodb-autoscaling"], {"DBENV_REGION": "ap-south-1"}),
    (["--durable"], {}),
    ([], {"DBENV_DURABLE": "true", "DBENV_RECIPES": "all"}),
    (["--target", "aws"], {"PULUMI_CONFIG_PASSPHRASE": "pw"}),
])
def test_plan_policy_check_preview_and_up_hand_the_program_the_same_config(
        project: tuple[Path, FakeAutomation, dict], flags: list[str], env: dict[str, str]) -> None:
    _, fake, seen = project
    plan = runner.invoke(cli.app, ["plan", "-b", BRANCH, "--json", *flags], env=env)
    assert plan.exit_code == 0, plan.output
    check = runner.invoke(cli.app, ["policy", "check", "-b", BRANCH, *flags], env=env)
    assert check.exit_code == 0, check.output
    preview = runner.invoke(cli.app, ["preview", "-b", BRANCH, *flags], env=env)
    assert preview.exit_code == 0, preview.output
    previewed = _deployed(fake)
    up = runner.invoke(cli.app, ["up", "-b", BRANCH, "-y", *flags], env=env)
    assert up.exit_code == 0, up.output
    deployed = _deployed(fake)

    planned_stack, planned = seen["build_plan"][0]
    checked_stack, checked = seen["policy_check"]
    assert planned_stack == checked_stack == STACK
    as_engine_sees = config_values
    assert as_engine_sees(planned) == as_engine_sees(checked) == previewed == deployed
    # and the values are the resolved settings, not defaults
    region = env.get("DBENV_REGION", "eu-west-1")
    assert deployed["aws:region"] == region
    assert json.loads(deployed["db-recipes:dynamodb-autoscaling"]) == {"table_name": "orders"}
    durable = "--durable" in flags or env.get("DBENV_DURABLE") == "true"
    assert deployed["db-recipes:ephemeral"] == ("false" if durable else "true")
    provider = next(r for r in json.loads(plan.stdout)["resources"] if r["type"] == "pulumi:providers:aws")
    assert provider["inputs"]["region"] == region
    tags = fake.backend.stacks[naming.stack_name(BRANCH)].tags
    assert tags["ephemeral"] == ("false" if durable else "true")


def test_plan_of_the_aws_target_reads_the_shared_network_as_placeholders(
        project: tuple[Path, FakeAutomation, dict]) -> None:
    result = runner.invoke(cli.app, ["plan", "-b", BRANCH, "--target", "aws", "-r", "aurora-serverless", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    [note] = data["placeholders"]
    assert note["stack"] == "organization/db-recipes/shared" and "placeholder" in note["note"]
    assert not [r for r in data["resources"] if r["type"] == "aws:ec2/vpc:Vpc"]  # no VPC of its own
    subnets = next(r for r in data["resources"] if r["type"] == "aws:rds/subnetGroup:SubnetGroup")
    assert all(s.startswith("subnet-") for s in subnets["inputs"]["subnetIds"])
    text = runner.invoke(cli.app, ["plan", "-b", BRANCH, "--target", "aws", "-r", "aurora-serverless"])
    assert "placeholder: network-shared: the outputs of stack organization/db-recipes/shared" in text.stdout
    local = json.loads(runner.invoke(cli.app, ["plan", "-b", BRANCH, "-r", "aurora-serverless", "--json"]).stdout)
    assert "placeholders" not in local and [r for r in local["resources"] if r["type"] == "aws:ec2/vpc:Vpc"]


def test_a_policy_pack_failure_exits_3_not_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack that dies on start is the tool's failure (3), not a policy violation (1)."""
    import functools

    broken = tmp_path / "broken-pack"
    broken.mkdir()
    (broken / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n", encoding="utf-8")
    (broken / "__main__.py").write_text("raise SystemExit('the pack crashed')\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checking, "check", functools.partial(checking.check, pack_dir=broken))
    resources = tmp_path / "plan.json"
    resources.write_text(json.dumps({"resources": [{"type": "aws:s3/bucket:Bucket", "name": "b", "inputs": {}}]}),
                         encoding="utf-8")
    result = runner.invoke(cli.app, ["policy", "check", "--from", str(resources)])
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("dbenv: the policy pack") and "Traceback" not in result.output
