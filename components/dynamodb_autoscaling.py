"""4.6 A provisioned-capacity DynamoDB table scaled by Application Auto Scaling.

On-demand vs provisioned: on-demand (``PAY_PER_REQUEST``) bills every read and
write request and needs no capacity planning, which suits spiky, unknown or low
traffic and short-lived branch stacks. Provisioned capacity bills read/write
capacity units per hour whether used or not; with target-tracking autoscaling
keeping utilization near the target, steady high traffic costs noticeably less
than the same traffic on demand. Scaling reacts in minutes, so sudden bursts
above the provisioned capacity are throttled until it catches up.

Application Auto Scaling owns the capacities after creation. The table resource
therefore ignores changes to its own and every index's read/write capacity
(``TABLE_IGNORE_CHANGES``): otherwise each ``pulumi up`` would reset the
capacities to the program's values and fight the scaler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.naming import Namer
from components.parts import check_kms_key_ref, customer_key

ATTRIBUTE_TYPES = ("S", "N", "B")
PROJECTIONS = ("ALL", "KEYS_ONLY", "INCLUDE")
TARGET_RANGE = (20.0, 90.0)
COOLDOWN_MAX = 3600
MAX_GSIS = 20
# Pulumi property paths (camelCase input names) of the capacities the scaler manages.
# ``[*]`` covers every index; an index added later still gets the program's capacity.
TABLE_IGNORE_CHANGES = (
    "readCapacity",
    "writeCapacity",
    "globalSecondaryIndexes[*].readCapacity",
    "globalSecondaryIndexes[*].writeCapacity",
)
# Pulumi property paths of the creation-only restore inputs.
RESTORE_IGNORE_CHANGES = ("restoreSourceName", "restoreToLatestTime")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
BILLING_MODES = ("PROVISIONED", "PAY_PER_REQUEST")
STREAM_VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")


def _check_type(field_name: str, value: str) -> None:
    if value not in ATTRIBUTE_TYPES:
        raise ValueError(f"{field_name}: {value!r} is not allowed (allowed: {', '.join(ATTRIBUTE_TYPES)})")


def _check_attribute_name(field_name: str, value: str) -> None:
    if not 1 <= len(value) <= 255:
        raise ValueError(f"{field_name}: attribute names are 1..255 characters, got {value!r}")


@dataclass(frozen=True)
class GsiArgs:
    """A global secondary index; its capacities are autoscaled like the table's."""

    name: str
    hash_key: str
    hash_key_type: str = "S"
    range_key: str | None = None
    range_key_type: str = "S"
    projection: str = "ALL"
    # Only with projection INCLUDE: the non-key attributes copied into the index.
    non_key_attributes: tuple[str, ...] = ()
    # This index's autoscaling limits; None: the table's.
    read_min_capacity: int | None = None
    read_max_capacity: int | None = None
    write_min_capacity: int | None = None
    write_max_capacity: int | None = None

    def __post_init__(self) -> None:
        for kind in ("read", "write"):
            low, high = getattr(self, f"{kind}_min_capacity"), getattr(self, f"{kind}_max_capacity")
            if low is not None and low < 1:
                raise ValueError(f"{kind}_min_capacity: must be at least 1, got {low}")
            if low is not None and high is not None and high < low:
                raise ValueError(f"{kind}_max_capacity: must be at least {kind}_min_capacity ({low}), got {high}")
        if not _NAME.match(self.name):
            raise ValueError(f"name: index name {self.name!r} must be 3..255 characters from [A-Za-z0-9_.-]")
        _check_attribute_name("hash_key", self.hash_key)
        _check_type("hash_key_type", self.hash_key_type)
        if self.range_key is not None:
            _check_attribute_name("range_key", self.range_key)
            _check_type("range_key_type", self.range_key_type)
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection: {self.projection!r} is not allowed (allowed: {', '.join(PROJECTIONS)})")
        if self.projection == "INCLUDE" and not self.non_key_attributes:
            raise ValueError("non_key_attributes: projection INCLUDE needs at least one attribute")
        if self.projection != "INCLUDE" and self.non_key_attributes:
            raise ValueError(f"non_key_attributes: only allowed with projection INCLUDE, not {self.projection}")

    def key_attributes(self) -> list[tuple[str, str]]:
        keys = [(self.hash_key, self.hash_key_type)]
        if self.range_key is not None:
            keys.append((self.range_key, self.range_key_type))
        return keys


