"""Offline policy checks: run the CrossGuard pack over the analyzer protocol against a plan.

The pack in ``policies/`` is started exactly as the Pulumi engine starts a
Python policy pack (``python -u -m pulumi.policy <engine-address> .`` in the
pack directory, the port read from its first line of output), and driven
through the same gRPC calls: Handshake, GetAnalyzerInfo, GetPluginInfo,
Configure, ConfigureStack, Analyze per resource and AnalyzeStack once. The
pack is never imported here, so what passes in CI is what ``pulumi preview
--policy-pack policies`` enforces.

Plan values that only the engine would know are encoded the way the engine
encodes them: ``[unknown]`` becomes the RPC unknown sentinel and ``[secret]``
a secret-wrapped value, so the pack's unknown/secret handling is exercised.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
# The pack's own default config (its exemptions); `dbenv up`/`preview` hand it to the engine too.
POLICY_CONFIG_FILE = "config.default.json"
DEFAULT_POLICY_CONFIG = PACK_DIR / POLICY_CONFIG_FILE
DEFAULT_PROJECT = "db-recipes"
DEFAULT_STACK = "offline"
STARTUP_TIMEOUT_SECONDS = 60.0
RPC_TIMEOUT_SECONDS = 60.0
# Analyze calls in flight at once. The pack serves RPCs on a 4-thread pool; thousands of calls sent at once
# only queue (and, past about 1,500, come back CANCELLED), so a small window keeps the pack busy and memory flat.
MAX_ANALYZE_IN_FLIGHT = 16

# Markers of `dbenv plan` (automation.planning.plan.SECRET_MARKER / UNKNOWN_MARKER), repeated here so that a
# check of a plan file does not pay for importing the planner.
SECRET_MARKER = "[secret]"
UNKNOWN_MARKER = "[unknown]"
# Wire constants of the Pulumi RPC property encoding (the same values in every SDK and the engine).
RPC_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
RPC_SIG_KEY = "4dabf18193072939515e22adb298388d"
RPC_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RPC_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
RPC_ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
_EXEMPTED_LINE = re.compile(r"^exempted (?P<resource>.+?): (?P<reason>.*)$")
# How the pack words an undetermined verdict (a violation, advisory unless the policy's `strict` is on).
UNDETERMINED_PREFIXES = ("cannot verify offline:", "cannot verify during preview:")


class PolicyCheckError(Exception):
    """Bad input: an unreadable or malformed resource file or policy config (exit code 2)."""


class PackError(Exception):
    """The policy pack failed: it did not start, died, or an RPC failed (error, CANCELLED, timeout): exit code 3."""


# ----------------------------------------------------------------------------- inputs


@dataclass
class Target:
    """What is checked: the resources of one stack, in the ``dbenv plan --json`` shape."""

    project: str
    stack: str
    resources: list[dict[str, Any]]


def load_resources_file(path: str | Path) -> Target:
    """A ``{"resources": [{"type", "name", "inputs", ...}]}`` file (the ``dbenv plan --json`` shape)."""
    from automation import inputs

    path = Path(path)
    try:
        document = inputs.read_json(path, "resource file")
    except inputs.InputError as err:
        raise PolicyCheckError(str(err)) from None
    return target_from_document(document, source=str(path))


def target_from_document(document: Any, *, source: str = "resources") -> Target:
    if not isinstance(document, Mapping) or not isinstance(document.get("resources"), list):
        raise PolicyCheckError(f"{source}: expected an object with a 'resources' list (the dbenv plan --json shape)")
    project = _optional_string(document, "project", source) or DEFAULT_PROJECT
    stack = _optional_string(document, "stack", source) or DEFAULT_STACK
    resources = [_normalize_resource(entry, index, source, project, stack)
                 for index, entry in enumerate(document["resources"])]
    duplicates = sorted(urn for urn, n in Counter(r["urn"] for r in resources).items() if n > 1)
    if duplicates:
        raise PolicyCheckError(f"{source}: duplicate resource urn {duplicates[0]!r}")
    return Target(project=project, stack=stack, resources=resources)


def _optional_string(document: Mapping[str, Any], key: str, source: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise PolicyCheckError(f"{source}: '{key}' must be a string, got {type(value).__name__}")
    return value


def _normalize_resource(entry: Any, index: int, source: str, project: str, stack: str) -> dict[str, Any]:
    where = f"{source}: resources[{index}]"
    if not isinstance(entry, Mapping):
        raise PolicyCheckError(f"{where}: expected an object with 'type', 'name' and 'inputs'")
    for key in ("type", "name"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise PolicyCheckError(f"{where}: '{key}' must be a non-empty string")
    inputs = entry.get("inputs", {})
    if not isinstance(inputs, Mapping):
        raise PolicyCheckError(f"{where}: 'inputs' must be an object, got {type(inputs).__name__}")
    urn = entry.get("urn") or f"urn:pulumi:{stack}::{project}::{entry['type']}::{entry['name']}"
    parent = entry.get("parent")
    dependencies = entry.get("dependencies", [])
    if not isinstance(urn, str) or (parent is not None and not isinstance(parent, str)):
        raise PolicyCheckError(f"{where}: 'urn' and 'parent' must be strings")
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise PolicyCheckError(f"{where}: 'dependencies' must be a list of urns")
    return {"urn": urn, "type": entry["type"], "name": entry["name"], "parent": parent,
            "inputs": dict(inputs), "dependencies": list(dependencies)}


def target_from_plan(plan: Any) -> Target:
    """A ``automation.planning.plan.Plan`` as a check target."""
    return target_from_document(plan.to_json(), source=f"plan of {plan.stack}")


def stack_tags(target: Target) -> dict[str, str]:
    """The stack tags the engine would send, derived offline from the plan.

    Under the engine, ConfigureStack carries the stack's tags (``dbenv up``
    tags a branch stack ``ephemeral=true``). Offline, the AWS provider's
    ``defaultTags`` (project, stack, branch, ephemeral, managed-by: the same
    facts ``dbenv up`` puts on the stack) stand in for them, plus
    ``pulumi:project``.
    """
    tags = {"pulumi:project": target.project}
    for resource in target.resources:
        if resource["type"] == "pulumi:providers:aws":
            tags.update(_provider_default_tags(resource["inputs"]))
            break
    return tags


def _provider_default_tags(inputs: Mapping[str, Any]) -> dict[str, str]:
    # Provider inputs reach the engine JSON-encoded; accept the decoded form as well.
    default_tags = inputs.get("defaultTags")
    if isinstance(default_tags, str):
        try:
            default_tags = json.loads(default_tags)
        except ValueError:
            return {}
    tags = default_tags.get("tags") if isinstance(default_tags, Mapping) else None
    if not isinstance(tags, Mapping):
        return {}
    return {str(k): str(v) for k, v in tags.items() if isinstance(v, (str, int, float, bool))}


# ----------------------------------------------------------------------------- policy config


def read_policy_config(path: str | Path) -> dict[str, Any]:
    """A policy pack config file, in the format of ``pulumi preview --policy-pack-config``.

    ``{"<policy>": "<level>" | {"enforcementLevel": "<level>", "<property>": ...}, "all": "<level>"}``
    """
    from automation import inputs

    path = Path(path)
    try:
        document = inputs.read_json(path, "policy config")
    except inputs.InputError as err:
        raise PolicyCheckError(str(err)) from None
    if not isinstance(document, dict):
        raise PolicyCheckError(f"policy config {path}: expected an object of policy name -> config")
    for name, value in document.items():
        _check_entry_shape(name, value, str(path))
    return document


def _check_entry_shape(name: str, value: Any, source: str) -> None:
    if isinstance(value, str):
        if value not in LEVELS:
            raise PolicyCheckError(f"policy config {source}: {name}: {value!r} is not an enforcement level "
                                   f"(allowed: {', '.join(LEVELS)})")
        return
    if name == "all":
        raise PolicyCheckError(f"policy config {source}: all: expected an enforcement level ({', '.join(LEVELS)})")
    if not isinstance(value, dict):
        raise PolicyCheckError(f"policy config {source}: {name}: expected an enforcement level or an object")
    level = value.get("enforcementLevel")
    if level is not None and level not in LEVELS:
        raise PolicyCheckError(f"policy config {source}: {name}.enforcementLevel: {level!r} is not allowed "
                               f"(allowed: {', '.join(LEVELS)})")


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    level: str
    kind: str  # "resource" or "stack"
    schema: dict[str, Any]


def reconcile_config(policies: Sequence[PolicyInfo], document: Mapping[str, Any],
                     source: str = "policy config", *, strict: bool = False) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every policy's (enforcement level, properties) as the engine computes them before Configure.

    Level: the policy's own entry, else ``all``, else the pack's default. Properties: the
    schema defaults overlaid with the file's values, validated against the policy's schema.
    ``strict`` sets the ``strict`` property of every policy that has one (undetermined verdicts at the
    policy's level).
    """
    known = {p.name: p for p in policies}
    unknown = sorted(set(document) - set(known) - {"all"})
    if unknown:
        raise PolicyCheckError(f"{source}: unknown policy {unknown[0]!r} (valid: all, {', '.join(sorted(known))})")
    result: dict[str, tuple[str, dict[str, Any]]] = {}
    for policy in policies:
        entry = document.get(policy.name)
        level = document.get("all", policy.level)
        props: dict[str, Any] = {}
        if isinstance(entry, str):
            level = entry
        elif isinstance(entry, Mapping):
            level = entry.get("enforcementLevel", level)
            props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        properties = policy.schema.get("properties", {})
        merged = {k: s["default"] for k, s in properties.items() if isinstance(s, Mapping) and "default" in s}
        merged.update(props)
        if strict and "strict" in properties:
            merged["strict"] = True
        validate_schema(merged, {"type": "object", "properties": properties,
                                 "required": policy.schema.get("required", []), "additionalProperties": False},
                        f"{source}: {policy.name}")
        result[policy.name] = (level, merged)
    return result


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, Mapping),
    "null": lambda v: v is None,
}
_SUPPORTED_KEYWORDS = {"type", "enum", "minimum", "maximum", "minLength", "maxLength", "items", "properties",
                       "required", "additionalProperties", "default", "description", "title"}


