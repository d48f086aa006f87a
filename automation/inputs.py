"""Every file a user hands to dbenv is read here, within fixed bounds.

A stack config (``--config``), the project file (``dbenv.toml`` / ``pyproject.toml``), a resource file
(``policy check --from``), a policy config (``--policy-config``) and any later input file go through one
of ``read_yaml``, ``read_json`` or ``read_toml``. What they guarantee, whatever the file holds:

- at most ``MAX_BYTES`` (5 MiB) are read (``MAX_TOML_BYTES``, 256 KiB, for the project file: the
  TOML parser is pure Python); a bigger file, a directory, a FIFO or a device is refused before it
  is read;
- the text is strict UTF-8 (a leading byte-order mark is dropped); anything else is refused with the
  offset of the first bad byte;
- YAML aliases (``*name``, and so ``<<: *name`` merges) are refused, so an alias bomb cannot expand;
  a YAML document holds at most ``MAX_YAML_NODES`` values and a JSON document at most
  ``MAX_JSON_VALUES`` (counted before any object is built: this bounds time and memory);
- no document nests deeper than ``MAX_DEPTH``;
- every failure is one ``InputError`` whose message names the file and what is wrong.

The YAML check walks the parser's events first (libyaml's C parser where PyYAML has it), so a hostile
file is refused after reading its events, before any Python object is built from it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 5 * 1024 * 1024
MAX_TOML_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_YAML_NODES = 100_000
MAX_JSON_VALUES = 500_000
# Possessive quantifiers: no backtracking state kept over a long string.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_JSON_NOT_BRACKET = re.compile(r"[^\[\]{}]")

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(ValueError):
    """A user file that cannot be used: unreadable, too big, not UTF-8, malformed, hostile."""


def read_bytes(path: str | Path, what: str, *, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; never blocks on a FIFO or reads a device."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {what} {path}: {_reason(err)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"cannot read {what} {path}: not a regular file")
        if info.st_size > limit:
            raise InputError(f"{what} {path} is {info.st_size} bytes; the limit is {limit} bytes ({_size(limit)})")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {_reason(err)}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # the file grew while we read it
        raise InputError(f"{what} {path} is larger than the limit of {limit} bytes ({_size(limit)})")
    return data


def _size(limit: int) -> str:
    return f"{limit // 1048576} MiB" if limit >= 1048576 else f"{limit // 1024} KiB"


def read_text(path: str | Path, what: str, *, limit: int = MAX_BYTES) -> str:
    return decode(read_bytes(path, what, limit=limit), f"{what} {Path(path)}")


def decode(data: bytes, source: str) -> str:
    """Strict UTF-8; a leading byte-order mark is dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{source} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}): "
                         "save it as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


# ------------------------------------------------------------------ JSON


def read_json(path: str | Path, what: str) -> Any:
    return parse_json(read_text(path, what), f"{what} {Path(path)}")


def parse_json(text: str, source: str) -> Any:
    _check_json_shape(text, source)
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"{source} nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:  # JSONDecodeError, and int() digit limits
        raise InputError(f"{source} is not valid JSON: {err}") from None


def _check_json_shape(text: str, source: str) -> None:
    """Count values and nesting on the text with its strings blanked, before json builds anything."""
    skeleton = _JSON_STRING.sub('""', text)
    values = skeleton.count(",") + skeleton.count("[") + skeleton.count("{")
    if values > MAX_JSON_VALUES:
        raise InputError(f"{source} holds more than {MAX_JSON_VALUES} values")
    depth = 0
    for bracket in _JSON_NOT_BRACKET.sub("", skeleton):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            raise InputError(f"{source} nests deeper than {MAX_DEPTH} levels")


# ------------------------------------------------------------------ TOML


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    return parse_toml(read_text(path, what, limit=MAX_TOML_BYTES), f"{what} {Path(path)}")


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        document = tomllib.loads(text)
    except RecursionError:
        raise InputError(f"{source} nests deeper than {MAX_DEPTH} levels") from None
    except (tomllib.TOMLDecodeError, ValueError) as err:
        raise InputError(f"{source} is not valid TOML: {err}") from None
    check_depth(document, source)
    return document


# ------------------------------------------------------------------ YAML


def read_yaml(path: str | Path, what: str) -> Any:
    return parse_yaml(read_text(path, what), f"{what} {Path(path)}")


def parse_yaml(text: str, source: str) -> Any:
    """One YAML document, safe types only, no aliases, bounded depth and size."""
    try:
        _check_yaml_events(yaml.parse(text, Loader=_LOADER), source)
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except InputError:
        raise
    except yaml.YAMLError as err:
        raise InputError(f"{source} is not valid YAML: {' '.join(str(err).split())}") from None
    except (ValueError, OverflowError, TypeError) as err:  # e.g. a timestamp like 2024-13-45, a huge number
        raise InputError(f"{source} holds a value YAML cannot convert: {err}") from None


def _check_yaml_events(events: Iterator[Any], source: str) -> None:
    depth = nodes = 0
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise InputError(f"{source}: line {line}: YAML aliases (*{event.anchor}) are not accepted: "
                             "write the value out where it is used")
        if isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise InputError(f"{source} holds more than {MAX_YAML_NODES} values")
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(f"{source} nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


# ------------------------------------------------------------------ depth


def check_depth(document: Any, source: str, limit: int = MAX_DEPTH) -> None:
    """Iterative (a deep document must not blow the Python stack here either)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            raise InputError(f"{source} nests deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)
