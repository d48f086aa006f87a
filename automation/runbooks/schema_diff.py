"""How a branch's database schema differs from its parent's: tables, columns, indexes, keys, views.

Reflection is SQLAlchemy's inspector and the comparison is Alembic's autogenerate
(``compare_metadata``): the branch is reflected into a ``MetaData`` and compared with the live
parent, so every difference reads as "what the branch changed" (``added`` exists only in the
branch). Alembic does not compare views; they are compared here by name and by the definition
the inspector returns.

Both sides must be the same dialect (PostgreSQL or MySQL/MariaDB): a schema is compared with
its own kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LEDGER = "dbenv_hooks"  # where the hooks record the SQL files they ran; never part of a diff
KINDS = ("table", "column", "index", "unique", "foreign_key", "view")
_SIGN = {"added": "+", "removed": "-", "changed": "~"}


class SchemaDiffError(Exception):
    """The comparison cannot be made (different dialects, unreachable database); the message says why."""


@dataclass(frozen=True)
class Change:
    kind: str  # one of KINDS
    change: str  # added | removed | changed
    table: str | None
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "change": self.change, "table": self.table, "name": self.name,
                "detail": self.detail}

    def line(self) -> str:
        where = f"{self.table}.{self.name}" if self.table and self.kind == "column" else self.name
        on = f" on {self.table}" if self.table and self.kind not in ("column", "table", "view") else ""
        text = f"{_SIGN[self.change]} {self.kind.replace('_', ' ')} {where}{on}"
        if self.change == "changed":
            parts = [f"{key} {_show(pair['parent'])} -> {_show(pair['branch'])}" for key, pair in self.detail.items()]
            return f"{text}: {'; '.join(parts)}"
        described = _describe(self.kind, self.detail)
        return f"{text} {described}".rstrip()


@dataclass(frozen=True)
class SchemaDiff:
    branch: str
    parent: str
    dialect: str
    changes: tuple[Change, ...]

    @property
    def differs(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        counts = {kind: sum(1 for c in self.changes if c.kind == kind) for kind in KINDS}
        return {"branch": self.branch, "parent": self.parent, "dialect": self.dialect, "differs": self.differs,
                "counts": {k: v for k, v in counts.items() if v}, "changes": [c.to_json() for c in self.changes]}

    def summary(self) -> str:
        head = f"schema of {self.branch} against {self.parent} ({self.dialect})"
        if not self.changes:
            return f"{head}: identical"
        lines = [f"{head}: {len(self.changes)} difference{'s' if len(self.changes) != 1 else ''}"]
        lines += ["  " + change.line() for change in self.changes]
        return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "null" if value else "not null"
    return str(value)


def _describe(kind: str, detail: dict[str, Any]) -> str:
    if kind == "table":
        return "(" + ", ".join(detail.get("columns", [])) + ")"
    if kind == "column":
        text = f"{detail['type']}{'' if detail['nullable'] else ' NOT NULL'}"
        return text + (f" DEFAULT {detail['default']}" if detail.get("default") is not None else "")
    if kind in ("index", "unique"):
        return "(" + ", ".join(detail["columns"]) + ")" + (" unique" if detail.get("unique") and kind == "index" else "")
    if kind == "foreign_key":
        return (f"({', '.join(detail['columns'])}) -> {detail['referred_table']}"
                f"({', '.join(detail['referred_columns'])})")
    return ""


# ------------------------------------------------------------------ comparison


def _default_text(default: Any) -> str | None:
    """A server default as SQL text (a DefaultClause, a TextClause, a string, or None)."""
    if default is None:
        return None
    arg = getattr(default, "arg", default)
    text = getattr(arg, "text", arg)
    return None if text is None else str(text)


def _normal_default(text: str | None) -> str | None:
    return None if text is None else re.sub(r"\s+", " ", text.strip())


def _compare_default(context: Any, inspected_column: Any, metadata_column: Any, inspected_default: Any,
                     metadata_default: Any, rendered_metadata_default: Any) -> bool:
    """Both defaults were reflected from the same dialect, so their text is comparable as it is.

    Alembic's own PostgreSQL comparison evaluates differing defaults on the server
    (``SELECT <a> = <b>``), which would call ``nextval()`` on the parent or fail on a
    sequence that only the branch has; comparing the reflected text has no side effects.
    SERIAL columns are left out as Alembic's PostgreSQL comparison leaves them out: its
    reflection drops their ``nextval`` default on the live side only.
    """
    if metadata_column.primary_key and metadata_column is metadata_column.table._autoincrement_column:
        return False
    return _normal_default(_default_text(inspected_default)) != _normal_default(_default_text(metadata_default))


def _type_text(type_: Any, dialect: Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type the dialect cannot render still has a name
        return repr(type_)


def _column_detail(column: Any, dialect: Any) -> dict[str, Any]:
    return {"type": _type_text(column.type, dialect), "nullable": bool(column.nullable),
            "default": _normal_default(_default_text(column.server_default))}


def _constraint_detail(constraint: Any) -> dict[str, Any]:
    return {"columns": [c.name for c in constraint.columns]}


def _fk_detail(fk: Any) -> dict[str, Any]:
    return {"columns": [c.name for c in fk.columns], "referred_table": fk.referred_table.name,
            "referred_columns": [element.column.name for element in fk.elements],
            "ondelete": fk.ondelete, "onupdate": fk.onupdate}


def _index_detail(index: Any) -> dict[str, Any]:
    columns = [getattr(expr, "name", None) or str(expr) for expr in index.expressions]
    return {"columns": columns, "unique": bool(index.unique)}


_MODIFY_KEYS = {"modify_type": "type", "modify_nullable": "nullable", "modify_default": "default",
                "modify_comment": "comment"}


def _from_alembic(entries: Iterable[Any], dialect: Any) -> list[Change]:
    changes: list[Change] = []
    for entry in entries:
        if isinstance(entry, list):  # the modifications of one column, grouped
            changes.append(_column_change(entry, dialect))
            continue
        op = entry[0]
        added = op.startswith("add_")
        change = "added" if added else "removed"
        if op in ("add_table", "remove_table"):
            table = entry[1]
            changes.append(Change("table", change, None, table.name,
                                  {"columns": [f"{c.name} {_type_text(c.type, dialect)}" for c in table.columns]}))
        elif op in ("add_column", "remove_column"):
            column = entry[3]
            changes.append(Change("column", change, entry[2], column.name, _column_detail(column, dialect)))
        elif op in ("add_index", "remove_index"):
            index = entry[1]
            # MySQL keeps a unique constraint as a unique index: the catalog cannot tell them apart.
            kind = "unique" if index.unique and dialect.name in ("mysql", "mariadb") else "index"
            changes.append(Change(kind, change, index.table.name, index.name or "(unnamed)", _index_detail(index)))
        elif op in ("add_constraint", "remove_constraint"):
            constraint = entry[1]
            changes.append(Change("unique", change, constraint.table.name, constraint.name or "(unnamed)",
                                  _constraint_detail(constraint)))
        elif op in ("add_fk", "remove_fk"):
            fk = entry[1]
            changes.append(Change("foreign_key", change, fk.parent.name, fk.name or "(unnamed)", _fk_detail(fk)))
        elif op in ("add_table_comment", "remove_table_comment"):
            table = entry[1]
            changes.append(Change("table", "changed", None, table.name,
                                  {"comment": {"parent": entry[2] if not added else None, "branch": table.comment}}))
    return changes


def _column_change(modifications: list[tuple[Any, ...]], dialect: Any) -> Change:
    detail: dict[str, Any] = {}
    _, _, table, name = modifications[0][:4]
    for op, *_where, _existing, parent_value, branch_value in modifications:
        key = _MODIFY_KEYS.get(op, op.removeprefix("modify_"))
        if key == "type":
            parent_value, branch_value = _type_text(parent_value, dialect), _type_text(branch_value, dialect)
        elif key == "default":
            parent_value = _normal_default(_default_text(parent_value))
            branch_value = _normal_default(_default_text(branch_value))
        detail[key] = {"parent": parent_value, "branch": branch_value}
    return Change("column", "changed", table, name, detail)


def _normal_view(definition: str | None) -> str:
    text = re.sub(r"\s+", " ", (definition or "").strip()).rstrip(";").strip()
    return text


def _view_changes(branch_inspector: Any, parent_inspector: Any) -> list[Change]:
    branch_views = {name: _normal_view(branch_inspector.get_view_definition(name))
                    for name in branch_inspector.get_view_names()}
    parent_views = {name: _normal_view(parent_inspector.get_view_definition(name))
                    for name in parent_inspector.get_view_names()}
    changes = []
    for name in sorted(set(branch_views) | set(parent_views)):
        if name not in parent_views:
            changes.append(Change("view", "added", None, name, {"definition": branch_views[name]}))
        elif name not in branch_views:
            changes.append(Change("view", "removed", None, name, {"definition": parent_views[name]}))
        elif branch_views[name] != parent_views[name]:
            changes.append(Change("view", "changed", None, name,
                                  {"definition": {"parent": parent_views[name], "branch": branch_views[name]}}))
    return changes


_ORDER = {kind: i for i, kind in enumerate(KINDS)}


def compare(branch_connection: Any, parent_connection: Any, *, branch_label: str = "branch",
            parent_label: str = "parent") -> SchemaDiff:
    """The schema difference between two live connections of the same dialect (branch against parent)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData, inspect

    branch_dialect, parent_dialect = branch_connection.dialect, parent_connection.dialect
    if branch_dialect.name != parent_dialect.name:
        raise SchemaDiffError(f"the branch database is {branch_dialect.name} and the parent's is "
                              f"{parent_dialect.name}: a schema can only be compared with its own kind")
    branch_metadata = MetaData()
    # dbenv's own record of applied hook files is no part of the application's schema.
    branch_metadata.reflect(bind=branch_connection, views=False, only=lambda name, _: name != LEDGER)
    context = MigrationContext.configure(parent_connection, opts={
        "compare_type": True, "compare_server_default": _compare_default,
        "include_name": lambda name, type_, _: not (type_ == "table" and name == LEDGER)})
    changes = _from_alembic(compare_metadata(context, branch_metadata), branch_dialect)
    changes += _view_changes(inspect(branch_connection), inspect(parent_connection))
    changes.sort(key=lambda c: (c.table or c.name, _ORDER[c.kind] if c.kind != "table" else -1, c.name, c.change))
    return SchemaDiff(branch_label, parent_label, branch_dialect.name, tuple(changes))


