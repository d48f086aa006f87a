from __future__ import annotations

import json
from typing import Any

import pytest

from automation.planning.plan import Plan, PlanError
from components import packaging
from components.recipes import _interface_endpoints, parse_config
from components.secret_rotation import EXCLUDE_CHARACTERS, SecretRotationArgs
from tests import conftest
from tests.conftest import policy_statements

LAMBDA = "aws:lambda/function:Function"


def make_plan(recipes: Any, **config: Any) -> Any:
    """This module tests the recipe's own-database layout (``database: own``); the stack's shared
    databases are tested in test_branch_databases.py."""
    config["secret_rotation"] = {**{"database": "own"}, **(config.get("secret_rotation") or {})}
    return conftest.make_plan(recipes, **config)


@pytest.fixture(scope="module")
def default_plan() -> Plan:
    return make_plan(["secret-rotation"])


def test_initial_password_is_41_alphanumerics_of_every_kind(default_plan: Plan) -> None:
    password = default_plan.by_name("secret-rotation-initial-password").inputs
    assert password == {"length": 41, "special": False, "upper": True, "lower": True, "numeric": True,
                        "minUpper": 1, "minLower": 1, "minNumeric": 1}


def test_instance_uses_the_generated_password_encrypted_with_iam_auth(default_plan: Plan) -> None:
    db = default_plan.by_name("secret-rotation-mysql").inputs
    assert (db["engine"], db["port"], db["username"], db["dbName"]) == ("mysql", 3306, "dbadmin", "app")
    assert db["password"] == "[secret]"
    assert "manageMasterUserPassword" not in db
    assert db["storageEncrypted"] is True
    assert db["kmsKeyId"] == default_plan.by_name("secret-rotation-admin-secret").inputs["kmsKeyId"]
    assert db["kmsKeyId"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    assert db["iamDatabaseAuthenticationEnabled"] is True
    assert db["publiclyAccessible"] is False
    assert default_plan.by_name("secret-rotation-initial-password").urn in default_plan.by_name(
        "secret-rotation-mysql").dependencies


def test_secret_uses_the_cmk_and_its_value_stays_secret(default_plan: Plan) -> None:
    secret = default_plan.by_name("secret-rotation-admin-secret").inputs
    assert secret["recoveryWindowInDays"] == 30
    assert "rotation" in secret["name"] and "admin" in secret["name"]
    version = default_plan.by_name("secret-rotation-admin-secret-initial")
    assert version.inputs["secretString"] == "[secret]"
    # The JSON is built from the instance and the password.
    assert default_plan.by_name("secret-rotation-mysql").urn in version.dependencies
    assert default_plan.by_name("secret-rotation-initial-password").urn in version.dependencies
    everything = json.dumps([r.inputs for r in default_plan.resources], default=str)
    assert '"password":' not in everything.replace('"password": "[secret]"', "")


def test_secret_json_has_the_rotation_keys() -> None:
    import pulumi

    captured: dict[str, str] = {}
    original = pulumi.Output.json_dumps

    def spy(obj, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(obj, *args, **kwargs)
        if isinstance(obj, dict) and "password" in obj:
            captured["keys"] = ",".join(sorted(obj))
            captured["engine"] = obj["engine"]
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pulumi.Output, "json_dumps", staticmethod(spy))
        make_plan(["secret-rotation"])
    assert captured == {"keys": "dbname,engine,host,password,port,username", "engine": "mysql"}


def test_rotation_every_30_days_after_the_permission(default_plan: Plan) -> None:
    rotation = default_plan.by_name("secret-rotation-rotation")
    function = default_plan.by_name("secret-rotation-function").inputs
    secret_arn = default_plan.by_name("secret-rotation-invoke-permission").inputs["sourceArn"]
    assert rotation.inputs["rotationRules"] == {"automaticallyAfterDays": 30}
    assert rotation.inputs["secretId"] == secret_arn
    assert rotation.inputs["rotationLambdaArn"].endswith(":function:" + function["name"])
    assert rotation.inputs["rotateImmediately"] is True
    for name in ("secret-rotation-invoke-permission", "secret-rotation-admin-secret-initial",
                 "network-secretsmanager-endpoint"):
        assert default_plan.by_name(name).urn in rotation.dependencies, name


def test_rotation_days_are_configurable() -> None:
    plan = make_plan(["secret-rotation"], secret_rotation={"rotation_days": 7, "rotate_immediately": False})
    rotation = plan.by_name("secret-rotation-rotation").inputs
    assert rotation["rotationRules"] == {"automaticallyAfterDays": 7}
    assert rotation["rotateImmediately"] is False


def test_only_secrets_manager_may_invoke_and_only_for_this_secret(default_plan: Plan) -> None:
    permission = default_plan.by_name("secret-rotation-invoke-permission").inputs
    secret_name = default_plan.by_name("secret-rotation-admin-secret").inputs["name"]
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["principal"] == "secretsmanager.amazonaws.com"
    assert permission["function"] == default_plan.by_name("secret-rotation-function").inputs["name"]
    assert permission["sourceArn"].startswith(f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret_name}-")


def test_function_role_is_scoped_to_the_secret_and_key(default_plan: Plan) -> None:
    role = default_plan.by_name("secret-rotation-lambda-role").inputs
    assert policy_statements(role["assumeRolePolicy"])[0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert default_plan.by_name("secret-rotation-lambda-role-vpc-access").inputs["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    secret_arn = default_plan.by_name("secret-rotation-invoke-permission").inputs["sourceArn"]
    key_arn = default_plan.by_name("secret-rotation-mysql").inputs["kmsKeyId"]
    statements = policy_statements(default_plan.by_name("secret-rotation-lambda-policy").inputs["policy"])
    by_resource = {json.dumps(s["Resource"]): s for s in statements}
    assert set(by_resource) == {json.dumps(secret_arn), json.dumps("*"), json.dumps(key_arn)}
    assert sorted(by_resource[json.dumps(secret_arn)]["Action"]) == [
        "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:ListSecretVersionIds",
        "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"]
    # Only GetRandomPassword is granted on "*" (it has no resource to scope to).
    assert by_resource[json.dumps("*")]["Action"] == "secretsmanager:GetRandomPassword"
    kms = by_resource[json.dumps(key_arn)]
    assert sorted(kms["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
    assert all(s["Effect"] == "Allow" and "NotAction" not in s for s in statements)


def test_function_runs_in_the_vpc_with_the_endpoint_and_settings(default_plan: Plan) -> None:
    function = default_plan.by_name("secret-rotation-function")
    inputs = function.inputs
    assert (inputs["runtime"], inputs["handler"], inputs["architectures"]) == (
        "python3.12", "handler.lambda_handler", ["x86_64"])
    assert inputs["environment"]["variables"] == {
        "SECRETS_MANAGER_ENDPOINT": "https://secretsmanager.us-east-1.amazonaws.com",
        "EXCLUDE_CHARACTERS": EXCLUDE_CHARACTERS,
        "PASSWORD_LENGTH": "41",
    }
    assert set(EXCLUDE_CHARACTERS) == set("/@\"'\\ ")
    app_sg = default_plan.by_name("network-app-sg")
    endpoint = default_plan.by_name("network-secretsmanager-endpoint").inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.secretsmanager"
    assert endpoint["privateDnsEnabled"] is True
    assert inputs["vpcConfig"]["subnetIds"] == endpoint["subnetIds"]
    # Its own group first; the app tier is the group the endpoint admits HTTPS from.
    own_sg, tier_sg = inputs["vpcConfig"]["securityGroupIds"]
    assert default_plan.by_name("secret-rotation-function-sg").urn in function.dependencies
    endpoint_sg = default_plan.by_name("network-endpoints-sg").inputs
    assert endpoint_sg["ingress"][0]["securityGroups"] == [tier_sg]
    assert app_sg.urn in function.dependencies
    assert default_plan.by_name("secret-rotation-lambda-role-vpc-access").urn in function.dependencies
    assert default_plan.by_name("secret-rotation-lambda-policy").urn in function.dependencies
    bundle = packaging.rds_ca_bundle(None)
    extra = {packaging.CA_BUNDLE_NAME: bundle.path} if bundle.path else None
    built = packaging.build_function_archive(packaging.function_dir("rotation"), extra_files=extra)
    assert inputs["sourceCodeHash"] == built.sha256_b64
    assert {"handler.py", "pymysql/__init__.py", "pg8000/__init__.py"} <= set(built.names())


def test_database_admits_mysql_from_the_function_group_only(default_plan: Plan) -> None:
    """The function has a group of its own; the app tier (all clients) does not reach the database."""
    own_sg, tier_sg = default_plan.by_name("secret-rotation-function").inputs["vpcConfig"]["securityGroupIds"]
    sg = default_plan.by_name("secret-rotation-db-sg").inputs
    [db_sg] = default_plan.by_name("secret-rotation-mysql").inputs["vpcSecurityGroupIds"]
    assert db_sg not in (own_sg, tier_sg) and own_sg != tier_sg
    [rule] = sg["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"], rule["securityGroups"]) == (
        "tcp", 3306, 3306, [own_sg])
    assert tier_sg not in rule["securityGroups"]
    assert not rule.get("cidrBlocks")
    assert sg["egress"] == []
    # The function's own group opens MySQL to the database alone.
    egress = default_plan.by_name("secret-rotation-function-to-db").inputs
    assert (egress["referencedSecurityGroupId"], egress["fromPort"], egress["toPort"]) == (db_sg, 3306, 3306)
    function_group = default_plan.by_name("secret-rotation-function-sg").inputs
    assert not function_group.get("ingress") and not function_group.get("egress")


def test_allowed_groups_are_added_to_the_database_group() -> None:
    plan = make_plan(["secret-rotation"], secret_rotation={"allowed_security_group_ids": ["sg-0123456789abcdef0"]})
    sources = [rule["securityGroups"] for rule in plan.by_name("secret-rotation-db-sg").inputs["ingress"]]
    assert len(sources) == 2 and ["sg-0123456789abcdef0"] in sources


def test_ephemeral_secret_is_deleted_without_recovery_window() -> None:
    plan = make_plan(["secret-rotation"], ephemeral=True)
    assert plan.by_name("secret-rotation-admin-secret").inputs["recoveryWindowInDays"] == 0
    db = plan.by_name("secret-rotation-mysql").inputs
    assert (db["deletionProtection"], db["skipFinalSnapshot"]) == (False, True)
    assert plan.by_name("secret-rotation-key").inputs["deletionWindowInDays"] == 7


def test_managed_rotation_has_no_function_secret_or_endpoint() -> None:
    plan = make_plan(["secret-rotation"], secret_rotation={"managed": True})
    db = plan.by_name("secret-rotation-mysql").inputs
    assert db["manageMasterUserPassword"] is True
    assert db["masterUserSecretKmsKeyId"] == db["kmsKeyId"]
    assert "password" not in db
    for absent in (LAMBDA, "aws:lambda/permission:Permission",
                   "aws:secretsmanager/secret:Secret", "aws:secretsmanager/secretVersion:SecretVersion",
                   "random:index/randomPassword:RandomPassword", "aws:ec2/vpcEndpoint:VpcEndpoint",
                   "aws:iam/role:Role"):
        assert not plan.of_type(absent), absent


@pytest.mark.parametrize(("config", "days"), [({}, 30), ({"rotation_days": 14}, 14)])
def test_managed_secret_gets_the_schedule_without_a_function(config: dict, days: int) -> None:
    """RDS alone would rotate every 7 days: the managed secret carries the recipe's schedule too."""
    plan = make_plan(["secret-rotation"], secret_rotation={"managed": True, **config})
    [rotation] = plan.of_type("aws:secretsmanager/secretRotation:SecretRotation")
    assert rotation.inputs["rotationRules"]["automaticallyAfterDays"] == days
    assert not rotation.inputs.get("rotationLambdaArn")
    secret = plan.by_name("secret-rotation-mysql").inputs
    assert secret["manageMasterUserPassword"] is True
    assert rotation.inputs["secretId"].startswith("arn:aws:secretsmanager:")


def test_interface_endpoint_only_when_a_function_rotates() -> None:
    assert _interface_endpoints(parse_config({"recipes": "secret-rotation"}, stack="s")) == ("secretsmanager",)
    managed = parse_config({"recipes": "secret-rotation", "secret-rotation": {"managed": True}}, stack="s")
    assert _interface_endpoints(managed) == ()
    assert _interface_endpoints(parse_config({"recipes": "rds-proxy"}, stack="s")) == ()


def test_both_recipes_in_one_stack_get_distinct_names() -> None:
    plan = make_plan(["rds-proxy", "secret-rotation"])
    identifiers = [r.inputs["identifier"] for r in plan.of_type("aws:rds/instance:Instance")]
    assert len(set(identifiers)) == 2
    functions = [r.inputs["name"] for r in plan.of_type(LAMBDA)]
    assert len(set(functions)) == 2


def test_args_days() -> None:
    assert SecretRotationArgs().days == 30
    assert SecretRotationArgs(rotation_days=90).days == 90
    assert SecretRotationArgs(managed=True).days == 30
    assert SecretRotationArgs(managed=True, rotation_days=60).days == 60


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rotation_days": 0}, r"db-recipes:secret-rotation: rotation_days: must be 1\.\.1000, got 0"),
        ({"rotation_days": 1001}, r"rotation_days: must be 1\.\.1000"),
        ({"managed": True, "ca_bundle": "ca.pem"}, r"ca_bundle: managed rotation runs no function"),
        ({"ca_bundle": "does-not-exist.pem"}, r"ca_bundle: cannot read does-not-exist\.pem"),
        ({"engine_version": "8.0", "engine_lifecycle_support": "open-source-rds-extended-support-disabled"},
         r"engine_lifecycle_support: 8\.0 left standard support"),
        ({"parameters": {"bad name": "1"}}, r"parameters: 'bad name' is not a parameter name"),
        ({"log_exports": ["postgresql"]}, r"log_exports: unknown log 'postgresql'"),
        ({"managed": "yes"}, r"secret-rotation\.managed: expected true or false"),
        ({"password_length": 8}, r"password_length: must be 16\.\.128"),
        ({"engine_version": "5.7"}, r"engine_version: RDS MySQL 8\.0 or 8\.4"),
        ({"kms_key_arn": "x"}, r"kms_key_arn: 'x' is not a KMS key reference"),
        ({"schedule": "cron"}, r"db-recipes:secret-rotation: unknown key 'schedule'"),
    ],
)
def test_bad_config_names_the_key(config: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        make_plan(["secret-rotation"], secret_rotation=config)


@pytest.mark.policy
@pytest.mark.parametrize("managed", [False, True])
def test_policy_pack_passes_both_recipes(managed: bool) -> None:
    from automation.planning import policy_check

    def target() -> policy_check.Target:
        plan = make_plan(["rds-proxy", "secret-rotation"], secret_rotation={"managed": managed})
        return policy_check.target_from_plan(plan)

    report = policy_check.check(target, project="db-recipes", stack="test",
                                policy_config=policy_check.read_policy_config(policy_check.DEFAULT_POLICY_CONFIG))
    assert report.passed, policy_check.render_report(report)
    rotation = [v for v in report.violations if v.policy == "secretsmanager-rotation-enabled"]
    assert rotation == [], policy_check.render_report(report)
