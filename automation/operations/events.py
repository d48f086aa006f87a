"""Engine events -> the state of one operation, and one plain line per thing that happened.

``Tracker`` folds ``pulumi.automation.events.EngineEvent`` objects into the state of an
operation (resources in flight, done, failed, diagnostics, policy violations); ``describe``
says what each happening is in one line. Both faces use them: the CLI's progress display
(``commands.progress``) and the service's job log. The engine calls ``on_event`` from its own
threads: whoever feeds a Tracker holds a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Operations that change nothing are not worth a line.
_QUIET_OPS = {"same", "read", "refresh"}
_VERBS = {
    "create": "created", "update": "updated", "delete": "deleted", "replace": "replaced",
    "create-replacement": "created replacement", "delete-replaced": "deleted replaced",
    "import": "imported", "import-replacement": "imported replacement", "discard": "discarded",
    "discard-replaced": "discarded replaced", "remove-pending-replace": "removed pending replace",
    "read-replacement": "read replacement",
}
_SYMBOLS = {"create": "+", "update": "~", "delete": "-", "replace": "+-", "create-replacement": "++",
            "delete-replaced": "--", "import": "=", "import-replacement": "=>"}


def urn_name(urn: str) -> str:
    """The resource name at the end of a URN (``urn:pulumi:stack::proj::type::name``)."""
    return urn.rsplit("::", 1)[-1] if urn else ""


@dataclass
class ResourceOp:
    urn: str
    type: str
    op: str
    started: float
    finished: float | None = None
    failed: bool = False

    @property
    def name(self) -> str:
        return urn_name(self.urn)


@dataclass
class Diagnostic:
    severity: str
    message: str
    urn: str | None


@dataclass
class PolicyViolation:
    pack: str
    policy: str
    level: str
    message: str
    urn: str | None


@dataclass
class Tracker:
    """The state of one engine operation, built from its events."""

    clock: Callable[[], float] = time.monotonic
    in_flight: dict[str, ResourceOp] = field(default_factory=dict)
    done: list[ResourceOp] = field(default_factory=list)
    failed: list[ResourceOp] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    violations: list[PolicyViolation] = field(default_factory=list)
    changes: Mapping[str, int] | None = None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def apply(self, event: Any) -> list[tuple[str, Any]]:
        """Fold one EngineEvent in; return what happened as (kind, item) pairs for renderers."""
        happened: list[tuple[str, Any]] = []
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            if not _skip(meta):
                op = ResourceOp(meta.urn, meta.type, _op(meta.op), self.clock())
                self.in_flight[meta.urn] = op
                happened.append(("start", op))
        if event.res_outputs_event is not None:
            meta = event.res_outputs_event.metadata
            op = self.in_flight.pop(meta.urn, None) or ResourceOp(meta.urn, meta.type, _op(meta.op), self.clock())
            if not _skip(meta):
                op.finished = self.clock()
                self.done.append(op)
                happened.append(("done", op))
        if event.res_op_failed_event is not None:
            meta = event.res_op_failed_event.metadata
            op = self.in_flight.pop(meta.urn, None) or ResourceOp(meta.urn, meta.type, _op(meta.op), self.clock())
            op.finished, op.failed = self.clock(), True
            self.failed.append(op)
            happened.append(("failed", op))
        if event.diagnostic_event is not None:
            diag = event.diagnostic_event
            if not diag.ephemeral and diag.message.strip():
                item = Diagnostic(diag.severity, diag.message.strip(), diag.urn)
                self.diagnostics.append(item)
                happened.append(("diagnostic", item))
        if event.policy_event is not None:
            pol = event.policy_event
            item = PolicyViolation(pol.policy_pack_name, pol.policy_name, pol.enforcement_level,
                                   pol.message.strip(), pol.resource_urn)
            self.violations.append(item)
            happened.append(("policy", item))
        if event.summary_event is not None:
            self.changes = {_op(k): v for k, v in event.summary_event.resource_changes.items()}
            happened.append(("summary", self.changes))
        return happened

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity.startswith("error")]


def _op(value: Any) -> str:
    return str(getattr(value, "value", value))


def _skip(meta: Any) -> bool:
    # The stack resource itself and "same" steps are noise in a per-resource log.
    return meta.type == "pulumi:pulumi:Stack" or _op(meta.op) in _QUIET_OPS


def describe_op(op: ResourceOp) -> str:
    return f"{op.type} {op.name}"


def format_diagnostic(diag: Diagnostic) -> str:
    where = f" ({urn_name(diag.urn)})" if diag.urn else ""
    severity = "info" if diag.severity == "info#err" else diag.severity
    return f"{severity}{where}: {diag.message}"


def format_violation(item: PolicyViolation) -> str:
    where = f" on {urn_name(item.urn)}" if item.urn else ""
    return f"policy {item.level} [{item.pack}/{item.policy}]{where}: {item.message}"


def format_changes(changes: Mapping[str, int] | None) -> str:
    if not changes:
        return "no changes"
    return ", ".join(f"{count} {op}" for op, count in sorted(changes.items()) if count)


def describe(kind: str, item: Any, tracker: Tracker) -> str | None:
    """One plain line for a happening of ``Tracker.apply`` (None for those not worth a line)."""
    if kind == "done":
        symbol = _SYMBOLS.get(item.op, "*")
        seconds = f" ({item.finished - item.started:.0f}s)" if item.finished is not None else ""
        return f"{symbol} {_VERBS.get(item.op, item.op)} {describe_op(item)}{seconds}"
    if kind == "failed":
        return f"! failed to {item.op} {describe_op(item)}"
    if kind == "diagnostic":
        return format_diagnostic(item)
    if kind == "policy":
        return format_violation(item)
    if kind == "summary":
        return f"= {format_changes(item)} in {tracker.elapsed:.0f}s"
    return None