def validate_schema(value: Any, schema: Mapping[str, Any], where: str) -> None:  # noqa: C901 - one branch per keyword
    """Validate ``value`` against the JSON Schema subset the pack's config schemas use.

    Keywords outside that subset are refused rather than ignored, so a pack
    that starts using them fails loudly here instead of passing unchecked.
    """
    unsupported = sorted(set(schema) - _SUPPORTED_KEYWORDS)
    if unsupported:
        raise PackError(f"{where}: the policy schema uses {unsupported[0]!r}, which the offline check cannot validate")
    expected = schema.get("type")
    if expected is not None:
        kinds = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES[k](value) for k in kinds):
            raise PolicyCheckError(f"{where}: expected {' or '.join(kinds)}, got {json.dumps(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise PolicyCheckError(f"{where}: {json.dumps(value)} is not allowed (allowed: "
                               f"{', '.join(map(json.dumps, schema['enum']))})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise PolicyCheckError(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise PolicyCheckError(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise PolicyCheckError(f"{where}: must not be empty" if schema["minLength"] == 1
                                   else f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise PolicyCheckError(f"{where}: longer than {schema['maxLength']} characters")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            validate_schema(item, schema["items"], f"{where}[{index}]")
    if isinstance(value, Mapping):
        _validate_object(value, schema, where)


def _validate_object(value: Mapping[str, Any], schema: Mapping[str, Any], where: str) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            raise PolicyCheckError(f"{where}: '{name}' is required")
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(properties))
        if extra:
            raise PolicyCheckError(f"{where}: unknown property {extra[0]!r} (allowed: {', '.join(properties)})")
    for name, sub in properties.items():
        if name in value and isinstance(sub, Mapping):
            validate_schema(value[name], sub, f"{where}.{name}")


# ----------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    resource: str
    type: str
    urn: str
    message: str

    @property
    def undetermined(self) -> bool:
        """The pack could not judge this resource offline (or during preview): it says what would prove it."""
        return self.message.startswith(UNDETERMINED_PREFIXES)

    def to_json(self) -> dict[str, str]:
        return {"policy": self.policy, "level": self.level, "resource": self.resource, "type": self.type,
                "urn": self.urn, "message": self.message}


@dataclass(frozen=True)
class Note:
    """An exemption or a not-applicable verdict, with its reason."""

    policy: str
    resource: str
    type: str
    urn: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"policy": self.policy, "resource": self.resource, "type": self.type, "urn": self.urn,
                "reason": self.reason}


