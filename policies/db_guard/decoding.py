"""Decode each resource's properties once per RPC instead of once per policy.

The SDK's analyzer (pulumi_policy.policy) turns a resource's protobuf properties into a dict, deserializes
it and wraps it in an unknown-checking proxy inside its loop over policies: with 40 policies that is 40
decodings of the same message, and AnalyzeStack repeats it for every resource per stack policy. Measured
(benchmarks/policy_check.py): this decoding, not the policies, was most of a large stack's check time.

``install`` memoizes the three steps per RPC call, keyed by the identity of the message (and the dict and
the deserialized value it produced), in a thread-local cache that lives exactly as long as one Analyze /
AnalyzeStack call. Our policies never mutate ``props``. Calls with any other arguments (Remediate's
``proxy_secrets=True``) go to the SDK unchanged. If the SDK's internals are not where this expects them,
nothing is patched and the pack works as before, only slower.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_local = threading.local()


def _memo(function: Callable[[Any], Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def cached(value: Any, *args: Any, **kwargs: Any) -> Any:
        cache = getattr(_local, "cache", None)
        if cache is None or args or kwargs:
            return function(value, *args, **kwargs)
        key = (function, id(value))
        hit = cache.get(key)
        if hit is None or hit[0] is not value:
            hit = (value, function(value))
            cache[key] = hit  # keeps ``value`` alive, so its id cannot be reused while cached
        return hit[1]
    return cached


def _scoped(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, request: Any, context: Any) -> Any:
        _local.cache = {}
        try:
            return method(self, request, context)
        finally:
            _local.cache = None
    return call


class _JsonFormat:
    """``google.protobuf.json_format`` as the SDK module sees it, with a memoized MessageToDict."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.MessageToDict = _memo(module.MessageToDict)  # noqa: N815 - the protobuf name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def install() -> bool:
    """Patch the SDK's analyzer to decode once per call; False (and nothing patched) if its layout differs."""
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
    servicer.Analyze = _scoped(servicer.Analyze)
    servicer.AnalyzeStack = _scoped(servicer.AnalyzeStack)
    sdk._db_guard_cached = True
    return True
