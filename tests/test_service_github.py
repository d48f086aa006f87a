"""Pull requests drive environments: signed webhooks over real HTTP into a real `dbenv serve`, jobs at the
pull request's exact commit (a real bare git repository over file://), and the one comment and commit
status on a local server speaking GitHub's REST routes (tests/github_server.py, the only stand-in
besides the scripted `pulumi`).
"""

from __future__ import annotations

import copy
import html
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from automation.github import signature
from components import naming
from tests.github_server import FakeGitHub, app_key_pair, delivery
from tests.service_harness import Project, Service, make_project, make_token, wait_for, wait_job

pytestmark = pytest.mark.db
PAYLOADS = Path(__file__).parent / "github_payloads"
SECRET = b"test-webhook-secret"
REPO, PR, BRANCH = "acme/shop-db", 42, "feature/orders-index"
STACK = naming.stack_name(BRANCH)
INSTALLATION = 1234567


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
                          ).stdout.strip()


class Repository:
    """The user's repository: a dbenv.toml at each commit, published as a bare repo with refs/pull/N/head."""

    def __init__(self, tmp: Path, state_url: str) -> None:
        self.work = tmp / "src"
        self.work.mkdir()
        self.bare = tmp / "remotes" / f"{REPO}.git"
        self.state_url = state_url
        git(self.work, "init", "-q", "-b", "main")
        self.commit("main")
        git(self.work, "checkout", "-q", "-b", BRANCH)
        self.head = self.commit("first")
        self.publish()

    def commit(self, message: str) -> str:
        (self.work / "dbenv.toml").write_text(f'target = "aws"\nbackend = "{self.state_url}"\n'
                                              f'recipes = "dynamodb-autoscaling"\nshared_network = false\n'
                                              f'# {message}\n', encoding="utf-8")
        git(self.work, "add", "dbenv.toml")
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def publish(self) -> None:
        if not self.bare.exists():
            self.bare.parent.mkdir(parents=True)
            git(self.work.parent, "init", "-q", "--bare", str(self.bare))
        git(self.work, "push", "-q", "--force", str(self.bare), f"HEAD:refs/heads/{BRANCH}",
            f"HEAD:refs/pull/{PR}/head", "main:refs/heads/main")

    @property
    def remote(self) -> str:
        return f"file://{self.bare.parent.parent}/{{repo}}.git"


class World:
    def __init__(self, tmp: Path, github: FakeGitHub, key_file: Path, *, extra_env: dict[str, str] | None = None
                 ) -> None:
        self.tmp, self.github = tmp, github
        self.project: Project = make_project(tmp)
        self.repo = Repository(tmp, (tmp / "state").as_uri())
        self.env = {"DBENV_GITHUB_WEBHOOK_SECRET": SECRET.decode(), "DBENV_GITHUB_API_URL": github.base_url,
                    "DBENV_GITHUB_APP_ID": github.app_id, "DBENV_GITHUB_APP_KEY_FILE": str(key_file),
                    "DBENV_GITHUB_REPOS": "acme/*", "DBENV_GITHUB_REMOTE": self.repo.remote,
                    "DBENV_PUBLIC_URL": "https://dbenv.example.com", "DBENV_HEARTBEAT_TIMEOUT": "4",
                    **(extra_env or {})}
        self.token = make_token(self.project, "reader", "read", None)
        self.start()

    def start(self) -> None:
        self.service = Service(self.project, self.tmp, workers=2, env=self.env)
        self.service.wait_ready()
        self.api = self.service.client(self.token)

    def stop(self) -> None:
        self.api.close()
        self.service.stop()

    def send(self, event: str, payload: dict[str, Any], *, delivery_id: str | None = None,
             secret: bytes = SECRET, header: str | None = None, body: bytes | None = None) -> httpx.Response:
        raw = body if body is not None else json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
                   "Content-Type": "application/json"}
        signed = signature.sign(secret, json.dumps(payload).encode() if body is not None else raw)
        if header != "":
            headers[signature.HEADER] = header if header is not None else signed
        return httpx.post(self.service.base + "/v1/webhooks/github", content=raw, headers=headers, timeout=30)

    def jobs(self) -> list[dict[str, Any]]:
        return self.api.get("/v1/jobs", params={"limit": 500}).json()["items"]

    def comments(self) -> list[dict[str, Any]]:
        return self.github.comments.get((REPO, PR), [])

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        return self.github.statuses.get((REPO, sha), [])