@dataclass
class Report:
    pack: str
    version: str
    project: str
    stack: str
    resources: int
    levels: dict[str, str]
    stack_tags: dict[str, str]
    violations: list[Violation] = field(default_factory=list)
    exempted: list[Note] = field(default_factory=list)
    not_applicable: list[Note] = field(default_factory=list)
    # Messages the pack logged through the Engine service (shown on stderr, not part of the JSON).
    pack_log: list[str] = field(default_factory=list)

    def count(self, level: str) -> int:
        return sum(1 for v in self.violations if v.level == level)

    @property
    def passed(self) -> bool:
        return self.count("mandatory") == 0

    def summary(self) -> dict[str, Any]:
        return {
            "pack": f"{self.pack}@{self.version}",
            "project": self.project,
            "stack": self.stack,
            "resources": self.resources,
            "policies": sum(1 for level in self.levels.values() if level != "disabled"),
            "mandatory": self.count("mandatory"),
            "advisory": self.count("advisory"),
            "undetermined": sum(1 for v in self.violations if v.undetermined),
            "exempted": len(self.exempted),
            "not_applicable": len(self.not_applicable),
            "passed": self.passed,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "violations": [v.to_json() for v in self.violations],
            "exempted": [n.to_json() for n in self.exempted],
            "not_applicable": [n.to_json() for n in self.not_applicable],
            "summary": self.summary(),
        }


