"""The HTTP API (FastAPI): environments, jobs, plans, health; problems as RFC 9457 documents.

Nothing slow happens in a request: a change is validated with the same code as `dbenv up` (one
validation path, the same messages), committed as a job, answered ``202``; work runs in jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.exceptions import HTTPException as StarletteHTTPException

from automation.jobs import store
from automation.jobs.runtime import Runtime
from automation.service import models
from automation.service.follow import EventHub

log = logging.getLogger("dbenv.service")
MAX_BODY = 1024 * 1024
PROBLEM = "application/problem+json"
COOKIE = "dbenv_token"
_SECRET_WORDS = ("password", "secret", "token", "passphrase", "private")
_UNION_MEMBERS = ("str", "list[str]", "int", "bool", "float", "dict[str,any]")


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.field, self.headers = status, title, detail, field, headers


@dataclass(frozen=True)
class Caller:
    name: str
    scope: str


def problem_response(status: int, title: str, detail: str | None = None, field: str | None = None,
                     headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=dict(headers or {}))


# ------------------------------------------------------------------ the app


def create_app(runtime: Runtime, *, max_body: int = MAX_BODY, web: bool = True) -> FastAPI:
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await app.state.hub.start()
        yield
        await app.state.hub.stop()

    app = FastAPI(title="dbenv service", version="1", lifespan=lifespan, max_body_size=max_body,
                  description="Branch database environments on the Pulumi Automation API: the same operations "
                              "as the `dbenv` CLI, as durable jobs.")
    app.state.runtime = runtime
    app.state.hub = EventHub(runtime.pool)
    _install_problem_handlers(app)
    _routes(app)
    if web:
        from automation.service import web as web_face

        web_face.install(app)
    if runtime.config.github is not None:
        from automation.service import webhooks

        webhooks.install(app, runtime.config.github)
    return app


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(_: Request, err: Problem) -> JSONResponse:
        return problem_response(err.status, err.title, err.detail, err.field, err.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        if first.get("type") == "json_invalid":
            return problem_response(400, "Malformed JSON", f"the body is not valid JSON: {first.get('msg')}")
        location = []
        for part in first.get("loc", ()):
            if part in ("body", "query", "path", "header"):
                continue
            if str(part) in _UNION_MEMBERS:
                break  # pydantic names the union member it tried (recipes.str): the field is enough
            location.append(str(part))
        field = ".".join(location) or None
        detail = first.get("msg", "invalid input")
        if first.get("type") == "extra_forbidden":
            detail = f"unknown field {field!r}: not part of this request's schema (see /openapi.json)"
        elif field:
            detail = f"{field}: {detail}"
        return problem_response(422, "Invalid request", detail, field)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
        detail = err.detail if isinstance(err.detail, str) else None
        if err.status_code == 413:
            detail = f"the body is larger than {app.max_body_size} bytes"
        return problem_response(err.status_code, titles.get(err.status_code, "HTTP error"), detail,
                                headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def on_error(_: Request, err: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("internal error %s", ref, exc_info=err)
        return problem_response(500, "Internal error", f"the service failed; quote error id {ref} (it is in "
                                "the service log)", error_id=ref)


class TooLargeAsProblem:
    """Starlette's body limit answers 413 in plain text; this says it as a problem document, like every error.

    FastAPI puts its body limit outside every user middleware, so this wraps the whole app (``served``).
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_problem(message: Any) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                body = json.dumps({"type": "about:blank", "title": "Request body too large", "status": 413,
                                   "detail": f"the body is larger than {self.limit} bytes"}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", PROBLEM.encode()),
                                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return
            if replaced:
                return  # the plain-text body of the replaced answer
            await send(message)

        await self.app(scope, receive, send_problem)


def served(app: FastAPI) -> Any:
    """What uvicorn serves: the app inside the 413 rewriter."""
    return TooLargeAsProblem(app, app.max_body_size)


def for_serving_runtime() -> Any:
    """uvicorn's app factory for `dbenv serve` (automation.jobs.server names it by import string)."""
    from automation.jobs import server

    return served(create_app(server.serving_runtime()))


# ------------------------------------------------------------------ auth


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Problem(401, "Unauthorized", "use the header `Authorization: Bearer <token>` "
                          "(`dbenv service token create`)", headers={"WWW-Authenticate": "Bearer"})
        token = value.strip()
    elif request.method == "GET":
        # The page's cookie (HttpOnly, SameSite=Strict) reads; it never writes (no CSRF surface).
        token = request.cookies.get(COOKIE)
    if not token:
        raise Problem(401, "Unauthorized", "a bearer token is required (`dbenv service token create`)",
                      headers={"WWW-Authenticate": "Bearer"})
    runtime: Runtime = request.app.state.runtime
    async with runtime.pool.connection() as conn:
        found = await store.token_scope(conn, token)
    if found is None:
        raise Problem(401, "Unauthorized", "the token is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
    return Caller(*found)


async def writer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if who.scope != "write":
        raise Problem(403, "Forbidden", f"token {who.name!r} has scope read; this needs a write token")
    return who


def json_body(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise Problem(415, "Unsupported media type", f"send the body as application/json, not {kind or 'nothing'}",
                      field="content-type")


Reader = Annotated[Caller, Depends(caller)]
Writer = Annotated[Caller, Depends(writer)]


# ------------------------------------------------------------------ rendering


def mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("[secret]" if any(w in str(k).lower() for w in _SECRET_WORDS) else mask_secrets(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def job_model(row: Mapping[str, Any]) -> models.Job:
    started, finished = row["started_at"], row["finished_at"]
    duration = (finished - started).total_seconds() if started and finished else None
    return models.Job(
        id=row["id"], kind=row["kind"], branch=row["branch"], stack=row["stack"], state=row["state"],
        requested_by=row["requested_by"], source=row["source"], inputs=mask_secrets(row["inputs"] or {}),
        outcome=row["outcome"], outputs=mask_secrets(row["outputs"]) if row["outputs"] is not None else None,
        error=row["error"], commit_sha=row["commit_sha"], worker=row["worker"], created_at=row["created_at"],
        started_at=started, finished_at=finished, duration_seconds=duration,
        links=models.Links(self=f"/v1/jobs/{row['id']}", events=f"/v1/jobs/{row['id']}/events",
                           page=f"/jobs/{row['id']}"))


def environment_model(row: Mapping[str, Any], last_job: Mapping[str, Any] | None,
                      now: datetime | None = None) -> models.Environment:
    now = now or datetime.now(UTC)
    expires = row["expires_at"]

    def money(value: Any) -> float | None:
        return float(value) if value is not None else None

    return models.Environment(
        branch=row["branch"], stack=row["stack"], recipes=list(row["recipes"] or []), status=row["status"],
        owner=row["owner"], commit=row["commit_sha"], parent=row["parent"], ephemeral=row["ephemeral"],
        created_at=row["created_at"], expires_at=expires,
        expired=bool(row["ephemeral"] and expires is not None and expires < now), asleep=row["asleep"],
        monthly_cost=models.Cost(idle=money(row["cost_idle"]), asleep=money(row["cost_asleep"]),
                                 active=money(row["cost_active"])),
        drift=row["drift"], drift_checked_at=row["drift_checked_at"], outputs=mask_secrets(row["outputs"] or {}),
        pull_request=f"{row['github_repo']}#{row['github_pr']}" if row.get("github_repo") else None,
        last_job=job_model(last_job) if last_job else None,
        links=models.Links(self=f"/v1/environments/{row['branch']}"))


# ------------------------------------------------------------------ validation (the operations layer's)


def checked_branch(branch: str) -> tuple[str, str]:
    from components import naming

    try:
        valid = naming.validate_branch(branch)
    except naming.InvalidName as err:
        raise Problem(422, "Invalid branch", str(err), field="branch") from None
    return valid, naming.stack_name(valid)


_FIELD_OF = (("recipes", "recipes"), ("ttl", "ttl"), ("parent", "from"), ("config", "config"), ("branch", "branch"),
             ("db-recipes:", "config"), ("aws:", "config"))


def _field(message: str) -> str | None:
    for prefix, field in _FIELD_OF:
        if message.startswith(prefix):
            return field
    return None


def validate_change(runtime: Runtime, branch: str, recipes: Any, parent: str | None, ttl: str | None,
                    config: Mapping[str, Any] | None) -> Any:
    """The same checks as `dbenv up` (settings, then prepare): bad input -> 422 naming the field."""
    from automation import workspace
    from automation.operations import errors, lifecycle

    if isinstance(recipes, list):
        recipes = ",".join(str(r) for r in recipes)
    try:
        settings = workspace.load_settings(runtime.config.project_dir, env=runtime.config.env,
                                           flags={"branch": branch, "recipes": recipes, "parent": parent,
                                                  "ttl": ttl})
        return lifecycle.validate(settings, config_values=config)
    except workspace.SettingsError as err:
        raise Problem(422, "Invalid request", str(err), field=_field(str(err))) from None
    except errors.USAGE as err:
        raise Problem(422, "Invalid request", str(err), field=_field(str(err))) from None


# ------------------------------------------------------------------ routes


def _routes(app: FastAPI) -> None:  # noqa: C901 - one nested function per route
    def runtime_of(request: Request) -> Runtime:
        return request.app.state.runtime

    async def accepted(row: Mapping[str, Any], created: bool) -> JSONResponse:
        body = job_model(row).model_dump(mode="json")
        return JSONResponse(body, status_code=202 if created else 200,
                            headers={"Location": f"/v1/jobs/{row['id']}"})

    @app.get("/healthz", response_model=models.Health, tags=["health"])
    async def healthz() -> models.Health:
        return models.Health(status="ok")

    @app.get("/readyz", response_model=models.Health, tags=["health"],
             responses={503: {"model": models.Problem}})
    async def readyz(request: Request) -> Any:
        runtime = runtime_of(request)
        try:
            async with runtime.pool.connection() as conn:
                cur = await conn.execute("SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > "
                                         "now() - make_interval(secs => %s)", (runtime.config.stalled_after,))
                workers = (await cur.fetchone())[0]
        except Exception as err:  # noqa: BLE001 - any database failure means not ready
            return problem_response(503, "Not ready", f"database unreachable: {type(err).__name__}")
        if workers == 0:
            return problem_response(503, "Not ready", "no worker has sent a heartbeat recently: start "
                                    "`dbenv serve --workers N` or `dbenv worker`", workers=0)
        return models.Health(status="ready", checks={"database": "ok", "workers": workers})

    # -------------------------------------------------------- environments

    @app.get("/v1/environments", response_model=models.EnvironmentList, tags=["environments"])
    async def list_environments(request: Request, _: Reader, owner: str | None = None, status: str | None = None,
                                expired: bool | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                                cursor: str | None = None) -> Any:
        runtime = runtime_of(request)
        async with runtime.pool.connection() as conn:
            try:
                rows = await store.list_environments(conn, owner=owner, status=status, expired=expired,
                                                     limit=limit + 1, after=cursor)
            except ValueError:
                raise Problem(400, "Invalid cursor", "cursor: use the next_cursor of a previous page",
                              field="cursor") from None
            jobs = await _jobs_by_id(conn, [r["last_job_id"] for r in rows[:limit] if r["last_job_id"]])
        now = datetime.now(UTC)
        items = [environment_model(r, jobs.get(r["last_job_id"]), now) for r in rows[:limit]]
        next_cursor = store.environment_cursor(rows[limit - 1]) if len(rows) > limit else None
        return models.EnvironmentList(items=items, next_cursor=next_cursor)

    @app.get("/v1/environments/{branch:path}/", include_in_schema=False)
    @app.get("/v1/environments/{branch:path}", response_model=models.Environment, tags=["environments"],
             responses={404: {"model": models.Problem}})
    async def get_environment(branch: str, request: Request, _: Reader) -> Any:
        valid, _stack = checked_branch(branch)
        async with runtime_of(request).pool.connection() as conn:
            row = await store.get_environment(conn, valid)
            if row is None:
                raise Problem(404, "Not found", f"no environment for branch {valid!r}", field="branch")
            jobs = await _jobs_by_id(conn, [row["last_job_id"]] if row["last_job_id"] else [])
        return environment_model(row, jobs.get(row["last_job_id"]))

    @app.post("/v1/environments/{branch:path}/sleep", status_code=202, response_model=models.Job,
              tags=["environments"])
    async def sleep_environment(branch: str, request: Request, who: Writer) -> Any:
        return await _simple(request, who, branch, "sleep")

    @app.post("/v1/environments/{branch:path}/wake", status_code=202, response_model=models.Job,
              tags=["environments"])
    async def wake_environment(branch: str, request: Request, who: Writer) -> Any:
        return await _simple(request, who, branch, "wake")

    async def _simple(request: Request, who: Caller, branch: str, kind: str) -> JSONResponse:
        valid, stack = checked_branch(branch)
        row, created = await runtime_of(request).enqueue(kind=kind, branch=valid, stack=stack,
                                                         requested_by=who.name, inputs={})
        return await accepted(row, created)

    @app.put("/v1/environments/{branch:path}", status_code=202, response_model=models.Job, tags=["environments"],
             dependencies=[Depends(json_body)], responses={422: {"model": models.Problem}})
    async def put_environment(branch: str, body: models.EnvironmentRequest, request: Request, who: Writer) -> Any:
        runtime = runtime_of(request)
        valid, stack = checked_branch(branch)
        if body.from_ is not None:
            checked_branch(body.from_)
        prepared = await asyncio.to_thread(validate_change, runtime, valid, body.recipes, body.from_, body.ttl,
                                           body.config)
        inputs = {"recipes": ",".join(prepared.recipes), "from": body.from_, "ttl": body.ttl,
                  "config": body.config, "recipes_resolved": list(prepared.recipes)}

        async def remember(conn: Any, job_id: int) -> None:
            if await store.get_environment(conn, valid) is None:
                await store.upsert_environment(conn, valid, stack, recipes=list(prepared.recipes), status="pending",
                                               parent=body.from_, last_job_id=job_id)
            else:
                await store.update_environment(conn, valid, last_job_id=job_id)

        row, created = await runtime.enqueue(kind="up", branch=valid, stack=stack, requested_by=who.name,
                                             inputs=inputs, after_insert=remember)
        return await accepted(row, created)

    @app.delete("/v1/environments/{branch:path}", status_code=202, response_model=models.Job, tags=["environments"],
                responses={409: {"model": models.Problem}})
    async def delete_environment(branch: str, request: Request, who: Writer) -> Any:
        from automation.operations import environments as envs

        valid, stack = checked_branch(branch)
        if envs.is_protected(valid):
            raise Problem(409, "Protected branch", f"{valid!r} is a protected branch (main, master, prod*, "
                          "production, staging): the service never tears it down; use `dbenv down --force`",
                          field="branch")
        row, created = await runtime_of(request).enqueue(kind="down", branch=valid, stack=stack,
                                                         requested_by=who.name, inputs={})
        return await accepted(row, created)

    # -------------------------------------------------------- plans

    @app.post("/v1/plans", response_model=models.Plan, tags=["plans"], dependencies=[Depends(json_body)],
              responses={422: {"model": models.Problem}})
    async def plan(body: models.PlanRequest, request: Request, _: Reader) -> Any:
        from automation.planning import review

        runtime = runtime_of(request)
        branch = checked_branch(body.branch)[0] if body.branch else "plan"
        if body.from_ is not None:
            checked_branch(body.from_)
        prepared = await asyncio.to_thread(validate_change, runtime, branch, body.recipes, body.from_, None,
                                           body.config)
        async with _plan_slots(request.app):
            result = await asyncio.to_thread(review.review, prepared, runtime.config.project_dir)
        return models.Plan(**result)

    # -------------------------------------------------------- jobs

    @app.get("/v1/jobs", response_model=models.JobList, tags=["jobs"])
    async def list_jobs(request: Request, _: Reader, branch: str | None = None, state: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> Any:
        if state is not None and state not in store.JOB_STATES:
            raise Problem(422, "Invalid request", f"state: {state!r} is not one of {', '.join(store.JOB_STATES)}",
                          field="state")
        before = _int_cursor(cursor)
        async with runtime_of(request).pool.connection() as conn:
            rows = await store.list_jobs(conn, branch=branch, state=state, limit=limit + 1, before=before)
        items = [job_model(r) for r in rows[:limit]]
        return models.JobList(items=items, next_cursor=str(rows[limit - 1]["id"]) if len(rows) > limit else None)

    @app.get("/v1/jobs/{job_id}", response_model=models.Job, tags=["jobs"],
             responses={404: {"model": models.Problem}})
    async def get_job(job_id: str, request: Request, _: Reader) -> Any:
        return job_model(await _job_or_404(request, job_id))

    @app.post("/v1/jobs/{job_id}/cancel", response_model=models.Job, tags=["jobs"],
              responses={404: {"model": models.Problem}, 409: {"model": models.Problem}})
    async def cancel_job(job_id: str, request: Request, _: Writer) -> Any:
        row = await _job_or_404(request, job_id)
        if row["state"] in store.FINISHED:
            raise Problem(409, "Already finished", f"job {row['id']} is {row['state']}: nothing to cancel")
        row = await runtime_of(request).cancel(row["id"])
        return JSONResponse(job_model(row).model_dump(mode="json"), status_code=202)

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"], response_model=None,
             responses={200: {"content": {"text/event-stream": {}}, "model": models.EventList}})
    async def job_events(job_id: str, request: Request, _: Reader, format: str | None = None,
                         last_event_id: Annotated[str | None, Header()] = None) -> Any:
        row = await _job_or_404(request, job_id)
        after = _last_event_id(last_event_id)
        runtime = runtime_of(request)
        if format == "json":
            async with runtime.pool.connection() as conn:
                events = await store.events_after(conn, row["id"], after, limit=100_000)
            return models.EventList(job=row["id"], state=row["state"],
                                    items=[_event_model(e) for e in events])
        if format is not None:
            raise Problem(422, "Invalid request", "format: only 'json' (or leave it out for text/event-stream)",
                          field="format")
        return EventSourceResponse(_stream(request, row["id"], after),
                                   headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _job_or_404(request: Request, job_id: str) -> Mapping[str, Any]:
        if not job_id.isdigit() or len(job_id) > 18:
            raise Problem(404, "Not found", f"no job {job_id[:40]!r}: job ids are whole numbers", field="job_id")
        async with runtime_of(request).pool.connection() as conn:
            row = await store.get_job(conn, int(job_id))
        if row is None:
            raise Problem(404, "Not found", f"no job {job_id}", field="job_id")
        return row

    async def _stream(request: Request, job_id: int, after: int) -> AsyncIterator[bytes]:
        hub: EventHub = request.app.state.hub
        runtime = runtime_of(request)
        queue = hub.follow(job_id)  # follow first, then replay: nothing falls between the two
        try:
            async with runtime.pool.connection() as conn:
                backlog = await store.events_after(conn, job_id, after, limit=100_000)
                state = (await store.get_job(conn, job_id))["state"]
            for event in backlog:
                after = event["seq"]
                yield _sse(event)
                if event["kind"] == "finished":
                    return
            if state in store.FINISHED and not any(e["kind"] == "finished" for e in backlog):
                return  # superseded or cancelled while queued: no more events will come
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield format_sse_event(comment="keep-alive")
                    continue
                if event["seq"] <= after:
                    continue
                after = event["seq"]
                yield _sse(event)
                if event["kind"] in ("finished", "superseded", "cancelled") and event["kind"] != "cancelling":
                    return
        finally:
            hub.leave(job_id, queue)


def _sse(event: Mapping[str, Any]) -> bytes:
    payload = {"seq": event["seq"], "at": event["at"].isoformat(), "kind": event["kind"], "line": event["line"],
               "data": event["data"]}
    # Unnamed events (EventSource type "message"): a follower needs one listener whatever kinds come.
    return format_sse_event(data_str=json.dumps(payload), id=str(event["seq"]))


def _event_model(event: Mapping[str, Any]) -> models.Event:
    return models.Event(seq=event["seq"], at=event["at"], kind=event["kind"], line=event["line"],
                        data=event["data"])


def _last_event_id(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 9:
        raise Problem(400, "Invalid Last-Event-ID", f"Last-Event-ID: {value[:40]!r} is not an event sequence id "
                      "(a whole number from a previous event's id)", field="Last-Event-ID")
    return int(value)


def _int_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise Problem(400, "Invalid cursor", "cursor: use the next_cursor of a previous page", field="cursor")
    return int(cursor)


async def _jobs_by_id(conn: Any, ids: list[int]) -> dict[int, Mapping[str, Any]]:
    if not ids:
        return {}
    rows = await store.get_jobs(conn, ids)
    return {row["id"]: row for row in rows}


class _plan_slots:  # noqa: N801 - used as a context manager like asyncio's
    """One offline plan at a time per process: it runs Pulumi's mocks, whose runtime state is process-wide."""

    def __init__(self, app: FastAPI) -> None:
        if not hasattr(app.state, "plan_slots"):
            app.state.plan_slots = asyncio.Semaphore(1)
        self.slots = app.state.plan_slots

    async def __aenter__(self) -> None:
        await self.slots.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.slots.release()
