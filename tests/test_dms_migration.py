"""4.7 DMS: the table-mapping builder, the args, and the planned resources of the recipe."""

from __future__ import annotations

import json
from typing import Any

import pytest

from automation.planning.plan import SECRET_MARKER, Plan, PlanError, PlannedResource
from components.dms_migration import (
    DmsMigrationArgs,
    DmsSource,
    DmsTargetArgs,
    ExistingSource,
    SelectionRule,
    TableMappings,
    TransformationRule,
    like,
    secrets_access_policy,
)
from tests import conftest
from tests.conftest import policy_statements

EXISTING_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sales-db-AbCdEf"
EXISTING_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
EXISTING_SOURCE = {
    "engine_name": "postgres",
    "server_name": "sales.abc.us-east-1.rds.amazonaws.com",
    "port": 5432,
    "database_name": "sales",
    "secret_arn": EXISTING_SECRET,
    "secret_kms_key_arn": EXISTING_KEY,
    "security_group_id": "sg-0123456789abcdef0",
}


def make_plan(recipes: Any, **config: Any) -> Any:
    """This module tests the recipe's own-database layout (``database: own``); the stack's shared
    databases are tested in test_branch_databases.py."""
    config["dms_migration"] = {**{"database": "own", "compute": "instance"}, **(config.get("dms_migration") or {})}
    return conftest.make_plan(recipes, **config)


# ----------------------------------------------------------------------------- table mappings: JSON


def test_include_all_is_dms_json() -> None:
    assert TableMappings.include_all("appdb").to_dms_json() == json.dumps({"rules": [{
        "rule-type": "selection", "rule-id": "1", "rule-name": "1",
        "object-locator": {"schema-name": "appdb", "table-name": "%"}, "rule-action": "include",
    }]})


def test_full_mapping_serialises_to_dms_format() -> None:
    mappings = TableMappings(
        selection=(
            SelectionRule(schema="appdb", table="%"),
            SelectionRule(schema="appdb", table="tmp_%", action="exclude"),
            SelectionRule(schema="billing", table="invoices", action="explicit", load_order=2),
        ),
        transformation=(
            TransformationRule(target="schema", action="rename", schema="appdb", value="appdb_migrated"),
            TransformationRule(target="table", action="convert-lowercase", schema="appdb", table="%"),
            TransformationRule(target="column", action="rename", schema="appdb", table="users",
                               column="fname", value="first_name"),
            TransformationRule(target="table", action="add-prefix", schema="billing", table="invoices",
                               value="legacy_"),
            TransformationRule(target="column", action="replace-prefix", schema="billing", table="invoices",
                               column="%", value="inv_", old_value="i_", name="column-prefix"),
        ),
    )
    expected = {"rules": [
        {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
         "object-locator": {"schema-name": "appdb", "table-name": "%"}, "rule-action": "include"},
        {"rule-type": "selection", "rule-id": "2", "rule-name": "2",
         "object-locator": {"schema-name": "appdb", "table-name": "tmp_%"}, "rule-action": "exclude"},
        {"rule-type": "selection", "rule-id": "3", "rule-name": "3",
         "object-locator": {"schema-name": "billing", "table-name": "invoices"}, "rule-action": "explicit",
         "load-order": "2"},
        {"rule-type": "transformation", "rule-id": "4", "rule-name": "4", "rule-target": "schema",
         "object-locator": {"schema-name": "appdb"}, "rule-action": "rename", "value": "appdb_migrated"},
        {"rule-type": "transformation", "rule-id": "5", "rule-name": "5", "rule-target": "table",
         "object-locator": {"schema-name": "appdb", "table-name": "%"}, "rule-action": "convert-lowercase"},
        {"rule-type": "transformation", "rule-id": "6", "rule-name": "6", "rule-target": "column",
         "object-locator": {"schema-name": "appdb", "table-name": "users", "column-name": "fname"},
         "rule-action": "rename", "value": "first_name"},
        {"rule-type": "transformation", "rule-id": "7", "rule-name": "7", "rule-target": "table",
         "object-locator": {"schema-name": "billing", "table-name": "invoices"}, "rule-action": "add-prefix",
         "value": "legacy_"},
        {"rule-type": "transformation", "rule-id": "8", "rule-name": "column-prefix", "rule-target": "column",
         "object-locator": {"schema-name": "billing", "table-name": "invoices", "column-name": "%"},
         "rule-action": "replace-prefix", "value": "inv_", "old-value": "i_"},
    ]}
    assert mappings.to_dms_json() == json.dumps(expected)
    assert mappings.rules() == expected["rules"]


def test_explicit_rule_ids_are_kept_and_the_rest_fill_the_gaps() -> None:
    mappings = TableMappings(
        selection=(SelectionRule(schema="a", rule_id="2"), SelectionRule(schema="b"), SelectionRule(schema="c")),
        transformation=(TransformationRule(target="schema", action="convert-uppercase", schema="a", rule_id=10),),
    )
    ids = [rule["rule-id"] for rule in mappings.rules()]
    assert ids == ["2", "1", "3", "10"]
    assert all(isinstance(rule_id, str) for rule_id in ids)


