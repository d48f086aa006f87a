"""Exact-commit checkout: a job runs the project as it is at the pull request's head commit.

One bare mirror per repository (``git clone --mirror`` once, ``git fetch`` after, plus the pull
request's ``refs/pull/N/head``, which holds a fork's commits too), and a detached worktree per job
at the exact sha, removed when the job is done, even when it fails.

Several worker processes may share the mirrors, so every git command that changes a mirror runs
under a per-repository file lock (``fcntl.flock``). Only the changes are locked: jobs keep their
worktrees while others fetch and check out beside them.

git gets argument lists (never a shell), ``--`` before paths and URLs, and only validated values:
a repository name of the form ``owner/name`` and a full 40-hex sha.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from automation.github import identifiers

_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")
# Transports a remote may use: never ext:: (runs a command) or fd::.
_ALLOWED_PROTOCOLS = "https:http:ssh:git:file"


class CheckoutError(Exception):
    """A mirror or worktree could not be made; the message says which repository, commit and why."""


class Mirrors:
    """Bare mirrors of repositories under ``root``; ``remote_for(repo)`` gives each one's clone URL (a setting)."""

    def __init__(self, root: Path, remote_for: Callable[[str], str], *, timeout: float = 600.0) -> None:
        self.root = Path(root)
        self._remote_for = remote_for
        self._timeout = timeout

    def path_for(self, repo: str) -> Path:
        owner, name = _repo(repo).split("/")
        return self.root / "mirrors" / owner / f"{name}.git"

    def mirror(self, repo: str, pr: int | None = None) -> Path:
        """Clone the repository's mirror if there is none, else fetch; with ``pr``, fetch its head ref too."""
        path = self.path_for(repo)
        with self._locked(repo):
            if (path / "HEAD").exists():
                # The remote is a setting and may have changed since the clone.
                self._git(path, "remote", "set-url", "--", "origin", self._remote_for(repo))
                self._git(path, "fetch", "--prune", "--quiet", "origin")
            else:
                self._clone(repo, path)
            if pr is not None:
                ref = f"refs/pull/{_number(pr)}/head"
                self._git(path, "fetch", "--quiet", "origin", f"+{ref}:{ref}")
        return path

    @contextmanager
    def worktree(self, repo: str, sha: str, pr: int | None = None) -> Iterator[Path]:
        """Yield a fresh detached checkout of ``sha``; it is removed afterwards, whatever happens inside."""
        sha = _sha(sha)
        mirror = self.mirror(repo, pr)
        workdir = self._add_worktree(repo, mirror, sha, pr)
        try:
            yield workdir
        finally:
            self._remove_worktree(repo, mirror, workdir)

    def _add_worktree(self, repo: str, mirror: Path, sha: str, pr: int | None) -> Path:
        with self._locked(repo):
            if not self._has_commit(mirror, sha):
                where = f" or refs/pull/{pr}/head" if pr is not None else ""
                raise CheckoutError(f"commit {sha} is not in {repo} (fetched its branches{where})")
            parent = self.root / "worktrees"
            parent.mkdir(parents=True, exist_ok=True)
            owner, name = repo.split("/")
            workdir = Path(tempfile.mkdtemp(prefix=f"{owner}-{name}-{sha[:12]}-", dir=parent))
            try:
                self._git(mirror, "worktree", "add", "--detach", "--quiet", "--", str(workdir), sha)
            except CheckoutError:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
        return workdir

    def _remove_worktree(self, repo: str, mirror: Path, workdir: Path) -> None:
        with self._locked(repo):
            # Cleanup must not replace the job's own error: each step is best effort, and what one
            # leaves (a directory, stale worktree metadata) the next step or the next prune clears.
            for args in (("worktree", "remove", "--force", "--", str(workdir)), ("worktree", "prune")):
                try:
                    self._git(mirror, *args)
                except CheckoutError:
                    pass
                shutil.rmtree(workdir, ignore_errors=True)

    def _has_commit(self, mirror: Path, sha: str) -> bool:
        done = self._run(["git", "-C", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"])
        return done.returncode == 0

    def _clone(self, repo: str, path: Path) -> None:
        url = self._remote_for(repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Clone beside the final place and rename, so a clone killed half-way never looks like a mirror.
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        try:
            done = self._run(["git", "clone", "--mirror", "--quiet", "--", url, str(staging)])
            if done.returncode != 0:
                raise CheckoutError(f"git clone --mirror of {repo} from {_redact(url)} failed: "
                                    f"{_redact(done.stderr.strip())}")
            staging.rename(path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _git(self, mirror: Path, *args: str) -> str:
        done = self._run(["git", "-C", str(mirror), *args])
        if done.returncode != 0:
            raise CheckoutError(f"git {args[0]} in {mirror.name} failed: {_redact(done.stderr.strip())}")
        return done.stdout

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": _ALLOWED_PROTOCOLS}
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self._timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise CheckoutError(f"git {argv[3] if argv[1] == '-C' else argv[1]} took longer than "
                                f"{self._timeout:.0f} s") from None
        except OSError as err:
            raise CheckoutError(f"git could not be run: {err}") from None

    @contextmanager
    def _locked(self, repo: str) -> Iterator[None]:
        owner, name = _repo(repo).split("/")
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{owner}@{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _repo(repo: str) -> str:
    try:
        return identifiers.repo_name(repo)
    except ValueError as err:
        raise CheckoutError(str(err)) from None


def _sha(sha: str) -> str:
    try:
        return identifiers.commit_sha(sha)
    except ValueError as err:
        raise CheckoutError(str(err)) from None


def _number(pr: int) -> int:
    try:
        return identifiers.positive_number(pr)
    except ValueError as err:
        raise CheckoutError(f"pull request: {err}") from None


def _redact(text: str) -> str:
    """Hide credentials a remote URL may carry (``https://x-access-token:...@host``)."""
    return _CREDENTIALS.sub(r"\1***@", text)
