"""Verified webhook deliveries -> what the service should do about them.

Only call this after ``signature.verify``: the payload is then GitHub's, but it is still read
defensively (a compromised secret, a proxy bug or a future payload change must give one clear
``BadPayload``, not a KeyError deep in a job). Shapes follow GitHub's "Webhook events and
payloads" page (pull_request, issue_comment, ping):
https://docs.github.com/en/webhooks/webhook-events-and-payloads

Nothing is stored here: the repository allowlist, the fork setting and the approved commits are
passed in, so every decision is a pure function the service (and the tests) can call.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from automation.github import identifiers
from components import naming

# What a pull_request action asks for; other actions (edited, labeled, assigned ...) change nothing.
UP_ACTIONS = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})
COMMANDS = ("up", "down", "sleep", "wake", "plan", "approve")
# GitHub's author_association values of people who may drive environments from a comment.
ALLOWED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
SKIP_LABEL = "dbenv:skip"
# Operations that run none of the branch's code, so a fork's pull request may have them.
SAFE_FOR_FORKS = frozenset({"down", "sleep", "wake", "plan"})

MAX_NAME = 255  # GitHub caps ref and label names well below this.
MAX_URL = 2048
MAX_BODY = 65536  # GitHub's limit on a comment body.
MAX_LABELS = 100
MAX_PAYLOAD_DEPTH = 64

_EVENT = re.compile(r"[a-z_]{1,64}")
_DELIVERY = re.compile(r"[A-Za-z0-9-]{1,100}")
_REPO = identifiers.REPO
_SHA = identifiers.SHA
_SHA_PREFIX = re.compile(r"[0-9a-f]{7,40}")
_LOGIN = re.compile(r"[A-Za-z0-9\[\]_.-]{1,100}")
_COMMAND = re.compile(r"/dbenv(?:\s+(\S+))?(?:\s+(\S+))?\s*(.*)")

USAGE = "Usage: `/dbenv up`, `/dbenv down`, `/dbenv sleep`, `/dbenv wake`, `/dbenv plan` or `/dbenv approve [sha]`."
NOT_ALLOWED = ("Sorry @{login}, only owners, members and collaborators of this repository can run `/dbenv` "
               "commands (your association: {association}).")
FORK_REFUSED = ("This pull request comes from a fork, so dbenv builds no environment for it: the branch's hooks "
                "(post-clone masking, migrate, seed) would run code from outside this repository with the "
                "service's AWS credentials. Push the branch to this repository to get an environment.")
FORK_PLAN_ONLY = ("This pull request comes from a fork, so only the offline plan runs (resources, cost, policy: no "
                  "credentials, no hooks, no engine). A member can comment `/dbenv approve` to build the environment "
                  "for commit {sha7}; a new push needs a new approval.")
APPROVAL_STALE = ("`/dbenv approve {given}` names a commit that is not the head of this pull request ({sha7}) any "
                  "more: review the new commits and approve again.")


class BadPayload(ValueError):
    """The delivery is not of the shape GitHub documents; the message names the offending field."""


@dataclass(frozen=True)
class PullRequest:
    """The parts of a pull request (webhook ``pull_request`` or REST ``GET /pulls/{n}``) the service uses."""

    repo: str
    number: int
    branch: str
    sha: str
    base_branch: str
    clone_url: str
    fork: bool
    head_repo: str | None
    draft: bool
    merged: bool
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Action:
    """What a delivery asks for.

    kind: ``up`` / ``down`` (pull request events, ``pull`` set), ``command`` (a ``/dbenv`` comment by
    an allowed user: ``command``, ``argument``, ``pr``; the head commit is not in an issue_comment
    payload, so fetch the pull request before acting), ``refusal`` (post ``reply`` on ``pr``, run
    nothing) or ``pong``.
    """

    kind: Literal["up", "down", "command", "refusal", "pong"]
    event: str
    delivery_id: str
    repo: str = ""
    installation_id: int | None = None
    pr: int | None = None
    pull: PullRequest | None = None
    command: str | None = None
    argument: str | None = None
    author: str | None = None
    author_association: str | None = None
    reply: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A delivery that asks for nothing; ``reason`` is for the service log."""

    event: str
    delivery_id: str
    reason: str


@dataclass(frozen=True)
class ForkDecision:
    """How much of an operation a pull request may have: ``full``, ``plan-only`` or ``refused`` (``reason`` to post)."""

    mode: Literal["full", "plan-only", "refused"]
    reason: str | None = None


# ---------------------------------------------------------------------------------------------
# Reading the payload defensively