def test_rule_ids_are_normalised_numeric_strings() -> None:
    assert SelectionRule(schema="a", rule_id="007").rule_id == "7"
    assert SelectionRule(schema="a", rule_id=12).rule_id == "12"


def test_remove_and_include_column_take_no_value() -> None:
    mappings = TableMappings(
        selection=(SelectionRule(schema="appdb"),),
        transformation=(
            TransformationRule(target="column", action="remove-column", schema="appdb", table="users",
                               column="ssn"),
        ),
    )
    rule = mappings.rules()[1]
    assert rule["rule-action"] == "remove-column"
    assert "value" not in rule and "old-value" not in rule


# ----------------------------------------------------------------------------- wildcards


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("%", "anything", True),
        ("%", "", True),
        ("tmp_%", "tmp_orders", True),
        ("tmp_%", "tmpXorders", True),  # '_' is a single-character wildcard
        ("tmp_%", "tmp", False),
        ("ord_rs", "orders", True),
        ("ord_rs", "ordrs", False),
        ("Orders", "orders", False),  # case-sensitive
        ("a.b", "axb", False),  # regex characters are literal
        ("%_log", "audit_log", True),
    ],
)
def test_like_follows_dms_wildcards(pattern: str, name: str, matches: bool) -> None:
    assert like(pattern, name) is matches


def test_exclude_with_underscore_wildcard_catches_a_transformation() -> None:
    with pytest.raises(ValueError, match=r"transformation\[0\]: transforms appdb.tmpXlog, which selection\[1\]"):
        TableMappings(
            selection=(SelectionRule(schema="appdb"), SelectionRule(schema="appdb", table="tmp_%", action="exclude")),
            transformation=(TransformationRule(target="table", action="convert-uppercase", schema="appdb",
                                               table="tmpXlog"),),
        )


def test_wildcard_transformation_next_to_a_narrower_exclude_is_fine() -> None:
    mappings = TableMappings(
        selection=(SelectionRule(schema="appdb"), SelectionRule(schema="appdb", table="tmp_%", action="exclude")),
        transformation=(TransformationRule(target="column", action="convert-lowercase", schema="appdb",
                                           table="%", column="%"),),
    )
    assert len(mappings.rules()) == 3


def test_include_pattern_covers_a_literal_transformation() -> None:
    TableMappings(
        selection=(SelectionRule(schema="app%", table="order%"),),
        transformation=(TransformationRule(target="table", action="rename", schema="appdb", table="orders",
                                           value="purchase_orders"),),
    )


# ----------------------------------------------------------------------------- validation errors

