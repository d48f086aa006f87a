"""Pre-``up`` checks against the account, on moto: missing DMS service roles are named with the fix."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from automation.operations import preflight

pytestmark = pytest.mark.aws
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "dms.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def iam(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("iam", region_name="us-east-1")


def _check(config: dict, recipes: tuple[str, ...] = ("dms-migration",)) -> None:
    preflight.check(config, recipes, "us-east-1")


def test_missing_roles_stop_the_deploy_with_the_fix(iam) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(preflight.PreflightError) as err:
        _check({})
    message = str(err.value)
    assert "no dms-vpc-role and no dms-cloudwatch-logs-role" in message
    assert "dbenv shared up" in message and "create_service_roles: true" in message


def test_one_missing_role_is_named(iam) -> None:  # type: ignore[no-untyped-def]
    iam.create_role(RoleName="dms-vpc-role", AssumeRolePolicyDocument=TRUST)
    with pytest.raises(preflight.PreflightError, match=r"no dms-cloudwatch-logs-role, which DMS needs"):
        _check({})


def test_present_roles_pass(iam) -> None:  # type: ignore[no-untyped-def]
    for name in preflight.DMS_SERVICE_ROLES:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    _check({})
    assert preflight.missing_roles(iam) == []


def test_nothing_to_check_when_the_stack_creates_them_or_has_no_dms(iam) -> None:  # type: ignore[no-untyped-def]
    _check({"db-recipes:dms-migration": {"create_service_roles": True}})
    _check({"db-recipes:dms-migration": json.dumps({"create_service_roles": True})})
    _check({}, recipes=("aurora-serverless",))


def test_an_account_that_cannot_be_asked_is_not_blocked() -> None:
    class Denied:
        def get_role(self, RoleName: str) -> None:  # noqa: N803 - boto3's name
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetRole")

    assert preflight.missing_roles(Denied()) is None
    preflight.check({}, ("dms-migration",), "us-east-1", client=lambda region, settings: Denied())


def test_up_and_preview_stop_before_the_engine_when_roles_are_missing(iam, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from automation.operations.errors import BadInput
    from tests.test_environments import make_service, prepared

    service, fake = make_service(tmp_path)
    service.provider_settings = lambda: None  # AWS itself: here the in-process moto account
    ready = prepared(service, recipes="dms-migration")
    for operation in (service.up, service.preview):
        with pytest.raises(BadInput, match=r"no dms-vpc-role and no dms-cloudwatch-logs-role"):
            operation(ready)
    assert not [call for call in fake.backend.calls if call[0] in ("up", "preview")]