def pull_event(action: str, sha: str, **changes: Any) -> dict[str, Any]:
    name = {"opened": "pull_request_opened", "synchronize": "pull_request_synchronize",
            "closed": "pull_request_closed_merged"}[action]
    payload = copy.deepcopy(json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8")))
    payload["pull_request"]["head"]["sha"] = sha
    for key, value in changes.items():
        payload["pull_request"][key] = value
    return payload


def comment_event(body: str, association: str) -> dict[str, Any]:
    payload = json.loads((PAYLOADS / "issue_comment_member.json").read_text(encoding="utf-8"))
    payload["comment"]["body"] = body
    payload["comment"]["author_association"] = association
    return payload


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    return app_key_pair()


@pytest.fixture
def github(key_pair: tuple[str, str]) -> Iterator[FakeGitHub]:
    with FakeGitHub(public_key=key_pair[1]) as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, github: FakeGitHub, key_pair: tuple[str, str]) -> Iterator[World]:
    key_file = tmp_path / "app.pem"
    key_file.write_text(key_pair[0], encoding="utf-8")
    w = World(tmp_path, github, key_file)
    try:
        yield w
    finally:
        w.stop()


def shown(markdown: str) -> str:
    """The text a reader sees: Markdown backslash escapes and HTML entities resolved."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


# ----------------------------------------------------------------- signatures and deliveries


def test_only_a_good_signature_queues_anything(world: World) -> None:
    payload = pull_event("opened", world.repo.head)
    raw = json.dumps(payload).encode()
    other = world.send("pull_request", payload, secret=b"another-secret")
    cases = {
        "wrong": world.send("pull_request", payload, header="sha256=" + "0" * 64),
        "missing": world.send("pull_request", payload, header=""),
        "other secret": other,
        "changed after signing": world.send("pull_request", payload, body=raw.replace(b'"opened"', b'"closed"')),
        "no sha256= prefix": world.send("pull_request", payload, header=signature.sign(SECRET, raw)[7:]),
        "sha1 format": world.send("pull_request", payload, header="sha1=" + "a" * 40),
        "uppercase hex": world.send("pull_request", payload, header=signature.sign(SECRET, raw).upper()),
    }
    for name, response in cases.items():
        assert response.status_code == 401, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert world.jobs() == []
    good = world.send("pull_request", payload)
    assert good.status_code == 202, good.text
    assert len(world.jobs()) == 1


def test_a_redelivery_queues_nothing_new_and_ping_and_bad_payloads_answer(world: World) -> None:
    payload = pull_event("opened", world.repo.head)
    first = world.send("pull_request", payload, delivery_id="d-1")
    again = world.send("pull_request", payload, delivery_id="d-1")
    assert first.status_code == 202 and again.status_code == 200 and again.json()["duplicate"] is True
    assert len(world.jobs()) == 1
    ping = world.send("ping", json.loads((PAYLOADS / "ping.json").read_text(encoding="utf-8")))
    assert ping.status_code == 200 and ping.json()["pong"] is True
    push = world.send("push", json.loads((PAYLOADS / "push.json").read_text(encoding="utf-8")))
    assert push.status_code == 200 and "ignored" in push.json()
    hostile = world.send("pull_request", {"action": "opened", "pull_request": {"head": "x"}}, delivery_id="bad-1")
    assert hostile.status_code == 400 and hostile.headers["content-type"] == "application/problem+json"
    again = world.send("pull_request", {"action": "opened", "pull_request": {"head": "x"}}, delivery_id="bad-1")
    assert again.status_code == 200 and again.json()["duplicate"]  # recorded: the sweep will not ask for it
    other_repo = pull_event("opened", world.repo.head)
    other_repo["repository"]["full_name"] = "evil/repo"
    other_repo["pull_request"]["base"]["repo"]["full_name"] = "evil/repo"
    ignored = world.send("pull_request", other_repo)
    assert ignored.status_code == 200 and "github_repos" in ignored.json().get("ignored", ""), ignored.text
    huge = world.send("pull_request", {"pad": "x" * (6 * 1024 * 1024)})
    assert huge.status_code == 413
    assert len(world.jobs()) == 1


# ----------------------------------------------------------------- a pull request's whole life


def test_a_pull_request_life_opened_synchronize_closed(world: World) -> None:
    opened = world.send("pull_request", pull_event("opened", world.repo.head))
    job = wait_job(world.api, opened.json()["jobs"][0])
    assert job["state"] == "succeeded", job
    assert job["kind"] == "up" and job["commit_sha"] == world.repo.head and job["source"] == "github"
    events = world.api.get(f"/v1/jobs/{job['id']}/events", params={"format": "json"}).json()["items"]
    assert any(f"at {world.repo.head}" in e["line"] for e in events)  # the exact commit was checked out
    first = wait_for(lambda: [c for c in world.comments() if "ready" in c["body"]], "the comment")
    assert len(world.comments()) == 1
    body = shown(first[0]["body"])
    assert body.startswith(f"<!-- dbenv:env:{REPO}#{PR} -->") and STACK in body and "[secret]" in body
    assert "t0ps3cret" not in body and "https://dbenv.example.com/jobs/" in body
    assert "Cost per month" in body and re.search(r"mandatory: \d+ passed, 0 failed", body), body
    states = [s["state"] for s in world.statuses(world.repo.head)]
    assert states[0] == "pending" and states[-1] == "success"
    env = world.api.get(f"/v1/environments/{BRANCH}").json()
    assert env["pull_request"] == f"{REPO}#{PR}" and env["commit"] == world.repo.head

    second_sha = world.repo.commit("second")
    world.repo.publish()
    pushed = world.send("pull_request", pull_event("synchronize", second_sha))
    assert wait_job(world.api, pushed.json()["jobs"][0])["state"] == "succeeded"
    wait_for(lambda: [s for s in world.statuses(second_sha) if s["state"] == "success"], "the new status")
    assert len(world.comments()) == 1  # edited in place, not duplicated
    assert second_sha[:7] in shown(world.comments()[0]["body"])
    assert world.github.calls_to("PATCH", r"/repos/acme/shop-db/issues/comments/\d+")

    closed = world.send("pull_request", pull_event("closed", second_sha, state="closed", merged=True))
    down = wait_job(world.api, closed.json()["jobs"][0])
    assert down["kind"] == "down" and down["state"] == "succeeded"
    wait_for(lambda: "removed" in world.comments()[0]["body"], "the removed comment")
    assert len(world.comments()) == 1
    assert world.api.get(f"/v1/environments/{BRANCH}").status_code == 404
    assert STACK not in world.project.state()


# ----------------------------------------------------------------- forks and comment commands


def test_only_the_services_own_comment_is_edited(tmp_path: Path, github: FakeGitHub,
                                                 key_pair: tuple[str, str]) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(key_pair[0], encoding="utf-8")
    w = World(tmp_path, github, key_file, extra_env={"DBENV_GITHUB_BOT_LOGIN": github.bot_login})
    try:
        planted = github.add_comment(REPO, PR, f"<!-- dbenv:env:{REPO}#{PR} --> edit me", login="mallory")
        job = wait_job(w.api, w.send("pull_request", pull_event("opened", w.repo.head)).json()["jobs"][0])
        assert job["state"] == "succeeded"
        wait_for(lambda: len(w.comments()) == 2 and "ready" in w.comments()[1]["body"], "the service's own comment")
        assert w.comments()[0]["body"] == planted["body"]  # someone else's comment with the marker is untouched
    finally:
        w.stop()


def test_a_fork_is_refused_and_nothing_runs(world: World) -> None:
    payload = pull_event("opened", world.repo.head)
    payload["pull_request"]["head"]["repo"]["full_name"] = "stranger/shop-db"
    job = wait_job(world.api, world.send("pull_request", payload).json()["jobs"][0])
    assert job["kind"] == "notify" and job["state"] == "succeeded"
    body = wait_for(lambda: world.comments() and world.comments()[0]["body"], "the refusal")
    assert "fork" in body.lower() and "refused" in body.lower()
    assert [j["kind"] for j in world.jobs()] == ["notify"]
    assert STACK not in world.project.state()


def test_comment_commands_by_a_non_member_are_refused(world: World) -> None:
    response = world.send("issue_comment", comment_event("/dbenv up", "CONTRIBUTOR"))
    job = wait_job(world.api, response.json()["jobs"][0])
    assert job["kind"] == "notify"
    reply = wait_for(lambda: world.comments() and world.comments()[0]["body"], "the reply")
    assert "only owners, members and collaborators" in reply
    assert [j["kind"] for j in world.jobs()] == ["notify"]


def test_a_members_comment_resolves_the_head_and_runs_it(world: World) -> None:
    pull = json.loads((PAYLOADS / "pull_request_opened.json").read_text(encoding="utf-8"))["pull_request"]
    pull["head"]["sha"] = world.repo.head
    world.github.pulls[(REPO, PR)] = pull
    response = world.send("issue_comment", comment_event("/dbenv plan", "MEMBER"))
    resolve = wait_job(world.api, response.json()["jobs"][0])
    assert resolve["kind"] == "resolve" and resolve["state"] == "succeeded", resolve
    plan = wait_job(world.api, resolve["outcome"]["queued"])
    assert plan["kind"] == "plan" and plan["state"] == "succeeded", plan
    assert plan["outcome"]["review"]["policy"]["summary"]["mandatory"] == 0
    assert STACK not in world.project.state()  # a plan touches no stack


def test_forks_opt_in_plan_only_until_approved(tmp_path: Path, github: FakeGitHub,
                                               key_pair: tuple[str, str]) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(key_pair[0], encoding="utf-8")
    w = World(tmp_path, github, key_file, extra_env={"DBENV_GITHUB_ALLOW_FORKS": "true"})
    try:
        payload = pull_event("opened", w.repo.head)
        payload["pull_request"]["head"]["repo"]["full_name"] = "stranger/shop-db"
        plan = wait_job(w.api, w.send("pull_request", payload).json()["jobs"][0])
        assert plan["kind"] == "plan" and plan["state"] == "succeeded", plan
        assert STACK not in w.project.state()
        wait_for(lambda: w.comments() and "plan" in w.comments()[0]["body"].lower(), "plan-only comment")
        pull = copy.deepcopy(payload["pull_request"])
        w.github.pulls[(REPO, PR)] = pull
        approve = w.send("issue_comment", comment_event("/dbenv approve", "MEMBER"))
        resolve = wait_job(w.api, approve.json()["jobs"][0])
        up = wait_job(w.api, resolve["outcome"]["queued"])
        assert up["kind"] == "up" and up["state"] == "succeeded" and up["commit_sha"] == w.repo.head
        new_sha = w.repo.commit("a push after the approval")
        w.repo.publish()
        again = wait_job(w.api, w.send("pull_request", pull_event("synchronize", new_sha, head={
            **payload["pull_request"]["head"], "sha": new_sha})).json()["jobs"][0])
        assert again["kind"] == "plan"  # a new push needs a new approval
    finally:
        w.stop()


# ----------------------------------------------------------------- missed deliveries


def test_a_delivery_missed_while_down_is_redelivered_by_the_sweep(tmp_path: Path, github: FakeGitHub,
                                                                  key_pair: tuple[str, str]) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(key_pair[0], encoding="utf-8")
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    w = World(tmp_path, github, key_file)
    try:
        w.send("pull_request", pull_event("opened", w.repo.head), delivery_id="seen-1")
        w.stop()
        github.deliveries[:] = [delivery(2, "missed-1", status_code=502, delivered_at=recent),
                                delivery(1, "seen-1", status_code=202, delivered_at=recent)]
        w.start()
        wait_for(lambda: github.redelivered, "a redelivery request")
        assert github.redelivered == [2]
    finally:
        w.stop()
