from __future__ import annotations

import pytest

from automation.planning.plan import PlanError
from components.network import NetworkArgs
from tests.conftest import make_plan


def test_private_vpc_in_two_azs_without_nat() -> None:
    plan = make_plan(["aurora-serverless"])
    vpc = plan.by_name("network-vpc").inputs
    assert vpc["cidrBlock"] == "10.40.0.0/16"
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 2
    assert {s.inputs["availabilityZone"] for s in subnets} == {"us-east-1a", "us-east-1b"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert [s.inputs["cidrBlock"] for s in subnets] == ["10.40.0.0/20", "10.40.16.0/20"]
    for absent in ("aws:ec2/natGateway:NatGateway", "aws:ec2/internetGateway:InternetGateway", "aws:ec2/eip:Eip"):
        assert not plan.of_type(absent)
    assert not plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")


def test_app_tier_group_has_no_ingress() -> None:
    app = make_plan(["aurora-serverless"]).by_name("network-app-sg").inputs
    assert not app.get("ingress")


def test_adopting_a_vpc_creates_none() -> None:
    plan = make_plan(["aurora-serverless"],
                     network={"vpc_id": "vpc-0abc", "subnet_ids": ["subnet-1", "subnet-2"]})
    assert not plan.of_type("aws:ec2/vpc:Vpc")
    assert not plan.of_type("aws:ec2/subnet:Subnet")
    assert plan.by_name("network-app-sg").inputs["vpcId"] == "vpc-0abc"
    assert plan.by_name("aurora-subnets").inputs["subnetIds"] == ["subnet-1", "subnet-2"]


def test_az_count_and_cidr() -> None:
    args = NetworkArgs(cidr_block="10.1.0.0/22", az_count=3, subnet_prefix_length=24)
    assert args.subnet_cidrs() == ["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24"]


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"vpc_id": "vpc-1"}, "go together"),
        ({"vpc_id": "vpc-1", "subnet_ids": ["subnet-1"]}, "at least 2"),
        ({"az_count": 1}, "az_count"),
        ({"cidr_block": "10.0.0.0/8"}, "/16 to /24"),
        ({"cidr_block": "banana"}, "not an IPv4 CIDR"),
        ({"cidr_block": "10.1.0.0/24", "subnet_prefix_length": 26, "az_count": 6}, "room for 6"),
        ({"nat": True}, "unknown key 'nat'"),
    ],
)
def test_bad_network_config(network: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        make_plan(["aurora-serverless"], network=network)


def test_recipes_without_network_build_none() -> None:
    plan = make_plan(["dynamodb-autoscaling"])
    assert not plan.of_type("db-recipes:network:Network")
