"""Recipe data-api (4.8): the Data API switch and least-privilege access, planned under Pulumi mocks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from automation.planning.plan import ACCOUNT_ID, Placeholders, Plan, PlanError, PlannedResource
from components import recipes
from components.data_api import DataApiTarget, data_api_supported
from tests.conftest import make_plan, policy_statements

POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
CLUSTER = "aws:rds/cluster:Cluster"
KMS_KEY = "aws:kms/key:Key"
COMPONENT = "db-recipes:dataapi:Access"
FIVE_ACTIONS = [
    "rds-data:ExecuteStatement",
    "rds-data:BatchExecuteStatement",
    "rds-data:BeginTransaction",
    "rds-data:CommitTransaction",
    "rds-data:RollbackTransaction",
]
TARGET = {
    "cluster_arn": "arn:aws:rds:eu-west-1:210987654321:cluster:orders",
    "secret_arn": "arn:aws:secretsmanager:eu-west-1:210987654321:secret:rds!cluster-1234-AbCdEf",
    "engine_version": "15.4",
    "engine": "aurora-postgresql",
}
TARGET_KEY = "arn:aws:kms:eu-west-1:210987654321:key/0a1b2c3d-1111-2222-3333-444455556666"


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


def cluster_state(plan: Plan) -> dict[str, Any]:
    """What the mock engine answers for the planned cluster (its ARN, master secret ...)."""
    (cluster,) = plan.of_type(CLUSTER)
    _, state = Placeholders(plan.region).resource(CLUSTER, cluster.name, cluster.inputs)
    return state


def statements_by_sid(policy: PlannedResource) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy_statements(policy.inputs["policy"])}


def data_api_policy(plan: Plan) -> PlannedResource:
    return plan.by_name("data-api-policy")


@pytest.mark.parametrize(
    ("selection", "enabled"),
    [("data-api", True), ("aurora-serverless,data-api", True), ("aurora-serverless", False),
     ("iam-auth", False)],
)
def test_data_api_flag_follows_the_selection(plan: Callable[..., Plan], selection: str, enabled: bool) -> None:
    (cluster,) = plan(selection).of_type(CLUSTER)
    assert cluster.inputs["enableHttpEndpoint"] is enabled


def test_policy_scopes_the_five_actions_and_the_secret_to_the_stack_cluster(plan: Callable[..., Plan]) -> None:
    result = plan("data-api")
    state = cluster_state(result)
    (key,) = result.of_type(KMS_KEY)
    _, key_state = Placeholders(result.region).resource(KMS_KEY, key.name, key.inputs)
    statements = statements_by_sid(data_api_policy(result))
    assert set(statements) == {"DataApiOnCluster", "ReadClusterSecret", "DecryptSecretViaSecretsManager"}

    data = statements["DataApiOnCluster"]
    assert data["Effect"] == "Allow"
    assert data["Action"] == FIVE_ACTIONS
    assert data["Resource"] == state["arn"] == f"arn:aws:rds:us-east-1:{ACCOUNT_ID}:cluster:{state['clusterIdentifier']}"

    secret = statements["ReadClusterSecret"]
    assert secret["Action"] == "secretsmanager:GetSecretValue"
    assert secret["Resource"] == state["masterUserSecrets"][0]["secretArn"]

    decrypt = statements["DecryptSecretViaSecretsManager"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == key_state["arn"]
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}


def test_no_statement_has_a_wildcard(plan: Callable[..., Plan]) -> None:
    for statement in policy_statements(data_api_policy(plan("data-api")).inputs["policy"]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert isinstance(statement["Resource"], str) and "*" not in statement["Resource"]
        assert all("*" not in action for action in actions)


def test_default_role_is_assumable_by_the_account_and_gets_the_policy(plan: Callable[..., Plan]) -> None:
    result = plan("data-api")
    (role,) = result.of_type(ROLE)
    assert policy_statements(role.inputs["assumeRolePolicy"]) == [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole",
    }]
    policy = data_api_policy(result)
    (attachment,) = result.of_type(ATTACHMENT)
    assert attachment.inputs == {
        "role": role.inputs["name"],
        "policyArn": f"arn:aws:iam::{ACCOUNT_ID}:policy/{policy.inputs['name']}",
    }


def test_listed_roles_get_the_policy_and_no_role_is_created(plan: Callable[..., Plan]) -> None:
    result = plan("data-api", data_api={"role_names": ["app-task", "analyst"]})
    assert result.of_type(ROLE) == []
    assert sorted(a.inputs["role"] for a in result.of_type(ATTACHMENT)) == ["analyst", "app-task"]


def test_outputs_name_the_cluster_secret_and_an_example_command(monkeypatch: pytest.MonkeyPatch) -> None:
    result, outputs = plan_with_outputs(monkeypatch, "data-api")
    state = cluster_state(result)
    access = outputs["data-api"]
    secret_arn = state["masterUserSecrets"][0]["secretArn"]
    assert access["cluster_arn"] == state["arn"]
    assert access["secret_arn"] == secret_arn
    assert access["policy_arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:policy/")
    assert access["role_arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/")
    assert access["example_command"] == (
        f"aws rds-data execute-statement --region us-east-1 --resource-arn {state['arn']} "
        f'--secret-arn {secret_arn} --database app --sql "select 1"'
    )


def test_existing_target_plans_no_cluster_and_scopes_to_its_arns(monkeypatch: pytest.MonkeyPatch) -> None:
    target = {**TARGET, "kms_key_arn": TARGET_KEY, "database_name": "orders"}
    result, outputs = plan_with_outputs(monkeypatch, "data-api", data_api={"target": target})
    assert result.of_type(CLUSTER) == []
    statements = statements_by_sid(data_api_policy(result))
    assert statements["DataApiOnCluster"]["Resource"] == TARGET["cluster_arn"]
    assert statements["ReadClusterSecret"]["Resource"] == TARGET["secret_arn"]
    decrypt = statements["DecryptSecretViaSecretsManager"]
    assert decrypt["Resource"] == TARGET_KEY
    # The secret lives in the cluster's region, whatever region the stack deploys IAM from.
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.eu-west-1.amazonaws.com"
    assert "--region eu-west-1" in outputs["data-api"]["example_command"]
    assert "--database orders" in outputs["data-api"]["example_command"]


def test_target_without_a_customer_managed_key_gets_no_kms_statement(plan: Callable[..., Plan]) -> None:
    statements = statements_by_sid(data_api_policy(plan("data-api", data_api={"target": TARGET})))
    assert set(statements) == {"DataApiOnCluster", "ReadClusterSecret"}


def test_children_are_parented_to_the_component(plan: Callable[..., Plan]) -> None:
    result = plan("data-api")
    (component,) = result.of_type(COMPONENT)
    assert component.name == "data-api"
    children = result.children(component.urn)
    assert sorted(c.type for c in children) == sorted([POLICY, ROLE, ATTACHMENT])
    assert all(c.name.startswith("data-api-") for c in children)


@pytest.mark.parametrize(
    ("engine", "version", "supported"),
    [("aurora-postgresql", "13.11", True), ("aurora-postgresql", "13.10", False), ("aurora-postgresql", "16.1", True),
     ("aurora-postgresql", "17.3", False), ("aurora-postgresql", "12.22", False),
     ("aurora-mysql", "8.0.mysql_aurora.3.07.0", True), ("aurora-mysql", "8.0.mysql_aurora.3.06.1", False),
     ("aurora-mysql", "3.08.2", True), ("aurora-mysql", "5.7.mysql_aurora.2.12.1", False)],
)
def test_engine_version_support(engine: str, version: str, supported: bool) -> None:
    assert data_api_supported(engine, version) is supported


def test_mysql_target_with_a_supported_version_plans(plan: Callable[..., Plan]) -> None:
    target = {**TARGET, "engine": "aurora-mysql", "engine_version": "8.0.mysql_aurora.3.07.1"}
    assert plan("data-api", data_api={"target": target}).of_type(POLICY)
    assert DataApiTarget(**target).region == "eu-west-1"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"target": {**TARGET, "engine_version": "13.10"}},
         r"data-api\.target: engine_version: the Data API needs aurora-postgresql 13\.11\+, 14\.8\+"),
        ({"target": {**TARGET, "engine": "aurora-mysql", "engine_version": "8.0.mysql_aurora.3.06.0"}},
         r"engine_version: the Data API needs aurora-mysql 3\.07\+, not 8\.0\.mysql_aurora\.3\.06\.0"),
        ({"target": {**TARGET, "engine": "postgres"}},
         r"target: engine: 'postgres' is not allowed \(allowed: aurora-postgresql, aurora-mysql\)"),
        ({"target": {**TARGET, "cluster_arn": "arn:aws:rds:eu-west-1:210987654321:db:orders"}},
         r"target: cluster_arn: .* is not a DB cluster ARN"),
        ({"target": {**TARGET, "secret_arn": "orders-secret"}}, r"target: secret_arn: 'orders-secret' is not a secret ARN"),
        ({"target": {**TARGET, "secret_arn": TARGET["secret_arn"].replace("eu-west-1", "us-east-1")}},
         r"secret_arn: the Data API reads the secret in the cluster's region eu-west-1"),
        ({"target": {**TARGET, "kms_key_arn": "arn:aws:kms:eu-west-1:210987654321:alias/rds"}},
         r"target: kms_key_arn: .* is not a key ARN in eu-west-1"),
        ({"target": {**TARGET, "database_name": "orders; drop"}}, r"target: database_name: .* is not allowed"),
        ({"target": {"cluster_arn": TARGET["cluster_arn"]}}, r"data-api\.target: .*secret_arn"),
        ({"role_names": ["ok", "ok"]}, r"role_names\[1\]: 'ok' is listed twice"),
        ({"role_names": ["arn:aws:iam::1:role/x"]}, r"role_names\[0\]: give role names, not ARNs"),
        ({"role_names": ["has space"]}, r"role_names\[0\]: invalid iam_role identifier"),
        ({"roles": ["x"]}, r"data-api: unknown key 'roles' \(valid keys: role_names, target\)"),
    ],
)
def test_bad_config_is_rejected_with_its_path(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=r"db-recipes:data-api") as raised:
        make_plan("data-api", data_api=config)
    assert re.search(message, str(raised.value)), str(raised.value)


def test_stack_cluster_too_old_for_the_data_api_is_refused(plan: Callable[..., Plan]) -> None:
    with pytest.raises(PlanError, match=r"aurora-serverless \(needed by data-api\): enable_data_api: the Data API needs aurora-postgresql 13\.11\+"):
        plan("data-api", aurora_serverless={"engine_version": "13.10", "min_capacity": 0.5})
