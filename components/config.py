"""Turning stack config values (JSON-ish mappings) into the typed, frozen ``*Args`` dataclasses.

Kept free of Pulumi so it is equally usable from the program, the CLI and tests.
Every error names the full config path of the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A stack config value that cannot be used; the message names the key."""


def from_mapping(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from ``data`` (a mapping from config), validating every key."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected an object with keys {_field_list(cls)}, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r} (valid keys: {_field_list(cls)})"
        )
    hints = get_type_hints(cls)
    values = {name: _coerce(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from None


def _field_list(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls) if f.init)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _coerce(tp: Any, value: Any, path: str) -> Any:  # noqa: C901 - one branch per type form
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {_describe(value)} fits none of {tp}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not allowed (allowed: {', '.join(map(str, allowed))})")
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if origin in (tuple, list, typing.Sequence) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_describe(value)}")
        item_types = get_args(tp)
        item_type = item_types[0] if item_types else Any
        return tuple(_coerce(item_type, item, f"{path}[{i}]") for i, item in enumerate(value))
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected an object, got {_describe(value)}")
        key_type, value_type = get_args(tp) or (str, Any)
        return {
            _coerce(key_type, k, f"{path}"): _coerce(value_type, v, f"{path}.{k}") for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{path}: expected true or false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a whole number, got {_describe(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(f"{path}: expected a whole number, got {_describe(value)}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {_describe(value)}")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {_describe(value)}") from None
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {_describe(value)}")
    raise ConfigError(f"{path}: unsupported config type {tp!r}")
