"""secret-rotation of a user of an existing database outside the stack (``target``): plans under
mocks, config errors, policy, cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from automation.planning import cost
from automation.planning.plan import Plan, PlanError
from tests.conftest import make_plan, policy_statements

NETWORK = {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]}
TARGET_SG = "sg-0123456789abcdef0"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:legacy-app-AbCdEf"
MANAGED_SECRET = ("arn:aws:secretsmanager:us-east-1:123456789012:secret:"
                  "rds!db-1a2b3c4d-0000-1111-2222-333344445555-XyZ123")
SECRET_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
EXISTING = {"engine": "postgres", "identifier": "legacy-db", "security_group_ids": [TARGET_SG], "secret_arn": SECRET}
NEW_USER = {"engine": "aurora-postgresql", "identifier": "legacy-cluster", "security_group_ids": [TARGET_SG],
            "username": "app_user", "host": "legacy-cluster.cluster-abc.us-east-1.rds.amazonaws.com",
            "database_name": "shop"}
TABLE = json.loads((Path(cost.__file__).with_name("prices.json")).read_text(encoding="utf-8"))


def rotation_plan(target: dict[str, Any], **rotation: Any) -> Plan:
    return make_plan(["secret-rotation"], network=NETWORK, secret_rotation={"target": target, **rotation})


@pytest.fixture(scope="module")
def existing_secret() -> Plan:
    return rotation_plan(EXISTING)


def test_existing_secret_is_rotated_in_place_and_nothing_of_the_stack_is_built(existing_secret: Plan) -> None:
    rotation = existing_secret.by_name("secret-rotation-rotation").inputs
    assert rotation["secretId"] == SECRET
    assert rotation["rotationRules"] == {"automaticallyAfterDays": 30}
    assert rotation["rotateImmediately"] is True
    assert rotation["rotationLambdaArn"].endswith(":function:" + existing_secret.by_name(
        "secret-rotation-function").inputs["name"])
    permission = existing_secret.by_name("secret-rotation-invoke-permission").inputs
    assert (permission["principal"], permission["sourceArn"]) == ("secretsmanager.amazonaws.com", SECRET)
    for type_ in ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster", "aws:kms/key:Key",
                  "aws:secretsmanager/secret:Secret", "aws:secretsmanager/secretVersion:SecretVersion",
                  "random:index/randomPassword:RandomPassword"):
        assert not existing_secret.of_type(type_), type_


def test_function_joins_the_groups_the_target_admits(existing_secret: Plan) -> None:
    groups = existing_secret.by_name("secret-rotation-function").inputs["vpcConfig"]["securityGroupIds"]
    own, app, admitted = groups
    assert admitted == TARGET_SG and len({own, app, admitted}) == 3
    assert existing_secret.by_name("secret-rotation-function").inputs["vpcConfig"]["subnetIds"] == NETWORK["subnet_ids"]
    # No rule on any group outside the stack, and no egress rule to a database group the stack cannot know.
    assert not existing_secret.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert not existing_secret.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")


def test_role_is_scoped_to_the_target_secret_and_its_key_when_named(existing_secret: Plan) -> None:
    statements = policy_statements(existing_secret.by_name("secret-rotation-lambda-policy").inputs["policy"])
    assert [(s["Sid"], s["Resource"]) for s in statements] == [("RotateThisSecret", SECRET), ("GeneratePasswords", "*")]
    with_key = rotation_plan({**EXISTING, "kms_key_arn": SECRET_KEY})
    statements = policy_statements(with_key.by_name("secret-rotation-lambda-policy").inputs["policy"])
    assert statements[-1] == {
        "Sid": "UseSecretKeyViaSecretsManager", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": SECRET_KEY,
        "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}}


def test_new_secret_for_a_named_user_under_the_stack_key() -> None:
    plan = rotation_plan(NEW_USER, rotate_immediately=False)
    [secret] = plan.of_type("aws:secretsmanager/secret:Secret")
    [key] = plan.of_type("aws:kms/key:Key")
    assert key.name == "stack-key"
    assert secret.inputs["kmsKeyId"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    assert secret.inputs["description"] == (
        "app_user on legacy-cluster (create the user with this password), rotated every 30 days")
    # The password never reaches the plan in clear (the value is a secret).
    assert plan.by_name("secret-rotation-admin-secret-initial").inputs["secretString"] == "[secret]"
    rotation = plan.by_name("secret-rotation-rotation").inputs
    assert rotation["rotateImmediately"] is False
    assert rotation["secretId"].startswith(f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret.inputs['name']}-")
    [password] = plan.of_type("random:index/randomPassword:RandomPassword")
    assert (password.inputs["length"], password.inputs["special"]) == (41, False)


def test_new_secret_json_names_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first value is the JSON the rotation function reads: engine, host, port, username, password, dbname."""
    from components import parts

    written: dict[str, Any] = {}
    real = parts.admin_secret

    def spy(name: str, **kwargs: Any) -> Any:
        written.update({k: kwargs[k] for k in ("engine", "host", "port", "username", "dbname")})
        return real(name, **kwargs)

    monkeypatch.setattr("components.secret_rotation.admin_secret", spy)
    rotation_plan(NEW_USER, rotate_immediately=False)
    assert written == {"engine": "aurora-postgresql", "host": NEW_USER["host"], "port": 5432,
                       "username": "app_user", "dbname": "shop"}


