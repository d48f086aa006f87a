"""A small GitHub REST client (httpx, synchronous) for what the service posts and reads.

Routes and shapes, from GitHub's REST reference (https://docs.github.com/en/rest):
- issue comments: ``GET /repos/{owner}/{repo}/issues/{issue_number}/comments`` (paginated by the
  ``Link`` header), ``POST`` the same path, ``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}``
  (a pull request is an issue for comments);
- commit statuses: ``POST /repos/{owner}/{repo}/statuses/{sha}`` with ``state`` (error, failure,
  pending, success), ``description``, ``target_url``, ``context``;
- pull requests: ``GET /repos/{owner}/{repo}/pulls/{pull_number}``;
- App webhook deliveries (JWT only): ``GET /app/hook/deliveries`` (``per_page``, ``cursor``; the next
  cursor is in the ``Link`` header), ``POST /app/hook/deliveries/{delivery_id}/attempts``;
- installation tokens: ``POST /app/installations/{installation_id}/access_tokens`` answers
  ``201 {"token", "expires_at", ...}`` ("Generating an installation access token for a GitHub App").

Authentication is a token or a GitHub App: an RS256 JWT with ``iat`` 60 s in the past (clock
drift), ``exp`` at most 10 minutes ahead and ``iss`` the app id ("Generating a JSON Web Token (JWT)
for a GitHub App"), exchanged for an installation token that is reused until shortly before it
expires.

Rate limits ("Rate limits for the REST API" / "Troubleshooting the REST API"): a limited request
gets 403 or 429; with ``retry-after`` wait that many seconds; with ``x-ratelimit-remaining: 0``
wait until ``x-ratelimit-reset`` (UTC epoch seconds); otherwise a secondary limit, wait at least a
minute. 5xx and connection errors are retried with exponential backoff. Every wait is reported
through ``on_line`` (the job log) and none exceeds ``max_wait``: a longer demanded wait fails at
once, so a job is never stuck for an hour behind a primary limit.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import jwt

from automation.github import events, identifiers

DEFAULT_BASE_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
STATUS_STATES = ("error", "failure", "pending", "success")
STATUS_DESCRIPTION_MAX = 140
COMMENT_MAX = 65536
# Installation tokens live an hour; renew early so a token never expires during a job's requests.
TOKEN_RENEW_MARGIN = 5 * 60
JWT_BACKDATE = 60
JWT_LIFETIME = 9 * 60  # exp - now; with the backdated iat the token spans exactly GitHub's 10-minute maximum
SECONDARY_LIMIT_WAIT = 60.0
MAX_PAGES = 1000  # 100 000 comments or deliveries: beyond that the Link chain is broken, not long

_MARKER = re.compile(r"<!-- dbenv:[^\n>]{1,200} -->")


class GitHubError(Exception):
    """A GitHub request failed for good: ``status`` (None for a connection failure) and GitHub's message."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        where = f"GitHub {method} {path}"
        super().__init__(f"{where}: {status} {message}" if status is not None else f"{where}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message

    @property
    def outcome_unknown(self) -> bool:
        """The request may have taken effect (a 5xx or lost connection): look before repeating a create."""
        return self.status is None or self.status >= 500


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    author: str
    html_url: str


@dataclass(frozen=True)
class HookDelivery:
    """One row of ``GET /app/hook/deliveries``; ``guid`` is the ``X-GitHub-Delivery`` of the event."""

    id: int
    guid: str
    delivered_at: str
    redelivery: bool
    status: str
    status_code: int
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    delivered: float  # delivered_at as epoch seconds

    @property
    def failed(self) -> bool:
        return not 200 <= self.status_code < 300


class App:
    """A GitHub App's id and private key, and the installation tokens minted from them.

    One App object can be shared by every client (and thread) of the service so a token is
    minted once per installation and hour, not once per job.
    """

    def __init__(self, app_id: str | int, private_key: str) -> None:
        if not str(app_id).strip():
            raise ValueError("the GitHub App id is empty")
        if "PRIVATE KEY" not in private_key:
            raise ValueError("the GitHub App private key is not a PEM private key")
        self.app_id = str(app_id).strip()
        self._private_key = private_key
        self._tokens: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"App(app_id={self.app_id!r})"  # never the key or a token

    def jwt(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims = {"iat": int(now) - JWT_BACKDATE, "exp": int(now) + JWT_LIFETIME, "iss": self.app_id}
        return jwt.encode(claims, self._private_key, algorithm="RS256")

    def cached_token(self, installation_id: int, now: float) -> str | None:
        with self._lock:
            cached = self._tokens.get(installation_id)
        if cached is None or now >= cached[1] - TOKEN_RENEW_MARGIN:
            return None
        return cached[0]

    def store_token(self, installation_id: int, token: str, expires_at: float) -> None:
        with self._lock:
            self._tokens[installation_id] = (token, expires_at)

    def forget_token(self, installation_id: int) -> None:
        with self._lock:
            self._tokens.pop(installation_id, None)


class GitHubClient:
    """Calls GitHub as a token holder or as one installation of a GitHub App.

    ``base_url`` is ``https://api.github.com`` or, for GitHub Enterprise Server,
    ``https://HOST/api/v3``. ``sleep`` and ``clock`` are injectable so tests run without waiting.
    """

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, token: str | None = None, app: App | None = None,
                 installation_id: int | None = None, on_line: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 max_attempts: int = 5, max_wait: float = 300.0, backoff: float = 1.0, timeout: float = 30.0,
                 user_agent: str = "dbenv") -> None:
        if (token is None) == (app is None):
            raise ValueError("give the GitHub client either a token or a GitHub App")
        if max_attempts < 1 or max_wait < 0 or backoff < 0:
            raise ValueError("max_attempts must be at least 1, max_wait and backoff not negative")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"the GitHub API URL must be http(s)://..., not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._app = app
        self._installation_id = installation_id
        self._on_line = on_line or (lambda line: None)
        self._sleep = sleep
        self._clock = clock
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._backoff = backoff
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, follow_redirects=False, headers={
            "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION, "User-Agent": user_agent})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- pull requests and comments ------------------------------------------------------------

    def get_pull_request(self, repo: str, pr: int) -> events.PullRequest:
        """The pull request's head branch and commit now (an issue_comment payload does not carry them)."""
        response = self._request("GET", f"/repos/{_repo(repo)}/pulls/{_number(pr)}")
        try:
            return events.parse_pull_request(_json(response), "pull request")
        except ValueError as err:
            raise GitHubError("GET", f"/repos/{repo}/pulls/{pr}", response.status_code, str(err)) from None

    def list_comments(self, repo: str, pr: int) -> Iterator[Comment]:
        for item in self._pages(f"/repos/{_repo(repo)}/issues/{_number(pr)}/comments", {"per_page": 100}):
            comment = _comment(item)
            if comment is not None:
                yield comment

    def find_comment(self, repo: str, pr: int, marker: str, *, author: str | None = None) -> Comment | None:
        """The comment that starts with ``marker`` (by ``author`` if given: anyone can type a marker)."""
        _check_marker(marker)
        for comment in self.list_comments(repo, pr):
            if comment.body.startswith(marker) and (author is None or comment.author == author):
                return comment
        return None

    def upsert_comment(self, repo: str, pr: int, marker: str, body: str, *, author: str | None = None) -> int:
        """Edit the pull request's comment found by ``marker`` to ``body`` (which must start with it), else post it."""
        _check_marker(marker)
        if not body.startswith(marker):
            raise ValueError("the comment body must start with its marker, or it will not be found again")
        if len(body) > COMMENT_MAX:
            raise ValueError(f"the comment body has {len(body)} characters; GitHub accepts at most {COMMENT_MAX}")
        existing = self.find_comment(repo, pr, marker, author=author)
        if existing is not None:
            return self._edit_comment(repo, existing.id, body)
        path = f"/repos/{_repo(repo)}/issues/{_number(pr)}/comments"
        try:
            return _id(self._request("POST", path, json={"body": body}, retry_unknown=False))
        except GitHubError as err:
            if not err.outcome_unknown:
                raise
            # The comment may exist despite the error: look again rather than post it twice.
            self._on_line(f"GitHub POST {path}: {err.message}; checking whether the comment was created")
        existing = self.find_comment(repo, pr, marker, author=author)
        if existing is not None:
            return self._edit_comment(repo, existing.id, body)
        return _id(self._request("POST", path, json={"body": body}))

    def _edit_comment(self, repo: str, comment_id: int, body: str) -> int:
        return _id(self._request("PATCH", f"/repos/{_repo(repo)}/issues/comments/{_number(comment_id)}",
                                 json={"body": body}))

    def set_status(self, repo: str, sha: str, state: str, description: str, target_url: str | None = None,
                   context: str = "dbenv") -> None:
        """Set the commit status ``context`` on ``sha``; a description over 140 characters is shortened."""
        if state not in STATUS_STATES:
            raise ValueError(f"commit status state must be one of {', '.join(STATUS_STATES)}, not {state!r}")
        identifiers.commit_sha(sha)
        if len(description) > STATUS_DESCRIPTION_MAX:
            description = description[:STATUS_DESCRIPTION_MAX - 1] + "…"
        body: dict[str, Any] = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        self._request("POST", f"/repos/{_repo(repo)}/statuses/{sha}", json=body)

    # --- App webhook deliveries ----------------------------------------------------------------

    def list_hook_deliveries(self, *, since: datetime | None = None, per_page: int = 100) -> list[HookDelivery]:
        """The App's recent webhook deliveries, newest first; stop paging once they are older than ``since``."""
        found: list[HookDelivery] = []
        for item in self._pages("/app/hook/deliveries", {"per_page": per_page}, as_app=True):
            delivery = _hook_delivery(item)
            if delivery is None:
                continue
            if since is not None and delivery.delivered < since.timestamp():
                break
            found.append(delivery)
        return found

    def redeliver(self, delivery_id: int) -> None:
        """Ask GitHub to send a delivery again (it then arrives with the same ``X-GitHub-Delivery``)."""
        self._request("POST", f"/app/hook/deliveries/{_number(delivery_id)}/attempts", as_app=True)

    # --- plumbing ------------------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any], *, as_app: bool = False) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: dict[str, Any] | None = params
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise GitHubError("GET", path, None, f"pagination does not end (after {len(seen)} pages)")
            seen.add(url)
            response = self._request("GET", url, params=query, as_app=as_app)
            items = _json(response)
            if not isinstance(items, list):
                raise GitHubError("GET", path, response.status_code, "the answer is not a list")
            yield from (item for item in items if isinstance(item, dict))
            # The next link carries the whole query; extra params would replace it.
            url, query = self._next_page(response), None

    def _next_page(self, response: httpx.Response) -> str | None:
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        # Follow the Link only to our own API: the credentials must never go to another host.
        if not url.startswith(self.base_url + "/"):
            raise GitHubError("GET", response.request.url.path, response.status_code,
                              f"the next page is outside {self.base_url}: {url}")
        return url[len(self.base_url):]

    def _authorization(self, as_app: bool) -> str:
        if self._token is not None:
            return f"token {self._token}"
        assert self._app is not None
        if as_app:
            return f"Bearer {self._app.jwt()}"
        return f"token {self._installation_token()}"

    def _installation_token(self) -> str:
        assert self._app is not None
        if self._installation_id is None:
            raise ValueError("a GitHub App client needs the installation id for repository requests")
        cached = self._app.cached_token(self._installation_id, self._clock())
        if cached is not None:
            return cached
        path = f"/app/installations/{self._installation_id}/access_tokens"
        response = self._request("POST", path, as_app=True)
        answer = _json(response)
        token = answer.get("token") if isinstance(answer, dict) else None
        expires_at = _parse_time(answer.get("expires_at")) if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token or expires_at is None:
            raise GitHubError("POST", path, response.status_code, "the answer has no token or no valid expires_at")
        self._app.store_token(self._installation_id, token, expires_at)
        return token

    def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                 as_app: bool = False, retry_unknown: bool = True) -> httpx.Response:
        """Send with retries; ``retry_unknown=False`` for a create that must not happen twice."""
        shown = path.split("?", 1)[0]
        auth_retried = False
        for attempt in range(1, self._max_attempts + 1):
            headers = {"Authorization": self._authorization(as_app)}
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as err:
                if not retry_unknown or attempt == self._max_attempts:
                    raise GitHubError(method, shown, None, f"{type(err).__name__}: {err}") from None
                self._wait(method, shown, f"{type(err).__name__}", self._backoff_wait(attempt), attempt)
                continue
            if response.status_code < 400:
                return response
            if (response.status_code == 401 and self._app is not None and not as_app and not auth_retried
                    and attempt < self._max_attempts):
                # The installation token was revoked or expired early: mint a new one, once.
                self._app.forget_token(self._installation_id or 0)
                auth_retried = True
                continue
            wait = self._retry_wait(response, attempt, retry_unknown)
            if wait is None or attempt == self._max_attempts:
                raise GitHubError(method, shown, response.status_code, _message(response))
            if wait > self._max_wait:
                raise GitHubError(method, shown, response.status_code,
                                  f"{_message(response)} (GitHub asks to wait {wait:.0f} s, more than the "
                                  f"{self._max_wait:.0f} s allowed)")
            self._wait(method, shown, f"{response.status_code} {_message(response)}", wait, attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _retry_wait(self, response: httpx.Response, attempt: int, retry_unknown: bool) -> float | None:
        status = response.status_code
        if status in (403, 429):
            return self._rate_limit_wait(response, attempt)
        if status >= 500 and retry_unknown:
            return self._backoff_wait(attempt)
        return None

    def _rate_limit_wait(self, response: httpx.Response, attempt: int) -> float | None:
        retry_after = response.headers.get("retry-after", "").strip()
        if retry_after.isdigit():
            return float(retry_after)
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = response.headers.get("x-ratelimit-reset", "").strip()
            if reset.isdigit():
                return max(0.0, float(reset) - self._clock()) + 1.0
        if response.status_code == 429 or "rate limit" in _message(response).lower():
            return max(SECONDARY_LIMIT_WAIT, self._backoff_wait(attempt))
        return None  # a 403 that is not a rate limit is a permission problem: retrying will not help

    def _backoff_wait(self, attempt: int) -> float:
        return min(self._backoff * 2 ** (attempt - 1), self._max_wait)

    def _wait(self, method: str, path: str, why: str, seconds: float, attempt: int) -> None:
        self._on_line(f"GitHub {method} {path}: {why}; retrying in {seconds:.0f} s "
                      f"(attempt {attempt + 1} of {self._max_attempts})")
        self._sleep(seconds)


_repo = identifiers.repo_name
_number = identifiers.positive_number


def missed_deliveries(deliveries: Iterable[HookDelivery], recorded_guids: Container[str]) -> list[HookDelivery]:
    """The deliveries to redeliver: one per event (guid) that never got a 2xx and the service has not recorded.

    A guid has a row per attempt (the first and each redelivery), newest first; the newest failed
    attempt is the one to ask for again.
    """
    by_guid: dict[str, list[HookDelivery]] = {}
    for delivery in deliveries:
        by_guid.setdefault(delivery.guid, []).append(delivery)
    missed = []
    for guid, attempts in by_guid.items():
        if guid in recorded_guids or any(not attempt.failed for attempt in attempts):
            continue
        missed.append(max(attempts, key=lambda attempt: (attempt.delivered, attempt.id)))
    return sorted(missed, key=lambda delivery: (delivery.delivered, delivery.id))


def _check_marker(marker: str) -> None:
    if not _MARKER.fullmatch(marker):
        raise ValueError(f"a comment marker looks like '<!-- dbenv:... -->', not {marker!r}")


def _message(response: httpx.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    message = answer.get("message") if isinstance(answer, dict) else None
    return str(message)[:500] if message else response.reason_phrase or "no message"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise GitHubError(response.request.method, response.request.url.path, response.status_code,
                          "the answer is not JSON") from None


def _id(response: httpx.Response) -> int:
    answer = _json(response)
    comment_id = answer.get("id") if isinstance(answer, dict) else None
    if not isinstance(comment_id, int):
        raise GitHubError(response.request.method, response.request.url.path, response.status_code,
                          "the answer has no id")
    return comment_id


def _comment(item: dict[str, Any]) -> Comment | None:
    user = item.get("user") if isinstance(item.get("user"), dict) else {}
    if not isinstance(item.get("id"), int) or not isinstance(item.get("body"), str):
        return None
    return Comment(id=item["id"], body=item["body"], author=str(user.get("login", "")),
                   html_url=str(item.get("html_url", "")))


def _hook_delivery(item: dict[str, Any]) -> HookDelivery | None:
    delivered = _parse_time(item.get("delivered_at"))
    if delivered is None:
        return None
    try:
        return HookDelivery(
            id=int(item["id"]), guid=str(item["guid"]), delivered_at=str(item["delivered_at"]),
            redelivery=bool(item.get("redelivery", False)), status=str(item.get("status", "")),
            status_code=int(item["status_code"]), event=str(item.get("event", "")),
            action=item.get("action") if isinstance(item.get("action"), str) else None,
            installation_id=item.get("installation_id") if isinstance(item.get("installation_id"), int) else None,
            repository_id=item.get("repository_id") if isinstance(item.get("repository_id"), int) else None,
            delivered=delivered,
        )
    except (KeyError, TypeError, ValueError):
        return None  # a row we cannot read is skipped; the next sweep sees it again


def _parse_time(text: Any) -> float | None:
    """GitHub's ISO 8601 UTC time as epoch seconds, or None if it is not one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None
