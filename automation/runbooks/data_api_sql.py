"""A DB-API 2.0 driver over the RDS Data API (``ExecuteStatement``) and a SQLAlchemy dialect on it.

With it SQLAlchemy's own PostgreSQL reflection (and so ``schema_diff``) reads an Aurora
cluster through the Data API: no network path to the cluster, no password in hand, only
``rds-data:ExecuteStatement`` and the cluster's secret.

Why our own: the published dialect (``sqlalchemy-aurora-data-api`` 0.5.0, 2023) predates
SQLAlchemy 2.1; reflection needs only ``execute`` and ``fetch*`` over ``ExecuteStatement``,
which is this small module. Every statement runs on its own (no ``transactionId``), so it
commits by itself: commit and rollback have nothing to do, and the driver is meant for reads.

Wire format: https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html
(records of ``Field`` unions, ``columnMetadata`` with ``includeResultMetadata``) and
https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_SqlParameter.html (``typeHint``
DATE, DECIMAL, JSON, TIME, TIMESTAMP, UUID for values sent as strings). Array parameters are in the
model but refused by the service (github.com/aws/aws-sdk issue 9): SQLAlchemy's reflection expands
its lists into scalar parameters, so none are sent.
"""

from __future__ import annotations

import datetime
import decimal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.base import PGDialect

apilevel = "2.0"
threadsafety = 1
paramstyle = "named"


class Error(Exception):
    pass


class Warning(Exception):  # noqa: A001 - the DB-API names it so
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class OperationalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class DataError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


def parameter(name: str, value: Any) -> dict[str, Any]:
    """A Python value as a Data API ``SqlParameter`` (typeHint where the value travels as a string)."""
    if value is None:
        return {"name": name, "value": {"isNull": True}}
    if isinstance(value, bool):
        return {"name": name, "value": {"booleanValue": value}}
    if isinstance(value, int):
        return {"name": name, "value": {"longValue": value}}
    if isinstance(value, float):
        return {"name": name, "value": {"doubleValue": value}}
    if isinstance(value, str):
        return {"name": name, "value": {"stringValue": value}}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"name": name, "value": {"blobValue": bytes(value)}}
    hinted = ((decimal.Decimal, "DECIMAL", str), (datetime.datetime, "TIMESTAMP", lambda v: v.strftime("%Y-%m-%d %H:%M:%S.%f")),
              (datetime.date, "DATE", lambda v: v.isoformat()), (datetime.time, "TIME", lambda v: v.isoformat()))
    for kind, hint, text in hinted:
        if isinstance(value, kind):
            return {"name": name, "value": {"stringValue": text(value)}, "typeHint": hint}
    raise NotSupportedError(f"parameter {name!r}: the Data API takes no {type(value).__name__} parameters "
                            "(and no arrays)")


def field_value(field: Mapping[str, Any]) -> Any:
    """A Data API ``Field`` (or ``ArrayValue``) as a Python value."""
    if field.get("isNull"):
        return None
    for key in ("stringValue", "longValue", "doubleValue", "booleanValue", "blobValue"):
        if key in field:
            return field[key]
    array = field.get("arrayValue", field)
    for key in ("stringValues", "longValues", "doubleValues", "booleanValues"):
        if key in array:
            return list(array[key])
    if "arrayValues" in array:
        return [field_value(item) for item in array["arrayValues"]]
    return None


class Cursor:
    arraysize = 100

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, operation: str, parameters: Mapping[str, Any] | None = None) -> Cursor:
        params = [parameter(name, value) for name, value in (parameters or {}).items()]
        response = self.connection.execute(operation, params)
        columns = response.get("columnMetadata") or []
        self.description = [(c.get("label") or c.get("name"), c.get("typeName"), None, None, c.get("precision"),
                             c.get("scale"), bool(c.get("nullable", 1))) for c in columns] or None
        self._rows = [tuple(field_value(field) for field in record) for record in response.get("records") or []]
        self.rowcount = int(response.get("numberOfRecordsUpdated") or 0) if self.description is None else len(self._rows)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Mapping[str, Any]]) -> None:
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows = []

    def setinputsizes(self, *args: Any) -> None:
        pass

    def setoutputsize(self, *args: Any) -> None:
        pass


class Connection:
    def __init__(self, client: Any, resource_arn: str, secret_arn: str, database: str) -> None:
        self.client = client
        self.resource_arn = resource_arn
        self.secret_arn = secret_arn
        self.database = database

    def execute(self, sql: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        import botocore.exceptions

        try:
            return self.client.execute_statement(resourceArn=self.resource_arn, secretArn=self.secret_arn,
                                                 database=self.database, sql=sql, parameters=params,
                                                 includeResultMetadata=True)
        except botocore.exceptions.ClientError as err:
            error = err.response.get("Error", {})
            raise DatabaseError(f"{error.get('Code', 'Error')}: {error.get('Message', err)}") from None
        except botocore.exceptions.BotoCoreError as err:
            raise OperationalError(str(err)) from None

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        pass  # each ExecuteStatement without a transactionId commits on its own

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def connect(client: Any, resource_arn: str, secret_arn: str, database: str) -> Connection:
    return Connection(client, resource_arn, secret_arn, database)


class PGDialect_rdsdata(PGDialect):  # noqa: N801 - SQLAlchemy's naming for dialect classes
    driver = "rdsdata"
    supports_statement_cache = True
    default_paramstyle = "named"
    supports_server_side_cursors = False

    @classmethod
    def import_dbapi(cls) -> Any:
        return sys.modules[__name__]

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        pass  # statements run one by one, each in its own transaction

    def do_ping(self, dbapi_connection: Any) -> bool:
        dbapi_connection.cursor().execute("SELECT 1")
        return True


registry.register("postgresql.rdsdata", __name__, "PGDialect_rdsdata")


def engine(client: Any, resource_arn: str, secret_arn: str, database: str) -> Any:
    """A SQLAlchemy engine whose every statement is one ``ExecuteStatement`` call."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine("postgresql+rdsdata://", creator=lambda: connect(client, resource_arn, secret_arn, database),
                         poolclass=NullPool)