class Unreachable(Exception):
    """A database could not be reached or read; the message names which and why."""


def diff(branch: Any, parent: Any) -> SchemaDiff:
    """Connect to both (``access.Access`` or ``access.DataApiAccess``), compare, disconnect."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    if branch.engine != parent.engine:
        raise SchemaDiffError(f"the branch database is {branch.engine} and the parent's is {parent.engine}: "
                              "a schema can only be compared with its own kind")
    engines = []
    try:
        connections = []
        for side, access in (("branch", branch), ("parent", parent)):
            engine = access.sqlalchemy_engine()
            engines.append(engine)
            try:
                connections.append(engine.connect())
            except (SQLAlchemyError, OSError) as err:
                raise Unreachable(f"cannot connect to the {side} database {access.label}: {_reason(err)}") from None
        try:
            return compare(*connections, branch_label=branch.label, parent_label=parent.label)
        except DBAPIError as err:
            raise Unreachable(f"reading the schemas failed: {_reason(err)}") from None
        finally:
            for connection in connections:
                connection.close()
    finally:
        for engine in engines:
            engine.dispose()


def _reason(err: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement dump (pg8000: a dict; pymysql: code, text)."""
    origin = getattr(err, "orig", None) or err
    args = getattr(origin, "args", ())
    first = args[0] if args else None
    if isinstance(first, dict):
        text = str(first.get("M", first))
    elif len(args) >= 2 and isinstance(first, int):
        text = str(args[1])
    else:
        text = str(origin)
    text = text.strip()
    return text.splitlines()[0] if text else type(origin).__name__