SEL = SelectionRule(schema="appdb")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schema": "appdb", "action": "drop"}, "action: 'drop' is not allowed"),
        ({"schema": ""}, "schema: a schema/table name"),
        ({"schema": "appdb", "table": ""}, "table: a schema/table name"),
        ({"schema": "appdb", "table": "t%", "action": "explicit"}, "'explicit' selects exactly one table"),
        ({"schema": "app%", "table": "t", "action": "explicit"}, "no '%' wildcard"),
        ({"schema": "appdb", "rule_id": "abc"}, "rule_id: must be a positive whole number"),
        ({"schema": "appdb", "rule_id": "0"}, "rule_id: must be a positive whole number"),
        ({"schema": "appdb", "rule_id": -3}, "rule_id: must be a positive whole number"),
        ({"schema": "appdb", "rule_id": True}, "rule_id: must be a positive whole number"),
        ({"schema": "appdb", "name": "has space"}, "name: 1-255 letters"),
        ({"schema": "appdb", "action": "exclude", "load_order": 1}, "load_order: only include and explicit"),
        ({"schema": "appdb", "load_order": -1}, "load_order: must be 0.."),
    ],
)
def test_selection_rule_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        SelectionRule(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "index", "action": "rename", "schema": "a", "value": "b"}, "target: 'index' is not allowed"),
        ({"target": "table", "action": "drop-table", "schema": "a", "table": "t"}, "action: 'drop-table' is not"),
        ({"target": "table", "action": "remove-column", "schema": "a", "table": "t"},
         "'remove-column' works on target column only, not 'table'"),
        ({"target": "schema", "action": "rename", "schema": "a"}, "value: rename needs a value"),
        ({"target": "table", "action": "add-prefix", "schema": "a", "table": "t"}, "value: add-prefix needs"),
        ({"target": "table", "action": "remove-suffix", "schema": "a", "table": "t"}, "value: remove-suffix needs"),
        ({"target": "table", "action": "replace-prefix", "schema": "a", "table": "t", "value": "n_"},
         "old_value: replace-prefix needs old_value"),
        ({"target": "table", "action": "rename", "schema": "a", "table": "t", "value": "u", "old_value": "t"},
         "old_value: only replace-prefix and replace-suffix"),
        ({"target": "table", "action": "convert-lowercase", "schema": "a", "table": "t", "value": "x"},
         "value: convert-lowercase takes no value"),
        ({"target": "column", "action": "convert-lowercase", "schema": "a", "column": "c"},
         "table: a column rule needs a table"),
        ({"target": "column", "action": "convert-lowercase", "schema": "a", "table": "t"},
         "column: a column rule needs a column"),
        ({"target": "table", "action": "convert-lowercase", "schema": "a"}, "table: a table rule needs a table"),
        ({"target": "schema", "action": "convert-lowercase", "schema": ""}, "schema: a schema rule needs"),
        ({"target": "schema", "action": "convert-lowercase", "schema": "a", "table": "t"},
         "table: a schema rule names no table"),
        ({"target": "table", "action": "convert-lowercase", "schema": "a", "table": "t", "column": "c"},
         "column: a table rule names no column"),
        ({"target": "table", "action": "rename", "schema": "a", "table": "t%", "value": "u"},
         "table: rename needs one exact table name"),
        ({"target": "schema", "action": "rename", "schema": "%", "value": "u"},
         "schema: rename needs one exact schema name"),
        ({"target": "table", "action": "add-prefix", "schema": "a", "table": "t", "value": "x%"},
         "value: a literal name is expected"),
        ({"target": "column", "action": "rename", "schema": "a", "table": "t", "column": "my-col", "value": "c"},
         "column: DMS cannot transform columns"),
        ({"target": "column", "action": "rename", "schema": "a", "table": "t", "column": "c", "value": "a#b"},
         "value: column names with"),
        ({"target": "schema", "action": "convert-lowercase", "schema": "a", "rule_id": "1.5"},
         "rule_id: must be a positive whole number"),
    ],
)
def test_transformation_rule_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        TransformationRule(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("selection", "transformation", "message"),
    [
        ((), (), "selection: at least one include or explicit rule is required"),
        ((SelectionRule(schema="appdb", action="exclude"),), (), "at least one include or explicit rule"),
        ((SelectionRule(schema="a", rule_id=1), SelectionRule(schema="b", rule_id="1")), (),
         "selection[1].rule_id: '1' is already used by selection[0]"),
        ((SelectionRule(schema="appdb", rule_id="1"),),
         (TransformationRule(target="schema", action="convert-lowercase", schema="appdb", rule_id=1),),
         "transformation[0].rule_id: '1' is already used by selection[0]"),
        ((SelectionRule(schema="a", name="same"), SelectionRule(schema="b", name="same")), (),
         "selection[1].name: 'same' is already used by selection[0]"),
        # An automatic name (the id) may collide with an explicit one, too.
        ((SelectionRule(schema="a", name="2"), SelectionRule(schema="b")), (),
         "selection[1].name: '2' is already used by selection[0]"),
        ((SEL, SelectionRule(schema="appdb", table="secrets", action="exclude")),
         (TransformationRule(target="table", action="rename", schema="appdb", table="secrets", value="s"),),
         "transformation[0]: transforms appdb.secrets, which selection[1] excludes"),
        ((SEL, SelectionRule(schema="appdb", table="secrets", action="exclude")),
         (TransformationRule(target="column", action="remove-column", schema="appdb", table="secrets",
                             column="token"),),
         "transformation[0]: transforms appdb.secrets, which selection[1] excludes"),
        ((SEL, SelectionRule(schema="old%", action="exclude")),
         (TransformationRule(target="schema", action="rename", schema="old_app", value="new_app"),),
         "transformation[0]: transforms old_app, which selection[1] excludes"),
        ((SEL, SelectionRule(schema="appdb", table="tmp%", action="exclude")),
         (TransformationRule(target="table", action="add-prefix", schema="appdb", table="tmp%", value="x_"),),
         "transformation[0]: transforms appdb.tmp%, which selection[1] excludes"),
        ((SEL,), (TransformationRule(target="table", action="convert-lowercase", schema="other", table="t"),),
         "transformation[0]: transforms other.t, which no include or explicit rule selects"),
        ((SelectionRule(schema="appdb", table="users", action="explicit"),),
         (TransformationRule(target="table", action="convert-lowercase", schema="appdb", table="orders"),),
         "transforms appdb.orders, which no include or explicit rule selects"),
        ((SEL,), (
            TransformationRule(target="table", action="convert-lowercase", schema="appdb", table="users"),
            TransformationRule(target="table", action="add-prefix", schema="appdb", table="users", value="x_"),
        ), "transformation[1]: table appdb.users already has a transformation (transformation[0])"),
    ],
)
def test_table_mapping_errors(selection: tuple[SelectionRule, ...],
                              transformation: tuple[TransformationRule, ...], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        TableMappings(selection=selection, transformation=transformation)
    assert message in str(caught.value)


def test_same_object_different_levels_is_allowed() -> None:
    TableMappings(selection=(SEL,), transformation=(
        TransformationRule(target="table", action="convert-lowercase", schema="appdb", table="users"),
        TransformationRule(target="column", action="convert-lowercase", schema="appdb", table="users", column="%"),
        TransformationRule(target="schema", action="rename", schema="appdb", value="app"),
    ))


# ----------------------------------------------------------------------------- args and sources


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ssl_mode": "none"}, "ssl_mode: 'none' would send credentials and data unencrypted"),
        ({"ssl_mode": "prefer"}, "ssl_mode: 'prefer' is not allowed"),
        ({"ssl_mode": "verify-full"}, "certificate_arn: ssl_mode verify-full needs"),
        ({"migration_type": "incremental"}, "migration_type: 'incremental' is not allowed"),
        ({"replication_instance_class": "db.t3.micro"}, "replication_instance_class: a DMS class"),
        ({"allocated_storage": 2}, "allocated_storage: must be 5..6144"),
        ({"kms_key_arn": "my-key"}, "kms_key_arn: 'my-key' is not a KMS key reference"),
    ],
)
def test_args_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        DmsMigrationArgs(**kwargs)
    assert message in str(caught.value)


