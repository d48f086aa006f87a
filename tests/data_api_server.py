"""A loopback RDS Data API endpoint backed by the real PostgreSQL on 127.0.0.1:5432.

It speaks ``ExecuteStatement`` as boto3's ``rds-data`` client sends and expects it (rest-json:
``POST /Execute``, a SigV4-signed JSON body; records of ``Field`` unions, ``columnMetadata`` when
``includeResultMetadata``, ``formattedRecords`` when ``formatRecordsAs`` is ``JSON``; errors as
HTTP 400 with ``x-amzn-ErrorType``), and runs every statement on a fresh pg8000 connection to
the named database, in its own transaction, as the service does without a ``transactionId``.
Reference: https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html
"""

from __future__ import annotations

import base64
import datetime
import decimal
import http.server
import json
import threading
import uuid
from typing import Any

import pg8000.native

HOST, POSTGRES_PORT = "127.0.0.1", 5432
VARCHAR_OID = 1043
# JDBC type codes the service reports in columnMetadata.type (java.sql.Types).
_JDBC = {"bool": -7, "int2": 5, "int4": 4, "int8": -5, "oid": -5, "float4": 7, "float8": 8, "numeric": 2,
         "text": 12, "varchar": 12, "name": 12, "char": 1, "bpchar": 1, "bytea": -2, "date": 91, "time": 92,
         "timestamp": 93, "timestamptz": 93}


def _field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"blobValue": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list):
        return {"arrayValue": _array(value)}
    if isinstance(value, datetime.datetime):
        return {"stringValue": value.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")}
    if isinstance(value, datetime.date | datetime.time | decimal.Decimal | uuid.UUID):
        return {"stringValue": str(value)}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}


def _array(values: list[Any]) -> dict[str, Any]:
    present = [v for v in values if v is not None]
    if any(isinstance(v, list) for v in present):
        return {"arrayValues": [_array(v if isinstance(v, list) else [v]) for v in values]}
    for kind, key in ((bool, "booleanValues"), (int, "longValues"), (float, "doubleValues")):
        if present and all(isinstance(v, kind) for v in present):
            return {key: values}
    return {"stringValues": [None if v is None else str(v) for v in values]}


def _param(param: dict[str, Any]) -> Any:
    value = param.get("value") or {}
    if value.get("isNull"):
        return None
    if "blobValue" in value:
        return base64.b64decode(value["blobValue"])
    for key in ("stringValue", "longValue", "doubleValue", "booleanValue"):
        if key in value:
            raw = value[key]
            break
    else:
        raise _Fault("BadRequestException", f"parameter {param.get('name')}: array parameters are not supported")
    hint = param.get("typeHint")
    if hint == "DECIMAL":
        return decimal.Decimal(raw)
    if hint == "TIMESTAMP":
        return datetime.datetime.fromisoformat(raw)
    if hint == "DATE":
        return datetime.date.fromisoformat(raw)
    if hint == "TIME":
        return datetime.time.fromisoformat(raw)
    if hint == "UUID":
        return uuid.UUID(raw)
    return raw


class _Fault(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DataApiServer:
    """``ExecuteStatement`` for one cluster ARN and one secret ARN; anything else is refused as AWS would."""

    def __init__(self, cluster_arn: str, secret_arn: str, *, port: int = POSTGRES_PORT) -> None:
        self.cluster_arn, self.secret_arn, self.pg_port = cluster_arn, secret_arn, port
        self.calls: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.endpoint = f"http://{HOST}:{self._http.server_address[1]}"

    def __enter__(self) -> DataApiServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        try:
            if request.path != "/Execute":
                raise _Fault("BadRequestException", f"unsupported operation {request.path}")
            if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
                raise _Fault("AccessDeniedException", "missing SigV4 signature")
            payload = json.loads(body)
            self.calls.append(payload)
            status, response = 200, self.execute(payload)
            headers = {}
        except _Fault as fault:
            status, response = 400, {"message": str(fault)}
            headers = {"x-amzn-ErrorType": fault.code}
        data = json.dumps(response).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("resourceArn") != self.cluster_arn:
            raise _Fault("BadRequestException", f"HttpEndpoint is not enabled for cluster {payload.get('resourceArn')}")
        if payload.get("secretArn") != self.secret_arn:
            raise _Fault("ForbiddenException", "The secret is not authorized for this cluster")
        if payload.get("transactionId"):
            raise _Fault("TransactionNotFoundException", "Transaction is not found")
        params = {p["name"]: _param(p) for p in payload.get("parameters") or []}
        try:
            connection = pg8000.native.Connection(user="postgres", host=HOST, port=self.pg_port,
                                                  database=payload.get("database") or "postgres", timeout=10)
        except pg8000.native.DatabaseError as err:
            raise _Fault("DatabaseNotFoundException", str(err.args[0].get("M", err))) from None
        try:
            # String parameters reach PostgreSQL typed as varchar (hence the typeHint casts the
            # service documents for UUID, JSON, DATE ...), not as untyped literals.
            types = {name: VARCHAR_OID if isinstance(value, str) else 0 for name, value in params.items()}
            rows = connection.run(payload["sql"], types=types, **params)
            columns = connection.columns or []
            updated = connection.row_count if not columns else 0
            types = self._type_names(connection, columns)
        except pg8000.native.DatabaseError as err:
            detail = err.args[0] if err.args and isinstance(err.args[0], dict) else {}
            raise _Fault("DatabaseErrorException", f"ERROR: {detail.get('M', err)}") from None
        finally:
            connection.close()
        response: dict[str, Any] = {"numberOfRecordsUpdated": max(updated or 0, 0), "generatedFields": []}
        if not columns:
            return response
        if payload.get("formatRecordsAs") == "JSON":
            records = [{c["name"]: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows or []]
            response["formattedRecords"] = json.dumps(records)
        else:
            response["records"] = [[_field(v) for v in row] for row in rows or []]
        if payload.get("includeResultMetadata"):
            response["columnMetadata"] = [
                {"name": c["name"], "label": c["name"], "typeName": types[i], "type": _JDBC.get(types[i], 1111),
                 "nullable": 2, "isSigned": types[i] in ("int2", "int4", "int8", "float4", "float8", "numeric"),
                 "precision": 0, "scale": 0, "schemaName": "", "tableName": "", "isAutoIncrement": False,
                 "isCaseSensitive": types[i] in ("text", "varchar", "name", "char", "bpchar"), "isCurrency": False,
                 "arrayBaseColumnType": 0}
                for i, c in enumerate(columns)]
        return response

    @staticmethod
    def _type_names(connection: Any, columns: list[dict[str, Any]]) -> list[str]:
        oids = sorted({c["type_oid"] for c in columns})
        names = dict(connection.run("SELECT oid::int8, typname FROM pg_type WHERE oid::int8 = ANY(:oids)", oids=oids))
        return [names.get(c["type_oid"], "unknown") for c in columns]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time | decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value