def render_report(report: Report) -> str:
    """A plain table of violations (policy, level, resource, message), then exemptions and a summary."""
    lines: list[str] = []
    if report.violations:
        rows = [("POLICY", "LEVEL", "RESOURCE", "MESSAGE")]
        rows += [(v.policy, v.level, v.resource, v.message.splitlines()[0]) for v in report.violations]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    else:
        lines.append("No policy violations.")
    for note in report.exempted:
        lines.append(f"exempted: {note.policy} on {note.resource}: {note.reason}")
    s = report.summary()
    verdict = "passed" if report.passed else "FAILED"
    lines.append(
        f"{verdict}: {s['mandatory']} mandatory, {s['advisory']} advisory ({s['undetermined']} of the violations "
        f"undetermined), {s['exempted']} exempted, "
        f"{s['not_applicable']} not applicable; {s['resources']} resources of {s['project']}/{s['stack']} "
        f"checked by {s['policies']} policies of {s['pack']}"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the pack process


@dataclass
class _EngineLog:
    """What the pack logged through the Engine service."""

    messages: list[str] = field(default_factory=list)


def _start_engine(log: _EngineLog) -> tuple[Any, str]:
    """A minimal Engine gRPC service, as the engine offers every plugin: it receives the pack's log messages."""
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

    class Engine(engine_pb2_grpc.EngineServicer):
        def Log(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
            severity = engine_pb2.LogSeverity.Name(request.severity).lower()
            log.messages.append(f"{severity}: {request.message}")
            return empty_pb2.Empty()

        def GetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802
            return engine_pb2.GetRootResourceResponse()

        def SetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802
            return engine_pb2.SetRootResourceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    engine_pb2_grpc.add_EngineServicer_to_server(Engine(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


class PackProcess:
    """The policy pack running as its own process, started the way the engine starts Python packs."""

    def __init__(self, pack_dir: Path, *, python: str, env: Mapping[str, str]) -> None:
        if not (pack_dir / "PulumiPolicy.yaml").is_file():
            raise PolicyCheckError(f"{pack_dir} is not a policy pack (no PulumiPolicy.yaml)")
        self.pack_dir = pack_dir
        self.log = _EngineLog()
        self._engine, self.engine_address = _start_engine(self.log)
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [python, "-u", "-m", "pulumi.policy", self.engine_address, "."],
            cwd=pack_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **env},
        )
        self._port: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_port, name="policy-pack-port", daemon=True).start()
        self._channel: Any = None
        self._stub: Any = None

    def _read_port(self) -> None:
        assert self._process.stdout is not None
        self._port.put(self._process.stdout.readline().decode(errors="replace").strip())

    def connect(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> Any:
        """Wait for the port the pack prints, then an Analyzer client on it (once)."""
        import grpc
        from pulumi.runtime.proto import analyzer_pb2_grpc

        if self._stub is not None:
            return self._stub
        try:
            line = self._port.get(timeout=timeout)
        except queue.Empty:
            raise PackError(f"the policy pack printed no port within {timeout:g}s") from None
        if not line.isdigit():
            raise PackError(f"the policy pack failed to start: {self.stderr_tail() or line or 'no output'}")
        self._channel = grpc.insecure_channel(
            f"127.0.0.1:{line}", options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)]
        )
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        return self._stub

    def exit_code(self) -> int | None:
        """The pack's exit code if it has stopped, else None."""
        return self._process.poll()

    def stderr_tail(self) -> str:
        """The last lines the pack wrote to stderr (why it failed)."""
        if self._stderr.closed:
            return ""
        # pread leaves the file offset alone: the pack shares it and may still be writing.
        fd = self._stderr.fileno()
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-3:])

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()
        self._engine.stop(0)


