from __future__ import annotations

import json
from typing import Any

import pytest

from automation.planning.plan import Plan, PlanError
from components import packaging
from components.rds_proxy import RdsProxyArgs, proxy_user_arn
from tests import conftest
from tests.conftest import policy_statements

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
PROXY_USER_ARN_PREFIX = "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-"


def make_plan(recipes: Any, **config: Any) -> Any:
    """This module tests the recipe's own-database layout (``database: own``); the stack's shared
    databases are tested in test_branch_databases.py."""
    config["rds_proxy"] = {**{"database": "own"}, **(config.get("rds_proxy") or {})}
    return conftest.make_plan(recipes, **config)


@pytest.fixture(scope="module")
def default_plan() -> Plan:
    return make_plan(["rds-proxy"])


def _groups(plan: Plan) -> dict[str, str]:
    """Security group id -> role, read from the resources that use each group."""
    return {
        plan.by_name("rds-proxy-mysql").inputs["vpcSecurityGroupIds"][0]: "db",
        plan.by_name("rds-proxy-proxy").inputs["vpcSecurityGroupIds"][0]: "proxy",
        plan.by_name("rds-proxy-client").inputs["vpcConfig"]["securityGroupIds"][0]: "lambda",
    }


def _rules(plan: Plan, groups: dict[str, str]) -> set[tuple[str, str, str, str, int, int]]:
    rules = set()
    for direction, type_token in (("in", INGRESS), ("out", EGRESS)):
        for rule in plan.of_type(type_token):
            i = rule.inputs
            other = groups.get(i["referencedSecurityGroupId"], i["referencedSecurityGroupId"])
            rules.add((groups[i["securityGroupId"]], direction, other, i["ipProtocol"], i["fromPort"], i["toPort"]))
            assert not i.get("cidrIpv4") and not i.get("cidrIpv6") and not i.get("prefixListId")
    return rules


