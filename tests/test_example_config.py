"""Pulumi.example.yaml shows every config key, and is a config the program accepts."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from automation.planning.plan import build_plan, read_config_file
from components import recipes
from components.network import NetworkArgs

EXAMPLE = Path(__file__).resolve().parent.parent / "Pulumi.example.yaml"


def _dataclass_in(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def _missing_keys(cls: type, shown: Any, path: str) -> list[str]:
    if not isinstance(shown, dict):
        return [f"{path} (not shown as an object)"]
    missing = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        key_path = f"{path}.{field.name}"
        if field.name not in shown:
            missing.append(key_path)
            continue
        nested = _dataclass_in(hints[field.name])
        value = shown[field.name]
        if nested is not None and value is not None:
            if isinstance(value, list):
                missing += _missing_keys(nested, value[0] if value else None, f"{key_path}[0]")
            else:
                missing += _missing_keys(nested, value, key_path)
    return missing


def test_every_config_key_is_shown() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())["config"]
    missing = _missing_keys(NetworkArgs, config.get("db-recipes:network"), "db-recipes:network")
    for name, recipe in recipes.RECIPES.items():
        missing += _missing_keys(recipe.args_type, config.get(f"db-recipes:{name}"), f"db-recipes:{name}")
    for key in recipes.GLOBAL_KEYS:
        if f"db-recipes:{key}" not in config:
            missing.append(f"db-recipes:{key}")
    assert not missing, f"Pulumi.example.yaml does not show: {', '.join(missing)}"


def test_example_config_parses_and_plans() -> None:
    config = read_config_file(EXAMPLE)
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("db-recipes:")}
    parsed = recipes.parse_config(raw, stack="example", region=config["aws:region"])
    assert parsed.recipes == recipes.RECIPE_NAMES
    plan = build_plan(config, stack="example")
    assert plan.of_type("aws:rds/cluster:Cluster")