@contextmanager
def running_pack(pack_dir: Path = PACK_DIR, *, project: str, stack: str, stack_config: Mapping[str, Any] | None = None,
                 python: str | None = None) -> Iterator[PackProcess]:
    """Start the pack (as the engine does for a preview) and stop it on exit."""
    env = {
        "PULUMI_PROJECT": project,
        "PULUMI_STACK": stack,
        "PULUMI_DRY_RUN": "true",
        "PULUMI_CONFIG": json.dumps({k: _config_string(v) for k, v in (stack_config or {}).items()}),
    }
    pack = PackProcess(pack_dir, python=python or sys.executable, env=env)
    try:
        yield pack
    finally:
        pack.close()


def _config_string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ----------------------------------------------------------------------------- the protocol


def encode_value(value: Any) -> Any:
    """A plan value as the engine marshals it for analyzers (KeepUnknowns, KeepSecrets)."""
    if value == UNKNOWN_MARKER:
        return RPC_UNKNOWN
    if value == SECRET_MARKER:
        return {RPC_SIG_KEY: RPC_SECRET_SIG, "value": SECRET_MARKER}
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return _encode_asset(value)


def _encode_asset(value: Any) -> Any:
    """Pulumi assets and archives (a Lambda's code in a plan), in their RPC form."""
    from pulumi import asset

    if isinstance(value, asset.Asset):
        for key in ("path", "text", "uri"):
            if isinstance(getattr(value, key, None), str):
                return {RPC_SIG_KEY: RPC_ASSET_SIG, key: getattr(value, key)}
    if isinstance(value, asset.AssetArchive):
        return {RPC_SIG_KEY: RPC_ARCHIVE_SIG, "assets": {k: _encode_asset(v) for k, v in value.assets.items()}}
    if isinstance(value, asset.Archive):
        for key in ("path", "uri"):
            if isinstance(getattr(value, key, None), str):
                return {RPC_SIG_KEY: RPC_ARCHIVE_SIG, key: getattr(value, key)}
    raise PolicyCheckError(f"cannot send a {type(value).__name__} value to the policy pack")


