"""rds-proxy in front of the stack's Aurora PostgreSQL cluster (``database: aurora``) or an existing
instance or cluster outside the stack (``target``): plans under mocks, config errors, policy, cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from automation.planning import cost
from automation.planning.plan import Plan, PlanError, build_plan
from tests.conftest import make_plan, policy_statements

NETWORK = {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]}
TARGET_SG = "sg-0123456789abcdef0"
APP_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:legacy-app-AbCdEf"
READER_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:legacy-reader-GhIjKl"
SECRET_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
MYSQL_TARGET = {"engine": "mysql", "db_instance_identifier": "legacy-db", "security_group_ids": [TARGET_SG],
                "database_name": "shop"}
PG_CLUSTER_TARGET = {"engine": "aurora-postgresql", "db_cluster_identifier": "legacy-cluster",
                     "security_group_ids": [TARGET_SG]}
TABLE = json.loads((Path(cost.__file__).with_name("prices.json")).read_text(encoding="utf-8"))
H = TABLE["hours_per_month"]


def usd(key: str) -> float:
    return TABLE["regions"]["us-east-1"][key]["usd"]


def recipe_outputs(recipe: str, **config: Any) -> dict[str, Any]:
    """The resolved outputs of ``recipe`` when the stack program runs under the plan's mocks."""
    import pulumi

    from components import recipes

    captured: dict[str, Any] = {}

    def program() -> None:
        outputs = recipes.build(recipes.read_stack_config())
        pulumi.Output.from_input(outputs[recipe]).apply(captured.update)

    build_plan({"aws:region": "us-east-1", "db-recipes:recipes": [recipe],
                **{f"db-recipes:{k.replace('_', '-')}": v for k, v in config.items()}}, stack="test", program=program)
    return captured


def aurora_plan(**aurora: Any) -> Plan:
    return make_plan(["rds-proxy"], rds_proxy={"database": "aurora"},
                     aurora_serverless={"min_capacity": 0.5, **aurora})


def target_plan(target: dict[str, Any], users: list[dict[str, Any]] | None = None, **proxy: Any) -> Plan:
    users = users if users is not None else [{"username": "app", "secret_arn": APP_SECRET}]
    return make_plan(["rds-proxy"], network=NETWORK, rds_proxy={"target": target, "users": users, **proxy})


@pytest.fixture(scope="module")
def on_aurora() -> Plan:
    return aurora_plan()


@pytest.fixture(scope="module")
def on_mysql_target() -> Plan:
    return target_plan(MYSQL_TARGET, users=[{"username": "app", "secret_arn": APP_SECRET},
                                            {"username": "reader", "secret_arn": READER_SECRET,
                                             "secret_kms_key_arn": SECRET_KEY}])


# ----------------------------------------------------------------- the stack's Aurora cluster


