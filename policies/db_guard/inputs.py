"""Reading resource inputs the way AWS reads the API call they become.

Properties arrive with their raw (camelCase) names, as the engine sends them,
and in whatever shape a program or a YAML config produced: numbers may be
strings ("7"), engine names may be upper-case, policy documents may be JSON
text or objects. Every helper here returns a value in one canonical shape, or
``MISSING`` (absent or null: the API default applies) or ``UNKNOWN`` (set, but
not known during preview).

A boolean is a boolean: the engine sends a program's ``True`` as a protobuf
``bool_value``, so ``1``, ``"true"`` or ``"yes"`` in a resource's inputs come
from a hand-written plan or stack, and the provider would reject or coerce them
in its own way. ``boolean`` raises ``Malformed`` for them ("expected
true/false, got ..."), and the rules report that as a violation, never as true.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown during preview>"


MISSING: Any = _Missing()
UNKNOWN: Any = _Unknown()


def lookup(props: Any, *path: str | int) -> Any:
    """The value at ``path``; ``MISSING`` when absent or null, ``UNKNOWN`` when not known during preview."""
    current = props
    for key in path:
        try:
            current = current[key]
        except UnknownValueError:
            return UNKNOWN
        except (KeyError, IndexError, TypeError):
            return MISSING
        if current is None:
            return MISSING
    return current


def known(props: Any, *path: str | int) -> Any:
    """Like ``lookup``, but a value unknown during preview raises the SDK's ``UnknownValueError``.

    Used where the verdict needs the value itself: the SDK then reports that the
    policy cannot be run during preview (advisory), and the update judges again.
    """
    current = props
    for key in path:
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
        if current is None:
            return MISSING
    return current


def is_set(value: Any) -> bool:
    """Present and non-empty; an unknown value is set (it will have a value)."""
    if value is UNKNOWN:
        return True
    if value is MISSING or value == "":
        return False
    if isinstance(value, (Sequence, Mapping)) and not isinstance(value, str):
        return len(value) > 0
    return True


class Malformed(Exception):
    """An input of the wrong type for its API parameter; the message names it and what it holds."""


def boolean(props: Any, *path: str | int) -> Any:
    """The boolean at ``path``: True, False or ``MISSING`` (the API default applies).

    Anything else (``1``, ``"true"``, ``"yes"``) raises ``Malformed``; a value unknown during preview
    raises the SDK's ``UnknownValueError`` (see ``known``).
    """
    value = known(props, *path)
    if value is MISSING or isinstance(value, bool):
        return value
    raise Malformed(malformed_boolean(".".join(str(p) for p in path), value))


def malformed_boolean(label: str, value: Any) -> str:
    return f"{label}: expected true/false, got {shown(value)}"


def as_number(value: Any) -> float | None:
    """A number from an int, a float (the wire sends doubles) or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def engine_name(value: Any) -> Any:
    """RDS engine names are case-insensitive (the API stores them lower-case): normalise, keep MISSING/UNKNOWN."""
    if isinstance(value, str):
        return value.strip().lower()
    return value


def major_version(value: Any) -> int | None:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    match = re.match(r"\s*(\d+)", str(value))
    return int(match.group(1)) if match else None


def is_aws_managed_key(key: Any) -> bool:
    """``aws/<service>`` aliases (bare, ``alias/``-prefixed or as an alias ARN) name AWS managed keys."""
    if not isinstance(key, str):
        return False
    alias = key.split(":alias/", 1)[1] if ":alias/" in key else key.removeprefix("alias/")
    return alias.lower().startswith("aws/")


def shown(value: Any) -> str:
    """A property value for a message; numbers arrive as doubles, so 7.0 is shown as 7."""
    if value is MISSING:
        return "not set"
    if value is UNKNOWN:
        return "unknown during preview"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


def as_list(value: Any) -> list[Any]:
    """A list from a list, a single value, or nothing."""
    if value is MISSING or value is UNKNOWN or value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return [lookup(value, index) for index in range(len(value))]


def document(value: Any) -> Mapping[str, Any] | None:
    """A policy document from JSON text or an object; None when absent, unknown or not a document.

    A malformed document is not ours to reject: IAM and KMS refuse it at the API.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, Mapping) else None


def statements(doc: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, statement) for every statement; ``Statement`` may be one object or a list."""
    if doc is None:
        return []
    found = []
    for index, statement in enumerate(as_list(doc.get("Statement"))):
        if isinstance(statement, Mapping):
            sid = statement.get("Sid")
            found.append((f"statement {sid!r}" if sid else f"Statement[{index}]", statement))
    return found


def strings(value: Any, depth: int = 0) -> Iterable[str]:
    """Every string inside a property value (bounded depth), for identifier matching."""
    if depth > 6:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key in value:
            yield from strings(lookup(value, key), depth + 1)
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        for index in range(len(value)):
            yield from strings(lookup(value, index), depth + 1)


def last_arn_part(identifier: str) -> str:
    """``arn:aws:rds:r:a:db:name`` -> ``name``; a plain identifier is returned as is. RDS ids are case-insensitive."""
    return identifier.rsplit(":", 1)[-1].lower() if identifier.startswith("arn:") else identifier.lower()
