"""How a rule becomes a CrossGuard policy: configuration, exemptions, not-applicable and undetermined verdicts.

Conventions every policy follows:

- Exemptions are configuration: every policy accepts
  ``exemptions: [{"resource": <logical name>, "reason": <why>}]``. An exempted
  resource is never judged and never silently passed: it is reported through
  the protocol's not-applicable channel as ``exempted <name>: <reason>``.
- "Not applicable" (a read replica, an engine without IAM auth, an ephemeral
  stack for a durable-stack rule, ...) is reported with the reason.
- "Undetermined" is what AWS would decide from something this check cannot
  see offline (a restore inherits the encryption of a snapshot outside the
  stack): it is reported as ``undetermined <name>: <why>``, never as a violation.
- A value unknown during preview, where the verdict needs it, raises the SDK's
  ``UnknownValueError``: an advisory "can't run during preview", judged again
  at update.
- Rules scoped to durable or ephemeral stacks read the stack tag named by
  their ``tagName`` property (default ``ephemeral``: ``"true"``/``"false"``).
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

from .inputs import MISSING, is_true, known, last_arn_part, lookup, shown, strings

DEFAULT_EPHEMERAL_TAG = "ephemeral"
DURABLE = "durable"
EPHEMERAL = "ephemeral"


class NotApplicable(Exception):
    """The policy does not judge this resource (or stack), for the reason given."""


class Undetermined(Exception):
    """AWS decides from something not visible offline; the reason says what."""


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


def undetermined_note(resource_name: str, reason: str) -> str:
    return f"undetermined {resource_name}: {reason}"


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
    properties: dict[str, Any] = {"exemptions": EXEMPTIONS_SCHEMA}
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
        value = known(props, *path)
        if is_true(value):
            return []
        note = f" ({default})" if value is MISSING and default else ""
        return [f"{label} is {shown(value)}{note}" + (f": {consequence}" if consequence else "")]
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
        except Undetermined as err:
            args.not_applicable(undetermined_note(args.name, str(err)))
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


@dataclass
class StackFindings:
    """What a stack policy found besides violations: exemptions, undetermined verdicts, values unknown in preview."""

    notes: list[str] = field(default_factory=list)

    def exempted(self, resource: PolicyResource, reason: str) -> None:
        self.notes.append(exempted_note(resource.name, reason))

    def undetermined(self, resource: PolicyResource, reason: str) -> None:
        self.notes.append(undetermined_note(resource.name, reason))


StackReport = Callable[[str, PolicyResource], None]
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
        findings = StackFindings()

        def report(message: str, resource: PolicyResource) -> None:
            report_violation(f"{message}\nRemediation: {self.remediation}", resource.urn)

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
    """Run ``judge`` per resource, honouring exemptions and isolating undetermined and unknown values."""
    for resource in resources:
        reason = exemption_reason(config, resource.name)
        if reason is not None:
            findings.exempted(resource, reason)
            continue
        try:
            judge(resource)
        except Undetermined as err:
            findings.undetermined(resource, str(err))
        except UnknownValueError as err:
            findings.undetermined(resource, f"{err.message}; judged again at update")
        except NotApplicable:
            continue

