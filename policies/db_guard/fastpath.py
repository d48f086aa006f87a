"""What the SDK's analyzer does once per policy, done once per RPC call instead. Same verdicts.

Decoding: the SDK's analyzer (pulumi_policy.policy) turns a resource's protobuf properties into a dict,
deserializes it, wraps it in an unknown-checking proxy and reads its options and provider inside its loop over
policies: with 40 policies, 40 times the same work per resource. ``install`` memoizes these steps per RPC call,
keyed by the identity of the message (upb hands out the same Python object for the same sub-message), in a
thread-local cache that lives exactly as long as one Analyze / AnalyzeStack call. Our policies never mutate
what they are given. Calls with any other arguments (Remediate's ``proxy_secrets=True``) go to the SDK
unchanged.

Dispatch: the SDK calls every resource policy for every resource, building its arguments first; each of our
policies judges a few resource types and returns at once for any other. ``PolicyList`` is the pack's list of
policies: inside an Analyze call it yields only the policies that judge the call's resource type (and any
policy that names no types), in the pack's order.

AnalyzeStack: the SDK builds the stack's resource objects afresh for every stack policy; ``_analyze_stack``
builds them once per call and runs the SDK's own steps for each policy.

Measured (benchmarks/policy_check.py, 4,000 resources): without these the SDK's per-policy work, not the
policies, was most of the check's time. If the SDK's internals are not where ``install`` expects them, nothing
is patched and the pack works as before, only slower; DB_GUARD_FASTPATH=off (policies/__main__.py) skips
``install``, and tests/test_policy_fastpath.py compares both.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_local = threading.local()


def _memo(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function(value)`` once per ``value`` per RPC call (outside a call, or with more arguments: every time)."""
    @functools.wraps(function)
    def cached(value: Any, *args: Any, **kwargs: Any) -> Any:
        cache = getattr(_local, "cache", None)
        if cache is None or args or kwargs:
            return function(value, *args, **kwargs)
        key = (function, id(value))
        hit = cache.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        result = function(value)
        cache[key] = (value, result)  # keeps ``value`` alive, so its id cannot be reused while cached
        return result
    return cached