def test_aurora_proxy_is_postgresql_on_the_cluster_with_its_admin_secret(on_aurora: Plan) -> None:
    cluster = on_aurora.by_name("aurora-cluster").inputs
    proxy = on_aurora.by_name("rds-proxy-proxy").inputs
    assert proxy["engineFamily"] == "POSTGRESQL"
    assert proxy["requireTls"] is True
    [auth] = proxy["auths"]
    assert (auth["authScheme"], auth["iamAuth"], auth["clientPasswordAuthType"]) == (
        "SECRETS", "REQUIRED", "POSTGRES_SCRAM_SHA_256")
    # The cluster's RDS-managed admin secret; the proxy may decrypt it with the stack key only.
    assert auth["secretArn"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-")
    target = on_aurora.by_name("rds-proxy-proxy-target").inputs
    assert target["dbClusterIdentifier"] == cluster["clusterIdentifier"]
    assert "dbInstanceIdentifier" not in target
    statements = policy_statements(on_aurora.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert [s["Resource"] for s in statements] == [auth["secretArn"], cluster["kmsKeyId"]]
    # No MySQL anywhere: the stack's MySQL instance is not created for a proxy on Aurora.
    assert not on_aurora.of_type("aws:rds/instance:Instance")


def test_aurora_is_implied_and_must_keep_a_minimum_capacity() -> None:
    plan = make_plan(["rds-proxy"], rds_proxy={"database": "aurora"}, aurora_serverless={"min_capacity": 1})
    assert plan.by_name("aurora-cluster").inputs["serverlessv2ScalingConfiguration"]["minCapacity"] == 1
    with pytest.raises(PlanError, match=r"^db-recipes:aurora-serverless\.min_capacity: 0 \(auto-pause\), but "
                                        r"rds-proxy fronts this cluster and a cluster with a proxy never pauses"):
        make_plan(["rds-proxy"], rds_proxy={"database": "aurora"})


def test_aurora_proxy_joins_the_app_tier_the_cluster_admits(on_aurora: Plan) -> None:
    app_sg = on_aurora.by_name("network-app-sg")
    proxy_groups = on_aurora.by_name("rds-proxy-proxy").inputs["vpcSecurityGroupIds"]
    own = on_aurora.by_name("rds-proxy-proxy-sg")
    assert len(proxy_groups) == 2 and proxy_groups[0] != proxy_groups[1]
    assert own.inputs["description"] == "RDS Proxy of the stack's Aurora cluster: port 5432 in from clients, out to the DB"
    [ingress] = on_aurora.by_name("aurora-sg").inputs["ingress"]
    assert (ingress["fromPort"], ingress["toPort"]) == (5432, 5432)
    assert set(ingress["securityGroups"]) & set(proxy_groups), "the cluster must admit a group the proxy is in"
    assert app_sg.type == "aws:ec2/securityGroup:SecurityGroup"
    # The cluster's group keeps its inline rules only: no standalone rule beside them.
    rules = on_aurora.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rules == []


def test_allowed_groups_reach_a_postgresql_proxy_on_5432() -> None:
    plan = make_plan(["rds-proxy"], rds_proxy={"database": "aurora", "allowed_security_group_ids": [TARGET_SG]},
                     aurora_serverless={"min_capacity": 0.5})
    [rule] = plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert (rule.inputs["referencedSecurityGroupId"], rule.inputs["fromPort"], rule.inputs["toPort"]) == (
        TARGET_SG, 5432, 5432)
    assert rule.inputs["description"] == "PostgreSQL from an allowed client group"


def test_postgresql_proxy_has_no_client_function_and_says_so(on_aurora: Plan) -> None:
    assert not on_aurora.of_type("aws:lambda/function:Function")
    assert not [r for r in on_aurora.resources if r.name.startswith("rds-proxy-lambda")]
    outputs = recipe_outputs("rds-proxy", rds_proxy={"database": "aurora"}, aurora_serverless={"min_capacity": 0.5})
    assert outputs["function_name"] is None and outputs["lambda_security_group_id"] is None
    assert outputs["client_note"].startswith("no client function: functions/proxy_client speaks MySQL only")
    assert (outputs["engine_family"], outputs["target_kind"], outputs["port"]) == ("POSTGRESQL", "cluster", 5432)


def test_generated_user_secret_on_aurora_is_a_postgresql_secret() -> None:
    plan = aurora_plan()
    plan_with_user = make_plan(["rds-proxy"], rds_proxy={"database": "aurora", "users": [{"username": "app"}]},
                               aurora_serverless={"min_capacity": 0.5})
    secret = plan_with_user.by_name("rds-proxy-user-app")
    assert secret.inputs["description"].startswith("PostgreSQL user app that the RDS Proxy logs in as")
    assert secret.inputs["kmsKeyId"] == plan.by_name("aurora-cluster").inputs["kmsKeyId"]
    assert len(plan_with_user.by_name("rds-proxy-proxy").inputs["auths"]) == 2


@pytest.mark.policy
def test_aurora_proxy_is_policy_clean() -> None:
    from automation.planning import policy_check

    report = policy_check.check(
        lambda: policy_check.target_from_plan(aurora_plan()), project="db-recipes", stack="test",
        policy_config=policy_check.read_policy_config(policy_check.DEFAULT_POLICY_CONFIG))
    assert report.passed, policy_check.render_report(report)


def test_cost_of_a_proxy_on_the_stack_cluster_is_8_acu_and_the_cluster_never_pauses() -> None:
    est = cost.estimate(aurora_plan(min_capacity=1))
    by_name = {r.resource.name: r for r in est.resources}
    # Proxy: 8 ACU (the Serverless minimum) x $/ACU-hour x hours; cluster instance: its 1 ACU floor all month.
    assert by_name["rds-proxy-proxy"].monthly("idle") == pytest.approx(8 * usd("rds-proxy.acu") * H)
    assert by_name["aurora-instance-0"].monthly("idle") == pytest.approx(1 * usd("aurora.acu") * H)
    assert est.not_priced == []


# ----------------------------------------------------------------- an existing target


def test_mysql_target_instance_with_the_named_secrets(on_mysql_target: Plan) -> None:
    proxy = on_mysql_target.by_name("rds-proxy-proxy").inputs
    assert proxy["engineFamily"] == "MYSQL"
    assert [(a["secretArn"], a["clientPasswordAuthType"], a["description"]) for a in proxy["auths"]] == [
        (APP_SECRET, "MYSQL_CACHING_SHA2_PASSWORD", "app: IAM token from clients, secret to MySQL"),
        (READER_SECRET, "MYSQL_CACHING_SHA2_PASSWORD", "reader: IAM token from clients, secret to MySQL"),
    ]
    target = on_mysql_target.by_name("rds-proxy-proxy-target").inputs
    assert target["dbInstanceIdentifier"] == "legacy-db" and "dbClusterIdentifier" not in target
    # Nothing of the stack's databases: no instance, cluster, key or secret.
    for type_ in ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster", "aws:kms/key:Key",
                  "aws:secretsmanager/secret:Secret"):
        assert not on_mysql_target.of_type(type_), type_


def test_target_proxy_role_reads_those_secrets_and_decrypts_only_with_a_named_key(on_mysql_target: Plan) -> None:
    statements = policy_statements(on_mysql_target.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert statements == [
        {"Sid": "ReadCredentialsSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": sorted([APP_SECRET, READER_SECRET])},
        {"Sid": "DecryptViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": SECRET_KEY,
         "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}},
    ]
    only_managed_key = target_plan(MYSQL_TARGET)
    statements = policy_statements(only_managed_key.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert [s["Sid"] for s in statements] == ["ReadCredentialsSecrets"]


def test_target_proxy_joins_the_groups_the_database_admits(on_mysql_target: Plan) -> None:
    groups = on_mysql_target.by_name("rds-proxy-proxy").inputs["vpcSecurityGroupIds"]
    assert groups[-1] == TARGET_SG and len(groups) == 3
    assert on_mysql_target.by_name("rds-proxy-proxy").inputs["vpcSubnetIds"] == NETWORK["subnet_ids"]
    # No rule is added to any group outside the stack.
    rules = on_mysql_target.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert TARGET_SG not in {r.inputs["securityGroupId"] for r in rules}


def test_mysql_target_client_logs_in_as_the_first_user(on_mysql_target: Plan) -> None:
    env = on_mysql_target.by_name("rds-proxy-client").inputs["environment"]["variables"]
    assert (env["DB_USER"], env["DB_NAME"], env["DB_PORT"]) == ("app", "shop", "3306")
    outputs = recipe_outputs("rds-proxy", network=NETWORK,
                             rds_proxy={"target": MYSQL_TARGET, "users": [{"username": "app", "secret_arn": APP_SECRET}]})
    assert (outputs["instance_identifier"], outputs["target_kind"], outputs["secret_arn"]) == ("legacy-db", "instance", None)
    assert outputs["client_note"] is None


def test_postgresql_cluster_target() -> None:
    plan = target_plan(PG_CLUSTER_TARGET)
    proxy = plan.by_name("rds-proxy-proxy").inputs
    assert proxy["engineFamily"] == "POSTGRESQL"
    assert proxy["auths"][0]["clientPasswordAuthType"] == "POSTGRES_SCRAM_SHA_256"
    assert plan.by_name("rds-proxy-proxy-target").inputs["dbClusterIdentifier"] == "legacy-cluster"
    assert not plan.of_type("aws:lambda/function:Function")


def test_end_to_end_iam_on_a_target_connects_as_the_users_at_its_resource_id() -> None:
    plan = target_plan({**MYSQL_TARGET, "resource_id": "db-ABCDEFGHIJKLMNOP"}, users=[{"username": "app"}],
                       default_auth_scheme="IAM_AUTH")
    proxy = plan.by_name("rds-proxy-proxy").inputs
    assert proxy["defaultAuthScheme"] == "IAM_AUTH" and not proxy.get("auths")
    [statement] = policy_statements(plan.by_name("rds-proxy-proxy-role-policy").inputs["policy"])
    assert statement["Resource"] == ["arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOP/app"]


@pytest.mark.policy
def test_target_configs_are_policy_clean() -> None:
    from automation.planning import policy_check

    config = policy_check.read_policy_config(policy_check.DEFAULT_POLICY_CONFIG)
    for target in (MYSQL_TARGET, PG_CLUSTER_TARGET):
        report = policy_check.check(lambda t=target: policy_check.target_from_plan(target_plan(t)),
                                    project="db-recipes", stack="test", policy_config=config)
        assert report.passed, policy_check.render_report(report)


def test_cost_of_a_proxy_on_an_outside_target_is_the_minimum_and_says_so(on_mysql_target: Plan) -> None:
    est = cost.estimate(on_mysql_target)
    proxy = next(r for r in est.resources if r.resource.name == "rds-proxy-proxy")
    assert proxy.monthly("idle") == pytest.approx(2 * usd("rds-proxy.vcpu") * H)
    [note] = [n for n in est.not_priced if n["urn"] == proxy.resource.urn]
    assert note["reason"] == ("its target legacy-db is outside the plan: priced at the 2 vCPU minimum; a larger "
                              "instance, or an Aurora Serverless v2 cluster (8 ACU minimum), costs more")


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ({"target": {**MYSQL_TARGET, "engine": "oracle-ee"}},
         r"^db-recipes:rds-proxy\.target: engine: 'oracle-ee' is not allowed \(allowed: mysql, mariadb, "),
        ({"target": {**MYSQL_TARGET, "db_cluster_identifier": "c1"}},
         r"^db-recipes:rds-proxy\.target: db_instance_identifier, db_cluster_identifier: give exactly one$"),
        ({"target": {**PG_CLUSTER_TARGET, "engine": "postgres"}},
         r"^db-recipes:rds-proxy\.target: db_instance_identifier: postgres runs on an RDS instance"),
        ({"target": {"engine": "aurora-mysql", "db_instance_identifier": "i1", "security_group_ids": [TARGET_SG]}},
         r"^db-recipes:rds-proxy\.target: db_cluster_identifier: aurora-mysql is an Aurora engine"),
        ({"target": {**MYSQL_TARGET, "db_instance_identifier": "1db"}},
         r"^db-recipes:rds-proxy\.target: db_instance_identifier: '1db' is not an RDS identifier"),
        ({"target": {**MYSQL_TARGET, "security_group_ids": []}},
         r"^db-recipes:rds-proxy\.target: security_group_ids: name at least one group the database admits"),
        ({"target": {**MYSQL_TARGET, "security_group_ids": ["default"]}},
         r"^db-recipes:rds-proxy\.target: security_group_ids: 'default' is not a security group id"),
        ({"target": {**MYSQL_TARGET, "resource_id": "cluster-ABC"}},
         r"^db-recipes:rds-proxy\.target: resource_id: 'cluster-ABC' is not the target's resource id \(db-"),
        ({"target": {**MYSQL_TARGET, "port": 3306}}, r"^db-recipes:rds-proxy\.target: unknown key 'port'"),
        ({"target": MYSQL_TARGET, "users": []}, r"^db-recipes:rds-proxy: users: name the database users"),
        ({"target": MYSQL_TARGET, "users": [{"username": "app"}]},
         r"^db-recipes:rds-proxy: users\[0\]\.secret_arn: with an existing target, name the secret"),
        ({"target": MYSQL_TARGET, "default_auth_scheme": "IAM_AUTH", "users": [{"username": "app"}]},
         r"^db-recipes:rds-proxy: target\.resource_id: default_auth_scheme IAM_AUTH grants the proxy"),
        ({"target": MYSQL_TARGET, "database": "own", "users": [{"username": "a", "secret_arn": APP_SECRET}]},
         r"^db-recipes:rds-proxy: target: an existing database replaces database: own; remove one of them$"),
        ({"target": PG_CLUSTER_TARGET, "session_pinning_filters": ["EXCLUDE_VARIABLE_SETS"],
          "users": [{"username": "a", "secret_arn": APP_SECRET}]},
         r"^db-recipes:rds-proxy: session_pinning_filters: only MySQL targets have pinning filters"),
        ({"database": "replica"}, r"^db-recipes:rds-proxy\.database: 'replica' is not allowed \(allowed: stack, aurora, own\)"),
    ],
)
def test_bad_target_config_is_one_line_naming_the_key(proxy: dict[str, Any], message: str) -> None:
    proxy = {"users": [{"username": "app", "secret_arn": APP_SECRET}], **proxy}
    with pytest.raises(PlanError, match=message) as caught:
        make_plan(["rds-proxy"], network=NETWORK, rds_proxy=proxy)
    assert "\n" not in str(caught.value)


def test_a_target_needs_the_network_it_lives_in() -> None:
    with pytest.raises(PlanError, match=r"^db-recipes:rds-proxy\.target: an existing database is reached from its "
                                        r"own VPC, .* set db-recipes:network\.vpc_id and subnet_ids"):
        make_plan(["rds-proxy"], rds_proxy={"target": MYSQL_TARGET,
                                            "users": [{"username": "app", "secret_arn": APP_SECRET}]})


def test_own_database_keys_are_refused_beside_a_target() -> None:
    with pytest.raises(PlanError, match=r"^db-recipes:rds-proxy\.instance_class: configures a database of the "
                                        r"recipe's own"):
        target_plan(MYSQL_TARGET, instance_class="db.t4g.small")
