"""The web page: environments as a table and a job page whose log follows live, server-rendered (Jinja2).

Readable without JavaScript; the only script (static/job.js) follows a job's log over the API's
Server-Sent Events. The read token is asked once and kept in an HttpOnly, SameSite=Strict cookie
that the API accepts for GET only, so the page can read but never change anything. Every page
carries a strict Content-Security-Policy: no inline script or style, nothing from elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from automation.jobs import store
from automation.service import app as api

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
COOKIE_DAYS = 30
PAGE_SIZE = 50
LOG_LINES = 10_000  # a job page renders at most this many of the newest log lines; JSON has them all
KNOWN_STATUSES = ("ready", "asleep", "pending", "up failed", "down failed", "sleep failed", "wake failed")

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"  # revalidated (ETag), so a new release is seen at once
        return response


# ------------------------------------------------------------------ formatting (template filters)


def span(delta: timedelta) -> str:
    """A person's short duration: 45s, 12m, 3h, 2d."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def age(moment: datetime | None, now: datetime) -> str:
    return span(now - moment) if moment else "—"


def expiry(moment: datetime | None, ephemeral: bool, now: datetime) -> str:
    if not ephemeral:
        return "never (kept)"
    if moment is None:
        return "no expiry"
    if moment < now:
        return f"expired {span(now - moment)} ago"
    return f"expires in {span(moment - now)}"


def money(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f}s"
    return f"{int(value // 60)}m {int(value % 60)}s"


def stamp(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def token_class(text: str | None) -> str:
    """A CSS class from a state or status ('up failed' -> 'up-failed'); anything else is 'other'."""
    word = (text or "none").strip().lower().replace(" ", "-")
    return word if word.replace("-", "").isalpha() and len(word) <= 30 else "other"


def pretty(value: Any) -> str:
    # Plain text, escaped by the template like any other (Jinja's tojson would show \u003c to a person).
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


templates.filters.update(age=age, expiry=expiry, money=money, seconds=seconds, stamp=stamp, clock=clock,
                         css=token_class, pretty=pretty)


# ------------------------------------------------------------------ responses


def page(template: str, code: int = 200, headers: Mapping[str, str] | None = None, /, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=code, headers={**PAGE_HEADERS, **(headers or {})})


def login_page(request: Request, code: int = 401) -> HTMLResponse:
    error = None
    if request.cookies.get(api.COOKIE):
        error = "The saved token is no longer valid (revoked?). Paste a current one."
    asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return page("login.html", code, {"WWW-Authenticate": 'Bearer realm="dbenv"'}, error=error,
                next=asked if request.url.path != "/login" else "/", signed_in=False)


def local_path(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never //elsewhere or a full URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def same_origin(request: Request) -> bool:
    """A form POST from another site is refused (SameSite=Strict covers the cookie; this covers /login).

    Browsers say where a request comes from in Sec-Fetch-Site; Origin is "null" under our
    no-referrer policy, so it only counts when it names a site.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def signed_in(request: Request) -> api.Caller | None:
    token = request.cookies.get(api.COOKIE)
    if not token or len(token) > 200:
        return None
    async with request.app.state.runtime.pool.connection() as conn:
        found = await store.token_scope(conn, token)
    return api.Caller(*found) if found else None


def bad_request(message: str, who: api.Caller) -> HTMLResponse:
    return page("error.html", 400, title="Bad request", message=message, who=who, signed_in=True)


# ------------------------------------------------------------------ the pages


async def environments_page(request: Request, owner: str | None = None, status: str | None = None,
                            expired: str | None = None, cursor: str | None = None) -> Response:
    who = await signed_in(request)
    if who is None:
        return login_page(request)
    owner, status = (owner or "").strip() or None, (status or "").strip() or None
    flags = {"": None, "yes": True, "no": False}
    if (expired or "") not in flags:
        return bad_request("expired: use yes, no, or leave it empty", who)
    async with request.app.state.runtime.pool.connection() as conn:
        try:
            rows = await store.list_environments(conn, owner=owner, status=status, expired=flags[expired or ""],
                                                 limit=PAGE_SIZE + 1, after=cursor)
        except ValueError:
            return bad_request("cursor: follow the page's own “Next page” link", who)
        shown = rows[:PAGE_SIZE]
        job_ids = [row["last_job_id"] for row in shown if row["last_job_id"]]
        jobs = {job["id"]: job for job in await store.get_jobs(conn, job_ids)} if job_ids else {}
    now = datetime.now(UTC)
    items = [api.environment_model(row, jobs.get(row["last_job_id"]), now) for row in shown]
    filters = {k: v for k, v in (("owner", owner), ("status", status), ("expired", expired or None)) if v}
    next_link = None
    if len(rows) > PAGE_SIZE:
        next_link = "/?" + urlencode({**filters, "cursor": store.environment_cursor(shown[-1])})
    return page("environments.html", items=items, now=now, filters=filters, owner=owner or "",
                status=status or "", expired=expired or "", statuses=KNOWN_STATUSES, next_link=next_link,
                first_link=("/?" + urlencode(filters)) if cursor else None, who=who, signed_in=True)


async def job_page(job_id: str, request: Request) -> Response:
    who = await signed_in(request)
    if who is None:
        return login_page(request)
    row = None
    if job_id.isdigit() and len(job_id) <= 18:
        async with request.app.state.runtime.pool.connection() as conn:
            row = await store.get_job(conn, int(job_id))
            events = await store.events_after(conn, int(job_id), 0, limit=1_000_000) if row else []
    if row is None:
        return page("error.html", 404, title="Not found", message=f"There is no job {job_id[:40]}.", who=who,
                    signed_in=True)
    job = api.job_model(row)
    hidden = max(0, len(events) - LOG_LINES)
    return page("job.html", job=job, events=events[hidden:], hidden=hidden,
                last_seq=events[-1]["seq"] if events else 0, live=job.state not in store.FINISHED,
                who=who, signed_in=True)


async def login_form(request: Request) -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse("/", status_code=303, headers=PAGE_HEADERS)
    return login_page(request, 200)


async def login(request: Request, token: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    if not same_origin(request):
        return page("error.html", 403, title="Forbidden", message="Sign in from this site's own form.",
                    signed_in=False)
    token = token.strip()
    found = None
    if token:
        async with request.app.state.runtime.pool.connection() as conn:
            found = await store.token_scope(conn, token)
    if found is None:
        response = page("login.html", 401, {"WWW-Authenticate": 'Bearer realm="dbenv"'},
                        error="That token is unknown or revoked. Paste a read token from "
                              "`dbenv service token create --scope read`.", next=local_path(next),
                        signed_in=False)
        return response
    response = RedirectResponse(local_path(next), status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(api.COOKIE, token, max_age=COOKIE_DAYS * 86400, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


async def logout(request: Request) -> Response:
    if not same_origin(request):
        return page("error.html", 403, title="Forbidden", message="Sign out from this site's own form.",
                    signed_in=False)
    response = RedirectResponse("/", status_code=303, headers=PAGE_HEADERS)
    response.delete_cookie(api.COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def install(app: FastAPI) -> None:
    app.mount("/static", _Static(directory=HERE / "static"), name="static")
    hidden = {"response_class": HTMLResponse, "include_in_schema": False}
    app.get("/", **hidden)(environments_page)
    app.get("/jobs/{job_id}", **hidden)(job_page)
    app.get("/login", **hidden)(login_form)
    app.post("/login", **hidden)(login)
    app.post("/logout", include_in_schema=False)(logout)