def _memo_method(method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A servicer method of one request message (its options, its provider): once per message per call."""
    @functools.wraps(method)
    def cached(self: Any, request: Any) -> Any:
        cache = getattr(_local, "cache", None)
        if cache is None:
            return method(self, request)
        key = (method, id(request))
        hit = cache.get(key)
        if hit is not None and hit[0] is request:
            return hit[1]
        result = method(self, request)
        cache[key] = (request, result)
        return result
    return cached


def _scoped(method: Callable[..., Any], *, by_type: bool) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, request: Any, context: Any) -> Any:
        _local.cache = {}
        _local.resource_type = request.type if by_type else None
        try:
            return method(self, request, context)
        finally:
            _local.cache = None
            _local.resource_type = None
    return call


class PolicyList(list):  # type: ignore[type-arg] - the SDK requires a list
    """The pack's policies; inside an Analyze call, only those that judge the call's resource type."""

    def __init__(self, policies: Iterable[tuple[Any, tuple[str, ...] | None]]) -> None:
        pairs = list(policies)
        super().__init__(policy for policy, _ in pairs)
        self._types = [types for _, types in pairs]
        self._by_type: dict[str, list[Any]] = {}

    def __iter__(self) -> Iterator[Any]:
        resource_type = getattr(_local, "resource_type", None)
        if resource_type is None:
            return super().__iter__()
        chosen = self._by_type.get(resource_type)
        if chosen is None:
            chosen = [policy for policy, types in zip(super().__iter__(), self._types, strict=True)
                      if types is None or resource_type in types]
            self._by_type[resource_type] = chosen  # a benign race: every thread computes the same list
        return iter(chosen)


def _stack_resources(servicer: Any, request: Any, sdk: Any) -> list[Any]:
    """The stack's resources as the SDK's AnalyzeStack builds them (pulumi_policy 1.x), parents and
    dependencies linked to the resource objects."""
    resources = []
    links = []
    for r in request.resources:
        props = sdk.unknown_checking_proxy(sdk.deserialize_properties(sdk.json_format.MessageToDict(r.properties)))
        resource = sdk.PolicyResource(r.type, props, r.urn, r.name, servicer._get_resource_options(r),
                                      servicer._get_provider_resource(r), None, [], {})
        resources.append(resource)
        links.append((resource, r.parent, list(r.dependencies),
                      {k: list(v.urns) for k, v in r.propertyDependencies.items()}))
    by_urn = {resource.urn: resource for resource in resources}
    for resource, parent, dependencies, property_dependencies in links:
        if parent is not None and parent in by_urn:
            resource.parent = by_urn[parent]
        resource.dependencies.extend(by_urn[d] for d in dependencies if d in by_urn)
        for key, urns in property_dependencies.items():
            resource.property_dependencies[key] = [by_urn[d] for d in urns if d in by_urn]
    return resources


def _analyze_stack(sdk: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    """The SDK's AnalyzeStack, building the resource list once per call instead of once per stack policy.

    The SDK gives each stack policy freshly built resource objects; ours only read them (StackIndex), so
    one list serves them all. Everything else (levels, reports, not-applicable, unknown values during
    preview) is the SDK's own code path: its helper methods, in the same order.
    """
    private = "_PolicyAnalyzerServicer__"

    def analyze_stack(self: Any, request: Any, context: Any) -> Any:
        if not all(hasattr(self, private + name) for name in ("policies", "stack_tags", "policy_pack_name",
                                                               "policy_pack_version")):
            return original(self, request, context)
        self._configure_runtime_settings()
        response = sdk.proto.AnalyzeResponse()
        resources = None
        for policy in getattr(self, private + "policies"):
            level = self._get_enforcement_level(policy)
            if level == sdk.EnforcementLevel.DISABLED or not isinstance(policy, sdk.StackValidationPolicy):
                continue
            if level == sdk.EnforcementLevel.REMEDIATE:
                level = sdk.EnforcementLevel.MANDATORY  # stack policies cannot remediate
            report_violation = self._create_report_violation(response, policy.name, policy.description, level,
                                                             policy.severity)
            if resources is None:
                resources = _stack_resources(self, request, sdk)
            args = sdk.StackValidationArgs(resources, self._get_policy_config(policy.name),
                                           getattr(self, private + "stack_tags"))
            try:
                result = policy.validate(args, report_violation)
                if sdk.isawaitable(result):
                    loop = sdk.asyncio.new_event_loop()
                    loop.run_until_complete(sdk.asyncio.Task(result, loop=loop))
                    loop.close()
            except sdk.UnknownValueError as err:
                name, version = getattr(self, private + "policy_pack_name"), getattr(self, private + "policy_pack_version")
                response.diagnostics.append(sdk.proto.AnalyzeDiagnostic(
                    policyName=policy.name, policyPackName=name, policyPackVersion=version,
                    message=(f"can't run policy '{policy.name}' from policy pack '{name}@v{version}' during "
                             f"preview: {err.message}"),
                    urn="", description=policy.description,
                    enforcementLevel=self._map_enforcement_level(sdk.EnforcementLevel.ADVISORY),
                ))
            except sdk._NotApplicableError as err:
                response.not_applicable.append(sdk.proto.PolicyNotApplicable(policy_name=policy.name,
                                                                              reason=err.reason or ""))
        return response

    return analyze_stack


class _JsonFormat:
    """``google.protobuf.json_format`` as the SDK module sees it, with a memoized MessageToDict."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.MessageToDict = _memo(module.MessageToDict)  # noqa: N815 - the protobuf name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def install() -> bool:
    """Patch the SDK's analyzer as above; False (and nothing patched) if its layout differs."""
    try:
        from pulumi_policy import policy as sdk
    except ImportError:
        return False
    servicer = getattr(sdk, "_PolicyAnalyzerServicer", None)
    needed = ("json_format", "deserialize_properties", "unknown_checking_proxy")
    if servicer is None or not all(hasattr(sdk, name) for name in needed) or getattr(sdk, "_db_guard_cached", False):
        return False
    if not all(hasattr(servicer, name) for name in ("Analyze", "AnalyzeStack")):
        return False
    sdk.json_format = _JsonFormat(sdk.json_format)
    sdk.deserialize_properties = _memo(sdk.deserialize_properties)
    sdk.unknown_checking_proxy = _memo(sdk.unknown_checking_proxy)
    for name in ("_get_resource_options", "_get_provider_resource"):
        if hasattr(servicer, name):
            setattr(servicer, name, _memo_method(getattr(servicer, name)))
    if hasattr(sdk, "signature"):  # inspect.signature of pulumi's Settings class, on every call
        sdk.signature = functools.lru_cache(maxsize=16)(sdk.signature)
    stack_needs = ("proto", "EnforcementLevel", "StackValidationPolicy", "StackValidationArgs", "PolicyResource",
                   "UnknownValueError", "_NotApplicableError", "isawaitable", "asyncio")
    analyze_stack = servicer.AnalyzeStack
    if all(hasattr(sdk, name) for name in stack_needs) and all(
            hasattr(servicer, name) for name in ("_get_enforcement_level", "_create_report_violation",
                                                 "_get_policy_config", "_map_enforcement_level")):
        analyze_stack = _analyze_stack(sdk, analyze_stack)
    servicer.Analyze = _scoped(servicer.Analyze, by_type=True)
    servicer.AnalyzeStack = _scoped(analyze_stack, by_type=False)
    sdk._db_guard_cached = True
    return True
