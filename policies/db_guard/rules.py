"""How a rule becomes a CrossGuard policy: configuration, exemptions, not-applicable and undetermined verdicts.

Conventions every policy follows:

- Exemptions are configuration: every policy accepts
  ``exemptions: [{"resource": <logical name>, "reason": <why>}]``. An exempted
  resource is never judged and never silently passed: it is reported through
  the protocol's not-applicable channel as ``exempted <name>: <reason>``.
- "Not applicable" (a read replica, an engine without IAM auth, an ephemeral
  stack for a durable-stack rule, ...) is reported with the reason.
- "Undetermined" is a verdict, not a pass: AWS would decide from something the
  plan does not show (a restore inherits the encryption of a snapshot outside
  the stack, a key given by an id the stack does not create). It is reported as
  an advisory violation of the policy, ``cannot verify offline: <what is
  unknown> — set <input> to prove it``; with the policy's ``strict: true``
  (``dbenv policy check --strict``) it is reported at the policy's own level,
  so a mandatory policy blocks on it.
- A value unknown during preview, where the verdict needs it, is reported the
  same way (``cannot verify during preview: ...``), always advisory: the
  update judges it again with the value known.
- A malformed input (a boolean given as ``1`` or ``"true"``) is a violation:
  ``<input>: expected true/false, got ...``.
- Rules scoped to durable or ephemeral stacks read the stack tag named by
  their ``tagName`` property (default ``ephemeral``: ``"true"``/``"false"``).

The protocol carries an enforcement level per diagnostic (the SDK itself reports "can't run during preview"
as advisory for a mandatory policy); ``report_advisory`` uses that to report an undetermined verdict below
the policy's level.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from .inputs import MISSING, Malformed, boolean, last_arn_part, lookup, strings

DEFAULT_EPHEMERAL_TAG = "ephemeral"
DURABLE = "durable"
EPHEMERAL = "ephemeral"


class NotApplicable(Exception):
    """The policy does not judge this resource (or stack), for the reason given."""


class Undetermined(Exception):
    """AWS decides from something the plan does not show: ``unknown`` says what, ``prove`` which input to set.

    ``preview``: the value is only unknown during preview (judged again at update), never mandatory.
    """

    def __init__(self, unknown: str, prove: str = "", *, preview: bool = False) -> None:
        self.unknown, self.prove, self.preview = unknown, prove, preview
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.preview:
            return f"cannot verify during preview: {self.unknown}; judged again at update"
        text = f"cannot verify offline: {self.unknown}"
        return f"{text} — set {self.prove} to prove it" if self.prove else text


def unknown_at_preview(err: UnknownValueError) -> Undetermined:
    # The SDK's message: "<type> value at .<path> can't be known during preview".
    return Undetermined(err.message.replace(" can't be known during preview", " is not known yet"), preview=True)


def _closure_value(function: Any, name: str) -> Any:
    code, cells = getattr(function, "__code__", None), getattr(function, "__closure__", None) or ()
    if code is None or name not in code.co_freevars:
        return None
    return cells[code.co_freevars.index(name)].cell_contents


def report_advisory(report_violation: ReportViolation, message: str, urn: str | None) -> None:
    """Report ``message`` as an advisory diagnostic of this policy, whatever the policy's own level.

    The SDK's ``report_violation`` appends a diagnostic at the policy's level to the RPC's response; the
    diagnostic is then lowered to advisory. If the SDK ever builds its reporter differently, the message
    stays at the policy's level: stricter, never silent.
    """
    report_violation(message, urn)
    response = _closure_value(report_violation, "response")
    diagnostics = getattr(response, "diagnostics", None)
    if diagnostics:
        from pulumi.runtime.proto import analyzer_pb2

        diagnostics[-1].enforcementLevel = analyzer_pb2.ADVISORY


def report_undetermined(report_violation: ReportViolation, config: Mapping[str, Any], err: Undetermined,
                        urn: str | None) -> None:
    """An undetermined verdict: advisory, or at the policy's level under ``strict`` (never for preview unknowns)."""
    if config.get("strict") is True and not err.preview:
        report_violation(err.message, urn)
    else:
        report_advisory(report_violation, err.message, urn)


EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Resources (by logical name) this policy does not judge, each with the reason why.",
    "items": {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "minLength": 1},
            "reason": {"type": "string", "minLength": 1},
        },
        "required": ["resource", "reason"],
        "additionalProperties": False,
    },
    "default": [],
}
STRICT_SCHEMA: dict[str, Any] = {
    "type": "boolean", "default": False,
    "description": "Report what cannot be verified offline at this policy's level instead of as an advisory.",
}
TAG_SCHEMA: dict[str, Any] = {
    "type": "string", "minLength": 1, "default": DEFAULT_EPHEMERAL_TAG,
    "description": "Stack tag whose value 'true'/'false' says whether the stack is ephemeral.",
}


