"""Branch -> stack name, and stack -> AWS-safe physical resource names.

Every physical name in the project is made here, so the AWS identifier rules
(length, character set, leading letter, no ``--``, no trailing ``-``) are
enforced in one place. Names that would be too long are shortened and a
stable hash of the full name is appended, so two different inputs never end
up with the same name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

STACK_NAME_MAX = 100
BRANCH_HASH_LEN = 8
PREFIX_SLUG_MAX = 12
PREFIX_HASH_LEN = 6
STACK_SLUG_MAX = 60

# Characters git refuses in a branch name (see `git check-ref-format`).
_GIT_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class InvalidName(ValueError):
    """A branch, stack or resource name that cannot be used."""


def validate_branch(branch: str) -> str:
    """Return ``branch`` if git would accept it as a branch name, else raise InvalidName."""
    if not isinstance(branch, str) or branch == "":
        raise InvalidName("branch name is empty: pass --branch or run inside a git checkout")
    problem = _branch_problem(branch)
    if problem:
        raise InvalidName(f"invalid branch name {branch!r}: {problem}")
    return branch


def _branch_problem(branch: str) -> str | None:
    if _GIT_FORBIDDEN.search(branch):
        return "spaces, control characters and ~ ^ : ? * [ \\ are not allowed"
    if branch.startswith("-"):
        return "it must not start with '-'"
    if branch == "@" or "@{" in branch:
        return "'@' alone and '@{' are not allowed"
    if ".." in branch or "//" in branch:
        return "'..' and '//' are not allowed"
    if branch.startswith("/") or branch.endswith("/") or branch.endswith("."):
        return "it must not start with '/' or end with '/' or '.'"
    for part in branch.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return "no path component may start with '.' or end with '.lock'"
    return None


def short_hash(text: str, length: int) -> str:
    """A stable lowercase hex digest of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def slugify(text: str) -> str:
    """Lowercase ASCII letters and digits joined by single hyphens ('' if nothing survives)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def stack_name(branch: str) -> str:
    """The Pulumi stack of a git branch: ``<slug>-<hash8>``, e.g. ``feature-x-1a2b3c4d``.

    The hash is taken over the exact branch name, so branches that slugify
    alike (``Feature/X`` and ``feature-x``) still get different stacks.
    """
    validate_branch(branch)
    slug = slugify(branch)[:STACK_SLUG_MAX].rstrip("-") or "branch"
    return f"{slug}-{short_hash(branch, BRANCH_HASH_LEN)}"


def validate_stack_name(name: str) -> str:
    if not _STACK_NAME.match(name or ""):
        raise InvalidName(
            f"invalid stack name {name!r}: use 1-{STACK_NAME_MAX} characters from [A-Za-z0-9_.-]"
        )
    return name


def resource_prefix(stack: str) -> str:
    """The prefix of every physical name of a stack: letter first, ``[a-z0-9-]``, at most 19 characters."""
    slug = slugify(stack)
    if not slug or not slug[0].isalpha():
        slug = "s" + slug
    slug = re.sub(r"-+", "-", slug[:PREFIX_SLUG_MAX]).rstrip("-")
    return f"{slug}-{short_hash(stack, PREFIX_HASH_LEN)}"


# AWS identifier rules, by kind: (max length, allowed characters, must start with a letter,
# hyphen rules apply (no '--', no trailing '-')).
@dataclass(frozen=True)
class IdentifierRule:
    max_len: int
    pattern: str
    letter_first: bool = True
    hyphen_rules: bool = True
    min_len: int = 1


RULES: dict[str, IdentifierRule] = {
    # DB instance / cluster / snapshot / subnet-group-like identifiers.
    "rds": IdentifierRule(63, r"[a-z0-9-]+"),
    # RDS Proxy names (letter first, hyphen rules; AWS allows 63, we keep 60 for headroom).
    "rds_proxy": IdentifierRule(60, r"[a-z0-9-]+"),
    # DMS replication instance, endpoint, task and subnet group ids.
    "dms": IdentifierRule(63, r"[a-z0-9-]+"),
    "iam_role": IdentifierRule(64, r"[A-Za-z0-9+=,.@_-]+", letter_first=False, hyphen_rules=False),
    "iam_policy": IdentifierRule(128, r"[A-Za-z0-9+=,.@_-]+", letter_first=False, hyphen_rules=False),
    "lambda": IdentifierRule(64, r"[A-Za-z0-9_-]+", letter_first=False, hyphen_rules=False),
    "dynamodb": IdentifierRule(255, r"[A-Za-z0-9_.-]+", letter_first=False, hyphen_rules=False, min_len=3),
    "security_group": IdentifierRule(255, r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+", letter_first=False, hyphen_rules=False),
    "secret": IdentifierRule(512, r"[A-Za-z0-9/_+=.@-]+", letter_first=False, hyphen_rules=False),
    "kms_alias": IdentifierRule(256, r"alias/[A-Za-z0-9/_-]+", letter_first=False, hyphen_rules=False),
    "generic": IdentifierRule(63, r"[a-z0-9-]+"),
}


def check_identifier(value: str, kind: str) -> str:
    """Return ``value`` if it is a valid AWS identifier of ``kind``, else raise InvalidName."""
    rule = RULES[kind]
    problems = []
    if not (rule.min_len <= len(value) <= rule.max_len):
        problems.append(f"length {len(value)} not in {rule.min_len}..{rule.max_len}")
    if not re.fullmatch(rule.pattern, value):
        problems.append(f"characters outside {rule.pattern}")
    if rule.letter_first and not value[:1].isalpha():
        problems.append("must start with a letter")
    if rule.hyphen_rules and ("--" in value or value.endswith("-")):
        problems.append("no '--' and no trailing '-'")
    if problems:
        raise InvalidName(f"invalid {kind} identifier {value!r}: {'; '.join(problems)}")
    return value


@dataclass(frozen=True)
class Namer:
    """Builds physical names ``<prefix>-<part>-<part>`` valid for each AWS identifier kind."""

    prefix: str

    @classmethod
    def for_stack(cls, stack: str) -> Namer:
        return cls(resource_prefix(stack))

    def name(self, kind: str, *parts: str) -> str:
        rule = RULES[kind]
        body = "-".join([self.prefix, *(slugify(p) for p in parts if slugify(p))])
        body = re.sub(r"-+", "-", body)
        if kind == "kms_alias":
            body = "alias/" + body
        if len(body) > rule.max_len:
            digest = short_hash(body, 8)
            body = body[: rule.max_len - len(digest) - 1].rstrip("-") + "-" + digest
        return check_identifier(body, kind)

    def rds(self, *parts: str) -> str:
        return self.name("rds", *parts)

    def rds_proxy(self, *parts: str) -> str:
        return self.name("rds_proxy", *parts)

    def dms(self, *parts: str) -> str:
        return self.name("dms", *parts)

    def iam_role(self, *parts: str) -> str:
        return self.name("iam_role", *parts)

    def iam_policy(self, *parts: str) -> str:
        return self.name("iam_policy", *parts)

    def lambda_function(self, *parts: str) -> str:
        return self.name("lambda", *parts)

    def dynamodb_table(self, *parts: str) -> str:
        return self.name("dynamodb", *parts)

    def security_group(self, *parts: str) -> str:
        return self.name("security_group", *parts)

    def secret(self, *parts: str) -> str:
        return self.name("secret", *parts)

    def kms_alias(self, *parts: str) -> str:
        return self.name("kms_alias", *parts)
