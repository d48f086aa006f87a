"""The network the recipes live in: a private VPC, or an existing one adopted from config.

No NAT gateway and no internet gateway: databases and Lambda functions stay
private, and the few AWS APIs a function needs are reached through VPC
interface endpoints, created only for the services asked for.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.naming import Namer

MIN_AZS = 2
MAX_AZS = 6
INTERFACE_SERVICES = ("secretsmanager", "rds-data", "kms", "sts", "logs", "rds")
# A StackReference name: ``stack``, ``project/stack`` or ``org/project/stack``.
_STACK_REF = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


@dataclass(frozen=True)
class NetworkArgs:
    """Create a VPC (``cidr_block``, ``az_count``), adopt ``vpc_id`` + ``subnet_ids``, or read ``shared_stack``.

    ``shared_stack`` is the fully qualified name (``org/project/stack``) of the
    stack whose ``network`` output holds ``vpc_id``, ``private_subnet_ids`` and
    ``app_security_group_id``: branch stacks then share one VPC.
    """

    cidr_block: str = "10.40.0.0/16"
    az_count: int = 2
    subnet_prefix_length: int = 20
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    shared_stack: str | None = None

    def __post_init__(self) -> None:
        if self.shared_stack is not None:
            if not _STACK_REF.match(self.shared_stack):
                raise ValueError(f"shared_stack: {self.shared_stack!r} is not a stack name like org/project/stack")
            if self.vpc_id is not None:
                raise ValueError("shared_stack and vpc_id exclude each other: read the network from one place")
        if (self.vpc_id is None) != (not self.subnet_ids):
            raise ValueError("vpc_id and subnet_ids go together: give both to adopt a VPC, or neither")
        if self.vpc_id is not None and len(self.subnet_ids) < MIN_AZS:
            raise ValueError(f"subnet_ids: give at least {MIN_AZS} subnets in different AZs (RDS needs two)")
        if not MIN_AZS <= self.az_count <= MAX_AZS:
            raise ValueError(f"az_count: must be {MIN_AZS}..{MAX_AZS}, got {self.az_count}")
        try:
            network = ipaddress.ip_network(self.cidr_block)
        except ValueError:
            raise ValueError(f"cidr_block: {self.cidr_block!r} is not an IPv4 CIDR block") from None
        if network.version != 4 or not 16 <= network.prefixlen <= 24:
            raise ValueError(f"cidr_block: use an IPv4 block from /16 to /24, got {self.cidr_block}")
        if not network.prefixlen < self.subnet_prefix_length <= 28:
            raise ValueError(
                f"subnet_prefix_length: must be longer than the VPC's /{network.prefixlen} and at most 28"
            )
        if 2 ** (self.subnet_prefix_length - network.prefixlen) < self.az_count:
            raise ValueError(f"cidr_block {self.cidr_block} has no room for {self.az_count} subnets")

    @property
    def adopted(self) -> bool:
        return self.vpc_id is not None

    def subnet_cidrs(self) -> list[str]:
        network = ipaddress.ip_network(self.cidr_block)
        subnets = network.subnets(new_prefix=self.subnet_prefix_length)
        return [str(next(subnets)) for _ in range(self.az_count)]


class Network(pulumi.ComponentResource):
    """VPC, private subnets in ``az_count`` AZs, an ``app`` tier security group, optional endpoints.

    Database security groups belong to each recipe (they admit their port from
    named groups); the ``app`` group here is the tier that clients and Lambda
    functions run in, and the ``endpoints`` group admits HTTPS from it.
    """

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    app_security_group_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: NetworkArgs,
        *,
        namer: Namer,
        interface_endpoints: tuple[str, ...] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("db-recipes:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        unknown = sorted(set(interface_endpoints) - set(INTERFACE_SERVICES))
        if unknown:
            raise ValueError(f"interface_endpoints: unknown service {unknown[0]!r} (known: {INTERFACE_SERVICES})")

        if args.shared_stack is not None:
            self._read_shared(name, args.shared_stack)
            self.endpoint_security_group_id = None
            self.endpoint_ids = {}
            if interface_endpoints:
                raise ValueError("interface_endpoints: create them in the shared stack, not in a stack that reads it")
            self.register_outputs(self.outputs())
            return
        if args.adopted:
            self.vpc_id = pulumi.Output.from_input(args.vpc_id)
            self.private_subnet_ids = pulumi.Output.from_input(list(args.subnet_ids))
            subnet_ids: list[Any] = list(args.subnet_ids)
        else:
            vpc = aws.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=args.cidr_block,
                enable_dns_support=True,
                enable_dns_hostnames=True,  # interface endpoints with private DNS need both
                tags={"Name": namer.name("generic", "vpc")},
                opts=child,
            )
            zones = aws.get_availability_zones_output(
                state="available", opts=pulumi.InvokeOutputOptions(parent=self)
            )
            route_table = aws.ec2.RouteTable(
                f"{name}-private-rt",
                vpc_id=vpc.id,
                tags={"Name": namer.name("generic", "private")},
                opts=child,
            )
            subnets = []
            for index, cidr in enumerate(args.subnet_cidrs()):
                subnet = aws.ec2.Subnet(
                    f"{name}-private-{index}",
                    vpc_id=vpc.id,
                    cidr_block=cidr,
                    availability_zone=zones.names.apply(lambda names, i=index: names[i % len(names)]),
                    map_public_ip_on_launch=False,
                    tags={"Name": namer.name("generic", "private", str(index)), "tier": "private"},
                    opts=child,
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-private-{index}-rta",
                    subnet_id=subnet.id,
                    route_table_id=route_table.id,
                    opts=child,
                )
                subnets.append(subnet)
            self.vpc_id = vpc.id
            subnet_ids = [s.id for s in subnets]
            self.private_subnet_ids = pulumi.Output.all(*subnet_ids).apply(list)

        app_sg = aws.ec2.SecurityGroup(
            f"{name}-app-sg",
            name=namer.security_group("app"),
            description="Application tier: database clients and Lambda functions",
            vpc_id=self.vpc_id,
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                    description="Clients reach databases, proxies and endpoints; the groups there decide",
                )
            ],
            opts=child,
        )
        self.app_security_group_id = app_sg.id
        self.endpoint_security_group_id: pulumi.Output[str] | None = None
        self.endpoint_ids: dict[str, pulumi.Output[str]] = {}
        if interface_endpoints:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints-sg",
                name=namer.security_group("endpoints"),
                description="VPC interface endpoints: HTTPS from the application tier only",
                vpc_id=self.vpc_id,
                ingress=[
                    aws.ec2.SecurityGroupIngressArgs(
                        protocol="tcp", from_port=443, to_port=443,
                        security_groups=[app_sg.id], description="HTTPS from the app tier",
                    )
                ],
                opts=child,
            )
            self.endpoint_security_group_id = endpoint_sg.id
            region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
            for service in interface_endpoints:
                endpoint = aws.ec2.VpcEndpoint(
                    f"{name}-{service}-endpoint",
                    vpc_id=self.vpc_id,
                    service_name=region.apply(lambda r, s=service: f"com.amazonaws.{r}.{s}"),
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=subnet_ids,
                    security_group_ids=[endpoint_sg.id],
                    opts=child,
                )
                self.endpoint_ids[service] = endpoint.id
        self.register_outputs(self.outputs())

    def _read_shared(self, name: str, shared_stack: str) -> None:
        """Take the VPC, subnets and app security group from the shared stack's ``network`` output."""
        ref = pulumi.StackReference(f"{name}-shared", stack_name=shared_stack, opts=pulumi.ResourceOptions(parent=self))
        network = ref.require_output("network")
        self.vpc_id = network.apply(lambda n: n["vpc_id"])
        self.private_subnet_ids = network.apply(lambda n: list(n["private_subnet_ids"]))
        self.app_security_group_id = network.apply(lambda n: n["app_security_group_id"])

    def outputs(self) -> dict[str, Any]:
        return {
            "vpc_id": self.vpc_id,
            "private_subnet_ids": self.private_subnet_ids,
            "app_security_group_id": self.app_security_group_id,
            "interface_endpoints": self.endpoint_ids,
        }