def exemption_reason(config: Mapping[str, Any], resource_name: str) -> str | None:
    for entry in config.get("exemptions") or []:
        if isinstance(entry, Mapping) and entry.get("resource") == resource_name:
            return str(entry.get("reason") or "no reason given")
    return None


def exempted_note(resource_name: str, reason: str) -> str:
    return f"exempted {resource_name}: {reason}"


def stack_is_ephemeral(stack_tags: Mapping[str, str], config: Mapping[str, Any]) -> bool:
    tag = str(config.get("tagName", DEFAULT_EPHEMERAL_TAG))
    value = stack_tags.get(tag)
    if value is None:
        raise NotApplicable(f"the stack has no {tag!r} tag: it is neither declared ephemeral nor durable")
    if value.lower() not in ("true", "false"):
        raise NotApplicable(f"the stack tag {tag}={value!r} is neither 'true' nor 'false'")
    return value.lower() == "true"


def check_scope(scope: str | None, stack_tags: Mapping[str, str], config: Mapping[str, Any]) -> None:
    if scope is None:
        return
    ephemeral = stack_is_ephemeral(stack_tags, config)
    if scope == DURABLE and ephemeral:
        raise NotApplicable("ephemeral stack: this rule judges durable stacks")
    if scope == EPHEMERAL and not ephemeral:
        raise NotApplicable("durable stack: this rule judges ephemeral stacks")


@dataclass(frozen=True)
class Anchor:
    """What a policy corresponds to in the rule sets platform teams already use."""

    config_rule: str = "—"
    security_hub: str = "—"
    checkov: str = "—"


Check = Callable[[Mapping[str, Any], Mapping[str, Any], str], list[str]]
Applies = Callable[[Mapping[str, Any], str], None]


def _always(_props: Mapping[str, Any], _resource_type: str) -> None:
    return None


def _schema(scope: str | None, extra: Mapping[str, dict[str, Any]]) -> PolicyConfigSchema:
    properties: dict[str, Any] = {"exemptions": EXEMPTIONS_SCHEMA, "strict": STRICT_SCHEMA}
    if scope is not None:
        properties["tagName"] = TAG_SCHEMA
    properties.update(extra)
    return PolicyConfigSchema(properties=properties)


def _policy(kind: Any, rule: ResourceRule | StackRule) -> Any:
    """The SDK policy (``ResourceValidationPolicy`` or ``StackValidationPolicy``) for a rule."""
    return kind(name=rule.name, description=rule.description, validate=rule.validate, enforcement_level=rule.level,
                config_schema=_schema(rule.scope, rule.extra_schema), severity=rule.severity,
                remediation_steps=rule.remediation)


