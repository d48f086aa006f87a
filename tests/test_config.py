from __future__ import annotations

from dataclasses import dataclass

import pytest

from components import recipes
from components.config import ConfigError, from_mapping


def parse(**raw: object) -> recipes.StackConfig:
    return recipes.parse_config({k.replace("_", "-") if k not in ("network",) else k: v for k, v in raw.items()},
                                stack="dev")


def test_all_selects_every_recipe_in_build_order() -> None:
    config = parse(recipes="all")
    assert config.recipes == recipes.RECIPE_NAMES


def test_selection_from_list_and_comma_string_is_ordered() -> None:
    assert parse(recipes=["dynamodb-autoscaling", "aurora-serverless"]).recipes == (
        "aurora-serverless", "dynamodb-autoscaling")
    assert parse(recipes="dynamodb-autoscaling, aurora-serverless").recipes == (
        "aurora-serverless", "dynamodb-autoscaling")


def test_json_string_values_are_decoded_as_pulumi_passes_them() -> None:
    config = recipes.parse_config({"recipes": '["aurora-serverless"]', "ephemeral": "true",
                                   "aurora-serverless": '{"max_capacity": 8}'}, stack="dev")
    assert config.recipes == ("aurora-serverless",)
    assert config.ephemeral is True
    assert config.args("aurora-serverless").max_capacity == 8.0


def test_data_api_alone_brings_the_aurora_cluster() -> None:
    assert parse(recipes=["data-api"]).recipes == ("aurora-serverless", "data-api")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"recipes": ["aurora-serverless", "mongo"]}, "unknown recipe 'mongo'.*valid: all, aurora-serverless"),
        ({"recipes": []}, "empty"),
        ({"recipes": 5}, "expected 'all' or a list"),
        ({}, "choose recipes"),
        ({"recipes": "all", "colour": "blue"}, "db-recipes:colour: unknown config key.*valid keys: recipes"),
        ({"recipes": "all", "ephemeral": "maybe"}, "db-recipes:ephemeral.*true or false"),
        ({"recipes": "all", "branch": "bad..branch"}, "db-recipes:branch"),
        ({"recipes": "all", "aurora-serverless": ["x"]}, "expected an object"),
    ],
)
def test_bad_config_names_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        recipes.parse_config(raw, stack="dev")


def test_bad_stack_name() -> None:
    with pytest.raises(ValueError, match="invalid stack name"):
        recipes.parse_config({"recipes": "all"}, stack="no spaces")


@dataclass(frozen=True)
class Inner:
    size: int = 1


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    ratio: float = 0.5
    flags: tuple[str, ...] = ()
    inner: Inner = Inner()
    items: tuple[Inner, ...] = ()
    maybe: int | None = None

    def __post_init__(self) -> None:
        if self.ratio > 1:
            raise ValueError("ratio: must be at most 1")


def test_from_mapping_converts_nested_types() -> None:
    value = from_mapping(Outer, {"flags": ["a", "b"], "inner": {"size": "3"}, "items": [{"size": 2}], "maybe": None},
                         "ns:outer")
    assert value == Outer(flags=("a", "b"), inner=Inner(3), items=(Inner(2),))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inner": {"size": 1.5}}, r"ns:outer.inner.size: expected a whole number"),
        ({"items": [{"size": 1}, {"sise": 2}]}, r"ns:outer.items\[1\]: unknown key 'sise' \(valid keys: size\)"),
        ({"flags": "a"}, r"ns:outer.flags: expected a list"),
        ({"ratio": 2}, r"ns:outer: ratio: must be at most 1"),
        ({"name": 3}, r"ns:outer.name: expected a string"),
        ({"maybe": True}, r"ns:outer.maybe: expected a whole number"),
    ],
)
def test_from_mapping_errors_name_the_path(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(Outer, data, "ns:outer")
