"""The GitHub client against a local server that speaks the documented REST shapes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from automation.github.client import App, GitHubClient, GitHubError, HookDelivery, missed_deliveries
from tests.github_server import FakeGitHub, app_key_pair, delivery

REPO = "acme/shop-db"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
MARKER = "<!-- dbenv:env:acme/shop-db#42 -->"
PAT = "ghp_" + "x" * 36
INSTALLATION = 1234567


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    return app_key_pair()


@pytest.fixture
def github(key_pair: tuple[str, str]) -> Iterator[FakeGitHub]:
    with FakeGitHub(public_key=key_pair[1], personal_token=PAT) as server:
        yield server


class Recorder:
    """Stands in for time.sleep and the job log: records what the client would have waited and said."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.lines: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def token_client(github: FakeGitHub, recorder: Recorder | None = None, **kwargs: object) -> GitHubClient:
    recorder = recorder or Recorder()
    return GitHubClient(base_url=github.base_url, token=PAT, sleep=recorder.sleep, on_line=recorder.lines.append,
                        **kwargs)  # type: ignore[arg-type]


def app_client(github: FakeGitHub, app: App, recorder: Recorder | None = None, **kwargs: object) -> GitHubClient:
    recorder = recorder or Recorder()
    return GitHubClient(base_url=github.base_url, app=app, installation_id=INSTALLATION, sleep=recorder.sleep,
                        on_line=recorder.lines.append, **kwargs)  # type: ignore[arg-type]


# --- comments ----------------------------------------------------------------------------------


def test_upsert_posts_once_then_edits_in_place(github: FakeGitHub) -> None:
    client = token_client(github)
    first = client.upsert_comment(REPO, 42, MARKER, MARKER + "\nqueued")
    second = client.upsert_comment(REPO, 42, MARKER, MARKER + "\nsucceeded")
    assert first == second
    comments = github.comments[(REPO, 42)]
    assert [c["body"] for c in comments] == [MARKER + "\nsucceeded"]
    assert len(github.calls_to("POST", r"/repos/acme/shop-db/issues/42/comments")) == 1
    assert len(github.calls_to("PATCH", rf"/repos/acme/shop-db/issues/comments/{first}")) == 1
    assert github.calls[0].headers["authorization"] == f"token {PAT}"
    assert github.calls[0].headers["x-github-api-version"] == "2022-11-28"
    assert github.calls[0].headers["accept"] == "application/vnd.github+json"


def test_marker_is_found_on_a_later_page(github: FakeGitHub) -> None:
    github.page_size = 2
    for n in range(5):
        github.add_comment(REPO, 42, f"comment {n}")
    ours = github.add_comment(REPO, 42, MARKER + "\nold", login=github.bot_login)
    github.add_comment(REPO, 42, "> " + MARKER + " quoted by someone")
    client = token_client(github)
    assert client.find_comment(REPO, 42, MARKER) == client.find_comment(REPO, 42, MARKER, author=github.bot_login)
    assert client.upsert_comment(REPO, 42, MARKER, MARKER + "\nnew") == ours["id"]
    assert ours["body"] == MARKER + "\nnew"
    pages = [call.query.get("page", "1") for call in github.calls_to("GET", r"/repos/acme/shop-db/issues/42/comments")]
    assert pages[:3] == ["1", "2", "3"]  # the marker is on page 3 of 4


def test_a_marker_typed_by_someone_else_is_not_ours_when_the_author_is_given(github: FakeGitHub) -> None:
    impostor = github.add_comment(REPO, 42, MARKER + "\nfake status", login="mallory")
    client = token_client(github)
    comment_id = client.upsert_comment(REPO, 42, MARKER, MARKER + "\nreal", author=github.bot_login)
    assert comment_id != impostor["id"] and impostor["body"] == MARKER + "\nfake status"


def test_a_create_lost_on_the_way_back_is_not_posted_twice(github: FakeGitHub) -> None:
    github.fail(502, path="/repos/acme/shop-db/issues/42/comments", method="POST", after=True)
    recorder = Recorder()
    client = token_client(github, recorder)
    client.upsert_comment(REPO, 42, MARKER, MARKER + "\nqueued")
    assert len(github.comments[(REPO, 42)]) == 1
    assert any("checking whether the comment was created" in line for line in recorder.lines)