@dataclass(frozen=True)
class DynamoDbAutoscalingArgs:
    table_name: str = "items"
    hash_key: str = "pk"
    hash_key_type: str = "S"
    range_key: str | None = "sk"
    range_key_type: str = "S"
    global_secondary_indexes: tuple[GsiArgs, ...] = (
        GsiArgs(name="gsi1", hash_key="gsi1pk", range_key="gsi1sk"),
    )
    read_min_capacity: int = 1
    read_max_capacity: int = 10
    read_target_utilization: float = 70.0
    write_min_capacity: int = 1
    write_max_capacity: int = 10
    write_target_utilization: float = 70.0
    # Seconds between scaling activities: scale-out reacts fast, scale-in waits for the load to settle.
    scale_in_cooldown: int = 60
    scale_out_cooldown: int = 60
    # An existing customer-managed KMS key; a new one (with rotation) is created when None.
    kms_key_arn: str | None = None
    # None: on for durable stacks, off for ephemeral ones.
    point_in_time_recovery: bool | None = None
    # PROVISIONED (autoscaled, the recipe) or PAY_PER_REQUEST (on demand, no autoscaling).
    billing_mode: str = "PROVISIONED"
    # On demand only: caps on request units per second (None: no cap).
    max_read_request_units: int | None = None
    max_write_request_units: int | None = None
    # An attribute holding an expiry time (epoch seconds); items past it are deleted.
    ttl_attribute: str | None = None
    # None: no stream; else what each stream record holds.
    stream_view_type: str | None = None

    def __post_init__(self) -> None:
        if self.billing_mode not in BILLING_MODES:
            raise ValueError(f"billing_mode: {self.billing_mode!r} is not allowed (allowed: {', '.join(BILLING_MODES)})")
        for label in ("max_read_request_units", "max_write_request_units"):
            value = getattr(self, label)
            if value is not None and self.billing_mode != "PAY_PER_REQUEST":
                raise ValueError(f"{label}: only with billing_mode PAY_PER_REQUEST")
            if value is not None and value < 1:
                raise ValueError(f"{label}: must be at least 1, got {value}")
        if self.stream_view_type is not None and self.stream_view_type not in STREAM_VIEW_TYPES:
            raise ValueError(f"stream_view_type: {self.stream_view_type!r} is not allowed "
                             f"(allowed: {', '.join(STREAM_VIEW_TYPES)})")
        if self.ttl_attribute is not None:
            _check_attribute_name("ttl_attribute", self.ttl_attribute)
        # The physical name is '<prefix>-<table_name>': the part alone must leave room for the prefix.
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", self.table_name):
            raise ValueError(f"table_name: {self.table_name!r} must be 1..200 characters from [A-Za-z0-9_.-]")
        _check_attribute_name("hash_key", self.hash_key)
        _check_type("hash_key_type", self.hash_key_type)
        if self.range_key is not None:
            _check_attribute_name("range_key", self.range_key)
            _check_type("range_key_type", self.range_key_type)
            if self.range_key == self.hash_key:
                raise ValueError("range_key: must differ from hash_key")
        self._check_capacity("read")
        self._check_capacity("write")
        for label in ("scale_in_cooldown", "scale_out_cooldown"):
            value = getattr(self, label)
            if not 0 <= value <= COOLDOWN_MAX:
                raise ValueError(f"{label}: must be 0..{COOLDOWN_MAX} seconds, got {value}")
        self._check_indexes()
        self.attribute_types()
        check_kms_key_ref(self.kms_key_arn)

    def _check_capacity(self, kind: str) -> None:
        low = getattr(self, f"{kind}_min_capacity")
        high = getattr(self, f"{kind}_max_capacity")
        target = getattr(self, f"{kind}_target_utilization")
        if low < 1:
            raise ValueError(f"{kind}_min_capacity: must be at least 1, got {low}")
        if high < low:
            raise ValueError(f"{kind}_max_capacity: must be at least {kind}_min_capacity ({low}), got {high}")
        lo, hi = TARGET_RANGE
        if not lo <= target <= hi:
            raise ValueError(f"{kind}_target_utilization: must be {lo:g}..{hi:g} percent, got {target:g}")

    def _check_indexes(self) -> None:
        if len(self.global_secondary_indexes) > MAX_GSIS:
            raise ValueError(f"global_secondary_indexes: at most {MAX_GSIS} per table")
        names = [gsi.name for gsi in self.global_secondary_indexes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"global_secondary_indexes: index name {duplicates[0]!r} is used twice")

    def table_keys(self) -> list[tuple[str, str]]:
        keys = [(self.hash_key, self.hash_key_type)]
        if self.range_key is not None:
            keys.append((self.range_key, self.range_key_type))
        return keys

    def attribute_types(self) -> dict[str, str]:
        """Every key attribute of the table and its indexes, with one type each."""
        types: dict[str, str] = {}
        keys = self.table_keys()
        for gsi in self.global_secondary_indexes:
            keys.extend(gsi.key_attributes())
        for attribute, attribute_type in keys:
            if types.setdefault(attribute, attribute_type) != attribute_type:
                raise ValueError(
                    f"global_secondary_indexes: attribute {attribute!r} is declared both as "
                    f"{types[attribute]} and as {attribute_type}; a key attribute has one type"
                )
        return types


