"""Rebuild ``automation/planning/prices.json`` from the AWS Price List API (needs AWS credentials; never run in tests).

Usage: python -m automation.planning.price_refresh [--dry-run] [--region us-east-1 ...]

Each entry of the table is looked up by a Price List query (service code + attribute filters,
https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html);
the on-demand price of the single matching product replaces the shipped figure and the table's date
becomes today's. An entry no query covers, or whose query matches nothing or more than one price,
keeps its value and is listed at the end, so a rename on AWS's side is seen, not hidden.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

from automation.planning.cost import PRICES_FILE

Filters = dict[str, str]
Fetch = Callable[[str, Filters], list[str]]

_ENGINES = {"mysql": "MySQL", "postgres": "PostgreSQL", "mariadb": "MariaDB"}
_VOLUMES = {"gp2": "General Purpose", "gp3": "General Purpose-GP3", "io1": "Provisioned IOPS",
            "io2": "Provisioned IOPS-IO2", "standard": "Magnetic"}
_FIXED: dict[str, tuple[str, Filters]] = {
    "kms.key": ("awskms", {"productFamily": "Encryption Key"}),
    "secretsmanager.secret": ("AWSSecretsManager", {"productFamily": "Secret"}),
    "vpc.nat-gateway": ("AmazonEC2", {"productFamily": "NAT Gateway", "operation": "NatGateway"}),
    "vpc.interface-endpoint": ("AmazonVPC", {"productFamily": "VpcEndpoint", "endpointType": "PrivateLink"}),
    "dynamodb.wcu": ("AmazonDynamoDB", {"productFamily": "Provisioned IOPS", "group": "DDB-WriteUnits"}),
    "dynamodb.rcu": ("AmazonDynamoDB", {"productFamily": "Provisioned IOPS", "group": "DDB-ReadUnits"}),
    "dynamodb.storage": ("AmazonDynamoDB", {"productFamily": "Database Storage", "volumeType": "Amazon DynamoDB - Indexed DataStore"}),
    "cloudwatch.alarm": ("AmazonCloudWatch", {"productFamily": "Alarm", "alarmType": "Standard"}),
    "rds-proxy.vcpu": ("AmazonRDS", {"productFamily": "RDS Proxy"}),
    "aurora.acu": ("AmazonRDS", {"productFamily": "ServerlessV2", "databaseEngine": "Aurora PostgreSQL"}),
}


def query_for(key: str) -> tuple[str, Filters] | None:
    """The Price List service code and attribute filters of a table key (None: no query covers it)."""
    parts = key.split(".", 3)
    if key.startswith("rds.instance.") and parts[2] in _ENGINES:
        return "AmazonRDS", {"instanceType": parts[3], "databaseEngine": _ENGINES[parts[2]],
                             "deploymentOption": "Single-AZ"}
    if key.startswith("rds.storage.") and len(parts) == 3 and parts[2] in _VOLUMES:
        return "AmazonRDS", {"productFamily": "Database Storage", "volumeType": _VOLUMES[parts[2]],
                             "databaseEngine": "MySQL", "deploymentOption": "Single-AZ"}
    if key.startswith("dms.instance."):
        return "AWSDatabaseMigrationSvc", {"instanceType": key[len("dms.instance."):], "availabilityZone": "Single"}
    return _FIXED.get(key)


def on_demand_prices(offer_json: str) -> list[float]:
    """The USD on-demand prices of one Price List product (its first, lowest tier per dimension)."""
    offer = json.loads(offer_json)
    prices = []
    for term in offer.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            if str(dimension.get("beginRange", "0")) != "0":
                continue
            value = float(dimension.get("pricePerUnit", {}).get("USD", "0"))
            if value > 0:
                prices.append(value)
    return prices


def refresh(table: dict[str, Any], fetch: Fetch, regions: Iterable[str] | None = None,
            today: date | None = None) -> tuple[dict[str, Any], list[str]]:
    """A new table with every price a query finds; and the keys left as they were, with why."""
    updated = json.loads(json.dumps(table))
    kept: list[str] = []
    for region in regions or list(updated["regions"]):
        for key, entry in updated["regions"].get(region, {}).items():
            query = query_for(key)
            if query is None:
                kept.append(f"{region} {key}: no Price List query")
                continue
            service, filters = query
            found = sorted({price for offer in fetch(service, {**filters, "regionCode": region})
                            for price in on_demand_prices(offer)})
            if len(found) != 1:
                kept.append(f"{region} {key}: {len(found)} prices matched {filters}")
                continue
            entry["usd"] = found[0]
    updated["prices_as_of"] = (today or date.today()).isoformat()
    return updated, kept


def boto3_fetch() -> Fetch:  # pragma: no cover - needs AWS credentials
    import boto3

    client = boto3.client("pricing", region_name="us-east-1")

    def fetch(service: str, filters: Filters) -> list[str]:
        terms = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()]
        pages = client.get_paginator("get_products").paginate(ServiceCode=service, Filters=terms)
        return [item for page in pages for item in page["PriceList"]]

    return fetch


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - needs AWS credentials
    parser = argparse.ArgumentParser(description="Rebuild the price table from the AWS Price List API.")
    parser.add_argument("--region", action="append", help="only this region (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    args = parser.parse_args(argv)
    table = json.loads(Path(PRICES_FILE).read_text(encoding="utf-8"))
    updated, kept = refresh(table, boto3_fetch(), args.region)
    for region, entries in updated["regions"].items():
        for key, entry in entries.items():
            before = table["regions"][region][key]["usd"]
            if entry["usd"] != before:
                print(f"{region} {key}: {before} -> {entry['usd']}")
    for line in kept:
        print(f"kept {line}", file=sys.stderr)
    if not args.dry_run:
        Path(PRICES_FILE).write_text(json.dumps(updated, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