def must_be_true(*path: str, default: str = "", consequence: str = "") -> Check:
    """A check that the boolean property at ``path`` is true: "<path> is <value>", naming the API ``default``
    when the property is absent, and the ``consequence`` of it not being true."""
    label = ".".join(path)

    def check(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
        value = boolean(props, *path)
        if value is True:
            return []
        state = (f"not set ({default})" if default else "not set") if value is MISSING else "false"
        return [f"{label} is {state}" + (f": {consequence}" if consequence else "")]
    return check


@dataclass(frozen=True)
class ResourceRule:
    """A check of one resource's inputs: ``check(props, config, resource_type)`` returns the problems."""

    name: str
    description: str
    types: tuple[str, ...]
    check: Check
    remediation: str
    level: EnforcementLevel
    anchor: Anchor = Anchor()
    applies: Applies = _always
    severity: Severity = Severity.HIGH
    scope: str | None = None
    extra_schema: dict[str, dict[str, Any]] = field(default_factory=dict)

    def policy(self) -> ResourceValidationPolicy:
        return _policy(ResourceValidationPolicy, self)

    def validate(self, args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in self.types:
            return
        config = args.get_config() or {}
        reason = exemption_reason(config, args.name)
        if reason is not None:
            args.not_applicable(exempted_note(args.name, reason))
        try:
            check_scope(self.scope, args.stack_tags, config)
            self.applies(args.props, args.resource_type)
            problems = self.check(args.props, config, args.resource_type)
        except NotApplicable as err:
            args.not_applicable(str(err))
            return
        except Malformed as err:
            problems = [str(err)]
        except UnknownValueError as err:
            report_undetermined(report_violation, config, unknown_at_preview(err), None)
            return
        except Undetermined as err:
            report_undetermined(report_violation, config, err, None)
            return
        for problem in problems:
            report_violation(f"{problem}\nRemediation: {self.remediation}", None)


# --------------------------------------------------------------------------- stack rules


class StackIndex:
    """The stack's resources indexed once, so that stack rules stay linear in the number of resources."""

    def __init__(self, resources: Iterable[PolicyResource]) -> None:
        self.resources = list(resources)
        self.by_type: dict[str, list[PolicyResource]] = defaultdict(list)
        self.by_urn: dict[str, PolicyResource] = {}
        self.children: dict[str, list[PolicyResource]] = defaultdict(list)
        for resource in self.resources:
            self.by_type[resource.resource_type].append(resource)
            self.by_urn[resource.urn] = resource
        for resource in self.resources:
            if resource.parent is not None:
                self.children[resource.parent.urn].append(resource)
        self._by_key: dict[tuple[tuple[str, ...], str], dict[str, list[PolicyResource]]] = {}

    def of(self, *types: str) -> list[PolicyResource]:
        return [r for t in types for r in self.by_type.get(t, ())]

    def keyed(self, types: tuple[str, ...], prop: str) -> dict[str, list[PolicyResource]]:
        """Resources of ``types`` by the (case-insensitive) string value of ``prop``; built once per key."""
        cache_key = (types, prop)
        if cache_key not in self._by_key:
            table: dict[str, list[PolicyResource]] = defaultdict(list)
            for resource in self.of(*types):
                value = lookup(resource.props, prop)
                if isinstance(value, str) and value:
                    table[last_arn_part(value)].append(resource)
            self._by_key[cache_key] = table
        return self._by_key[cache_key]

    def find(self, types: tuple[str, ...], prop: str, identifier: Any) -> list[PolicyResource]:
        if not isinstance(identifier, str) or not identifier:
            return []
        return self.keyed(types, prop).get(last_arn_part(identifier), [])

    def descendants(self, resource: PolicyResource) -> Iterable[PolicyResource]:
        stack = list(self.children.get(resource.urn, ()))
        while stack:
            child = stack.pop()
            yield child
            stack.extend(self.children.get(child.urn, ()))


def dependencies(resource: PolicyResource) -> list[PolicyResource]:
    """Everything ``resource`` depends on: resource-level and property-level dependencies."""
    found = list(resource.dependencies)
    for deps in resource.property_dependencies.values():
        found.extend(deps)
    return found


def referenced_strings(resource: PolicyResource, *props: str) -> list[str]:
    values: list[str] = []
    for prop in props or tuple(resource.props.keys()):
        values.extend(strings(lookup(resource.props, prop)))
    return values


StackReport = Callable[[str, PolicyResource], None]


@dataclass
class StackFindings:
    """What a stack policy found besides violations: exemptions (notes) and undetermined verdicts (reported)."""

    report: StackReport
    report_undetermined: Callable[[Undetermined, PolicyResource], None]
    notes: list[str] = field(default_factory=list)

    def exempted(self, resource: PolicyResource, reason: str) -> None:
        self.notes.append(exempted_note(resource.name, reason))

    def undetermined(self, resource: PolicyResource, err: Undetermined) -> None:
        self.report_undetermined(err, resource)
StackCheck = Callable[[StackIndex, Mapping[str, Any], StackReport, StackFindings], None]


@dataclass(frozen=True)
class StackRule:
    """A check that needs the whole stack (references between resources): one AnalyzeStack call."""

    name: str
    description: str
    check: StackCheck
    remediation: str
    level: EnforcementLevel
    anchor: Anchor = Anchor()
    severity: Severity = Severity.MEDIUM
    scope: str | None = None
    extra_schema: dict[str, dict[str, Any]] = field(default_factory=dict)

    def policy(self) -> StackValidationPolicy:
        return _policy(StackValidationPolicy, self)

    def validate(self, args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = args.get_config() or {}

        def report(message: str, resource: PolicyResource) -> None:
            report_violation(f"{message}\nRemediation: {self.remediation}", resource.urn)

        def undetermined(err: Undetermined, resource: PolicyResource) -> None:
            report_undetermined(report_violation, config, err, resource.urn)

        findings = StackFindings(report, undetermined)
        try:
            check_scope(self.scope, args.stack_tags, config)
            self.check(StackIndex(args.resources), config, report, findings)
        except NotApplicable as err:
            findings.notes.insert(0, str(err))
        if findings.notes:
            # The protocol has one not-applicable reason per stack policy; violations already
            # reported stay in the response, so the notes are listed here, one per line.
            args.not_applicable("\n".join(findings.notes))


def judge_each(resources: Iterable[PolicyResource], config: Mapping[str, Any], findings: StackFindings,
               judge: Callable[[PolicyResource], None]) -> None:
    """Run ``judge`` per resource, honouring exemptions and isolating undetermined, unknown and malformed values."""
    for resource in resources:
        reason = exemption_reason(config, resource.name)
        if reason is not None:
            findings.exempted(resource, reason)
            continue
        try:
            judge(resource)
        except Undetermined as err:
            findings.undetermined(resource, err)
        except UnknownValueError as err:
            findings.undetermined(resource, unknown_at_preview(err))
        except Malformed as err:
            findings.report(str(err), resource)
        except NotApplicable:
            continue