@dataclass(frozen=True)
class _Scalable:
    """One autoscaled capacity: the table's or an index's reads or writes."""

    key: str
    resource_id: pulumi.Input[str]
    dimension: str
    metric: str
    min_capacity: int
    max_capacity: int
    target: float


def _limit(gsi: GsiArgs | None, args: DynamoDbAutoscalingArgs, name: str) -> int:
    own = getattr(gsi, name) if gsi is not None else None
    return own if own is not None else getattr(args, name)


class DynamoDbAutoscaling(pulumi.ComponentResource):
    """A PROVISIONED, KMS-encrypted, PITR table whose table and index capacities track a target."""

    def __init__(
        self,
        name: str,
        args: DynamoDbAutoscalingArgs,
        *,
        namer: Namer,
        ephemeral: bool,
        stack_key: pulumi.Input[str] | None = None,
        restore_source: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``stack_key``: the stack's customer-managed key, unless ``args.kms_key_arn`` names one.
        ``restore_source``: create the table as a restore of this table (the parent stack's) at its
        latest restorable time (RestoreTableToPointInTime; the source needs point-in-time recovery)."""
        super().__init__("db-recipes:dynamodb:AutoscaledTable", name, None, opts)
        self._namer = namer
        self.kms_key_arn = customer_key(name, args.kms_key_arn, alias=namer.kms_alias(name), ephemeral=ephemeral,
                                        description="DynamoDB table server-side encryption",
                                        opts=pulumi.ResourceOptions(parent=self), stack_key=stack_key)
        self.table = self._table(name, args, namer, ephemeral, restore_source)
        self.table_name = self.table.name
        self.table_arn = self.table.arn
        self.scaling_target_ids: dict[str, pulumi.Output[str]] = {}
        self.policy_arns: dict[str, pulumi.Output[str]] = {}
        self.stream_arn = self.table.stream_arn if args.stream_view_type else None
        if args.billing_mode == "PROVISIONED":
            for scalable in self._scalables(args):
                self._autoscale(name, args, scalable)
        self.register_outputs(self.outputs())

    def _table(self, name: str, args: DynamoDbAutoscalingArgs, namer: Namer, ephemeral: bool,
               restore_source: pulumi.Input[str] | None) -> aws.dynamodb.Table:
        provisioned = args.billing_mode == "PROVISIONED"
        indexes = [
            aws.dynamodb.TableGlobalSecondaryIndexArgs(
                name=gsi.name,
                key_schemas=[
                    aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=attribute, key_type=role)
                    for (attribute, _), role in zip(gsi.key_attributes(), ("HASH", "RANGE"), strict=False)
                ],
                projection_type=gsi.projection,
                non_key_attributes=list(gsi.non_key_attributes) or None,
                # Starting capacities only: the scaler owns them afterwards (see TABLE_IGNORE_CHANGES).
                read_capacity=(gsi.read_min_capacity or args.read_min_capacity) if provisioned else None,
                write_capacity=(gsi.write_min_capacity or args.write_min_capacity) if provisioned else None,
            )
            for gsi in args.global_secondary_indexes
        ]
        pitr = args.point_in_time_recovery if args.point_in_time_recovery is not None else not ephemeral
        self.point_in_time_recovery = pitr
        # A restore is creation-only: later changes to its source never replace the table. The
        # provider sends server_side_encryption as SSESpecificationOverride, so the restored table
        # is under this stack's key (terraform-provider-aws internal/service/dynamodb/table.go).
        restore: dict[str, Any] = {}
        ignored = list(TABLE_IGNORE_CHANGES) if provisioned else []
        if restore_source is not None:
            restore = {"restore_source_name": restore_source, "restore_to_latest_time": True}
            ignored += list(RESTORE_IGNORE_CHANGES)
        on_demand = None
        if not provisioned and (args.max_read_request_units or args.max_write_request_units):
            on_demand = aws.dynamodb.TableOnDemandThroughputArgs(
                max_read_request_units=args.max_read_request_units,
                max_write_request_units=args.max_write_request_units)
        return aws.dynamodb.Table(
            f"{name}-table",
            name=namer.dynamodb_table(args.table_name),
            billing_mode=args.billing_mode,
            hash_key=args.hash_key,
            range_key=args.range_key,
            attributes=[
                aws.dynamodb.TableAttributeArgs(name=attribute, type=attribute_type)
                for attribute, attribute_type in args.attribute_types().items()
            ],
            read_capacity=args.read_min_capacity if provisioned else None,
            write_capacity=args.write_min_capacity if provisioned else None,
            on_demand_throughput=on_demand,
            global_secondary_indexes=indexes or None,
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=args.ttl_attribute, enabled=True)
            if args.ttl_attribute else None,
            stream_enabled=True if args.stream_view_type else None,
            stream_view_type=args.stream_view_type,
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=self.kms_key_arn
            ),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=pitr),
            deletion_protection_enabled=not ephemeral,
            **restore,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=ignored or None),
        )

    def _scalables(self, args: DynamoDbAutoscalingArgs) -> list[_Scalable]:
        table_id = pulumi.Output.concat("table/", self.table.name)
        owners: list[tuple[str, pulumi.Input[str], str, GsiArgs | None]] = [("table", table_id, "table", None)]
        owners += [
            (f"index-{gsi.name}", pulumi.Output.concat(table_id, "/index/", gsi.name), "index", gsi)
            for gsi in args.global_secondary_indexes
        ]
        scalables = []
        for key, resource_id, level, gsi in owners:
            for kind, unit in (("read", "Read"), ("write", "Write")):
                scalables.append(
                    _Scalable(
                        key=f"{key}-{kind}",
                        resource_id=resource_id,
                        dimension=f"dynamodb:{level}:{unit}CapacityUnits",
                        metric=f"DynamoDB{unit}CapacityUtilization",
                        min_capacity=_limit(gsi, args, f"{kind}_min_capacity"),
                        max_capacity=_limit(gsi, args, f"{kind}_max_capacity"),
                        target=float(getattr(args, f"{kind}_target_utilization")),
                    )
                )
        return scalables

    def _autoscale(self, name: str, args: DynamoDbAutoscalingArgs, scalable: _Scalable) -> None:
        child = pulumi.ResourceOptions(parent=self)
        # No role_arn: Application Auto Scaling uses its DynamoDB service-linked role.
        target = aws.appautoscaling.Target(
            f"{name}-{scalable.key}-target",
            service_namespace="dynamodb",
            resource_id=scalable.resource_id,
            scalable_dimension=scalable.dimension,
            min_capacity=scalable.min_capacity,
            max_capacity=scalable.max_capacity,
            opts=child,
        )
        policy = aws.appautoscaling.Policy(
            f"{name}-{scalable.key}-policy",
            name=self._namer.name("generic", args.table_name, scalable.key),
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration=(
                aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    predefined_metric_specification=(
                        aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                            predefined_metric_type=scalable.metric
                        )
                    ),
                    target_value=scalable.target,
                    scale_in_cooldown=args.scale_in_cooldown,
                    scale_out_cooldown=args.scale_out_cooldown,
                )
            ),
            opts=child,
        )
        self.scaling_target_ids[scalable.key] = target.id
        self.policy_arns[scalable.key] = policy.arn

    def outputs(self) -> dict[str, Any]:
        return {
            "table_name": self.table_name,
            "table_arn": self.table_arn,
            "kms_key_arn": self.kms_key_arn,
            "scaling_target_ids": self.scaling_target_ids,
            "policy_arns": self.policy_arns,
            "stream_arn": self.stream_arn,
            # A clone of this stack restores the table to its latest restorable time: that needs PITR.
            "point_in_time_recovery": self.point_in_time_recovery,
        }
