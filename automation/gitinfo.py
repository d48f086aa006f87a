"""What git says about the working copy: the current branch, commit and user."""

from __future__ import annotations

import os
import subprocess


class GitError(Exception):
    """git could not answer (not a checkout, detached HEAD, no git)."""


def _git(*args: str, cwd: str | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GitError(f"git is not available: {err}") from None
    if done.returncode != 0:
        raise GitError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout.strip()


def current_branch(cwd: str | None = None) -> str:
    try:
        branch = _git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd)
    except GitError:
        raise GitError("cannot tell the current git branch (not a checkout, or a detached HEAD): pass --branch") from None
    return branch


def current_commit(cwd: str | None = None) -> str | None:
    try:
        return _git("rev-parse", "--short=12", "HEAD", cwd=cwd)
    except GitError:
        return None


def current_user(cwd: str | None = None) -> str:
    try:
        user = _git("config", "user.email", cwd=cwd)
    except GitError:
        user = ""
    return user or os.environ.get("USER") or "unknown"