def test_managed_target_schedules_the_rds_managed_secret_without_a_function() -> None:
    plan = rotation_plan({"engine": "mysql", "identifier": "legacy-db", "secret_arn": MANAGED_SECRET},
                         managed=True, rotation_days=14)
    [rotation] = plan.of_type("aws:secretsmanager/secretRotation:SecretRotation")
    assert rotation.inputs["secretId"] == MANAGED_SECRET
    assert rotation.inputs["rotationRules"] == {"automaticallyAfterDays": 14}
    assert "rotationLambdaArn" not in rotation.inputs
    assert not plan.of_type("aws:lambda/function:Function")
    assert [g.name for g in plan.of_type("aws:ec2/securityGroup:SecurityGroup")] == ["network-app-sg"]


@pytest.mark.policy
@pytest.mark.parametrize(("target", "rotation"), [
    (EXISTING, {}), (NEW_USER, {"rotate_immediately": False}),
    ({"engine": "mysql", "identifier": "legacy-db", "secret_arn": MANAGED_SECRET}, {"managed": True}),
])
def test_target_rotation_is_policy_clean(target: dict[str, Any], rotation: dict[str, Any]) -> None:
    from automation.planning import policy_check

    report = policy_check.check(lambda: policy_check.target_from_plan(rotation_plan(target, **rotation)),
                                project="db-recipes", stack="test",
                                policy_config=policy_check.read_policy_config(policy_check.DEFAULT_POLICY_CONFIG))
    assert report.passed, policy_check.render_report(report)


def test_cost_of_a_target_rotation_is_its_endpoint_and_any_new_secret_and_key() -> None:
    prices = TABLE["regions"]["us-east-1"]
    # A durable stack on an adopted VPC gets the Secrets Manager interface endpoint the function
    # needs: 2 subnets = 2 AZ x $/AZ-hour x hours. No invocations, empty logs; the existing secret
    # is billed where it lives.
    endpoint = 2 * prices["vpc.interface-endpoint"]["usd"] * TABLE["hours_per_month"]
    existing = cost.estimate(rotation_plan(EXISTING))
    assert existing.not_priced == []
    assert existing.total("idle") == pytest.approx(endpoint)
    new = cost.estimate(rotation_plan(NEW_USER, rotate_immediately=False))
    assert new.not_priced == []
    # Plus one secret-month and the stack key's key-month.
    assert new.total("idle") == pytest.approx(
        endpoint + prices["secretsmanager.secret"]["usd"] + prices["kms.key"]["usd"])