def test_verify_ca_with_certificate_is_accepted() -> None:
    args = DmsMigrationArgs(ssl_mode="verify-ca", certificate_arn="arn:aws:dms:us-east-1:123456789012:cert:X")
    assert args.ssl_mode == "verify-ca"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine_version": "5.7"}, "target.engine_version: RDS MySQL 8.0 or 8.4"),
        ({"instance_class": "t4g.micro"}, "target.instance_class"),
        ({"allocated_storage": 10}, "target.allocated_storage"),
        ({"db_name": "1app"}, "target.db_name"),
        ({"master_username": "rdsadmin"}, "target.master_username: 'rdsadmin' is reserved"),
        ({"master_username": "a_very_long_username"}, "target.master_username: MySQL user names have at most 16"),
        ({"backup_retention_days": 40}, "target.backup_retention_days"),
    ],
)
def test_target_args_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        DmsTargetArgs(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine_name": "oracle", "username": "u", "password": "p"}, "engine_name: 'oracle' is not supported"),
        ({}, "give either username and password, or secret_arn"),
        ({"username": "u", "password": "p", "secret_arn": EXISTING_SECRET}, "not both"),
        ({"username": "u"}, "username and password go together"),
        ({"database_name": "", "secret_arn": EXISTING_SECRET}, "database_name"),
    ],
)
def test_dms_source_errors(kwargs: dict[str, Any], message: str) -> None:
    base = {"engine_name": "mysql", "server_name": "db.example", "port": 3306, "database_name": "appdb"}
    with pytest.raises(ValueError) as caught:
        DmsSource(**{**base, **kwargs})
    assert message in str(caught.value)


def test_default_schema_depends_on_engine() -> None:
    mysql = DmsSource(engine_name="mysql", server_name="h", port=3306, database_name="appdb", secret_arn="x")
    postgres = DmsSource(engine_name="postgres", server_name="h", port=5432, database_name="sales", secret_arn="x")
    assert mysql.default_schema == "appdb"
    assert postgres.default_schema == "%"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port": 0}, "port: must be 1..65535"),
        ({"secret_arn": "sales-db"}, "secret_arn: expected a Secrets Manager secret ARN"),
        ({"engine_name": "sqlserver"}, "engine_name: 'sqlserver' is not supported"),
    ],
)
def test_existing_source_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ExistingSource(**{**EXISTING_SOURCE, **change})
    assert message in str(caught.value)


def test_secrets_policy_is_scoped() -> None:
    document = json.loads(secrets_access_policy(["arn:s2", "arn:s1", "arn:s1"], [], "eu-west-1"))
    assert document["Statement"] == [{"Sid": "ReadEndpointSecrets", "Effect": "Allow",
                                      "Action": "secretsmanager:GetSecretValue", "Resource": ["arn:s1", "arn:s2"]}]


# ----------------------------------------------------------------------------- the plan


def _one(plan: Plan, type_token: str) -> PlannedResource:
    found = plan.of_type(type_token)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def _dms_children(plan: Plan) -> list[PlannedResource]:
    return plan.children(_one(plan, "db-recipes:dms:Migration").urn)


def _arn(plan: Plan, resource: PlannedResource, key: str = "arn") -> str:
    """The ARN the mock engine gives ``resource`` (the same function the plan uses)."""
    from automation.planning.plan import Placeholders

    _, state = Placeholders(plan.region).resource(resource.type, resource.name, resource.inputs)
    return state[key]


@pytest.fixture(scope="module")
def durable() -> Plan:
    return make_plan("dms-migration")


@pytest.fixture(scope="module")
def ephemeral() -> Plan:
    return make_plan("dms-migration", ephemeral=True, dms_migration={"create_service_roles": True})


def test_component_and_children(durable: Plan) -> None:
    component = _one(durable, "db-recipes:dms:Migration")
    assert component.name == "dms"
    types = {r.type for r in _dms_children(durable)}
    assert {"aws:dms/replicationInstance:ReplicationInstance", "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup",
            "aws:dms/endpoint:Endpoint", "aws:dms/replicationTask:ReplicationTask",
            "aws:rds/instance:Instance", "aws:secretsmanager/secret:Secret"} <= types


