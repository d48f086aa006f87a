"""Offline plan: run the stack program under Pulumi mocks and capture the resource graph.

No Pulumi CLI, no credentials, no network. The program is the very same
``recipes.build(recipes.read_stack_config())`` that ``pulumi up`` runs; the
mock monitor below records every registration (type, name, parent,
dependencies, the inputs as the engine receives them) and answers with
deterministic placeholders shaped like the values AWS would return, so that
dependants such as IAM policy documents come out as complete JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import json
import re
import sys
import threading
import types
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = "db-recipes"
ACCOUNT_ID = "123456789012"
SECRET_MARKER = "[secret]"
UNKNOWN_MARKER = "[unknown]"


class PlanError(Exception):
    """The program could not be planned (bad config, or an error while building)."""


@dataclass
class PlannedResource:
    urn: str
    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    dependencies: list[str]
    custom: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "inputs": self.inputs,
            "dependencies": self.dependencies,
        }


@dataclass
class Plan:
    project: str
    stack: str
    region: str
    resources: list[PlannedResource] = field(default_factory=list)
    # Values read from elsewhere (another stack's outputs) that the offline plan can only stand in for.
    placeholders: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "project": self.project,
            "stack": self.stack,
            "resources": [r.to_json() for r in self.resources],
        }
        if self.placeholders:
            document["placeholders"] = self.placeholders
        return document

    def of_type(self, type_token: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_token]

    def by_name(self, name: str) -> PlannedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def children(self, urn: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.parent == urn]


# ----------------------------------------------------------------- provider packages, name by name

# pulumi-aws's service packages (``pulumi_aws.ec2``, ``pulumi_aws.lambda_``, ...) re-export every module they
# hold from their ``__init__``: the first ``aws.ec2.Vpc`` imports all ~180 ec2 modules, most of a plan's time
# (measured: 0.7 s of imports for `--recipes all`, 0.35 s of it modules the program never names). The
# packages below are loaded the way Python's module ``__getattr__`` (PEP 562) allows: a name is looked up
# in the ``__all__`` lists of the modules the ``__init__`` re-exports, and only its module is imported; the
# objects are the very same (the same modules, imported normally). Anything else (``dir()``, a star
# import, a name no ``__all__`` lists) runs the package's own ``__init__`` in full, as before. A package
# whose ``__init__`` is not just those re-exports is left alone.
PROVIDER_PACKAGES = ("pulumi_aws",)
_REEXPORT_LINE = re.compile(r"from \.(?P<star>\w+) import \*|from \. import (?P<module>\w+)|"
                            r"import builtins as _builtins|from \.\. import _utilities|import typing|#.*|")
_ALL_NAMES = re.compile(r"^__all__ = \[(?P<names>[^\]]*)\]", re.MULTILINE)


class _ReexportingPackage(importlib.abc.Loader):
    """Loads a provider service package whose ``__init__`` only re-exports its modules, name by name."""

    def __init__(self, origin: str, source: str, star: list[str], modules: set[str]) -> None:
        self.origin, self.source, self.star, self.modules = origin, source, star, modules

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        lock = threading.RLock()
        state: dict[str, Any] = {"index": None, "complete": False}
        package = module.__name__

        def complete() -> None:
            with lock:
                if not state["complete"]:
                    state["complete"] = True
                    exec(compile(self.source, self.origin, "exec"), module.__dict__)  # noqa: S102 - its own __init__

        def index() -> dict[str, str]:
            with lock:
                if state["index"] is None:
                    names: dict[str, str] = {}
                    for name in self.star:  # later modules win, as with the __init__'s star imports
                        exported = _exported_names(Path(self.origin).with_name(f"{name}.py"))
                        if exported is None:  # a star import of everything public: only the __init__ knows
                            names = {}
                            break
                        names.update(dict.fromkeys(exported, name))
                    state["index"] = names
                return state["index"]

        def __getattr__(name: str) -> Any:  # noqa: N807 - PEP 562 module hook
            if name in self.modules or name in self.star:
                return importlib.import_module(f"{package}.{name}")
            source = None if name.startswith("__") else index().get(name)
            if source is not None:
                value = getattr(importlib.import_module(f"{package}.{source}"), name)
            else:
                complete()
                if name not in module.__dict__:
                    raise AttributeError(f"module {package!r} has no attribute {name!r}")
                value = module.__dict__[name]
            module.__dict__[name] = value
            return value

        def __dir__() -> list[str]:  # noqa: N807
            complete()
            return sorted(module.__dict__)

        module.__dict__.update(__getattr__=__getattr__, __dir__=__dir__,
                               _utilities=importlib.import_module(f"{package.split('.')[0]}._utilities"))


def _exported_names(path: Path) -> list[str] | None:
    """The ``__all__`` list near the top of a generated module, read without importing it (None: none)."""
    text = ""
    try:
        with path.open(encoding="utf-8") as handle:
            while chunk := handle.read(16384):
                text += chunk
                match = _ALL_NAMES.search(text)
                if match is not None:
                    return re.findall(r"'(\w+)'", match.group("names"))
    except OSError:
        return None
    return None


# A service's ``_inputs``, ``outputs`` and ``_enums`` modules define one class per type the whole service uses
# (ec2's ``_inputs`` is 1.3 MB, ~1,400 classes; with ``_enums`` measured 0.2 s of a 1.5 s `dbenv policy check
# --recipes all`, for the two classes the recipes use). They are loaded class by class: the module's header
# (its imports) runs first, and a class is defined, from the module's own source text, when it is first asked
# for, with the classes its annotations name. The service's resource modules star-import ``_inputs`` and
# ``_enums``; such a module is loaded normally (from its bytecode), with the classes its source names bound
# beforehand and the star imports binding nothing more (the type hints the SDK evaluates name only those).
# ``__all__``, ``dir()`` and any other star import see the whole module. A module laid out otherwise loads as
# it is.
_GENERATED_TYPES = ("_inputs", "outputs", "_enums")
_STAR_IMPORTED = ("_inputs", "_enums")
# Only services with a types module this large (ec2) are worth it: a class compiled from source costs more than
# one read from bytecode.
_CLASS_BY_CLASS_BYTES = 256 * 1024
# Patterns that start with a literal newline: the regular expression engine scans for it at C speed.
_TOP_LEVEL = re.compile(r"\n(?:@pulumi\.\w+(?:\([^\n]*\))?\n)*class (\w+)\b")
_STRAY_TOP_LEVEL = re.compile(r"\n(?![ \t\n#]|class |@pulumi\.|\Z)")
_QUOTED_NAME = re.compile(r"'(\w+)'")
_prebinding = threading.local()


def _generated_chunks(loader: Any) -> dict[str, tuple[int, int]] | None:
    return getattr(loader, "chunks", None) if isinstance(loader, _GeneratedTypes) else None


def _bind_siblings(namespace: dict[str, Any], package: str, names: set[str]) -> None:
    """Bind into ``namespace`` the classes of the package's star-imported types modules that ``names`` holds."""
    for sibling in _STAR_IMPORTED:
        first = next(iter(getattr(sys.modules.get(package), "__path__", None) or ()), None)
        if not first or not Path(first, f"{sibling}.py").is_file():
            continue  # not every service has enums
        module = importlib.import_module(f"{package}.{sibling}")
        chunks = _generated_chunks(getattr(module, "__loader__", None))
        if chunks is None:
            continue
        for name in names & chunks.keys():
            if name not in namespace:
                namespace[name] = getattr(module, name)