def load_payload(body: bytes) -> dict[str, Any]:
    """The JSON object of a delivery body (the webhook must use content type application/json)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8") from None
    except RecursionError:
        raise BadPayload("the body is nested too deeply") from None
    except json.JSONDecodeError as err:
        raise BadPayload(f"the body is not JSON ({err.msg} at offset {err.pos}); set the webhook's content "
                         "type to application/json") from None
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    return payload


def _obj(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise BadPayload(f"{where}.{key} is missing or not an object")
    return value


def _opt_obj(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BadPayload(f"{where}.{key} is not an object")
    return value


def _str(parent: Mapping[str, Any], key: str, where: str, *, max_len: int = MAX_NAME,
         pattern: re.Pattern[str] | None = None) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or value == "":
        raise BadPayload(f"{where}.{key} is missing or not a string")
    if len(value) > max_len:
        raise BadPayload(f"{where}.{key} is longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise BadPayload(f"{where}.{key} is not of the expected form")
    return value


def _int(parent: Mapping[str, Any], key: str, where: str) -> int:
    value = parent.get(key)
    # bool is an int subclass; a JSON true is not a number.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise BadPayload(f"{where}.{key} is missing or not a positive integer")
    return value


def _bool(parent: Mapping[str, Any], key: str, where: str) -> bool:
    value = parent.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadPayload(f"{where}.{key} is not a boolean")
    return value


def _branch(parent: Mapping[str, Any], where: str) -> str:
    ref = _str(parent, "ref", where)
    try:
        return naming.validate_branch(ref)
    except naming.InvalidName as err:
        raise BadPayload(f"{where}.ref: {err}") from None


def _labels(pull: Mapping[str, Any]) -> tuple[str, ...]:
    labels = pull.get("labels", [])
    if labels is None:
        return ()
    if not isinstance(labels, list) or len(labels) > MAX_LABELS:
        raise BadPayload(f"pull_request.labels is not a list of at most {MAX_LABELS} labels")
    return tuple(_str(_as_obj(label, "pull_request.labels[]"), "name", "pull_request.labels[]") for label in labels)


def _as_obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadPayload(f"{where} is missing or not an object")
    return value


def _installation_id(payload: Mapping[str, Any]) -> int | None:
    installation = _opt_obj(payload, "installation", "payload")
    return None if installation is None else _int(installation, "id", "installation")


def parse_pull_request(pull: Any, where: str = "pull_request") -> PullRequest:
    """Read a pull request object of the webhook or REST shape (they are the same)."""
    pull = _as_obj(pull, where)
    head = _obj(pull, "head", where)
    base = _obj(pull, "base", where)
    base_repo = _obj(base, "repo", f"{where}.base")
    # head.repo is null when the fork has been deleted: treat it as a fork, never as ours.
    head_repo = _opt_obj(head, "repo", f"{where}.head")
    repo = _str(base_repo, "full_name", f"{where}.base.repo", pattern=_REPO)
    head_name = None if head_repo is None else _str(head_repo, "full_name", f"{where}.head.repo", pattern=_REPO)
    clone_url = _str(base_repo, "clone_url", f"{where}.base.repo", max_len=MAX_URL)
    if not clone_url.startswith(("https://", "http://")):
        raise BadPayload(f"{where}.base.repo.clone_url is not an http(s) URL")
    return PullRequest(
        repo=repo,
        number=_int(pull, "number", where),
        branch=_branch(head, f"{where}.head"),
        sha=_str(head, "sha", f"{where}.head", pattern=_SHA),
        base_branch=_branch(base, f"{where}.base"),
        clone_url=clone_url,
        fork=head_name is None or head_name.lower() != repo.lower(),
        head_repo=head_name,
        draft=_bool(pull, "draft", where),
        merged=_bool(pull, "merged", where),
        labels=_labels(pull),
    )


# ---------------------------------------------------------------------------------------------
# Events


def valid_delivery_id(delivery_id: Any) -> bool:
    """An X-GitHub-Delivery value (a GUID) the service can record."""
    return isinstance(delivery_id, str) and bool(_DELIVERY.fullmatch(delivery_id))


def parse(event: str | None, delivery_id: str | None, payload: Any) -> Action | Ignored:
    """Turn a verified delivery (``X-GitHub-Event``, ``X-GitHub-Delivery``, parsed body) into an Action or Ignored."""
    if not isinstance(event, str) or not _EVENT.fullmatch(event):
        raise BadPayload("the X-GitHub-Event header is missing or not an event name")
    if not valid_delivery_id(delivery_id):
        raise BadPayload("the X-GitHub-Delivery header is missing or not a delivery id")
    if not isinstance(payload, Mapping):
        raise BadPayload("the payload is not a JSON object")
    if event == "ping":
        return Action(kind="pong", event=event, delivery_id=delivery_id)
    if event == "pull_request":
        return _pull_request_event(delivery_id, payload)
    if event == "issue_comment":
        return _issue_comment_event(delivery_id, payload)
    return Ignored(event, delivery_id, f"the {event} event is not one dbenv acts on")


def _pull_request_event(delivery_id: str, payload: Mapping[str, Any]) -> Action | Ignored:
    action = _str(payload, "action", "payload")
    if action != "closed" and action not in UP_ACTIONS:
        return Ignored("pull_request", delivery_id, f"pull_request {action} changes nothing")
    pull = parse_pull_request(payload.get("pull_request"))
    common = {"event": "pull_request", "delivery_id": delivery_id, "repo": pull.repo,
              "installation_id": _installation_id(payload), "pr": pull.number, "pull": pull}
    # Closing always removes: the environment may exist from before a draft or a skip label.
    if action == "closed":
        return Action(kind="down", **common)
    if pull.draft:
        return Ignored("pull_request", delivery_id, f"{pull.repo}#{pull.number} is a draft")
    if any(label.lower() == SKIP_LABEL for label in pull.labels):
        return Ignored("pull_request", delivery_id, f"{pull.repo}#{pull.number} has the {SKIP_LABEL} label")
    return Action(kind="up", **common)


def _issue_comment_event(delivery_id: str, payload: Mapping[str, Any]) -> Action | Ignored:
    action = _str(payload, "action", "payload")
    if action != "created":
        return Ignored("issue_comment", delivery_id, f"issue_comment {action} is not a new command")
    issue = _obj(payload, "issue", "payload")
    if _opt_obj(issue, "pull_request", "issue") is None:
        return Ignored("issue_comment", delivery_id, "the comment is on an issue, not a pull request")
    comment = _obj(payload, "comment", "payload")
    body = comment.get("body")
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise BadPayload(f"comment.body is missing, not a string or longer than {MAX_BODY} characters")
    first_line = body.lstrip().split("\n", 1)[0].strip()
    if first_line != "/dbenv" and not first_line.startswith(("/dbenv ", "/dbenv\t")):
        return Ignored("issue_comment", delivery_id, "the comment is not a /dbenv command")
    repository = _obj(payload, "repository", "payload")
    user = _obj(comment, "user", "comment")
    common = {"event": "issue_comment", "delivery_id": delivery_id,
              "repo": _str(repository, "full_name", "repository", pattern=_REPO),
              "installation_id": _installation_id(payload), "pr": _int(issue, "number", "issue"),
              "author": _str(user, "login", "comment.user", pattern=_LOGIN),
              "author_association": _str(comment, "author_association", "comment", max_len=64)}
    return _command_action(first_line, common)


def _command_action(line: str, common: dict[str, Any]) -> Action:
    if common["author_association"] not in ALLOWED_ASSOCIATIONS:
        reply = NOT_ALLOWED.format(login=common["author"], association=common["author_association"])
        return Action(kind="refusal", reply=reply, **common)
    match = _COMMAND.fullmatch(line)
    verb, argument, rest = match.groups() if match else (None, None, "")
    if verb not in COMMANDS or rest or (argument is not None and verb != "approve"):
        return Action(kind="refusal", reply=USAGE, **common)
    if argument is not None and not _SHA_PREFIX.fullmatch(argument):
        return Action(kind="refusal", reply=USAGE, **common)
    return Action(kind="command", command=verb, argument=argument, **common)


# ---------------------------------------------------------------------------------------------
# Policies


def repo_allowed(repo: str, patterns: Iterable[str]) -> bool:
    """Whether ``owner/repo`` matches one of the allowlist's globs (``acme/*``, ``*/db-*``), ignoring case."""
    name = repo.lower()
    return any(fnmatch.fnmatchcase(name, pattern.strip().lower()) for pattern in patterns if pattern.strip())