def test_instance_is_encrypted_mysql_with_iam_auth_and_managed_password(default_plan: Plan) -> None:
    db = default_plan.by_name("rds-proxy-mysql").inputs
    assert (db["engine"], db["engineVersion"], db["port"]) == ("mysql", "8.4", 3306)
    assert db["storageEncrypted"] is True
    key = default_plan.by_name("rds-proxy-key")
    assert db["kmsKeyId"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    assert db["masterUserSecretKmsKeyId"] == db["kmsKeyId"]
    assert key.inputs["enableKeyRotation"] is True
    assert db["iamDatabaseAuthenticationEnabled"] is True
    assert db["manageMasterUserPassword"] is True
    assert "password" not in db
    assert db["publiclyAccessible"] is False
    assert not default_plan.of_type("random:index/randomPassword:RandomPassword")
    assert not default_plan.of_type("aws:secretsmanager/secret:Secret")


def test_proxy_requires_iam_and_tls_with_the_managed_secret(default_plan: Plan) -> None:
    proxy = default_plan.by_name("rds-proxy-proxy").inputs
    assert proxy["engineFamily"] == "MYSQL"
    assert proxy["requireTls"] is True
    assert proxy["idleClientTimeout"] == 1800
    assert proxy["debugLogging"] is False
    [auth] = proxy["auths"]
    assert auth["authScheme"] == "SECRETS"
    assert auth["iamAuth"] == "REQUIRED"
    assert auth["clientPasswordAuthType"] == "MYSQL_CACHING_SHA2_PASSWORD"
    # RDS-managed credentials: the proxy logs in with the instance's own master secret.
    assert auth["secretArn"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-")
    assert proxy["vpcSubnetIds"] == default_plan.by_name("rds-proxy-subnets").inputs["subnetIds"]
    assert proxy["roleArn"].endswith(":role/" + default_plan.by_name("rds-proxy-proxy-role").inputs["name"])


def test_pool_settings_and_target(default_plan: Plan) -> None:
    group = default_plan.by_name("rds-proxy-proxy-target-group").inputs
    proxy_name = default_plan.by_name("rds-proxy-proxy").inputs["name"]
    assert group["dbProxyName"] == proxy_name
    assert group["connectionPoolConfig"] == {
        "maxConnectionsPercent": 90, "maxIdleConnectionsPercent": 50, "connectionBorrowTimeout": 120}
    target = default_plan.by_name("rds-proxy-proxy-target").inputs
    assert target == {"dbProxyName": proxy_name, "targetGroupName": "default",
                      "dbInstanceIdentifier": default_plan.by_name("rds-proxy-mysql").inputs["identifier"]}


def test_pool_settings_are_configurable() -> None:
    plan = make_plan(["rds-proxy"], rds_proxy={
        "max_connections_percent": 60, "max_idle_connections_percent": 10,
        "connection_borrow_timeout": 30, "idle_client_timeout": 600})
    assert plan.by_name("rds-proxy-proxy-target-group").inputs["connectionPoolConfig"] == {
        "maxConnectionsPercent": 60, "maxIdleConnectionsPercent": 10, "connectionBorrowTimeout": 30}
    assert plan.by_name("rds-proxy-proxy").inputs["idleClientTimeout"] == 600


def test_proxy_role_reads_one_secret_and_decrypts_only_via_secrets_manager(default_plan: Plan) -> None:
    role = default_plan.by_name("rds-proxy-proxy-role").inputs
    trust = policy_statements(role["assumeRolePolicy"])
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "rds.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    secret_arn = default_plan.by_name("rds-proxy-proxy").inputs["auths"][0]["secretArn"]
    key_arn = default_plan.by_name("rds-proxy-mysql").inputs["kmsKeyId"]
    read, decrypt = policy_statements(default_plan.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert (read["Action"], read["Resource"]) == ("secretsmanager:GetSecretValue", secret_arn)
    assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt", key_arn)
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}


def test_security_groups_allow_exactly_lambda_to_proxy_to_db_on_3306(default_plan: Plan) -> None:
    groups = _groups(default_plan)
    assert len(groups) == 3
    assert _rules(default_plan, groups) == {
        ("db", "in", "proxy", "tcp", 3306, 3306),
        ("proxy", "out", "db", "tcp", 3306, 3306),
        ("proxy", "in", "lambda", "tcp", 3306, 3306),
        ("lambda", "out", "proxy", "tcp", 3306, 3306),
    }
    for sg in default_plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        if sg.name.startswith("rds-proxy-"):
            assert not sg.inputs.get("ingress") and not sg.inputs.get("egress"), sg.name


def test_allowed_groups_reach_the_proxy_only() -> None:
    plan = make_plan(["rds-proxy"], rds_proxy={"allowed_security_group_ids": ["sg-0123456789abcdef0"]})
    rules = _rules(plan, _groups(plan))
    assert ("proxy", "in", "sg-0123456789abcdef0", "tcp", 3306, 3306) in rules
    assert len(rules) == 5


def test_function_env_points_at_the_proxy_and_role_connects_as_the_secret_user(default_plan: Plan) -> None:
    function = default_plan.by_name("rds-proxy-client").inputs
    proxy = default_plan.by_name("rds-proxy-proxy").inputs
    assert function["runtime"] == "python3.12"
    assert function["handler"] == "handler.lambda_handler"
    assert function["architectures"] == ["x86_64"]
    assert (function["timeout"], function["memorySize"]) == (30, 256)
    env = function["environment"]["variables"]
    assert env.pop("DB_HOST").startswith(f"{proxy['name']}.proxy-")  # the proxy endpoint, not the instance
    assert env == {"DB_PORT": "3306", "DB_USER": "dbadmin", "DB_NAME": "app", "DB_REGION": "us-east-1"}
    assert function["vpcConfig"]["subnetIds"] == proxy["vpcSubnetIds"]

    [statement] = policy_statements(default_plan.by_name("rds-proxy-lambda-connect").inputs["policy"])
    assert statement["Action"] == "rds-db:connect"
    resource = statement["Resource"]
    assert resource.startswith(PROXY_USER_ARN_PREFIX) and resource.endswith("/dbadmin")
    # The id in the ARN is the proxy's resource id, not the instance's db-... id.
    proxy_id = resource[len("arn:aws:rds-db:us-east-1:123456789012:dbuser:"):].split("/")[0]
    assert proxy_id.startswith("prx-") and len(proxy_id) > len("prx-")


def test_function_role_is_lambda_with_vpc_access_and_nothing_else(default_plan: Plan) -> None:
    role = default_plan.by_name("rds-proxy-lambda-role").inputs
    assert policy_statements(role["assumeRolePolicy"])[0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    attachment = default_plan.by_name("rds-proxy-lambda-role-vpc-access").inputs
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    policies = [r for r in default_plan.of_type("aws:iam/rolePolicy:RolePolicy") if r.inputs["role"] == role["name"]]
    assert [p.name for p in policies] == ["rds-proxy-lambda-connect"]
    function = default_plan.by_name("rds-proxy-client")
    # Created only once its role may create network interfaces and connect.
    assert default_plan.by_name("rds-proxy-lambda-role-vpc-access").urn in function.dependencies
    assert default_plan.by_name("rds-proxy-lambda-connect").urn in function.dependencies


def test_function_code_is_the_built_archive(default_plan: Plan) -> None:
    function = default_plan.by_name("rds-proxy-client").inputs
    built = packaging.build_function_archive(packaging.function_dir("proxy_client"))
    assert function["sourceCodeHash"] == built.sha256_b64
    names = built.names()
    assert "handler.py" in names and "pymysql/__init__.py" in names
    assert "requirements.txt" not in names
    assert not any("__pycache__" in n or n.endswith((".pyc", "/RECORD")) for n in names)


def test_secret_credentials_create_an_encrypted_secret_and_no_plaintext() -> None:
    plan = make_plan(["rds-proxy"], ephemeral=True, rds_proxy={"credentials": "secret"})
    db = plan.by_name("rds-proxy-mysql").inputs
    assert db["password"] == "[secret]"
    assert "manageMasterUserPassword" not in db
    password = plan.by_name("rds-proxy-master-password").inputs
    assert (password["length"], password["special"]) == (41, False)
    secret = plan.by_name("rds-proxy-credentials")
    assert secret.inputs["kmsKeyId"] == db["kmsKeyId"]
    assert secret.inputs["recoveryWindowInDays"] == 0
    assert plan.by_name("rds-proxy-credentials-value").inputs["secretString"] == "[secret]"
    secret_arn = plan.by_name("rds-proxy-proxy").inputs["auths"][0]["secretArn"]
    assert secret_arn.startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:" + secret.inputs["name"])
    read, _ = policy_statements(plan.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert read["Resource"] == secret_arn
    assert "[secret]" not in json.dumps(plan.by_name("rds-proxy-client").inputs["environment"])


def test_ephemeral_and_durable_settings(default_plan: Plan) -> None:
    durable = default_plan.by_name("rds-proxy-mysql").inputs
    assert (durable["deletionProtection"], durable["skipFinalSnapshot"], durable["backupRetentionPeriod"]) == (
        True, False, 7)
    assert durable["finalSnapshotIdentifier"].endswith("-final")
    ephemeral = make_plan(["rds-proxy"], ephemeral=True).by_name("rds-proxy-mysql").inputs
    assert (ephemeral["deletionProtection"], ephemeral["skipFinalSnapshot"], ephemeral["backupRetentionPeriod"]) == (
        False, True, 1)


def test_given_key_is_used_and_none_created() -> None:
    arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    plan = make_plan(["rds-proxy"], rds_proxy={"kms_key_arn": arn})
    assert not plan.of_type("aws:kms/key:Key")
    assert plan.by_name("rds-proxy-mysql").inputs["kmsKeyId"] == arn
    _, decrypt = policy_statements(plan.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert decrypt["Resource"] == arn


def test_no_vpc_endpoint_for_the_proxy_client(default_plan: Plan) -> None:
    assert not default_plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")


def test_outputs_name_the_quota() -> None:
    from components.rds_proxy import QUOTA_NOTE

    assert "20 proxies per account and region" in QUOTA_NOTE


def test_proxy_user_arn_uses_the_proxy_resource_id() -> None:
    arn = proxy_user_arn("eu-west-1", "111122223333", "arn:aws:rds:eu-west-1:111122223333:db-proxy:prx-0abc", "app")
    assert arn == "arn:aws:rds-db:eu-west-1:111122223333:dbuser:prx-0abc/app"
    with pytest.raises(ValueError, match="not an RDS Proxy ARN"):
        proxy_user_arn("eu-west-1", "111122223333", "arn:aws:rds:eu-west-1:111122223333:db:mydb", "app")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"credentials": "iam"}, r"rds-proxy\.credentials: 'iam' is not allowed \(allowed: managed, secret\)"),
        ({"engine_version": "5.7"}, r"db-recipes:rds-proxy: engine_version: .*8\.0 or 8\.4"),
        ({"max_connections_percent": 0}, r"db-recipes:rds-proxy: max_connections_percent: must be 1\.\.100"),
        ({"max_connections_percent": 40, "max_idle_connections_percent": 50},
         r"max_idle_connections_percent: must be 0\.\.40 \(at most max_connections_percent\)"),
        ({"connection_borrow_timeout": 4000}, r"connection_borrow_timeout: must be 0\.\.3600"),
        ({"idle_client_timeout": 0}, r"idle_client_timeout: must be 1\.\.28800"),
        ({"master_username": "rdsadmin"}, r"master_username: 'rdsadmin' is reserved"),
        ({"master_username": "bad-name"}, r"master_username: 1-16 ASCII letters"),
        ({"kms_key_arn": "mine"}, r"kms_key_arn: .mine. is not a KMS key reference"),
        ({"lambda_memory": 64}, r"lambda_memory: must be 128\.\.10240"),
        ({"pool": 1}, r"db-recipes:rds-proxy: unknown key 'pool'"),
    ],
)
def test_bad_config_names_the_key(config: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        make_plan(["rds-proxy"], rds_proxy=config)


def test_args_defaults_are_valid() -> None:
    args = RdsProxyArgs()
    assert args.credentials == "managed"
    assert args.max_idle_connections_percent <= args.max_connections_percent


def test_missing_function_source_is_a_plan_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(packaging, "FUNCTIONS_ROOT", tmp_path)
    with pytest.raises(PlanError, match=r"function 'proxy_client': source folder .* does not exist"):
        make_plan(["rds-proxy"])
