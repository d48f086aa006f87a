"""Recipe iam-auth (4.2): rds-db:connect grants per database user, planned under Pulumi mocks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from automation.planning.plan import ACCOUNT_ID, Placeholders, Plan, PlanError, PlannedResource
from components import recipes
from components.iam_auth import mysql_create_user_sql, postgres_create_user_sql
from tests.conftest import make_plan, policy_statements

POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
CLUSTER = "aws:rds/cluster:Cluster"
COMPONENT = "db-recipes:iam:DatabaseAuth"
TARGET = {"resource_id": "db-ABCDEFGHIJKLMNOPQRSTUVWXY2", "engine": "mysql"}


def plan_with_outputs(monkeypatch: pytest.MonkeyPatch, recipe_names: str, **config: Any) -> tuple[Plan, dict]:
    """Plan, and also the resolved stack outputs that ``recipes.build`` returned."""
    captured: dict[str, Any] = {}
    build = recipes.build

    def capturing_build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        import pulumi

        outputs = build(*args, **kwargs)
        pulumi.Output.from_input(outputs).apply(captured.update)
        return outputs

    monkeypatch.setattr(recipes, "build", capturing_build)
    plan = make_plan(recipe_names, **config)
    return plan, captured


def cluster_resource_id(plan: Plan) -> str:
    """The resource id the mock engine gives the planned cluster (as AWS would give one)."""
    (cluster,) = plan.of_type(CLUSTER)
    _, state = Placeholders(plan.region).resource(CLUSTER, cluster.name, cluster.inputs)
    return state["clusterResourceId"]


def policy_of(plan: Plan, user: str) -> PlannedResource:
    return plan.by_name(f"iam-auth-{user}-policy")


def only_statement(policy: PlannedResource) -> dict[str, Any]:
    statements = policy_statements(policy.inputs["policy"])
    assert len(statements) == 1, statements
    return statements[0]


def test_default_grant_connects_app_user_to_the_stack_cluster_only(plan: Callable[..., Plan]) -> None:
    result = plan("iam-auth")
    resource_id = cluster_resource_id(result)
    assert resource_id.startswith("cluster-")
    statement = only_statement(policy_of(result, "app_user"))
    assert statement == {
        "Sid": "ConnectAsDbUser",
        "Effect": "Allow",
        "Action": "rds-db:connect",
        "Resource": f"arn:aws:rds-db:us-east-1:{ACCOUNT_ID}:dbuser:{resource_id}/app_user",
    }
    assert len(result.of_type(POLICY)) == 1
    # The policy document is built from the cluster's resource id, so it waits for the cluster.
    (cluster,) = result.of_type(CLUSTER)
    assert cluster.urn in policy_of(result, "app_user").dependencies
    assert cluster.inputs["iamDatabaseAuthenticationEnabled"] is True


def test_dbuser_arn_follows_the_stack_region(plan: Callable[..., Plan]) -> None:
    result = plan("iam-auth", region="eu-central-1")
    resource = only_statement(policy_of(result, "app_user"))["Resource"]
    assert resource.startswith(f"arn:aws:rds-db:eu-central-1:{ACCOUNT_ID}:dbuser:cluster-")


def test_one_policy_per_user_attached_to_listed_roles_or_a_new_role(plan: Callable[..., Plan]) -> None:
    grants = [
        {"db_user": "app_user", "role_names": ["existing-role", "ci-deployer"]},
        {"db_user": "reporting"},
    ]
    result = plan("iam-auth", iam_auth={"grants": grants})
    resource_id = cluster_resource_id(result)
    app_policy, reporting_policy = policy_of(result, "app_user"), policy_of(result, "reporting")
    for user, policy in (("app_user", app_policy), ("reporting", reporting_policy)):
        statement = only_statement(policy)
        assert statement["Resource"] == f"arn:aws:rds-db:us-east-1:{ACCOUNT_ID}:dbuser:{resource_id}/{user}"
    app_policy_arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/{app_policy.inputs['name']}"
    reporting_policy_arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/{reporting_policy.inputs['name']}"

    attachments = {(a.inputs["role"], a.inputs["policyArn"]) for a in result.of_type(ATTACHMENT)}
    (created,) = result.of_type(ROLE)
    assert created.name == "iam-auth-reporting-role"
    assert attachments == {
        ("existing-role", app_policy_arn),
        ("ci-deployer", app_policy_arn),
        (created.inputs["name"], reporting_policy_arn),
    }


def test_created_role_is_assumable_by_the_account_only(plan: Callable[..., Plan]) -> None:
    result = plan("iam-auth")
    (role,) = result.of_type(ROLE)
    trust = policy_statements(role.inputs["assumeRolePolicy"])
    assert trust == [{
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
        "Action": "sts:AssumeRole",
    }]


def test_no_wildcards_in_any_policy(plan: Callable[..., Plan]) -> None:
    result = plan("iam-auth", iam_auth={"grants": [{"db_user": "a"}, {"db_user": "b", "role_names": ["r"]}]})
    for policy in result.of_type(POLICY):
        for statement in policy_statements(policy.inputs["policy"]):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all("*" not in r for r in resources), policy.name
            assert "*" not in json.dumps(statement["Action"])


def test_outputs_give_arns_and_the_sql_for_both_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    grants = [{"db_user": "app_user", "role_names": ["existing-role"]}, {"db_user": "Reporting"}]
    result, outputs = plan_with_outputs(monkeypatch, "iam-auth", iam_auth={"grants": grants})
    auth = outputs["iam-auth"]
    resource_id = cluster_resource_id(result)
    assert auth["engine"] == "aurora-postgresql"
    assert auth["resource_id"] == resource_id

    app = auth["users"]["app_user"]
    assert app["dbuser_arn"] == f"arn:aws:rds-db:us-east-1:{ACCOUNT_ID}:dbuser:{resource_id}/app_user"
    assert app["policy_arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:policy/")
    assert app["role_names"] == ["existing-role"]
    assert app["created_role_arn"] is None
    assert app["sql"]["mysql"] == (
        "CREATE USER 'app_user'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';\n"
        "ALTER USER 'app_user'@'%' REQUIRE SSL;"
    )
    assert app["sql"]["postgresql"] == 'CREATE USER "app_user";\nGRANT rds_iam TO "app_user";'
    assert app["create_user_sql"] == app["sql"]["postgresql"]
    assert "--username app_user" in app["token_command"]
    assert "--port 5432" in app["token_command"]

    reporting = auth["users"]["Reporting"]
    # Quoted, so PostgreSQL keeps the case the dbuser ARN names.
    assert reporting["sql"]["postgresql"] == 'CREATE USER "Reporting";\nGRANT rds_iam TO "Reporting";'
    assert reporting["created_role_arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/")
    assert auth["create_users_sql"] == f"{app['sql']['postgresql']}\n{reporting['sql']['postgresql']}"


def test_sql_quoting_escapes_quotes() -> None:
    assert mysql_create_user_sql("o'x").startswith("CREATE USER 'o''x'@'%'")
    assert postgres_create_user_sql('a"b').startswith('CREATE USER "a""b";')


def test_existing_target_plans_no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    result, outputs = plan_with_outputs(monkeypatch, "iam-auth", iam_auth={"target": TARGET})
    assert result.of_type(CLUSTER) == []
    assert result.of_type("aws:ec2/vpc:Vpc") == []
    statement = only_statement(policy_of(result, "app_user"))
    assert statement["Resource"] == f"arn:aws:rds-db:us-east-1:{ACCOUNT_ID}:dbuser:{TARGET['resource_id']}/app_user"
    auth = outputs["iam-auth"]
    assert auth["engine"] == "mysql"
    assert auth["users"]["app_user"]["create_user_sql"] == mysql_create_user_sql("app_user")
    assert "token_command" not in auth["users"]["app_user"]


def test_all_recipes_feed_iam_auth_from_the_aurora_cluster(plan: Callable[..., Plan]) -> None:
    result = plan("aurora-serverless,iam-auth,data-api")
    assert len(result.of_type(CLUSTER)) == 1
    resource = only_statement(policy_of(result, "app_user"))["Resource"]
    assert resource.endswith(f":dbuser:{cluster_resource_id(result)}/app_user")


def test_children_are_parented_to_the_component(plan: Callable[..., Plan]) -> None:
    result = plan("iam-auth", iam_auth={"grants": [{"db_user": "app_user", "role_names": ["r1"]}, {"db_user": "b"}]})
    (component,) = result.of_type(COMPONENT)
    assert component.name == "iam-auth"
    children = result.children(component.urn)
    assert {c.type for c in children} == {POLICY, ROLE, ATTACHMENT}
    assert len(children) == 2 + 1 + 2
    assert all(c.name.startswith("iam-auth-") for c in children)
    iam = [r for r in result.resources if r.type.startswith("aws:iam/")]
    assert all(r.parent == component.urn for r in iam)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"grants": [{"db_user": "9lives"}]}, r"iam-auth\.grants\[0\]: db_user: '9lives' is not allowed"),
        ({"grants": [{"db_user": "app-user"}]}, r"db_user: 'app-user' is not allowed: use letters, digits and '_'"),
        ({"grants": [{"db_user": "rdsadmin"}]}, r"db_user: 'rdsadmin' is reserved"),
        ({"grants": [{"db_user": "pg_monitor"}]}, r"db_user: 'pg_monitor' is reserved"),
        ({"grants": [{"db_user": "u" * 64}]}, r"grants\[0\]\.db_user: .* has 64 characters; aurora-postgresql allows at most 63"),
        ({"grants": [{"db_user": "u" * 33}], "target": TARGET}, r"has 33 characters; mysql allows at most 32"),
        ({"grants": [{"db_user": "a"}, {"db_user": "A"}]}, r"grants\[1\]\.db_user: 'A' duplicates 'a'"),
        ({"grants": []}, r"grants: give at least one"),
        ({"grants": [{"db_user": "a", "role_names": ["r", "r"]}]}, r"role_names: 'r' is listed twice"),
        ({"grants": [{"db_user": "a", "role_names": ["bad role"]}]}, r"role_names: invalid iam_role identifier"),
        ({"grants": [{"db_user": "a", "role_names": ["arn:aws:iam::1:role/x"]}]}, r"role_names: give role names, not ARNs"),
        ({"grants": [{"user": "a"}]}, r"iam-auth\.grants\[0\]: unknown key 'user'"),
        ({"target": {"resource_id": "db-ABC", "engine": "oracle"}}, r"iam-auth\.target: engine: 'oracle' is not allowed \(allowed: mysql, mariadb, postgres"),
        ({"target": {"resource_id": "mydb", "engine": "postgres"}}, r"iam-auth\.target: resource_id: 'mydb' is not a resource id"),
        ({"target": {"resource_id": "db-ABC", "engine": "aurora-mysql"}}, r"resource_id: aurora-mysql needs the cluster's DbClusterResourceId"),
    ],
)
def test_bad_config_is_rejected_with_its_path(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=r"db-recipes:iam-auth") as raised:
        make_plan("iam-auth", iam_auth=config)
    assert re.search(message, str(raised.value)), str(raised.value)


def test_cluster_resource_id_is_accepted_for_multi_az_db_clusters(plan: Callable[..., Plan]) -> None:
    target = {"resource_id": "cluster-ABCDEFGH23", "engine": "postgres"}
    result = plan("iam-auth", iam_auth={"target": target, "grants": [{"db_user": "u" * 63}]})
    assert only_statement(policy_of(result, "u" * 63))["Resource"].endswith(":dbuser:cluster-ABCDEFGH23/" + "u" * 63)