def test_replication_instance_is_private_and_encrypted(durable: Plan) -> None:
    instance = _one(durable, "aws:dms/replicationInstance:ReplicationInstance")
    key = durable.by_name("dms-key")
    subnets = _one(durable, "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup")
    assert instance.inputs["publiclyAccessible"] is False
    assert instance.inputs["kmsKeyArn"] == _arn(durable, key)
    assert instance.inputs["multiAz"] is False
    assert instance.inputs["replicationInstanceClass"] == "dms.t3.micro"
    assert instance.inputs["replicationSubnetGroupId"] == subnets.inputs["replicationSubnetGroupId"]
    # Its own group, plus the app tier that the Secrets Manager interface endpoint admits.
    assert instance.inputs["vpcSecurityGroupIds"] == [_sg_id("dms-sg"), _sg_id("network-app-sg")]
    assert instance.inputs["applyImmediately"] is False
    assert subnets.urn in instance.dependencies


def _sg_id(name: str) -> str:
    """The id the mock engine gives the security group ``name``."""
    from automation.planning.plan import _digest

    return f"sg-{_digest('sg', name)}"


def test_dms_security_group_has_no_ingress(durable: Plan) -> None:
    group = durable.by_name("dms-sg")
    assert not group.inputs.get("ingress")
    ports = sorted(rule["fromPort"] for rule in group.inputs["egress"])
    assert ports == [443, 3306]


def test_endpoints_use_ssl_secrets_and_the_access_role(durable: Plan) -> None:
    role = durable.by_name("dms-secrets-role")
    key_arn = _arn(durable, durable.by_name("dms-key"))
    policy = durable.by_name("dms-secrets-policy")
    for kind in ("source", "target"):
        endpoint = durable.by_name(f"dms-{kind}-endpoint")
        secret = durable.by_name(f"dms-{kind}-secret")
        assert endpoint.inputs["endpointType"] == kind
        assert endpoint.inputs["engineName"] == "mysql"
        assert endpoint.inputs["sslMode"] == "require"
        assert endpoint.inputs["secretsManagerArn"] == _arn(durable, secret)
        assert endpoint.inputs["secretsManagerAccessRoleArn"] == _arn(durable, role)
        assert endpoint.inputs["kmsKeyArn"] == key_arn
        # Credentials come only from the secret: DMS rejects both at once.
        for plain in ("password", "username", "serverName", "port"):
            assert plain not in endpoint.inputs
        # Ordered after the grant, and after the wait for IAM to propagate it (not only depends_on).
        wait = durable.by_name("dms-secrets-role-iam-propagation")
        assert wait.urn in endpoint.dependencies
        assert policy.urn in wait.dependencies
        assert wait.inputs["createDuration"] == "30s"