class _GeneratedTypes(importlib.abc.Loader):
    """Loads a service's ``_inputs`` / ``outputs`` / ``_enums`` module one class at a time."""

    def __init__(self, origin: str, source: str, header_end: int, chunks: dict[str, tuple[int, int]]) -> None:
        self.origin, self.source, self.header_end, self.chunks = origin, source, header_end, chunks

    @classmethod
    def for_source(cls, origin: str, source: str) -> _GeneratedTypes | None:
        matches = list(_TOP_LEVEL.finditer(source))
        if not matches:
            return None
        header_end = matches[0].start() + 1
        # Past the header, nothing but classes at the top level; the header holds ``__all__``.
        if _STRAY_TOP_LEVEL.search(source, header_end - 1) or _ALL_NAMES.search(source, 0, header_end) is None:
            return None
        chunks = {match.group(1): (match.start() + 1, matches[index + 1].start() + 1 if index + 1 < len(matches)
                                   else len(source)) for index, match in enumerate(matches)}
        return cls(origin, source, header_end, chunks)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        lock = threading.RLock()
        namespace = module.__dict__
        package = module.__name__.rpartition(".")[0]
        previous = getattr(_prebinding, "active", False)
        _prebinding.active = True  # its own star imports of siblings bind nothing; define() binds what it names
        try:
            exec(compile(self.source[:self.header_end], self.origin, "exec"), namespace)  # noqa: S102 - its header
        finally:
            _prebinding.active = previous
        names = namespace.pop("__all__")

        def define(name: str) -> None:
            pending, named = [name], set()
            while pending:
                current = pending.pop()
                if current in namespace or current not in self.chunks:
                    named.add(current)
                    continue
                start, end = self.chunks[current]
                text = self.source[start:end]
                padding = "\n" * self.source.count("\n", 0, start)  # tracebacks keep the file's line numbers
                exec(compile(padding + text, self.origin, "exec"), namespace)  # noqa: S102 - its own class
                pending.extend(_QUOTED_NAME.findall(text))
            _bind_siblings(namespace, package, named)

        def __getattr__(name: str) -> Any:  # noqa: N807 - PEP 562 module hook
            if name == "__all__":
                return [] if getattr(_prebinding, "active", False) else list(names)
            if name not in self.chunks:
                raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
            with lock:
                define(name)
            return namespace[name]

        def __dir__() -> list[str]:  # noqa: N807
            with lock:
                for name in names:
                    define(name)
            return sorted(namespace)

        namespace.update(__getattr__=__getattr__, __dir__=__dir__)