def _struct(values: Mapping[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update(encode_value(dict(values)))
    return struct


def _level_name(value: int) -> str:
    from pulumi.runtime.proto import analyzer_pb2

    return analyzer_pb2.EnforcementLevel.Name(value).lower()


def _policy_infos(info: Any) -> list[PolicyInfo]:
    from google.protobuf import json_format
    from pulumi.runtime.proto import analyzer_pb2

    policies = []
    for p in info.policies:
        schema = json_format.MessageToDict(p.configSchema) if p.HasField("configSchema") else {}
        kind = "stack" if p.policy_type == analyzer_pb2.POLICY_TYPE_STACK else "resource"
        policies.append(PolicyInfo(p.name, p.description, _level_name(p.enforcementLevel), kind, schema))
    return policies


class _Session:
    """One run of the analyzer protocol against one target."""

    def __init__(self, stub: Any, target: Target, pack_dir: Path) -> None:
        self.stub = stub
        self.target = target
        self.pack_dir = pack_dir
        self.by_urn = {r["urn"]: r for r in target.resources}
        self.by_name: dict[str, list[Mapping[str, Any]]] = {}
        for r in target.resources:
            self.by_name.setdefault(r["name"], []).append(r)
        self.descriptions: dict[str, str] = {}

    def configure(self, policy_config: Mapping[str, Any], source: str, engine_address: str,
                  tags: Mapping[str, str], stack_config: Mapping[str, Any],
                  strict: bool = False) -> tuple[Any, dict[str, str]]:
        from google.protobuf import empty_pb2
        from pulumi.runtime.proto import analyzer_pb2

        self._handshake(engine_address)
        info = self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=RPC_TIMEOUT_SECONDS)
        self.stub.GetPluginInfo(empty_pb2.Empty(), timeout=RPC_TIMEOUT_SECONDS)
        policies = _policy_infos(info)
        self.descriptions = {p.name: p.description for p in policies}
        reconciled = reconcile_config(policies, policy_config, source, strict=strict)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, (level, props) in reconciled.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = analyzer_pb2.EnforcementLevel.Value(level.upper())
            entry.properties.update(props)
        self.stub.Configure(request, timeout=RPC_TIMEOUT_SECONDS)
        self.stub.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=self.target.stack, project=self.target.project, organization="organization", dry_run=True,
            config={k: _config_string(v) for k, v in stack_config.items()}, tags=dict(tags)),
            timeout=RPC_TIMEOUT_SECONDS)
        return info, {name: level for name, (level, _) in reconciled.items()}

    def _handshake(self, engine_address: str) -> None:
        import grpc
        from pulumi.runtime.proto import analyzer_pb2

        directory = str(self.pack_dir)
        try:
            self.stub.Handshake(analyzer_pb2.AnalyzerHandshakeRequest(
                engine_address=engine_address, root_directory=directory, program_directory=directory),
                timeout=RPC_TIMEOUT_SECONDS)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:  # older packs do not implement it; the engine goes on
                raise

    def analyze_all(self, report: Report) -> None:
        """Analyze every resource (a bounded window of concurrent calls), then the stack once."""
        from pulumi.runtime.proto import analyzer_pb2

        properties = {r["urn"]: _struct(r["inputs"]) for r in self.target.resources}
        providers = {r["type"].split(":", 2)[2]: analyzer_pb2.AnalyzerProviderResource(
            type=r["type"], urn=r["urn"], name=r["name"], properties=properties[r["urn"]])
            for r in self.target.resources if r["type"].startswith("pulumi:providers:")}
        in_flight: deque[tuple[Mapping[str, Any], Any]] = deque()
        for resource in self.target.resources:
            package = resource["type"].split(":", 1)[0]
            request = analyzer_pb2.AnalyzeRequest(
                type=resource["type"], urn=resource["urn"], name=resource["name"],
                properties=properties[resource["urn"]],
                options=analyzer_pb2.AnalyzerResourceOptions(parent=resource["parent"] or ""),
                provider=None if package == "pulumi" else providers.get(package),
            )
            if len(in_flight) >= MAX_ANALYZE_IN_FLIGHT:
                done, call = in_flight.popleft()
                self._collect(call.result(), report, done)
            in_flight.append((resource, self.stub.Analyze.future(request, timeout=RPC_TIMEOUT_SECONDS)))
        while in_flight:
            done, call = in_flight.popleft()
            self._collect(call.result(), report, done)
        stack_request = analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(
                type=r["type"], urn=r["urn"], name=r["name"], properties=properties[r["urn"]],
                options=analyzer_pb2.AnalyzerResourceOptions(parent=r["parent"] or ""),
                parent=r["parent"] or "", dependencies=r["dependencies"],
            )
            for r in self.target.resources
        ])
        self._collect(self.stub.AnalyzeStack(stack_request, timeout=RPC_TIMEOUT_SECONDS), report, None)

    def _collect(self, response: Any, report: Report, resource: Mapping[str, Any] | None) -> None:
        for diagnostic in response.diagnostics:
            subject = self.by_urn.get(diagnostic.urn) if diagnostic.urn else resource
            report.violations.append(Violation(
                policy=diagnostic.policyName,
                level=_level_name(diagnostic.enforcementLevel),
                resource=subject["name"] if subject else f"{self.target.project}/{self.target.stack}",
                type=subject["type"] if subject else "pulumi:pulumi:Stack",
                urn=subject["urn"] if subject else "",
                message=self._own_message(diagnostic),
            ))
        for item in response.not_applicable:
            for line in (item.reason or "not applicable").splitlines():
                self._note(report, item.policy_name, line, resource)

    def _own_message(self, diagnostic: Any) -> str:
        # The SDK prefixes every message with the policy's description; the table shows the policy name instead.
        prefix = f"{diagnostic.description}\n"
        message = diagnostic.message
        return message[len(prefix):] if message.startswith(prefix) else message

    def _note(self, report: Report, policy: str, line: str, resource: Mapping[str, Any] | None) -> None:
        exempted = _EXEMPTED_LINE.match(line)
        subject = resource
        reason = line
        if exempted and resource is None:
            subject = self._by_name(exempted.group("resource"))
        if exempted:
            reason = exempted.group("reason")
        note = Note(policy=policy,
                    resource=subject["name"] if subject else f"{self.target.project}/{self.target.stack}",
                    type=subject["type"] if subject else "pulumi:pulumi:Stack",
                    urn=subject["urn"] if subject else "", reason=reason)
        (report.exempted if exempted else report.not_applicable).append(note)

    def _by_name(self, name: str) -> Mapping[str, Any] | None:
        matches = self.by_name.get(name, [])
        return matches[0] if len(matches) == 1 else None


