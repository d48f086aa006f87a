"""The GitHub names that reach URLs and git command lines, checked in one place.

A repository name or sha from a payload or a setting ends up in a REST path and in git's argument
list; only these exact forms are let through, so neither can carry a path, a flag or a ref name.
"""

from __future__ import annotations

import re

REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
SHA = re.compile(r"[0-9a-f]{40}")


def repo_name(repo: object) -> str:
    """``owner/name`` as GitHub allows it (and never ``.`` or ``..`` as a part), else ValueError."""
    if not isinstance(repo, str) or not REPO.fullmatch(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ValueError(f"not a repository name of the form owner/name: {repo!r}")
    return repo


def commit_sha(sha: object) -> str:
    """A full 40-character lowercase hex commit id, else ValueError."""
    if not isinstance(sha, str) or not SHA.fullmatch(sha):
        raise ValueError(f"not a full 40-character lowercase commit sha: {sha!r}")
    return sha


def positive_number(value: object) -> int:
    """A pull request, comment or delivery number, else ValueError (a JSON true is not a number)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"not a positive number: {value!r}")
    return value
