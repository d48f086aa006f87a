"""Shared fixtures: offline plans of the stack program under Pulumi mocks."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from automation.planning.plan import Plan, build_plan

# Fixtures of the db tier (MariaDB/PostgreSQL stand-ins for RDS) and the Lambda function modules.
pytest_plugins = ["tests.dbservers", "tests.schema_fixtures"]


def make_plan(recipes: Any, *, stack: str = "test", region: str = "us-east-1", ephemeral: bool = False,
              **recipe_config: Any) -> Plan:
    """Plan ``recipes`` with per-recipe config given as keyword args (``aurora_serverless={...}``)."""
    config: dict[str, Any] = {"aws:region": region, "db-recipes:recipes": recipes, "db-recipes:ephemeral": ephemeral}
    for key, value in recipe_config.items():
        config[f"db-recipes:{key.replace('_', '-')}"] = value
    return build_plan(config, stack=stack)


@pytest.fixture
def plan() -> Callable[..., Plan]:
    return make_plan


def policy_statements(document: Any) -> list[dict[str, Any]]:
    """The statements of an IAM policy document given as a JSON string or a mapping."""
    doc = json.loads(document) if isinstance(document, str) else document
    statements = doc["Statement"]
    return statements if isinstance(statements, list) else [statements]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("pulumi"):
        return
    skip = pytest.mark.skip(reason="needs the pulumi CLI on PATH (and the aws plugin); not installed here")
    for item in items:
        if "engine" in item.keywords:
            item.add_marker(skip)