def fork_decision(*, fork: bool, sha: str, operation: str, allow_forks: bool,
                  approved_shas: Iterable[str] = ()) -> ForkDecision:
    """How much of ``operation`` a pull request at ``sha`` may have.

    A fork's branch is someone else's code: its hooks would run with the service's AWS
    credentials. So by default a fork gets nothing; with ``allow_forks`` it gets the offline plan
    until a member approves that exact head commit (a new push is new code, so a new approval).
    """
    if not fork or operation in SAFE_FOR_FORKS:
        return ForkDecision("full")
    if not allow_forks:
        return ForkDecision("refused", FORK_REFUSED)
    if sha in set(approved_shas):
        return ForkDecision("full")
    return ForkDecision("plan-only", FORK_PLAN_ONLY.format(sha7=sha[:7]))


def approval_for(argument: str | None, head_sha: str) -> str | None:
    """The commit a ``/dbenv approve [sha]`` approves: the head, or None when the named commit is no longer the head.

    Naming the commit guards against a push landing between the review and the comment.
    """
    if argument is None or head_sha.startswith(argument):
        return head_sha
    return None


def stale_approval_reply(argument: str, head_sha: str) -> str:
    """The reply when ``/dbenv approve <argument>`` names a commit that is no longer the head."""
    return APPROVAL_STALE.format(given=argument, sha7=head_sha[:7])