def check(load_target: Callable[[], Target], *, project: str, stack: str,
          policy_config: Mapping[str, Any] | None = None, policy_config_source: str = "policy config",
          stack_config: Mapping[str, Any] | None = None, pack_dir: Path = PACK_DIR,
          python: str | None = None, strict: bool = False) -> Report:
    """Start the pack, load the target meanwhile (planning takes as long as the pack's start), analyze.

    ``project``/``stack`` are known before the target (the engine passes them to the pack's
    environment at start); ``load_target`` builds the plan or reads the file.
    """
    with running_pack(pack_dir, project=project, stack=stack, stack_config=stack_config, python=python) as pack:
        target = load_target()
        return analyze(pack, target, policy_config or {}, policy_config_source, stack_config=stack_config,
                       strict=strict)


def analyze(pack: PackProcess, target: Target, policy_config: Mapping[str, Any],
            policy_config_source: str = "policy config", *, stack_config: Mapping[str, Any] | None = None,
            strict: bool = False) -> Report:
    """One full protocol run against a running pack: configure it for ``target``, analyze, report.

    Every run sends Configure and ConfigureStack afresh, so one pack process can serve several runs.
    """
    import grpc

    stub = pack.connect()
    tags = stack_tags(target)
    try:
        session = _Session(stub, target, pack.pack_dir)
        info, levels = session.configure(policy_config, policy_config_source, pack.engine_address, tags,
                                         stack_config or {}, strict)
        report = Report(pack=info.name, version=pack_version(pack.pack_dir) or info.version,
                        project=target.project, stack=target.stack, resources=len(target.resources),
                        levels=levels, stack_tags=tags)
        session.analyze_all(report)
    except grpc.RpcError as err:
        raise PackError(_failure(pack, err.details() or err.code().name)) from None
    except grpc.FutureCancelledError:
        raise PackError(_failure(pack, "CANCELLED")) from None
    except grpc.FutureTimeoutError:
        raise PackError(_failure(pack, f"no answer within {RPC_TIMEOUT_SECONDS:g}s")) from None
    report.pack_log = list(pack.log.messages)
    return report


def _failure(pack: PackProcess, what: str) -> str:
    detail = pack.stderr_tail()
    died = pack.exit_code()
    state = f" (the pack process exited with {died})" if died is not None else ""
    return f"the policy pack failed: {what}{state}{'; ' + detail if detail else ''}"


def pack_version(pack_dir: Path) -> str | None:
    """The ``version`` of PulumiPolicy.yaml, which the engine reports instead of the SDK's placeholder."""
    try:
        text = (pack_dir / "PulumiPolicy.yaml").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^version:\s*['\"]?([^'\"\s]+)", text, flags=re.MULTILINE)
    return match.group(1) if match else None
