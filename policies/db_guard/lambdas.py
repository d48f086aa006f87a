"""Lambda functions of the stack: no credentials in environment variables, a supported runtime, in the VPC
when they talk to a database.

AWS behaviour: environment variables are readable by anyone with lambda:GetFunctionConfiguration and are
shown in the console (Lambda Developer Guide, "Securing environment variables"). A deprecated runtime gets
no security patches and, later, blocks function creation and update (Lambda Developer Guide, "Runtime
deprecation policy"; dates from docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html). A function
without vpcConfig runs outside the VPC and reaches a private database only if it is made public.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, Severity

from .inputs import as_list, as_number, is_set, known, lookup, strings
from .rules import (
    Anchor,
    NotApplicable,
    ResourceRule,
    StackFindings,
    StackIndex,
    StackReport,
    StackRule,
    dependencies,
    judge_each,
)
from .tokens import LAMBDA_FUNCTION, RDS_CLUSTER, RDS_INSTANCE, RDS_PROXY, SECRET_ROTATION

# Runtimes past their Lambda deprecation date (late 2026). Configurable: deprecatedRuntimes.
DEFAULT_DEPRECATED_RUNTIMES = (
    "python2.7", "python3.6", "python3.7", "python3.8", "python3.9",
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x", "nodejs16.x",
    "nodejs18.x", "nodejs20.x",
    "java8", "go1.x", "provided",
    "ruby2.5", "ruby2.7", "ruby3.2",
    "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "dotnet5.0", "dotnet6", "dotnet7",
)
_CREDENTIAL_KEY = re.compile(r"(?i)(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|"
                             r"credential|auth)")
_REFERENCE_SUFFIX = re.compile(r"(?i)(_|^)(arn|id|name|endpoint|url|uri|host|region|length|len|size|path|file|"
                               r"ttl|days|seconds|timeout|characters|chars|version|mode|type|header|stage)$")
_VALUE_PATTERNS = (
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
)


def _looks_like_reference(value: str) -> bool:
    text = value.strip()
    return (text == "" or text.startswith("arn:") or as_number(text) is not None
            or text.lower() in ("none", "null", "true", "false", "yes", "no", "on", "off"))


def _check_environment(props: Mapping[str, Any], _config: Mapping[str, Any], _type: str) -> list[str]:
    variables = known(props, "environment", "variables")
    if not isinstance(variables, Mapping):
        return []
    problems = []
    for name in variables:
        value = known(variables, name)
        if not isinstance(value, str):
            continue
        found = [what for pattern, what in _VALUE_PATTERNS if pattern.search(value)]
        if found:
            problems.append(f"environment variable {name} holds {found[0]}")
        elif (_CREDENTIAL_KEY.search(name) and not _REFERENCE_SUFFIX.search(name)
              and not _looks_like_reference(value)):
            problems.append(f"environment variable {name} looks like a credential (its value is not shown)")
    return problems


def _zip_function(props: Mapping[str, Any], _type: str) -> None:
    package = known(props, "packageType")
    if isinstance(package, str) and package.lower() == "image":
        raise NotApplicable("container image function: the runtime is in the image")


def _check_runtime(props: Mapping[str, Any], config: Mapping[str, Any], _type: str) -> list[str]:
    runtime = known(props, "runtime")
    if not isinstance(runtime, str):
        return ["runtime is not set: a .zip function needs one"] if not is_set(runtime) else []
    deprecated = {r.lower() for r in config.get("deprecatedRuntimes", DEFAULT_DEPRECATED_RUNTIMES)}
    if runtime.strip().lower() in deprecated:
        return [f"runtime {runtime} is deprecated: no security patches, and Lambda blocks creating and updating "
                f"functions on it"]
    return []


def _talks_to_database(function: PolicyResource, rotation_functions: set[str]) -> str | None:
    for dep in dependencies(function):
        if dep.resource_type in (RDS_INSTANCE, RDS_CLUSTER, RDS_PROXY):
            return f"it depends on {dep.name}"
    for value in strings(lookup(function.props, "environment")):
        if ".rds.amazonaws.com" in value:
            return "its environment names a database endpoint"
    name = lookup(function.props, "name")
    if function.urn in rotation_functions or (isinstance(name, str) and name in rotation_functions):
        return "it rotates a database secret"
    return None


def _check_vpc(index: StackIndex, config: Mapping[str, Any], report: StackReport, findings: StackFindings) -> None:
    rotation_functions: set[str] = set()
    for rotation in index.of(SECRET_ROTATION):
        arn = lookup(rotation.props, "rotationLambdaArn")
        if isinstance(arn, str):
            rotation_functions.add(arn.split(":function:", 1)[-1].split(":", 1)[0])
        rotation_functions.update(d.urn for d in dependencies(rotation) if d.resource_type == LAMBDA_FUNCTION)

    def judge(function: PolicyResource) -> None:
        why = _talks_to_database(function, rotation_functions)
        if why is None:
            return
        subnets = as_list(known(function.props, "vpcConfig", "subnetIds"))
        if not subnets:
            report(f"the function talks to a database ({why}) but has no vpcConfig subnets: it runs outside the "
                   f"VPC", function)

    judge_each(index.of(LAMBDA_FUNCTION), config, findings, judge)


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "lambda-no-credentials-in-environment",
        "Lambda environment variables must not hold credentials (passwords, tokens, keys, URLs with passwords).",
        (LAMBDA_FUNCTION,), _check_environment,
        "keep credentials in Secrets Manager (pass the secret ARN) or use IAM authentication tokens",
        EnforcementLevel.MANDATORY, Anchor("—", "—", "CKV_AWS_45"), severity=Severity.CRITICAL,
    ),
    ResourceRule(
        "lambda-supported-runtime",
        "Lambda functions should use a runtime Lambda still supports.",
        (LAMBDA_FUNCTION,), _check_runtime,
        "move to a supported runtime (python3.12+, nodejs22.x+, java21+, ...)",
        EnforcementLevel.ADVISORY, Anchor("lambda-function-settings-check", "Lambda.2", "CKV_AWS_363"),
        applies=_zip_function, severity=Severity.MEDIUM,
        extra_schema={"deprecatedRuntimes": {"type": "array", "items": {"type": "string", "minLength": 1},
                                             "default": list(DEFAULT_DEPRECATED_RUNTIMES),
                                             "description": "Runtime identifiers past their deprecation date."}},
    ),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "lambda-in-vpc-for-database",
        "Lambda functions that talk to a database should run inside the VPC.",
        _check_vpc,
        "set vpc_config with private subnet_ids and a security group the database admits",
        EnforcementLevel.ADVISORY, Anchor("lambda-inside-vpc", "Lambda.3", "CKV_AWS_117"),
    ),
)
