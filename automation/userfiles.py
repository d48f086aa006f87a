"""Reading files a user hands in: bounded in size and nesting, UTF-8, YAML without aliases.

A YAML alias can expand a few hundred bytes into gigabytes ("billion laughs"), and a
deeply nested document can exhaust the stack; neither belongs in a settings file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
MAX_DEPTH = 16


class UserFileError(ValueError):
    """A user file that cannot be used; the message names the file and what is wrong."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise UserFileError(f"line {event.start_mark.line + 1}: YAML aliases (*name) are not allowed")
        return super().compose_node(parent, index)


def read_text(path: Path, *, max_bytes: int = MAX_BYTES) -> str:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UserFileError(f"{path}: {size} bytes is larger than the {max_bytes}-byte limit")
        raw = path.read_bytes()[: max_bytes + 1]
    except OSError as err:
        raise UserFileError(f"cannot read {path}: {err.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserFileError(f"{path}: not UTF-8 text (byte {err.start})") from None


def read_yaml(path: Path, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The YAML document in ``path``; UserFileError for a big, non-UTF-8, aliased, deep or invalid file."""
    text = read_text(path, max_bytes=max_bytes)
    try:
        document = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except UserFileError as err:
        raise UserFileError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise UserFileError(f"{path} is not valid YAML: {err}") from None
    _check_depth(document, max_depth, path)
    return document


def _check_depth(value: Any, limit: int, path: Path) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise UserFileError(f"{path}: nested deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
