"""Webhook deliveries -> actions, over payloads of the documented shapes and hostile variants of them."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from automation.github import events
from automation.github.events import Action, BadPayload, Ignored

PAYLOADS = Path(__file__).parent / "github_payloads"
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def parse(event: str, name_or_payload: str | dict[str, Any]) -> Action | Ignored:
    body = payload(name_or_payload) if isinstance(name_or_payload, str) else name_or_payload
    return events.parse(event, DELIVERY, body)


@pytest.mark.parametrize("name", ["opened", "synchronize", "reopened", "ready_for_review"])
def test_pull_request_updates_bring_the_environment_up(name: str) -> None:
    action = parse("pull_request", f"pull_request_{name}")
    assert isinstance(action, Action)
    assert action.kind == "up"
    assert (action.repo, action.pr, action.installation_id) == ("acme/shop-db", 42, 1234567)
    pull = action.pull
    assert pull is not None
    assert (pull.branch, pull.sha, pull.base_branch) == ("feature/orders-index", HEAD, "main")
    assert pull.clone_url == "https://github.com/acme/shop-db.git"
    assert pull.fork is False and pull.head_repo == "acme/shop-db"


@pytest.mark.parametrize(("name", "merged"), [("closed_merged", True), ("closed_unmerged", False)])
def test_closing_takes_the_environment_down(name: str, merged: bool) -> None:
    action = parse("pull_request", f"pull_request_{name}")
    assert isinstance(action, Action) and action.kind == "down"
    assert action.pull is not None and action.pull.merged is merged


def test_closing_a_draft_still_takes_it_down() -> None:
    body = payload("pull_request_closed_unmerged")
    body["pull_request"]["draft"] = True
    action = parse("pull_request", body)
    assert isinstance(action, Action) and action.kind == "down"


@pytest.mark.parametrize(("name", "reason"), [("draft_opened", "is a draft"), ("skip_label", "dbenv:skip")])
def test_opt_outs_are_ignored_with_a_reason(name: str, reason: str) -> None:
    result = parse("pull_request", f"pull_request_{name}")
    assert isinstance(result, Ignored)
    assert reason in result.reason


def test_skip_label_matches_regardless_of_case() -> None:
    body = payload("pull_request_skip_label")
    body["pull_request"]["labels"][1]["name"] = "DBENV:Skip"
    assert isinstance(parse("pull_request", body), Ignored)


def test_fork_pull_request_is_marked_as_a_fork() -> None:
    action = parse("pull_request", "pull_request_fork_opened")
    assert isinstance(action, Action) and action.pull is not None
    assert action.pull.fork is True and action.pull.head_repo == "mallory/shop-db"


def test_deleted_fork_head_repo_counts_as_a_fork() -> None:
    body = payload("pull_request_fork_opened")
    body["pull_request"]["head"]["repo"] = None
    action = parse("pull_request", body)
    assert isinstance(action, Action) and action.pull is not None
    assert action.pull.fork is True and action.pull.head_repo is None


def test_other_pull_request_actions_are_ignored() -> None:
    body = payload("pull_request_opened")
    body["action"] = "labeled"
    result = parse("pull_request", body)
    assert isinstance(result, Ignored) and "labeled" in result.reason


@pytest.mark.parametrize(
    ("name", "command", "argument", "author", "association"),
    [
        ("member", "up", None, "octocat", "MEMBER"),
        ("owner", "down", None, "acme-admin", "OWNER"),
        ("collaborator", "approve", "6dcb09b", "hubot", "COLLABORATOR"),
    ],
)
def test_commands_from_members(name: str, command: str, argument: str | None, author: str, association: str) -> None:
    action = parse("issue_comment", f"issue_comment_{name}")
    assert isinstance(action, Action) and action.kind == "command"
    assert (action.command, action.argument, action.pr, action.repo) == (command, argument, 42, "acme/shop-db")
    assert (action.author, action.author_association) == (author, association)


@pytest.mark.parametrize(("name", "login"), [("none", "stranger"), ("contributor", "drive-by")])
def test_commands_from_others_are_refused_with_a_reply(name: str, login: str) -> None:
    action = parse("issue_comment", f"issue_comment_{name}")
    assert isinstance(action, Action) and action.kind == "refusal" and action.command is None
    assert action.reply is not None and f"@{login}" in action.reply and "only owners, members" in action.reply


@pytest.mark.parametrize("body", ["/dbenv", "/dbenv destroy", "/dbenv up now", "/dbenv up 6dcb09b",
                                  "/dbenv approve not-a-sha", "/dbenv approve 6dcb09b extra"])
def test_malformed_commands_get_the_usage(body: str) -> None:
    comment = payload("issue_comment_member")
    comment["comment"]["body"] = body
    action = parse("issue_comment", comment)
    assert isinstance(action, Action) and action.kind == "refusal" and action.reply == events.USAGE


@pytest.mark.parametrize("body", ["  /dbenv plan\n\nthanks!", "/dbenv\tplan", "/dbenv   plan  "])
def test_command_is_read_from_the_first_line(body: str) -> None:
    comment = payload("issue_comment_member")
    comment["comment"]["body"] = body
    action = parse("issue_comment", comment)
    assert isinstance(action, Action) and action.command == "plan"


@pytest.mark.parametrize("body", ["looks good", "please run /dbenv up", "/dbenvup", "> /dbenv up"])
def test_ordinary_comments_are_ignored(body: str) -> None:
    comment = payload("issue_comment_member")
    comment["comment"]["body"] = body
    assert isinstance(parse("issue_comment", comment), Ignored)


def test_comment_on_an_issue_is_ignored() -> None:
    comment = payload("issue_comment_member")
    del comment["issue"]["pull_request"]
    result = parse("issue_comment", comment)
    assert isinstance(result, Ignored) and "not a pull request" in result.reason


def test_edited_comment_is_ignored() -> None:
    comment = payload("issue_comment_member")
    comment["action"] = "edited"
    assert isinstance(parse("issue_comment", comment), Ignored)


def test_ping_is_answered() -> None:
    action = parse("ping", "ping")
    assert isinstance(action, Action) and action.kind == "pong"


def test_other_events_are_ignored() -> None:
    result = parse("push", "push")
    assert isinstance(result, Ignored) and "push" in result.reason


def test_every_fixture_parses() -> None:
    for path in sorted(PAYLOADS.glob("*.json")):
        event = path.stem.split("_")[0]
        event = {"pull": "pull_request", "issue": "issue_comment"}.get(event, event)
        assert isinstance(events.parse(event, DELIVERY, json.loads(path.read_text())), Action | Ignored), path.name


# --- hostile and malformed payloads --------------------------------------------------------------


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("pull_request", _DELETE, "pull_request is missing or not an object"),
        ("pull_request", "42", "pull_request is missing or not an object"),
        ("pull_request.head", _DELETE, "pull_request.head is missing"),
        ("pull_request.head.ref", 7, "pull_request.head.ref is missing or not a string"),
        ("pull_request.head.ref", "x" * 100_000, "longer than"),
        ("pull_request.head.ref", "feature/../etc", "invalid branch name"),
        ("pull_request.head.ref", "-rf", "invalid branch name"),
        ("pull_request.head.ref", "a b", "invalid branch name"),
        ("pull_request.base.ref", "main.lock", "pull_request.base.ref: invalid branch name"),
        ("pull_request.head.sha", "HEAD", "pull_request.head.sha is not of the expected form"),
        ("pull_request.head.sha", "--upload-pack=evil" + "0" * 22, "not of the expected form"),
        ("pull_request.number", "42", "pull_request.number is missing or not a positive integer"),
        ("pull_request.number", True, "positive integer"),
        ("pull_request.number", -1, "positive integer"),
        ("pull_request.number", 2**80, "positive integer"),
        ("pull_request.base.repo.full_name", "acme/shop db", "not of the expected form"),
        ("pull_request.base.repo.full_name", ["acme/shop-db"], "not a string"),
        ("pull_request.base.repo.clone_url", "ext::sh -c evil", "not an http(s) URL"),
        ("pull_request.head.repo", "mallory/shop-db", "pull_request.head.repo is not an object"),
        ("pull_request.draft", "no", "pull_request.draft is not a boolean"),
        ("pull_request.labels", {"name": "x"}, "labels is not a list"),
        ("pull_request.labels", [{"name": "x"}] * 1000, "at most"),
        ("pull_request.labels", ["dbenv:skip"], "labels[] is missing or not an object"),
        ("installation", {"id": "1"}, "installation.id"),
        ("action", None, "payload.action is missing"),
    ],
)
def test_malformed_pull_request_payloads_raise_bad_payload(path: str, value: Any, message: str) -> None:
    with pytest.raises(BadPayload, match=re.escape(message)):
        parse("pull_request", _set(payload("pull_request_opened"), path, value))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("comment", _DELETE, "payload.comment is missing"),
        ("comment.body", None, "comment.body"),
        ("comment.body", "/dbenv up" + " " * 70_000, "comment.body"),
        ("comment.user", _DELETE, "comment.user is missing"),
        ("comment.user.login", "<script>", "comment.user.login is not of the expected form"),
        ("comment.author_association", 1, "comment.author_association"),
        ("issue.number", None, "issue.number"),
        ("issue.pull_request", "yes", "issue.pull_request is not an object"),
        ("repository", _DELETE, "payload.repository is missing"),
    ],
)
def test_malformed_comment_payloads_raise_bad_payload(path: str, value: Any, message: str) -> None:
    with pytest.raises(BadPayload, match=re.escape(message)):
        parse("issue_comment", _set(payload("issue_comment_member"), path, value))


@pytest.mark.parametrize(
    ("event", "delivery", "body", "message"),
    [
        (None, DELIVERY, {}, "X-GitHub-Event"),
        ("Pull Request", DELIVERY, {}, "X-GitHub-Event"),
        ("pull_request", None, {}, "X-GitHub-Delivery"),
        ("pull_request", "x" * 500, {}, "X-GitHub-Delivery"),
        ("pull_request", DELIVERY, [1, 2], "not a JSON object"),
    ],
)
def test_bad_headers_and_bodies(event: Any, delivery: Any, body: Any, message: str) -> None:
    with pytest.raises(BadPayload, match=message):
        events.parse(event, delivery, body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"payload=%7B%7D", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not JSON"),
    ],
)
def test_load_payload_refuses_what_is_not_a_json_object(body: bytes, message: str) -> None:
    with pytest.raises(BadPayload, match=message):
        events.load_payload(body)


def test_load_payload_reads_a_fixture() -> None:
    assert events.load_payload((PAYLOADS / "ping.json").read_bytes())["hook_id"] == 109948940


# --- policies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "patterns", "allowed"),
    [
        ("acme/shop-db", ["acme/shop-db"], True),
        ("Acme/Shop-DB", ["acme/shop-db"], True),
        ("acme/shop-db", ["ACME/*"], True),
        ("acme/shop-db", ["*/shop-*"], True),
        ("acme/shop-db", ["*"], True),
        ("acme/shop-db", ["acme/shop"], False),
        ("acme/shop-db", ["other/*", " "], False),
        ("acme/shop-db", [], False),
        ("acme-evil/shop-db", ["acme/*"], False),
        ("acme/shop-db", ["acme/shop-d?"], True),
    ],
)
def test_repository_allowlist(repo: str, patterns: list[str], allowed: bool) -> None:
    assert events.repo_allowed(repo, patterns) is allowed


def test_own_branches_get_everything() -> None:
    decision = events.fork_decision(fork=False, sha=HEAD, operation="up", allow_forks=False)
    assert decision == events.ForkDecision("full")


def test_forks_are_refused_by_default_with_the_reason() -> None:
    decision = events.fork_decision(fork=True, sha=HEAD, operation="up", allow_forks=False, approved_shas={HEAD})
    assert decision.mode == "refused" and decision.reason == events.FORK_REFUSED


def test_opted_in_forks_get_the_plan_until_approved() -> None:
    decision = events.fork_decision(fork=True, sha=HEAD, operation="up", allow_forks=True, approved_shas=set())
    assert decision.mode == "plan-only"
    assert decision.reason is not None and HEAD[:7] in decision.reason and "/dbenv approve" in decision.reason
    approved = events.fork_decision(fork=True, sha=HEAD, operation="up", allow_forks=True, approved_shas={HEAD})
    assert approved.mode == "full"


def test_a_new_push_needs_a_new_approval() -> None:
    new_head = "1" * 40
    decision = events.fork_decision(fork=True, sha=new_head, operation="up", allow_forks=True, approved_shas={HEAD})
    assert decision.mode == "plan-only"


@pytest.mark.parametrize("operation", sorted(events.SAFE_FOR_FORKS))
def test_operations_that_run_no_branch_code_are_open_to_forks(operation: str) -> None:
    assert events.fork_decision(fork=True, sha=HEAD, operation=operation, allow_forks=False).mode == "full"


def test_approval_names_the_head_commit() -> None:
    assert events.approval_for(None, HEAD) == HEAD
    assert events.approval_for("6dcb09b", HEAD) == HEAD
    assert events.approval_for("1234567", HEAD) is None
    assert "6dcb09b" in events.stale_approval_reply("1234567", HEAD)