def test_comment_arguments_are_checked(github: FakeGitHub) -> None:
    client = token_client(github)
    with pytest.raises(ValueError, match="marker"):
        client.upsert_comment(REPO, 42, "dbenv", "dbenv body")
    with pytest.raises(ValueError, match="start with its marker"):
        client.upsert_comment(REPO, 42, MARKER, "body\n" + MARKER)
    with pytest.raises(ValueError, match="at most 65536"):
        client.upsert_comment(REPO, 42, MARKER, MARKER + "x" * 70_000)
    with pytest.raises(ValueError, match="owner/name"):
        client.find_comment("../../app/hook", 42, MARKER)
    assert github.calls == []


# --- statuses and pull requests -------------------------------------------------------------------


def test_commit_status_shape_and_description_cap(github: FakeGitHub) -> None:
    client = token_client(github)
    client.set_status(REPO, SHA, "pending", "queued", "https://dbenv.example.com/jobs/7")
    client.set_status(REPO, SHA, "success", "d" * 300)
    first, second = github.statuses[(REPO, SHA)]
    assert (first["state"], first["description"], first["context"]) == ("pending", "queued", "dbenv")
    assert first["target_url"] == "https://dbenv.example.com/jobs/7"
    assert len(second["description"]) == 140 and second["description"].endswith("…")
    with pytest.raises(ValueError, match="state"):
        client.set_status(REPO, SHA, "ok", "x")
    with pytest.raises(ValueError, match="sha"):
        client.set_status(REPO, "HEAD", "success", "x")


def test_get_pull_request_reads_the_head(github: FakeGitHub) -> None:
    import json
    from pathlib import Path

    opened = json.loads((Path(__file__).parent / "github_payloads" / "pull_request_opened.json").read_text())
    github.pulls[(REPO, 42)] = opened["pull_request"]
    pull = token_client(github).get_pull_request(REPO, 42)
    assert (pull.sha, pull.branch, pull.fork) == (SHA, "feature/orders-index", False)


# --- GitHub App authentication -------------------------------------------------------------------


def test_app_jwt_then_installation_token_is_reused(github: FakeGitHub, key_pair: tuple[str, str]) -> None:
    app = App("424242", key_pair[0])
    client = app_client(github, app)
    client.set_status(REPO, SHA, "pending", "queued")
    client.set_status(REPO, SHA, "success", "done")
    token_calls = github.calls_to("POST", r"/app/installations/1234567/access_tokens")
    assert len(token_calls) == 1 and len(github.issued_tokens) == 1
    bearer = token_calls[0].headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(bearer, key_pair[1], algorithms=["RS256"])
    assert claims["iss"] == "424242"
    assert claims["iat"] <= time.time() - 59 and claims["exp"] - claims["iat"] <= 600
    repo_calls = github.calls_to("POST", rf"/repos/acme/shop-db/statuses/{SHA}")
    assert {call.headers["authorization"] for call in repo_calls} == {f"token {github.issued_tokens[0]}"}
    assert key_pair[0] not in repr(app) and github.issued_tokens[0] not in repr(app)


def test_installation_token_is_refreshed_before_it_expires(github: FakeGitHub, key_pair: tuple[str, str]) -> None:
    app = App("424242", key_pair[0])
    now = [time.time()]
    client = app_client(github, app, clock=lambda: now[0])
    client.set_status(REPO, SHA, "pending", "queued")
    now[0] += 3600 - 5 * 60 + 1  # inside the 5-minute margin before expires_at
    github.expire_tokens()
    client.set_status(REPO, SHA, "success", "done")
    assert len(github.issued_tokens) == 2
    last = github.calls_to("POST", rf"/repos/acme/shop-db/statuses/{SHA}")[-1]
    assert last.headers["authorization"] == f"token {github.issued_tokens[1]}"