def test_access_role_trusts_dms_and_reads_only_its_secrets(durable: Plan) -> None:
    role = durable.by_name("dms-secrets-role")
    trust = policy_statements(role.inputs["assumeRolePolicy"])
    assert trust == [{"Effect": "Allow", "Action": "sts:AssumeRole",
                      "Principal": {"Service": ["dms.us-east-1.amazonaws.com", "dms.amazonaws.com"]}}]
    statements = policy_statements(durable.by_name("dms-secrets-policy").inputs["policy"])
    secrets = sorted(_arn(durable, durable.by_name(f"dms-{k}-secret")) for k in ("source", "target"))
    read = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert len(read) == 1 and read[0]["Resource"] == secrets
    decrypt = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert decrypt[0]["Resource"] == [_arn(durable, durable.by_name("dms-key"))]
    assert decrypt[0]["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}
    assert len(statements) == 2
    assert "*" not in json.dumps(statements)


def test_service_roles_only_when_asked(durable: Plan, ephemeral: Plan) -> None:
    assert not [r for r in durable.of_type("aws:iam/role:Role") if r.inputs.get("name", "").startswith("dms-")]
    roles = {r.inputs["name"]: r for r in ephemeral.of_type("aws:iam/role:Role")}
    assert {"dms-vpc-role", "dms-cloudwatch-logs-role"} <= set(roles)
    for name in ("dms-vpc-role", "dms-cloudwatch-logs-role"):
        trust = policy_statements(roles[name].inputs["assumeRolePolicy"])
        assert trust[0]["Principal"] == {"Service": ["dms.amazonaws.com"]}
    attached = {r.inputs["role"]: r.inputs["policyArn"] for r in ephemeral.of_type(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert attached["dms-vpc-role"] == "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole"
    assert attached["dms-cloudwatch-logs-role"] == "arn:aws:iam::aws:policy/service-role/AmazonDMSCloudWatchLogsRole"
    subnets = _one(ephemeral, "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup")
    attachment_urns = {r.urn for r in ephemeral.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                       if r.inputs["role"].startswith("dms-") and r.inputs["role"].endswith("-role")}
    # depends_on alone does not wait for IAM: the subnet group (and so the replication instance)
    # waits for a time.Sleep that runs after the role attachments, on the engine.
    wait = ephemeral.by_name("dms-iam-propagation")
    assert wait.type == "time:index/sleep:Sleep"
    assert wait.inputs["createDuration"] == "30s"
    assert attachment_urns <= set(wait.dependencies)
    assert set(wait.inputs["triggers"]) == {"dms-vpc-role", "dms-cloudwatch-logs-role"}
    assert subnets.dependencies == [wait.urn] or wait.urn in subnets.dependencies


def test_propagation_wait_can_be_turned_off() -> None:
    plan = make_plan(["dms-migration"], ephemeral=True,
                     dms_migration={"create_service_roles": True, "iam_propagation_seconds": 0})
    assert not plan.of_type("time:index/sleep:Sleep")
    subnets = _one(plan, "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup")
    assert plan.by_name("dms-dms-vpc-role-policy").urn in subnets.dependencies


def test_task_uses_the_builder_json(durable: Plan) -> None:
    task = _one(durable, "aws:dms/replicationTask:ReplicationTask")
    # The demo source's database is appdb: every table of it, unchanged.
    assert task.inputs["tableMappings"] == TableMappings.include_all("appdb").to_dms_json()
    assert task.inputs["migrationType"] == "full-load"
    assert task.inputs["startReplicationTask"] is False
    assert task.inputs["replicationInstanceArn"] == _arn(
        durable, _one(durable, "aws:dms/replicationInstance:ReplicationInstance"), "replicationInstanceArn")
    assert task.inputs["sourceEndpointArn"] == _arn(durable, durable.by_name("dms-source-endpoint"), "endpointArn")
    assert task.inputs["targetEndpointArn"] == _arn(durable, durable.by_name("dms-target-endpoint"), "endpointArn")


def test_configured_table_mappings_reach_the_task() -> None:
    config = {
        "migration_type": "full-load-and-cdc",
        "table_mappings": {
            "selection": [{"schema": "appdb", "table": "%"},
                          {"schema": "appdb", "table": "audit_%", "action": "exclude"}],
            "transformation": [{"target": "schema", "action": "rename", "schema": "appdb",
                                "value": "appdb_migrated"}],
        },
    }
    plan = make_plan("dms-migration", dms_migration=config)
    expected = TableMappings(
        selection=(SelectionRule(schema="appdb", table="%"),
                   SelectionRule(schema="appdb", table="audit_%", action="exclude")),
        transformation=(TransformationRule(target="schema", action="rename", schema="appdb",
                                           value="appdb_migrated"),),
    )
    task = _one(plan, "aws:dms/replicationTask:ReplicationTask")
    assert task.inputs["tableMappings"] == expected.to_dms_json()
    assert task.inputs["migrationType"] == "full-load-and-cdc"


def test_target_is_encrypted_private_and_iam_auth(durable: Plan) -> None:
    target = durable.by_name("dms-target")
    assert target.type == "aws:rds/instance:Instance"
    assert target.inputs["storageEncrypted"] is True
    assert target.inputs["kmsKeyId"] == _arn(durable, durable.by_name("dms-key"))
    assert target.inputs["iamDatabaseAuthenticationEnabled"] is True
    assert target.inputs["publiclyAccessible"] is False
    assert target.inputs["engine"] == "mysql" and target.inputs["engineVersion"] == "8.4"
    assert target.inputs["instanceClass"] == "db.t4g.micro"
    assert target.inputs["password"] == SECRET_MARKER
    password = durable.by_name("dms-target-password")
    assert password.inputs["length"] == 41 and password.inputs["special"] is False


def test_durable_and_ephemeral_lifecycles(durable: Plan, ephemeral: Plan) -> None:
    kept, scratch = durable.by_name("dms-target").inputs, ephemeral.by_name("dms-target").inputs
    assert kept["deletionProtection"] is True and kept["skipFinalSnapshot"] is False
    assert kept["finalSnapshotIdentifier"] and kept["backupRetentionPeriod"] >= 7
    assert scratch["deletionProtection"] is False and scratch["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in scratch
    assert ephemeral.by_name("dms-instance").inputs["applyImmediately"] is True
    for name in ("dms-source-secret", "dms-target-secret"):
        assert ephemeral.by_name(name).inputs["recoveryWindowInDays"] == 0
        assert "recoveryWindowInDays" not in durable.by_name(name).inputs


def test_durable_backups_never_below_seven_days() -> None:
    plan = make_plan("dms-migration", dms_migration={"target": {"backup_retention_days": 2}})
    assert plan.by_name("dms-target").inputs["backupRetentionPeriod"] == 7


def test_target_admits_mysql_only_from_dms_and_the_app_tier(durable: Plan) -> None:
    ingress = durable.by_name("dms-target-sg").inputs["ingress"]
    assert len(ingress) == 1
    rule = ingress[0]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (3306, 3306, "tcp")
    assert not rule.get("cidrBlocks")
    assert sorted(rule["securityGroups"]) == sorted(
        [_sg_id("dms-sg"), _sg_id("network-app-sg")])


def test_secrets_are_cmk_encrypted_and_values_stay_secret(durable: Plan) -> None:
    key_arn = _arn(durable, durable.by_name("dms-key"))
    for secret in durable.of_type("aws:secretsmanager/secret:Secret"):
        assert secret.inputs["kmsKeyId"] == key_arn
    versions = durable.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert len(versions) == 2
    assert all(v.inputs["secretString"] == SECRET_MARKER for v in versions)


def test_no_secret_value_anywhere_in_the_plan(durable: Plan) -> None:
    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key.lower() in ("password", "secretstring", "masterpassword"):
                    assert item == SECRET_MARKER, f"{path}.{key} is not secret"
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    for resource in durable.resources:
        walk(resource.inputs, resource.name)


def test_demo_source_is_created_and_admits_dms(durable: Plan) -> None:
    demo = [r for r in durable.of_type("db-recipes:encryption:DemoMySqlSource")]
    assert [r.name for r in demo] == ["dms-source"]
    rule = durable.by_name("dms-to-source")
    assert rule.inputs["securityGroupId"] == _sg_id("dms-source-sg")
    assert rule.inputs["referencedSecurityGroupId"] == _sg_id("dms-sg")
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (3306, 3306)


def test_encrypt_existing_demo_source_is_reused() -> None:
    plan = make_plan("encrypt-existing,dms-migration")
    demos = plan.of_type("db-recipes:encryption:DemoMySqlSource")
    assert [d.name for d in demos] == ["encrypt-existing-source"]
    rule = plan.by_name("dms-to-source")
    assert rule.inputs["securityGroupId"] == _sg_id("encrypt-existing-source-sg")
    # The source secret is built from that instance's address and password.
    version = plan.by_name("dms-source-secret-value")
    assert version.inputs["secretString"] == SECRET_MARKER
    source_db = [r for r in plan.of_type("aws:rds/instance:Instance") if r.parent == demos[0].urn]
    assert source_db and source_db[0].urn in version.dependencies


def test_existing_source_from_config() -> None:
    plan = make_plan("dms-migration", dms_migration={"source": EXISTING_SOURCE})
    assert not plan.of_type("db-recipes:encryption:DemoMySqlSource")
    secrets = [r.name for r in plan.of_type("aws:secretsmanager/secret:Secret")]
    assert secrets == ["dms-target-secret"]
    endpoint = plan.by_name("dms-source-endpoint")
    assert endpoint.inputs["secretsManagerArn"] == EXISTING_SECRET
    assert endpoint.inputs["engineName"] == "postgres"
    assert endpoint.inputs["databaseName"] == "sales"
    statements = policy_statements(plan.by_name("dms-secrets-policy").inputs["policy"])
    read = next(s for s in statements if s["Action"] == "secretsmanager:GetSecretValue")
    assert EXISTING_SECRET in read["Resource"] and len(read["Resource"]) == 2
    decrypt = next(s for s in statements if s["Action"] == "kms:Decrypt")
    assert EXISTING_KEY in decrypt["Resource"]
    assert sorted(r["fromPort"] for r in plan.by_name("dms-sg").inputs["egress"]) == [443, 3306, 5432]
    rule = plan.by_name("dms-to-source")
    assert rule.inputs["securityGroupId"] == EXISTING_SOURCE["security_group_id"]
    assert rule.inputs["fromPort"] == 5432
    task = _one(plan, "aws:dms/replicationTask:ReplicationTask")
    assert task.inputs["tableMappings"] == TableMappings.include_all("%").to_dms_json()


def test_configured_source_wins_over_the_demo_source() -> None:
    plan = make_plan("encrypt-existing,dms-migration", dms_migration={"source": EXISTING_SOURCE})
    assert plan.by_name("dms-source-endpoint").inputs["secretsManagerArn"] == EXISTING_SECRET
    assert plan.by_name("dms-to-source").inputs["securityGroupId"] == EXISTING_SOURCE["security_group_id"]


def test_existing_kms_key_is_used_and_none_is_created() -> None:
    plan = make_plan("dms-migration", dms_migration={"kms_key_arn": EXISTING_KEY, "ssl_mode": "verify-full",
                                                     "certificate_arn": "arn:aws:dms:us-east-1:123456789012:cert:C"})
    assert not [r for r in _dms_children(plan) if r.type == "aws:kms/key:Key"]
    assert plan.by_name("dms-instance").inputs["kmsKeyArn"] == EXISTING_KEY
    assert plan.by_name("dms-target").inputs["kmsKeyId"] == EXISTING_KEY
    endpoint = plan.by_name("dms-target-endpoint").inputs
    assert endpoint["sslMode"] == "verify-full"
    assert endpoint["certificateArn"] == "arn:aws:dms:us-east-1:123456789012:cert:C"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ssl_mode": "none"}, "db-recipes:dms-migration: ssl_mode: 'none' would send credentials"),
        ({"migration_type": "sync"}, "db-recipes:dms-migration.migration_type: 'sync' is not allowed"),
        ({"table_mappings": {"selection": [{"schema": "appdb", "table": "t%", "action": "explicit"}]}},
         "db-recipes:dms-migration.table_mappings.selection[0]: table: 'explicit' selects exactly one table"),
        ({"table_mappings": {"selection": [{"schema": "appdb", "action": "only"}]}},
         "db-recipes:dms-migration.table_mappings.selection[0].action: 'only' is not allowed"),
        ({"table_mappings": {"transformation": [{"target": "schema", "action": "rename", "schema": "appdb",
                                                 "value": "x"}]}},
         "db-recipes:dms-migration.table_mappings: selection: at least one include"),
        ({"table_mappings": {"selection": [{"schema": "appdb"}],
                             "transformation": [{"target": "table", "action": "rename", "schema": "appdb",
                                                 "table": "users"}]}},
         "db-recipes:dms-migration.table_mappings.transformation[0]: value: rename needs a value"),
        ({"table_mappings": {"selection": [{"schema": "appdb"}, {"schema": "appdb", "table": "pii",
                                                                  "action": "exclude"}],
                             "transformation": [{"target": "column", "action": "remove-column", "schema": "appdb",
                                                 "table": "pii", "column": "ssn"}]}},
         "db-recipes:dms-migration.table_mappings: transformation[0]: transforms appdb.pii, which selection[1]"),
        ({"source": {**EXISTING_SOURCE, "secret_arn": "plain"}},
         "db-recipes:dms-migration.source: secret_arn: expected a Secrets Manager secret ARN"),
        ({"target": {"engine_version": "5.7"}}, "db-recipes:dms-migration.target: target.engine_version"),
        ({"replication_instance": "dms.t3.micro"}, "db-recipes:dms-migration: unknown key 'replication_instance'"),
    ],
)
def test_bad_config_is_a_plan_error_naming_the_path(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError) as caught:
        make_plan("dms-migration", dms_migration=config)
    assert message in str(caught.value)


def _recipe_outputs(recipes_selection: str, recipe: str) -> dict[str, Any]:
    """Run the stack program under the plan's mocks and resolve one recipe's outputs."""
    from automation.planning import plan as offline

    def work() -> dict[str, Any]:
        import pulumi
        from pulumi.runtime import stack as runtime_stack
        from pulumi.runtime.sync_await import _sync_await

        from components import recipes

        mocks, monitor = offline._mocks_and_monitor(offline.Placeholders("us-east-1"), [])
        pulumi.runtime.set_mocks(mocks, project="db-recipes", stack="test", preview=False, monitor=monitor)
        pulumi.runtime.set_all_config({"aws:region": "us-east-1", "db-recipes:recipes": recipes_selection})
        resolved: dict[str, Any] = {}

        def program() -> None:
            outputs = recipes.build(recipes.read_stack_config())[recipe]
            pulumi.Output.all(**{k: pulumi.Output.from_input(v) for k, v in outputs.items()}).apply(resolved.update)

        _sync_await(runtime_stack.run_pulumi_func(program))
        return resolved

    return offline._run_isolated(work)


def test_outputs_name_arns_and_never_secret_values() -> None:
    outputs = _recipe_outputs("dms-migration", "dms-migration")
    assert outputs["replication_instance_arn"].startswith("arn:aws:dms:us-east-1:123456789012:rep:")
    assert outputs["replication_task_arn"].startswith("arn:aws:dms:us-east-1:123456789012:task:")
    for key in ("source_endpoint_arn", "target_endpoint_arn"):
        assert outputs[key].startswith("arn:aws:dms:us-east-1:123456789012:endpoint:")
    for key in ("source_secret_arn", "target_secret_arn"):
        assert outputs[key].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
    assert outputs["target_port"] == 3306
    # The default layout: DMS writes into the stack's MySQL instance.
    assert outputs["target_identifier"].endswith("-mysql")
    assert outputs["target_address"].startswith(outputs["target_identifier"] + ".")
    assert outputs["table_mappings"] == TableMappings.include_all("appdb").to_dms_json()
    assert outputs["service_roles"] == []
    assert outputs["source_database_name"] == "appdb"
    # The plan's mock hands out this marker for every generated password: it must not surface.
    assert SECRET_MARKER not in json.dumps(outputs)
    assert not any("password" in key for key in outputs)


def test_config_rule_ids_and_names_may_be_given() -> None:
    config = {"table_mappings": {
        "selection": [{"schema": "appdb", "table": "%", "rule_id": 10, "name": "all-appdb"}],
        "transformation": [{"target": "table", "action": "convert-lowercase", "schema": "appdb", "table": "%",
                            "rule_id": "20"}],
    }}
    task = _one(make_plan("dms-migration", dms_migration=config), "aws:dms/replicationTask:ReplicationTask")
    rules = json.loads(task.inputs["tableMappings"])["rules"]
    assert [(r["rule-id"], r["rule-name"]) for r in rules] == [("10", "all-appdb"), ("20", "20")]
