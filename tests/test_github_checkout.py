"""Exact-commit checkout against a real bare repository over file:// (real git)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from automation.github.checkout import CheckoutError, Mirrors

REPO = "acme/shop-db"


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(cwd), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(work: Path, name: str, text: str) -> str:
    (work / name).write_text(text)
    git(work, "add", name)
    git(work, "commit", "-q", "-m", f"write {name}")
    return git(work, "rev-parse", "HEAD")


class Origin:
    """A bare repository like GitHub's: main, and a pull request head that no branch contains (a fork's)."""

    def __init__(self, tmp: Path) -> None:
        self.bare = tmp / "origin" / "shop-db.git"
        self.bare.mkdir(parents=True)
        git(self.bare, "init", "-q", "--bare", "-b", "main")
        self.work = tmp / "work"
        self.work.mkdir()
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", self.bare.as_uri())
        self.main = commit(self.work, "schema.sql", "create table orders (id int);\n")
        git(self.work, "push", "-q", "origin", "main")
        git(self.work, "checkout", "-q", "-b", "fork-branch")
        self.pr_head = commit(self.work, "schema.sql", "create table orders (id int, customer int);\n")
        git(self.work, "push", "-q", "origin", "fork-branch:refs/pull/7/head")

    def push_to_pr(self, text: str) -> str:
        sha = commit(self.work, "schema.sql", text)
        git(self.work, "push", "-q", "-f", "origin", "HEAD:refs/pull/7/head")
        return sha


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path)


@pytest.fixture
def mirrors(tmp_path: Path, origin: Origin) -> Mirrors:
    return Mirrors(tmp_path / "cache", lambda repo: origin.bare.as_uri())


def worktrees_of(mirrors: Mirrors) -> list[str]:
    listing = git(mirrors.path_for(REPO), "worktree", "list", "--porcelain")
    return [line for line in listing.splitlines() if line.startswith("worktree ")]


def test_worktree_at_the_pull_request_head(mirrors: Mirrors, origin: Origin) -> None:
    with mirrors.worktree(REPO, origin.pr_head, pr=7) as path:
        assert (path / "schema.sql").read_text() == "create table orders (id int, customer int);\n"
        assert git(path, "rev-parse", "HEAD") == origin.pr_head
        assert git(path, "status", "--porcelain") == ""
        assert len(worktrees_of(mirrors)) == 2  # the bare mirror itself and this one
    assert not path.exists()
    assert len(worktrees_of(mirrors)) == 1


def test_a_new_push_is_fetched_into_the_existing_mirror(mirrors: Mirrors, origin: Origin) -> None:
    with mirrors.worktree(REPO, origin.pr_head, pr=7):
        pass
    new_head = origin.push_to_pr("create table orders (id int, customer int, total int);\n")
    with mirrors.worktree(REPO, new_head, pr=7) as path:
        assert "total" in (path / "schema.sql").read_text()
    with mirrors.worktree(REPO, origin.main) as path:
        assert "customer" not in (path / "schema.sql").read_text()


def test_worktree_is_removed_even_when_the_job_fails(mirrors: Mirrors, origin: Origin) -> None:
    with pytest.raises(RuntimeError, match="job failed"), mirrors.worktree(REPO, origin.main) as path:
        (path / "scratch.txt").write_text("left behind by the job")
        raise RuntimeError("job failed")
    assert not path.exists()
    assert len(worktrees_of(mirrors)) == 1


def test_a_commit_the_remote_does_not_have_is_a_clear_error(mirrors: Mirrors) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(CheckoutError, match=f"commit {missing} is not in acme/shop-db"), \
            mirrors.worktree(REPO, missing, pr=7):
        pass
    assert len(worktrees_of(mirrors)) == 1
    assert not (mirrors.root / "worktrees").exists() or list((mirrors.root / "worktrees").iterdir()) == []


def test_a_pr_head_is_not_reachable_without_its_ref_in_a_plain_clone(mirrors: Mirrors, origin: Origin) -> None:
    # The mirror fetches refs/pull/N/head explicitly: that is the only ref holding a fork's commits.
    mirror = mirrors.mirror(REPO, pr=7)
    assert git(mirror, "rev-parse", "refs/pull/7/head") == origin.pr_head


@pytest.mark.parametrize("sha", ["HEAD", "main", "--output=/tmp/x", "6dcb09b", "6DCB09B5B57875F334F61AEBED695E2E4193DB5E",
                                 "6dcb09b5b57875f334f61aebed695e2e4193db5e\n", "6dcb09b5b57875f334f61aebed695e2e4193db5e0"])
def test_bad_shas_are_refused_before_git_runs(tmp_path: Path, sha: str) -> None:
    calls: list[str] = []
    mirrors = Mirrors(tmp_path, lambda repo: calls.append(repo) or "file:///nonexistent")  # type: ignore[func-returns-value]
    with pytest.raises(CheckoutError, match="not a full 40-character"), mirrors.worktree(REPO, sha):
        pass
    assert calls == []


@pytest.mark.parametrize("repo", ["acme", "acme/../x", "../etc", "acme/shop db", "-acme/x/y", "acme/.."])
def test_bad_repository_names_are_refused(tmp_path: Path, repo: str) -> None:
    with pytest.raises(CheckoutError, match="owner/name"):
        Mirrors(tmp_path, lambda r: "file:///nonexistent").mirror(repo)


def test_an_unreachable_remote_is_a_clear_error_without_credentials(tmp_path: Path) -> None:
    mirrors = Mirrors(tmp_path, lambda repo: "file:///nonexistent/x-access-token:s3cret@repo.git")
    with pytest.raises(CheckoutError, match="git clone --mirror of acme/shop-db") as caught:
        mirrors.mirror(REPO)
    assert not mirrors.path_for(REPO).exists()
    https = Mirrors(tmp_path, lambda repo: "https://x-access-token:s3cret@127.0.0.1:9/acme/shop-db.git")
    with pytest.raises(CheckoutError) as caught:
        https.mirror(REPO)
    assert "s3cret" not in str(caught.value)


def test_ext_transport_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    mirrors = Mirrors(tmp_path, lambda repo: f"ext::sh -c touch% {marker}")
    with pytest.raises(CheckoutError):
        mirrors.mirror(REPO)
    assert not marker.exists()


def test_two_concurrent_worktrees(mirrors: Mirrors, origin: Origin) -> None:
    barrier = threading.Barrier(2, timeout=60)
    seen: dict[str, str] = {}
    errors: list[BaseException] = []

    def job(sha: str, pr: int | None) -> None:
        try:
            with mirrors.worktree(REPO, sha, pr) as path:
                seen[sha] = (path / "schema.sql").read_text()
                barrier.wait()  # both checkouts exist at the same time
        except BaseException as err:  # reported to the test thread below
            errors.append(err)

    threads = [threading.Thread(target=job, args=(origin.main, None)),
               threading.Thread(target=job, args=(origin.pr_head, 7))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert "customer" in seen[origin.pr_head] and "customer" not in seen[origin.main]
    assert len(worktrees_of(mirrors)) == 1


def test_worker_processes_share_one_mirror(tmp_path: Path, origin: Origin) -> None:
    # Several processes start on an empty cache at once: the file lock lets one clone and the others fetch.
    script = (
        "import sys; from pathlib import Path\n"
        "from automation.github.checkout import Mirrors\n"
        "root, url, sha = sys.argv[1:4]\n"
        "with Mirrors(Path(root), lambda repo: url).worktree('acme/shop-db', sha, pr=7) as path:\n"
        "    print((path / 'schema.sql').read_text().strip())\n"
    )
    cache = tmp_path / "shared-cache"
    workers = [subprocess.Popen([sys.executable, "-c", script, str(cache), origin.bare.as_uri(), sha],
                                cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for sha in (origin.main, origin.pr_head, origin.main, origin.pr_head)]
    results = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0], [err for _out, err in results]
    assert [out.strip() for out, _err in results] == [
        "create table orders (id int);", "create table orders (id int, customer int);"] * 2
    mirrors = Mirrors(cache, lambda repo: origin.bare.as_uri())
    assert len(worktrees_of(mirrors)) == 1
    assert [p.name for p in mirrors.path_for(REPO).parent.iterdir()] == ["shop-db.git"]


def test_a_changed_remote_setting_is_followed(tmp_path: Path, origin: Origin) -> None:
    remote = {"url": "file:///nonexistent/old.git"}
    mirrors = Mirrors(tmp_path / "cache", lambda repo: remote["url"])
    with pytest.raises(CheckoutError):
        mirrors.mirror(REPO)
    remote["url"] = origin.bare.as_uri()
    mirrors.mirror(REPO)
    remote["url"] = "file:///nonexistent/moved.git"
    with pytest.raises(CheckoutError, match="fetch"):
        mirrors.mirror(REPO)
    assert git(mirrors.path_for(REPO), "remote", "get-url", "origin") == "file:///nonexistent/moved.git"


def test_cleanup_trouble_does_not_hide_the_jobs_error(mirrors: Mirrors, origin: Origin) -> None:
    import shutil

    with pytest.raises(RuntimeError, match="the job's own error"), mirrors.worktree(REPO, origin.main) as path:
        shutil.rmtree(mirrors.path_for(REPO))  # the mirror vanishes under the job
        raise RuntimeError("the job's own error")
    assert not path.exists()