def test_a_revoked_installation_token_is_replaced_once(github: FakeGitHub, key_pair: tuple[str, str]) -> None:
    app = App("424242", key_pair[0])
    client = app_client(github, app)
    client.set_status(REPO, SHA, "pending", "queued")
    github.expire_tokens()
    client.set_status(REPO, SHA, "success", "done")
    assert len(github.issued_tokens) == 2
    assert github.statuses[(REPO, SHA)][-1]["state"] == "success"


def test_a_jwt_from_another_key_is_refused(github: FakeGitHub) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    client = app_client(github, App("424242", other))
    with pytest.raises(GitHubError) as caught:
        client.set_status(REPO, SHA, "pending", "queued")
    assert caught.value.status == 401 and "could not be decoded" in caught.value.message


def test_hook_deliveries_are_paged_by_cursor_and_redelivered(github: FakeGitHub, key_pair: tuple[str, str]) -> None:
    github.page_size = 2
    github.deliveries = [
        delivery(5, "guid-5", delivered_at="2026-12-06T10:05:00Z"),
        delivery(4, "guid-4", status_code=502, delivered_at="2026-12-06T10:04:00Z"),
        delivery(3, "guid-3", delivered_at="2026-12-06T10:03:00Z"),
        delivery(2, "guid-2", status_code=0, delivered_at="2026-12-06T10:02:00Z"),
        delivery(1, "guid-1", status_code=500, delivered_at="2026-12-05T10:01:00Z"),
    ]
    client = app_client(github, App("424242", key_pair[0]))
    found = client.list_hook_deliveries()
    assert [d.guid for d in found] == ["guid-5", "guid-4", "guid-3", "guid-2", "guid-1"]
    assert [d.id for d in found if d.failed] == [4, 2, 1]
    cursors = [call.query.get("cursor") for call in github.calls_to("GET", "/app/hook/deliveries")]
    assert cursors == [None, "3", "1"]
    recent = client.list_hook_deliveries(since=datetime(2026, 12, 6, tzinfo=UTC))
    assert [d.id for d in recent] == [5, 4, 3, 2]
    client.redeliver(4)
    assert github.redelivered == [4]
    assert all(call.headers["authorization"].startswith("Bearer ") for call in github.calls)


def test_ghe_base_url_prefix(key_pair: tuple[str, str]) -> None:
    with FakeGitHub(public_key=key_pair[1], personal_token=PAT, prefix="/api/v3") as server:
        assert server.base_url.endswith("/api/v3")
        client = token_client(server)
        server.page_size = 1
        server.add_comment(REPO, 42, "first")
        server.add_comment(REPO, 42, MARKER + "\nours")
        assert client.find_comment(REPO, 42, MARKER) is not None
        assert len(server.calls) == 2


# --- retries ----------------------------------------------------------------------------------------


def test_429_waits_retry_after(github: FakeGitHub) -> None:
    github.fail(429, 2, headers={"Retry-After": "7"})
    recorder = Recorder()
    token_client(github, recorder).set_status(REPO, SHA, "pending", "queued")
    assert recorder.waits == [7.0, 7.0]
    assert len(recorder.lines) == 2 and "429" in recorder.lines[0] and "retrying in 7 s" in recorder.lines[0]
    assert len(github.statuses[(REPO, SHA)]) == 1


def test_primary_rate_limit_waits_until_reset(github: FakeGitHub) -> None:
    now = 1_800_000_000.0
    github.rate_limit(reset=int(now) + 42)
    recorder = Recorder()
    token_client(github, recorder, clock=lambda: now).set_status(REPO, SHA, "pending", "queued")
    assert recorder.waits == [43.0]
    assert "rate limit" in recorder.lines[0]


def test_secondary_rate_limit_without_headers_waits_a_minute(github: FakeGitHub) -> None:
    github.fail(403, message="You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")
    recorder = Recorder()
    token_client(github, recorder).set_status(REPO, SHA, "pending", "queued")
    assert recorder.waits == [60.0]


def test_a_rate_limit_longer_than_the_cap_fails_at_once(github: FakeGitHub) -> None:
    now = 1_800_000_000.0
    github.rate_limit(reset=int(now) + 3000)
    recorder = Recorder()
    with pytest.raises(GitHubError, match="more than the 300 s allowed") as caught:
        token_client(github, recorder, clock=lambda: now, max_wait=300).set_status(REPO, SHA, "pending", "q")
    assert caught.value.status == 403 and recorder.waits == []