class _PrebindingLoader(importlib.abc.Loader):
    """Loads a resource module as its own loader does, with the types-module classes its source names bound first."""

    def __init__(self, loader: Any, names: set[str]) -> None:
        self.loader, self.names = loader, names

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        _bind_siblings(module.__dict__, module.__name__.rpartition(".")[0], self.names)
        previous = getattr(_prebinding, "active", False)
        _prebinding.active = True
        try:
            self.loader.exec_module(module)
        finally:
            _prebinding.active = previous


def _large(path: Path) -> bool:
    try:
        return path.stat().st_size >= _CLASS_BY_CLASS_BYTES
    except OSError:
        return False


def _service_module_spec(fullname: str, path: Any) -> Any:
    """A spec for a module inside a provider service package: the types modules class by class, resource
    modules with the classes they name bound first; None (the import system's own) for anything else."""
    name = fullname.rpartition(".")[2]
    if name.startswith("_") and name not in _GENERATED_TYPES:
        return None
    first = next(iter(path), None)
    directory = Path(first) if first else None
    if directory is None or not any(_large(directory / f"{types_module}.py") for types_module in _GENERATED_TYPES):
        return None  # a service whose types modules are small: everything loads as it is
    spec = importlib.machinery.PathFinder.find_spec(fullname, path)
    if spec is None or spec.submodule_search_locations or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        source = Path(spec.origin).read_text(encoding="utf-8")
    except OSError:
        return None
    loader: Any = None
    if name in _GENERATED_TYPES:
        loader = _GeneratedTypes.for_source(spec.origin, source)
    elif any(f"\nfrom .{sibling} import *\n" in source for sibling in _STAR_IMPORTED):
        loader = _PrebindingLoader(spec.loader, set(_QUOTED_NAME.findall(source)))
    if loader is None:
        return None
    spec.loader = loader
    return spec


class _ProviderPackageFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        top, _, rest = fullname.partition(".")
        if top in PROVIDER_PACKAGES and rest.count(".") == 1 and path is not None:
            return _service_module_spec(fullname, path)
        if top not in PROVIDER_PACKAGES or not rest or "." in rest or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.submodule_search_locations or not spec.origin:
            return None
        try:
            source = Path(spec.origin).read_text(encoding="utf-8")
        except OSError:
            return None
        star: list[str] = []
        modules: set[str] = set()
        for line in source.splitlines():
            match = _REEXPORT_LINE.fullmatch(line.strip())
            if match is None:
                return None  # an __init__ that does more than re-export: load it as it is
            if match.group("star"):
                star.append(match.group("star"))
            elif match.group("module"):
                modules.add(match.group("module"))
        spec.loader = _ReexportingPackage(spec.origin, source, star, modules)
        return spec


def load_provider_packages_by_name() -> bool:
    """Install the finder; False if a provider package is already imported (its services load as before)."""
    if any(isinstance(f, _ProviderPackageFinder) for f in sys.meta_path):
        return True
    if any(name in sys.modules for name in PROVIDER_PACKAGES):
        return False
    sys.meta_path.insert(0, _ProviderPackageFinder())
    return True


load_provider_packages_by_name()


# ----------------------------------------------------------------- config files


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The ``config:`` mapping of a Pulumi stack config YAML (``Pulumi.<stack>.yaml``)."""
    from automation import inputs

    path = Path(path)
    try:
        document = inputs.read_yaml(path, "config file")
    except inputs.InputError as err:
        raise PlanError(str(err)) from None
    if document is None:
        return {}
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise PlanError(f"config file {path}: expected a mapping with a 'config:' mapping inside")
    unexpected = sorted(set(document) - {"config", "secretsprovider", "encryptedkey", "environment"})
    if unexpected:
        raise PlanError(f"config file {path}: unknown top-level key {unexpected[0]!r} (expected 'config')")
    return config_mapping(document.get("config") or {}, f"config file {path}")


def config_mapping(config: Any, source: str) -> dict[str, Any]:
    """The ``config:`` mapping of a stack config, read from a file or handed in (a service request):
    one set of checks for both. The recipes' own keys are checked when the config is parsed."""
    from automation import inputs

    if not isinstance(config, Mapping):
        raise PlanError(f"{source}: expected a mapping of config keys (e.g. aws:region) to values")
    try:
        inputs.check_depth(dict(config), source)
    except inputs.InputError as err:
        raise PlanError(str(err)) from None
    for key, value in config.items():
        if not isinstance(key, str):
            raise PlanError(f"{source}: config key {key!r} is not a string (e.g. aws:region)")
        if isinstance(value, dict) and "secure" in value:
            raise PlanError(
                f"{source}: {key} is an encrypted secret, which only its own stack can decrypt: "
                "leave it out of the file and set it on the stack with `pulumi config set --secret`"
            )
    return dict(config)