@pytest.mark.parametrize(
    ("target", "rotation", "message"),
    [
        ({**EXISTING, "engine": "sqlserver-ex"}, {},
         r"^db-recipes:secret-rotation\.target: engine: 'sqlserver-ex' is not allowed \(allowed: mysql, mariadb"),
        ({**EXISTING, "identifier": "legacy--db"}, {},
         r"^db-recipes:secret-rotation\.target: identifier: 'legacy--db' is not an RDS identifier"),
        ({**EXISTING, "security_group_ids": ["sg-XYZ"]}, {},
         r"^db-recipes:secret-rotation\.target: security_group_ids: 'sg-XYZ' is not a security group id"),
        ({**EXISTING, "security_group_ids": []}, {},
         r"^db-recipes:secret-rotation: target\.security_group_ids: name at least one group the database admits"),
        ({**EXISTING, "username": "app"}, {},
         r"^db-recipes:secret-rotation\.target: secret_arn, username: give one"),
        ({k: v for k, v in EXISTING.items() if k != "secret_arn"}, {},
         r"^db-recipes:secret-rotation\.target: secret_arn, username: give one"),
        ({**EXISTING, "secret_arn": "legacy-app"}, {},
         r"^db-recipes:secret-rotation\.target: secret_arn: 'legacy-app' is not a secret ARN"),
        ({**EXISTING, "host": "db.example.com"}, {},
         r"^db-recipes:secret-rotation\.target: host: only for a new secret \(username\)"),
        ({**NEW_USER, "host": None}, {"rotate_immediately": False},
         r"^db-recipes:secret-rotation\.target: host: a new secret needs the database's endpoint address"),
        ({**NEW_USER, "port": 80}, {"rotate_immediately": False},
         r"^db-recipes:secret-rotation\.target: port: RDS ports are 1150\.\.65535, got 80"),
        ({**NEW_USER, "kms_key_arn": "k"}, {"rotate_immediately": False},
         r"^db-recipes:secret-rotation\.target: kms_key_arn: 'k' is not a KMS key reference"),
        (NEW_USER, {}, r"^db-recipes:secret-rotation: rotate_immediately: the new secret's user app_user does not "
                       r"exist yet; set false"),
        (EXISTING, {"managed": True},
         r"^db-recipes:secret-rotation: target\.secret_arn: managed: true schedules the rotation of the target's "
         r"RDS-managed master secret"),
        (EXISTING, {"database": "own"},
         r"^db-recipes:secret-rotation: target: an existing database replaces database: own; remove one of them$"),
        (EXISTING, {"instance_class": "db.t4g.small"},
         r"^db-recipes:secret-rotation\.instance_class: configures a database of the recipe's own"),
        ({**EXISTING, "vpc": "vpc-1"}, {}, r"^db-recipes:secret-rotation\.target: unknown key 'vpc'"),
    ],
)
def test_bad_target_config_is_one_line_naming_the_key(target: dict[str, Any], rotation: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(PlanError, match=message) as caught:
        rotation_plan(target, **rotation)
    assert "\n" not in str(caught.value)


def test_a_target_needs_the_network_it_lives_in() -> None:
    with pytest.raises(PlanError, match=r"^db-recipes:secret-rotation\.target: an existing database is reached "
                                        r"from its own VPC"):
        make_plan(["secret-rotation"], secret_rotation={"target": EXISTING})


def test_a_target_leaves_the_stack_databases_alone() -> None:
    """With aurora-serverless selected too, the rotation still rotates the target, and the cluster keeps
    its RDS-managed secret (no rotation function needs the stack's own JSON secret)."""
    plan = make_plan(["aurora-serverless", "secret-rotation"], network=NETWORK, secret_rotation={"target": EXISTING})
    assert plan.by_name("aurora-cluster").inputs["manageMasterUserPassword"] is True
    [rotation] = plan.of_type("aws:secretsmanager/secretRotation:SecretRotation")
    assert rotation.inputs["secretId"] == SECRET
