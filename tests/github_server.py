"""A local stand-in for the GitHub REST API at the service's GitHub seam.

It implements, in their documented shapes, only the routes the service calls: issue comments
(list with ``Link`` pagination, create, update), commit statuses (create), a pull request (get),
App installation access tokens (with ``expires_at``) and App webhook deliveries (list with a
cursor in the ``Link`` header, redeliver). It checks credentials the way GitHub does: ``/app``
routes need ``Bearer <JWT>`` signed by the App's key (verified here with the public key),
repository routes need ``token <installation token or personal token>``. Every call is recorded,
and failures (403 rate limit, 429 with Retry-After, 5xx) can be injected for the next N calls.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    status: int
    remaining: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "Server Error"
    path: str = ""  # only requests whose path starts with this
    method: str = ""  # only requests of this method ("" for any)
    after: bool = False  # do the work, then answer with the failure (a create lost on the way back)


class FakeGitHub:
    """Start with ``with FakeGitHub(...) as github:``; ``github.base_url`` is what the client is given."""

    def __init__(self, *, app_id: str = "424242", public_key: str | None = None, personal_token: str | None = None,
                 prefix: str = "", token_lifetime: float = 3600.0, page_size: int = 100) -> None:
        self.app_id = app_id
        self.public_key = public_key
        self.personal_token = personal_token
        self.prefix = prefix
        self.token_lifetime = token_lifetime
        self.page_size = page_size
        self.calls: list[Call] = []
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []  # newest first, as GitHub lists them
        self.redelivered: list[int] = []
        self.issued_tokens: list[str] = []
        self.bot_login = "dbenv[bot]"
        self._tokens: dict[str, float] = {}
        self._failures: list[Failure] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    # --- knobs -----------------------------------------------------------------------------------

    def fail(self, status: int, times: int = 1, *, headers: dict[str, str] | None = None, message: str | None = None,
             path: str = "", method: str = "", after: bool = False) -> None:
        default = {403: "API rate limit exceeded", 429: "You have exceeded a secondary rate limit"}
        self._failures.append(Failure(status, times, headers or {}, message or default.get(status, "Server Error"),
                                      path, method, after))

    def rate_limit(self, times: int = 1, *, reset: int, path: str = "") -> None:
        """The primary limit: 403 with x-ratelimit-remaining 0 until ``reset`` (epoch seconds)."""
        self.fail(403, times, path=path, message="API rate limit exceeded for installation ID 1234567.",
                  headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
                           "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "core"})

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def add_comment(self, repo: str, pr: int, body: str, login: str = "octocat") -> dict[str, Any]:
        with self._lock:
            return self._create_comment(repo, pr, body, login)

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and re.fullmatch(pattern, call.path)]

    # --- request handling ------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        split = urlsplit(raw_path)
        path = split.path[len(self.prefix):] if split.path.startswith(self.prefix) else split.path
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        with self._lock:
            self.calls.append(Call(method, path, query, headers, body))
            failure = self._take_failure(method, path)
            if failure is not None and not failure.after:
                return failure.status, failure.headers, {"message": failure.message}
            answer = self._route(method, path, query, headers, body)
            if failure is not None:
                return failure.status, failure.headers, {"message": failure.message}
            return answer

    def _take_failure(self, method: str, path: str) -> Failure | None:
        for failure in self._failures:
            if failure.remaining > 0 and path.startswith(failure.path) and failure.method in ("", method):
                failure.remaining -= 1
                return failure
        return None

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: Any) -> tuple[int, dict[str, str], Any]:
        if path.startswith("/app/"):
            problem = self._check_jwt(headers.get("authorization", ""))
            if problem:
                return 401, {}, {"message": problem}
            return self._app_route(method, path, query)
        if not self._token_ok(headers.get("authorization", "")):
            return 401, {}, {"message": "Bad credentials"}
        return self._repo_route(method, path, query, body)

    def _app_route(self, method: str, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and (match := re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)):
            return 201, {}, self._issue_token(int(match.group(1)))
        if method == "GET" and path == "/app/hook/deliveries":
            return self._delivery_page(query)
        if method == "POST" and (match := re.fullmatch(r"/app/hook/deliveries/(\d+)/attempts", path)):
            delivery_id = int(match.group(1))
            if not any(delivery["id"] == delivery_id for delivery in self.deliveries):
                return 404, {}, {"message": "Not Found"}
            self.redelivered.append(delivery_id)
            return 202, {}, {}
        return 404, {}, {"message": "Not Found"}

    def _repo_route(self, method: str, path: str, query: dict[str, str],
                    body: Any) -> tuple[int, dict[str, str], Any]:
        if match := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path):
            repo, pr = match.group(1), int(match.group(2))
            if method == "GET":
                return self._comment_page(repo, pr, query)
            if method == "POST":
                return 201, {}, self._create_comment(repo, pr, body["body"], self.bot_login)
        if method == "PATCH" and (match := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path)):
            return self._update_comment(match.group(1), int(match.group(2)), body["body"])
        if method == "POST" and (match := re.fullmatch(r"/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})", path)):
            status = {"id": self._new_id(), "state": body["state"], "description": body.get("description"),
                      "target_url": body.get("target_url"), "context": body.get("context", "default"),
                      "created_at": _now(), "updated_at": _now()}
            self.statuses.setdefault((match.group(1), match.group(2)), []).append(status)
            return 201, {}, status
        if method == "GET" and (match := re.fullmatch(r"/repos/([^/]+/[^/]+)/pulls/(\d+)", path)):
            pull = self.pulls.get((match.group(1), int(match.group(2))))
            return (200, {}, pull) if pull is not None else (404, {}, {"message": "Not Found"})
        return 404, {}, {"message": "Not Found"}

    # --- credentials -------------------------------------------------------------------------------

    def _check_jwt(self, authorization: str) -> str | None:
        if not authorization.startswith("Bearer ") or self.public_key is None:
            return "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(authorization[len("Bearer "):], self.public_key, algorithms=["RS256"],
                                options={"require": ["iat", "exp", "iss"]})
        except jwt.PyJWTError as err:
            return f"A JSON web token could not be decoded: {err}"
        if str(claims["iss"]) != self.app_id:
            return "Integration not found"
        if claims["exp"] - claims["iat"] > 600:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _token_ok(self, authorization: str) -> bool:
        if not authorization.startswith("token "):
            return False
        token = authorization[len("token "):]
        if self.personal_token is not None and secrets.compare_digest(token, self.personal_token):
            return True
        return self._tokens.get(token, 0.0) > time.time()

    def _issue_token(self, installation_id: int) -> dict[str, Any]:
        token = "ghs_" + secrets.token_hex(18)
        expires = time.time() + self.token_lifetime
        self._tokens[token] = expires
        self.issued_tokens.append(token)
        return {"token": token, "expires_at": _iso(expires),
                "permissions": {"issues": "write", "pull_requests": "write", "statuses": "write",
                                "contents": "read"},
                "repository_selection": "all"}

    # --- resources ------------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _create_comment(self, repo: str, pr: int, body: str, login: str) -> dict[str, Any]:
        comment_id = self._new_id()
        comment = {"id": comment_id, "node_id": f"IC_{comment_id}",
                   "url": f"https://api.github.com/repos/{repo}/issues/comments/{comment_id}",
                   "html_url": f"https://github.com/{repo}/pull/{pr}#issuecomment-{comment_id}",
                   "body": body, "user": {"login": login, "id": 1, "type": "Bot" if "[bot]" in login else "User"},
                   "created_at": _now(), "updated_at": _now(), "author_association": "NONE"}
        self.comments.setdefault((repo, pr), []).append(comment)
        return comment

    def _update_comment(self, repo: str, comment_id: int, body: str) -> tuple[int, dict[str, str], Any]:
        for (owner_repo, _pr), comments in self.comments.items():
            for comment in comments:
                if owner_repo == repo and comment["id"] == comment_id:
                    comment["body"] = body
                    comment["updated_at"] = _now()
                    return 200, {}, comment
        return 404, {}, {"message": "Not Found"}

    def _comment_page(self, repo: str, pr: int, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        per_page = min(int(query.get("per_page", "30")), 100, self.page_size)
        page = int(query.get("page", "1"))
        comments = self.comments.get((repo, pr), [])
        last = max(1, -(-len(comments) // per_page))
        links = []
        url = f"{self.base_url}/repos/{repo}/issues/{pr}/comments?per_page={per_page}&page="
        if page < last:
            links += [f'<{url}{page + 1}>; rel="next"', f'<{url}{last}>; rel="last"']
        if page > 1:
            links += [f'<{url}{page - 1}>; rel="prev"', f'<{url}1>; rel="first"']
        headers = {"link": ", ".join(links)} if links else {}
        return 200, headers, comments[(page - 1) * per_page: page * per_page]

    def _delivery_page(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        per_page = min(int(query.get("per_page", "30")), 100, self.page_size)
        start = 0
        if "cursor" in query:
            start = next((i for i, d in enumerate(self.deliveries) if str(d["id"]) == query["cursor"]), 0)
        page = self.deliveries[start:start + per_page]
        headers = {}
        if start + per_page < len(self.deliveries):
            cursor = self.deliveries[start + per_page]["id"]
            headers["link"] = f'<{self.base_url}/app/hook/deliveries?per_page={per_page}&cursor={cursor}>; rel="next"'
        return 200, headers, page


def app_key_pair() -> tuple[str, str]:
    """A GitHub App's RSA key pair (PEM): the private key signs the App's JWTs, the public one checks them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def delivery(delivery_id: int, guid: str, *, status_code: int = 200, event: str = "pull_request",
             action: str | None = "opened", delivered_at: str = "2026-12-06T10:00:00Z") -> dict[str, Any]:
    """A row of ``GET /app/hook/deliveries`` as GitHub documents it."""
    return {"id": delivery_id, "guid": guid, "delivered_at": delivered_at, "redelivery": False, "duration": 0.27,
            "status": "OK" if status_code < 400 else "failed to connect", "status_code": status_code,
            "event": event, "action": action, "installation_id": 1234567, "repository_id": 1296269,
            "throttled_at": None}


def _now() -> str:
    return _iso(time.time())


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler_for(github: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra_headers, answer = github.handle(self.command, self.path, headers, body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in extra_headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

    return Handler