def merge_config(base: Mapping[str, Any], *, recipes: str | None = None, branch: str | None = None,
                 ephemeral: bool | None = None) -> dict[str, Any]:
    """Stack config with command-line choices layered on top."""
    config = dict(base)
    if recipes is not None:
        config[f"{PROJECT}:recipes"] = recipes
    if branch is not None:
        config[f"{PROJECT}:branch"] = branch
    if ephemeral is not None:
        config[f"{PROJECT}:ephemeral"] = ephemeral
    return config


# ----------------------------------------------------------------- placeholders


def _digest(*parts: str, length: int = 17, alphabet: str = "0123456789abcdef") -> str:
    raw = hashlib.sha256("\x00".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in raw)[:length]


def _upper(*parts: str, length: int = 26) -> str:
    return _digest(*parts, length=length, alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def _uuid(*parts: str) -> str:
    return str(uuid.UUID(hex=_digest(*parts, length=32)))


class Placeholders:
    """Deterministic stand-ins for values only AWS knows, shaped like the real ones."""

    def __init__(self, region: str, account: str = ACCOUNT_ID, stack_config: Any = None) -> None:
        self.region = region
        self.account = account
        self.notes: list[dict[str, str]] = []
        # The planned stack's parsed config (components.recipes.StackConfig): a parent stack's
        # placeholders are shaped after what this stack clones from it.
        self.stack_config = stack_config

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account}:{resource}"

    def resource(self, type_token: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        handler = _RESOURCE_PLACEHOLDERS.get(type_token)
        if handler is None:
            module = type_token.split(":")[1].split("/")[0]
            physical = _physical_name(inputs) or f"{name}-{_digest(type_token, name, length=8)}"
            return physical, {"arn": self.arn(module, f"{module}/{physical}")}
        return handler(self, name, inputs)

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = _CALL_PLACEHOLDERS.get(token)
        if handler is None:
            raise PlanError(f"the offline plan has no placeholder for the data source {token}")
        return handler(self, args)


def _physical_name(inputs: dict[str, Any]) -> str | None:
    for key in ("identifier", "clusterIdentifier", "name", "replicationInstanceId", "endpointId",
                "replicationTaskId", "replicationSubnetGroupId", "dbSnapshotIdentifier",
                "targetDbSnapshotIdentifier", "functionName"):
        value = inputs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _engine_port(inputs: dict[str, Any]) -> int:
    if inputs.get("port"):
        return int(inputs["port"])
    return 5432 if "postgres" in str(inputs.get("engine", "")) else 3306


def _master_secret(p: Placeholders, kind: str, name: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    if not inputs.get("manageMasterUserPassword"):
        return []
    arn = p.arn("secretsmanager", f"secret:rds!{kind}-{_uuid(kind, name)}-{_digest(name, length=6)}")
    return [{"secretArn": arn, "secretStatus": "active", "kmsKeyId": inputs.get("masterUserSecretKmsKeyId")
             or p.arn("kms", f"key/{_uuid('rds-default', name)}")}]


def _rds_cluster(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = inputs.get("clusterIdentifier") or name
    host = f"{_digest(p.account, p.region, length=12)}.{p.region}.rds.amazonaws.com"
    return ident, {
        "arn": p.arn("rds", f"cluster:{ident}"),
        "clusterIdentifier": ident,
        "clusterResourceId": "cluster-" + _upper("cluster", ident),
        "endpoint": f"{ident}.cluster-{host}",
        "readerEndpoint": f"{ident}.cluster-ro-{host}",
        "port": _engine_port(inputs),
        "engineVersionActual": inputs.get("engineVersion"),
        "masterUserSecrets": _master_secret(p, "cluster", ident, inputs),
        "hostedZoneId": "Z2R2ITUGPM61AM",
    }


def _rds_instance(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = inputs.get("identifier") or name
    address = f"{ident}.{_digest(p.account, p.region, length=12)}.{p.region}.rds.amazonaws.com"
    port = _engine_port(inputs)
    return ident, {
        "arn": p.arn("rds", f"db:{ident}"),
        "identifier": ident,
        "resourceId": "db-" + _upper("db", ident),
        "dbiResourceId": "db-" + _upper("db", ident),
        "address": address,
        "endpoint": f"{address}:{port}",
        "port": port,
        "engineVersionActual": inputs.get("engineVersion"),
        "masterUserSecrets": _master_secret(p, "db", ident, inputs),
        "hostedZoneId": "Z2R2ITUGPM61AM",
    }


def _named_arn(service: str, kind: str, key: str = "name") -> Callable[..., tuple[str, dict[str, Any]]]:
    def handler(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ident = inputs.get(key) or name
        return ident, {"arn": p.arn(service, f"{kind}{ident}"), key: ident}
    return handler


def _prefixed_id(prefix: str, service: str = "ec2", kind: str = "") -> Callable[..., tuple[str, dict[str, Any]]]:
    def handler(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ident = f"{prefix}-{_digest(prefix, name)}"
        return ident, {"arn": p.arn(service, f"{kind or prefix}/{ident}")}
    return handler


def _kms_key(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    key_id = _uuid("kms", name)
    return key_id, {"arn": p.arn("kms", f"key/{key_id}"), "keyId": key_id}


def _iam(kind: str) -> Callable[..., tuple[str, dict[str, Any]]]:
    def handler(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ident = inputs.get("name") or f"{name}-{_digest(name, length=7)}"
        path = inputs.get("path") or "/"
        return ident, {
            "arn": p.arn("iam", f"{kind}{path}{ident}", region=False),
            "name": ident,
            "uniqueId": "AROA" + _upper("iam", ident, length=17),
        }
    return handler


def _secret(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = inputs.get("name") or name
    arn = p.arn("secretsmanager", f"secret:{ident}-{_digest(ident, length=6, alphabet='abcdefghijklmnopqrstuvwxyzABCDEF')}")
    return arn, {"arn": arn, "name": ident}


def _dms(kind: str, arn_key: str) -> Callable[..., tuple[str, dict[str, Any]]]:
    def handler(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ident = _physical_name(inputs) or name
        return ident, {arn_key: p.arn("dms", f"{kind}:{_upper('dms', kind, ident)}")}
    return handler


def _snapshot(arn_key: str, id_key: str) -> Callable[..., tuple[str, dict[str, Any]]]:
    def handler(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ident = inputs.get(id_key) or name
        return ident, {arn_key: p.arn("rds", f"snapshot:{ident}"), id_key: ident, "encrypted": bool(inputs.get("kmsKeyId"))}
    return handler


def _lambda(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = inputs.get("name") or name
    arn = p.arn("lambda", f"function:{ident}")
    return ident, {
        "arn": arn,
        "qualifiedArn": f"{arn}:$LATEST",
        "invokeArn": f"arn:aws:apigateway:{p.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
        "version": "$LATEST",
    }


def _dynamodb_table(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = inputs.get("name") or name
    arn = p.arn("dynamodb", f"table/{ident}")
    return ident, {"arn": arn, "streamArn": f"{arn}/stream/2026-01-01T00:00:00.000"}


def _proxy(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = inputs.get("name") or name
    host = f"{_digest(p.account, p.region, length=12)}.{p.region}.rds.amazonaws.com"
    return ident, {
        "arn": p.arn("rds", f"db-proxy:prx-{_digest('proxy', ident)}"),
        "endpoint": f"{ident}.proxy-{host}",
    }


def _scaling_target(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = str(inputs.get("resourceId") or name)
    return ident, {"arn": p.arn("application-autoscaling", f"scalable-target/{_digest('target', ident, length=26)}")}


def _scaling_policy(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ident = inputs.get("name") or name
    arn = p.arn("autoscaling", f"scalingPolicy:{_uuid('policy', ident)}:resource/dynamodb/"
                f"{inputs.get('resourceId', '')}:policyName/{ident}")
    return ident, {"arn": arn, "alarmArns": []}


def _stack_reference(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Another stack's outputs, shaped like the shared stack's exports (recipes.build_shared), or
    like a parent stack's databases (``dbenv plan --from staging``)."""
    from components.branch_databases import PARENT_REFERENCE
    from components.dms_migration import SERVICE_ROLES

    if name == PARENT_REFERENCE:
        return _parent_reference(p, name, inputs)
    stack = str(inputs.get("name") or name)
    vpc = f"vpc-{_digest('vpc', stack)}"
    outputs = {
        "network": {
            "vpc_id": vpc,
            "private_subnet_ids": [f"subnet-{_digest('subnet', stack, az)}" for az in "ab"],
            "app_security_group_id": f"sg-{_digest('sg', stack)}",
            "interface_endpoints": {"secretsmanager": f"vpce-{_digest('vpce', stack)}"},
        },
        "dms_service_roles": {"role_arns": {role: p.arn("iam", f"role/{role}", region=False) for role in SERVICE_ROLES}},
    }
    p.notes.append({"resource": name, "stack": stack,
                    "note": f"the outputs of stack {stack} are offline placeholders (e.g. network.vpc_id {vpc}); "
                            "the engine reads the real ones"})
    return stack, {"name": stack, "outputs": outputs, "secretOutputNames": []}


# What each clone keeps from the parent, and which key it is under (see components/parts.py
# cluster_restore / instance_restore and components/dynamodb_autoscaling.py for the sources).
CLONE_NOTES = {
    "aurora-serverless": "Aurora: copy-on-write clone of cluster {identifier} at its latest restorable time, "
                         "under this stack's key; storage is shared with the parent until written",
    "mysql": "RDS MySQL: point-in-time restore of instance {identifier} at its latest restorable time; its storage "
             "keeps the parent's key {key} (RestoreDBInstanceToPointInTime cannot change it); its secret and "
             "Performance Insights use this stack's key",
    "dynamodb-autoscaling": "DynamoDB: restore of table {identifier} to its latest restorable time (needs "
                            "point-in-time recovery on the parent), under this stack's key",
}


def _parent_reference(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A parent stack's database outputs, as this stack clones them (same engine versions assumed)."""
    stack = str(inputs.get("name") or name)
    short = stack.rsplit("/", 1)[-1]
    from components import naming

    namer = naming.Namer.for_stack(short)
    config = p.stack_config
    aurora_version = config.args("aurora-serverless").engine_version if config else "16.6"
    mysql_version = config.mysql.engine_version if config else "8.4"
    key = p.arn("kms", f"key/{_uuid('kms', 'parent', short)}")
    outputs = {
        "aurora-serverless": {"cluster_identifier": namer.rds("aurora"), "engine_version": aurora_version,
                              "kms_key_arn": key, "backup_retention_days": 7},
        "mysql": {"identifier": namer.rds("mysql"), "engine_version": mysql_version, "kms_key_arn": key,
                  "storage_kms_key_arn": key, "backup_retention_days": 7},
        "dynamodb-autoscaling": {"table_name": namer.dynamodb_table(config.args("dynamodb-autoscaling").table_name
                                                                     if config else "items"),
                                 "point_in_time_recovery": True},
    }
    identifiers = {"aurora-serverless": outputs["aurora-serverless"]["cluster_identifier"],
                   "mysql": outputs["mysql"]["identifier"],
                   "dynamodb-autoscaling": outputs["dynamodb-autoscaling"]["table_name"]}
    p.notes.append({"resource": name, "stack": stack,
                    "note": f"parent stack {stack} is assumed to exist with the databases this stack clones, on the "
                            "same engine majors (offline, nothing can check it; `dbenv up` does, before anything is "
                            "created); its outputs are placeholders"})
    for database in (config.cloned_databases if config else ()):
        p.notes.append({"resource": name, "stack": stack,
                        "note": CLONE_NOTES[database].format(identifier=identifiers[database], key=key)})
    return stack, {"name": stack, "outputs": outputs, "secretOutputNames": []}


def _random_password(p: Placeholders, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # A secret is never given a value: the marker is what every consumer sees.
    return "none", {"result": SECRET_MARKER, "bcryptHash": SECRET_MARKER}


_RESOURCE_PLACEHOLDERS: dict[str, Callable[..., tuple[str, dict[str, Any]]]] = {
    "aws:rds/cluster:Cluster": _rds_cluster,
    "aws:rds/instance:Instance": _rds_instance,
    "aws:rds/clusterInstance:ClusterInstance": _rds_instance,
    "aws:rds/subnetGroup:SubnetGroup": _named_arn("rds", "subgrp:"),
    "aws:rds/snapshot:Snapshot": _snapshot("dbSnapshotArn", "dbSnapshotIdentifier"),
    "aws:rds/snapshotCopy:SnapshotCopy": _snapshot("dbSnapshotArn", "targetDbSnapshotIdentifier"),
    "aws:rds/proxy:Proxy": _proxy,
    # A proxy's default target group is always named "default".
    "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup": lambda p, n, i: (
        str(i.get("dbProxyName") or n), {"name": "default", "arn": p.arn("rds", f"target-group:prx-tg-{_digest(n)}")}),
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": lambda p, n, i: (i.get("name") or n, {"arn": p.arn("kms", str(i.get("name") or n))}),
    "aws:iam/role:Role": _iam("role"),
    "aws:iam/policy:Policy": _iam("policy"),
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:lambda/function:Function": _lambda,
    "aws:dynamodb/table:Table": _dynamodb_table,
    "aws:dms/replicationInstance:ReplicationInstance": _dms("rep", "replicationInstanceArn"),
    "aws:dms/endpoint:Endpoint": _dms("endpoint", "endpointArn"),
    "aws:dms/replicationTask:ReplicationTask": _dms("task", "replicationTaskArn"),
    "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup": _named_arn("dms", "subgrp:", "replicationSubnetGroupId"),
    "aws:ec2/vpc:Vpc": _prefixed_id("vpc"),
    "aws:ec2/subnet:Subnet": _prefixed_id("subnet"),
    "aws:ec2/securityGroup:SecurityGroup": _prefixed_id("sg", kind="security-group"),
    "aws:ec2/routeTable:RouteTable": _prefixed_id("rtb", kind="route-table"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _prefixed_id("vpce", kind="vpc-endpoint"),
    "aws:appautoscaling/target:Target": _scaling_target,
    "aws:appautoscaling/policy:Policy": _scaling_policy,
    "random:index/randomPassword:RandomPassword": _random_password,
    "pulumi:pulumi:StackReference": _stack_reference,
}


def _availability_zones(p: Placeholders, args: dict[str, Any]) -> dict[str, Any]:
    names = [f"{p.region}{suffix}" for suffix in "abc"]
    return {"id": p.region, "names": names, "zoneIds": [f"use1-az{i}" for i in (1, 2, 4)],
            "groupNames": [p.region] * 3}


def _existing_instance(p: Placeholders, args: dict[str, Any]) -> dict[str, Any]:
    ident = args.get("dbInstanceIdentifier", "existing")
    _, state = _rds_instance(p, ident, {"identifier": ident, "engine": "mysql"})
    return {
        **state,
        "id": ident,
        "dbInstanceIdentifier": ident,
        "dbInstanceArn": state["arn"],
        "dbInstanceClass": "db.t4g.micro",
        "engine": "mysql",
        "engineVersion": "8.0.40",
        "allocatedStorage": 20,
        "storageType": "gp3",
        "storageEncrypted": False,
        "multiAz": False,
        "masterUsername": "admin",
        "dbSubnetGroup": f"{ident}-subnets",
        "vpcSecurityGroups": [f"sg-{_digest('existing-sg', ident)}"],
        "dbParameterGroups": ["default.mysql8.0"],
        "backupRetentionPeriod": 1,
        "publiclyAccessible": False,
        "masterUserSecrets": [],
        "replicateSourceDb": "",
    }


def _existing_key(p: Placeholders, args: dict[str, Any]) -> dict[str, Any]:
    """kms.getKey resolves any key reference (id, alias name, alias ARN) to the key's ARN."""
    key_id = _uuid("kms-key", str(args.get("keyId", "")))
    arn = p.arn("kms", f"key/{key_id}")
    return {"id": key_id, "keyId": key_id, "arn": arn, "enabled": True, "keyState": "Enabled",
            "keyUsage": "ENCRYPT_DECRYPT", "keySpec": "SYMMETRIC_DEFAULT", "keyManager": "CUSTOMER"}


_CALL_PLACEHOLDERS: dict[str, Callable[[Placeholders, dict[str, Any]], dict[str, Any]]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda p, a: {
        "accountId": p.account, "arn": f"arn:aws:iam::{p.account}:user/plan", "userId": "AIDAPLAN", "id": p.account},
    "aws:index/getRegion:getRegion": lambda p, a: {
        "region": p.region, "name": p.region, "id": p.region, "endpoint": f"ec2.{p.region}.amazonaws.com",
        "description": p.region},
    "aws:index/getPartition:getPartition": lambda p, a: {
        "partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"},
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:rds/getInstance:getInstance": _existing_instance,
    "aws:kms/getKey:getKey": _existing_key,
}


# ----------------------------------------------------------------- the mock engine


def _mask(value: Any) -> Any:
    """Replace secret-wrapped and unknown values by markers, recursively."""
    from pulumi import asset
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        return SECRET_MARKER
    if isinstance(value, Unknown):
        return UNKNOWN_MARKER
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf carries every number as a double
    if isinstance(value, (asset.Asset, asset.Archive)):
        return _asset_json(value)
    return value


def _asset_json(value: Any) -> dict[str, Any]:
    """Assets and archives (a Lambda's code) in the engine's RPC form, as plain JSON."""
    from pulumi import asset
    from pulumi.runtime import rpc

    if isinstance(value, asset.AssetArchive):
        return {rpc._special_sig_key: rpc._special_archive_sig,
                "assets": {k: _asset_json(v) for k, v in value.assets.items()}}
    signature = rpc._special_asset_sig if isinstance(value, asset.Asset) else rpc._special_archive_sig
    for key in ("path", "text", "uri"):
        if getattr(value, key, None) is not None:
            return {rpc._special_sig_key: signature, key: getattr(value, key)}
    return {rpc._special_sig_key: signature}


class _ThreadLoops:
    """Event loops handed to worker threads, remembered so that they can all be closed."""

    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.lock = threading.Lock()

    def ensure(self) -> None:
        if threading.current_thread() is threading.main_thread():
            return
        try:
            asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            with self.lock:
                self.loops.append(loop)

    def close(self) -> None:
        with self.lock:
            loops, self.loops = self.loops, []
        for loop in loops:
            if not loop.is_running():
                loop.close()


def _planned(request: Any, urn: str) -> PlannedResource:
    """A RegisterResource request as the plan records it."""
    from pulumi.runtime import rpc

    inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
    return PlannedResource(
        urn=urn,
        type=request.type,
        name=request.name,
        parent=request.parent if request.parent and "::pulumi:pulumi:Stack::" not in request.parent else None,
        inputs=_mask(inputs),
        dependencies=sorted(set(request.dependencies)),
        custom=bool(request.custom),
    )


def _mocks_and_monitor(placeholders: Placeholders, recorded: list[PlannedResource]) -> tuple[Any, Any]:
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import rpc

    class PlanMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
            if not args.custom and args.resource_id is None:  # a component (reads carry an id, custom unset)
                return None, {}
            plain = {k: (rpc.unwrap_rpc_secret(v) if rpc.is_rpc_secret(v) else v) for k, v in args.inputs.items()}
            physical_id, computed = placeholders.resource(args.typ, args.name, plain)
            return physical_id, {**args.inputs, **computed}

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
            return placeholders.call(args.token, args.args)

    class RecordingMonitor(pulumi_mocks.MockMonitor):
        """Records registrations; gives every executor thread an event loop that the plan closes.

        The SDK runs monitor calls on the event loop's executor threads, and the mock monitor makes
        each such thread an event loop it never closes; garbage-collected at interpreter exit, those
        loops printed "Exception ignored ... Invalid file descriptor: -1" now and then. Creating the
        loops here (the SDK then finds them) lets ``build_plan`` close every one.
        """

        def __init__(self, mocks: Any) -> None:
            super().__init__(mocks)
            self.thread_loops = _ThreadLoops()

        def _thread_loop(self) -> None:
            self.thread_loops.ensure()

        def close_thread_loops(self) -> None:
            self.thread_loops.close()

        def Invoke(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
            self._thread_loop()
            return super().Invoke(request)

        def ReadResource(self, request: Any) -> Any:  # noqa: N802
            self._thread_loop()
            return super().ReadResource(request)

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802
            self._thread_loop()
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                recorded.append(_planned(request, response.urn))
            return response

    mocks = PlanMocks()
    return mocks, RecordingMonitor(mocks)


def _run_isolated(work: Callable[[], Any]) -> Any:
    """Run ``work`` on a fresh thread: a new event loop and an empty contextvars context.

    The loop is shut down completely before the thread ends (left-over tasks cancelled, the
    executor threads joined, then closed): nothing of it is left for interpreter exit to collect.
    """
    result: dict[str, Any] = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            result["value"] = work()
        except BaseException as err:  # noqa: BLE001 - re-raised on the caller's thread
            result["error"] = err
        finally:
            _shut_down(loop)

    thread = threading.Thread(target=target, name="dbenv-plan")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def build_plan(config: Mapping[str, Any], *, stack: str, project: str = PROJECT,
               program: Callable[[], None] | None = None) -> Plan:
    """Run the stack program for ``stack`` with Pulumi config ``config`` (``ns:key -> value``).

    ``program`` replaces the default ``recipes.build(recipes.read_stack_config())`` (tests run
    ``__main__.py`` itself through it).
    """

    def work() -> Plan:
        import pulumi
        from pulumi.runtime import stack as runtime_stack
        from pulumi.runtime.sync_await import _sync_await

        from components import recipes
        from components.config import ConfigError

        region = str(config.get("aws:region") or recipes.DEFAULT_REGION)
        recorded: list[PlannedResource] = []
        placeholders = Placeholders(region, stack_config=_parsed(config, stack, region))
        mocks, monitor = _mocks_and_monitor(placeholders, recorded)
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config({k: _config_string(v) for k, v in config.items()})

        def default_program() -> None:
            recipes.build(recipes.read_stack_config())

        try:
            _sync_await(runtime_stack.run_pulumi_func(program or default_program))
        except (ConfigError, pulumi.RunError) as err:
            # RunError: a clean, user-facing failure (e.g. a Lambda archive that cannot be built).
            raise PlanError(str(err)) from None
        finally:
            # The executor threads that ran monitor calls are done once the program is: join them,
            # then close the loops they were given.
            asyncio.get_event_loop().run_until_complete(asyncio.get_event_loop().shutdown_default_executor())
            monitor.close_thread_loops()
        # Registration order depends on async scheduling; sort so the same program gives the same plan.
        recorded.sort(key=lambda r: r.urn)
        return Plan(project=project, stack=stack, region=region, resources=recorded, placeholders=placeholders.notes)

    return _run_isolated(work)


def _parsed(config: Mapping[str, Any], stack: str, region: str) -> Any:
    """The stack config as the program will parse it; None if it is bad (the program then says why)."""
    from components import recipes
    from components.config import ConfigError

    prefix = f"{PROJECT}:"
    own = {key[len(prefix):]: value for key, value in config.items() if key.startswith(prefix)}
    try:
        return recipes.parse_config(own, stack=stack, region=region)
    except (ConfigError, ValueError):
        return None


def _config_string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render_tree(plan: Plan, suffix: Callable[[PlannedResource], str] | None = None) -> str:
    """The resources as an indented tree: components with their children; ``suffix`` adds a column."""
    by_parent: dict[str | None, list[PlannedResource]] = {}
    for res in plan.resources:
        by_parent.setdefault(res.parent, []).append(res)
    known = {r.urn for r in plan.resources}
    lines = [f"{plan.project}/{plan.stack} ({plan.region}): {len(plan.resources)} resources"]

    def walk(parent: str | None, depth: int) -> None:
        for res in by_parent.get(parent, []):
            extra = suffix(res) if suffix is not None else ""
            lines.append(f"{'  ' * depth}{'+' if res.custom else '*'} {res.type}  {res.name}{extra}")
            walk(res.urn, depth + 1)

    roots = [p for p in by_parent if p is None or p not in known]
    for root in roots:
        walk(root, 1)
    lines.extend(f"placeholder: {note['resource']}: {note['note']}" for note in plan.placeholders)
    return "\n".join(lines)