def test_server_errors_back_off_exponentially_up_to_the_cap(github: FakeGitHub) -> None:
    github.fail(500, 4)
    recorder = Recorder()
    token_client(github, recorder, backoff=2.0, max_wait=10.0).set_status(REPO, SHA, "pending", "queued")
    assert recorder.waits == [2.0, 4.0, 8.0, 10.0]
    assert [line.split("(")[-1] for line in recorder.lines] == [f"attempt {n} of 5)" for n in (2, 3, 4, 5)]


def test_final_failure_raises_with_githubs_message(github: FakeGitHub) -> None:
    github.fail(503, 5, message="Service Unavailable: try later")
    recorder = Recorder()
    with pytest.raises(GitHubError) as caught:
        token_client(github, recorder).set_status(REPO, SHA, "pending", "queued")
    assert caught.value.status == 503 and caught.value.message == "Service Unavailable: try later"
    assert len(recorder.waits) == 4 and len(github.calls) == 5


def test_a_permission_403_is_not_retried(github: FakeGitHub) -> None:
    github.fail(403, message="Resource not accessible by integration")
    recorder = Recorder()
    with pytest.raises(GitHubError, match="Resource not accessible by integration"):
        token_client(github, recorder).set_status(REPO, SHA, "pending", "queued")
    assert recorder.waits == [] and len(github.calls) == 1


def test_connection_failures_are_retried_then_reported() -> None:
    recorder = Recorder()
    client = GitHubClient(base_url="http://127.0.0.1:9", token=PAT, sleep=recorder.sleep,
                          on_line=recorder.lines.append, max_attempts=3)
    with pytest.raises(GitHubError) as caught:
        client.set_status(REPO, SHA, "pending", "queued")
    assert caught.value.status is None and len(recorder.waits) == 2


def test_tokens_never_reach_the_job_log(github: FakeGitHub, key_pair: tuple[str, str]) -> None:
    github.fail(500, 2)
    github.fail(429, 1, headers={"Retry-After": "1"}, path="/repos")
    recorder = Recorder()
    client = app_client(github, App("424242", key_pair[0]), recorder)
    client.upsert_comment(REPO, 42, MARKER, MARKER + "\nx")
    assert recorder.lines
    for secret in [*github.issued_tokens, key_pair[0]]:
        assert all(secret not in line for line in recorder.lines)


def test_client_needs_exactly_one_credential() -> None:
    with pytest.raises(ValueError, match="either a token or a GitHub App"):
        GitHubClient(token=None)


def test_missed_deliveries_are_the_failed_unrecorded_events_once_each() -> None:
    rows = [_row(6, "again-ok", 200, "10:06"), _row(5, "again-ok", 502, "10:05"),
            _row(4, "twice-failed", 0, "10:04"), _row(3, "twice-failed", 502, "10:03"),
            _row(2, "recorded", 500, "10:02"), _row(1, "fine", 200, "10:01")]
    missed = missed_deliveries(rows, {"recorded"})
    assert [(d.id, d.guid) for d in missed] == [(4, "twice-failed")]


def _row(delivery_id: int, guid: str, status_code: int, at: str) -> HookDelivery:
    delivered = datetime.fromisoformat(f"2026-12-06T{at}:00+00:00").timestamp()
    return HookDelivery(id=delivery_id, guid=guid, delivered_at=f"2026-12-06T{at}:00Z", redelivery=False,
                        status="", status_code=status_code, event="pull_request", action="opened",
                        installation_id=INSTALLATION, repository_id=1, delivered=delivered)


def test_a_401_on_the_last_attempt_is_reported(github: FakeGitHub, key_pair: tuple[str, str]) -> None:
    client = app_client(github, App("424242", key_pair[0]), max_attempts=1)
    client.set_status(REPO, SHA, "pending", "queued")
    github.expire_tokens()
    with pytest.raises(GitHubError) as caught:
        client.set_status(REPO, SHA, "success", "done")
    assert caught.value.status == 401 and caught.value.message == "Bad credentials"
