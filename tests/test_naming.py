from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import naming

STACK_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

# Any string git accepts as a branch name: build from arbitrary text, keep the valid ones.
branch_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
branches = st.text(branch_chars, min_size=1, max_size=250).filter(lambda b: naming._branch_problem(b) is None)
ascii_branches = st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9/_.-]{0,249}\Z").filter(
    lambda b: naming._branch_problem(b) is None
)


@pytest.mark.parametrize(
    ("branch", "expected_slug"),
    [("feature/ABC-123_fix", "feature-abc-123-fix"), ("main", "main"), ("release/1.2", "release-1-2"),
     ("übung/größe", "ubung-groe"), ("日本語", "branch")],
)
def test_stack_name_is_slug_and_hash(branch: str, expected_slug: str) -> None:
    name = naming.stack_name(branch)
    assert name == f"{expected_slug}-{naming.short_hash(branch, 8)}"
    assert STACK_RE.match(name)


def test_stack_name_is_stable_and_case_sensitive() -> None:
    assert naming.stack_name("Feature/X") == naming.stack_name("Feature/X")
    assert naming.stack_name("Feature/X") != naming.stack_name("feature/x")
    assert naming.stack_name("feature/x") != naming.stack_name("feature-x")


@pytest.mark.parametrize(
    "bad", ["", "a..b", "a b", "-x", "x/", "x.", "x.lock", "a/.b", "a//b", "@", "a@{1}", "a~1", "a^", "a:b",
            "a?", "a*", "a[", "a\\b", "a\x07"]
)
def test_invalid_branch_names_are_rejected_with_reason(bad: str) -> None:
    with pytest.raises(naming.InvalidName, match="branch name"):
        naming.stack_name(bad)


def test_long_branch_is_shortened() -> None:
    branch = "feature/" + "x" * 242
    assert len(branch) == 250
    name = naming.stack_name(branch)
    assert len(name) <= naming.STACK_NAME_MAX
    assert name.endswith(naming.short_hash(branch, 8))


@settings(max_examples=400, deadline=None)
@given(branches)
def test_any_branch_gives_valid_stack_and_identifiers(branch: str) -> None:
    stack = naming.stack_name(branch)
    assert STACK_RE.match(stack)
    namer = naming.Namer.for_stack(stack)
    assert len(namer.prefix) <= 19
    # Every kind with the longest parts a component uses stays valid.
    parts = ("encrypt-existing", "restored", "final-snapshot")
    for kind in naming.RULES:
        naming.check_identifier(namer.name(kind, *parts), kind)
        naming.check_identifier(namer.name(kind), kind)


@settings(max_examples=300, deadline=None)
@given(st.lists(branches, min_size=2, max_size=2, unique=True))
def test_different_branches_never_share_a_stack_or_prefix(pair: list[str]) -> None:
    a, b = pair
    assert naming.stack_name(a) != naming.stack_name(b)
    assert naming.resource_prefix(naming.stack_name(a)) != naming.resource_prefix(naming.stack_name(b))


@settings(max_examples=200, deadline=None)
@given(st.lists(ascii_branches, min_size=50, max_size=50, unique=True))
def test_injective_over_many_similar_branches(batch: list[str]) -> None:
    stacks = {naming.stack_name(b) for b in batch}
    assert len(stacks) == len(batch)


@pytest.mark.parametrize("kind", ["rds", "rds_proxy", "dms"])
def test_rds_style_identifiers(kind: str) -> None:
    namer = naming.Namer.for_stack("9-starts-with-digit")
    ident = namer.name(kind, "a" * 80, "--weird--", "end-")
    assert ident[0].isalpha() and "--" not in ident and not ident.endswith("-")
    assert len(ident) <= naming.RULES[kind].max_len


def test_overlong_names_get_distinct_hashes() -> None:
    namer = naming.Namer.for_stack("dev")
    a = namer.rds("x" * 70 + "a")
    b = namer.rds("x" * 70 + "b")
    assert a != b and len(a) == len(b) == 63


@pytest.mark.parametrize(
    ("value", "kind"),
    [("1abc", "rds"), ("ab--c", "rds"), ("abc-", "rds"), ("A" * 64, "rds"), ("ab", "dynamodb"),
     ("x" * 65, "iam_role"), ("alias/aws/rds", "rds")],
)
def test_check_identifier_rejects(value: str, kind: str) -> None:
    with pytest.raises(naming.InvalidName):
        naming.check_identifier(value, kind)
