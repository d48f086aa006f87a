"""POST /v1/webhooks/github: the webhook's HTTP side. What a delivery queues is automation.jobs.pull_requests.

The signature is checked over the raw body before anything is read (GitHub, "Validating webhook
deliveries"); the delivery is recorded by its X-GitHub-Delivery id in the same transaction as its jobs,
and the answer comes within GitHub's 10-second limit ("Best practices for using webhooks").
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from automation.github import events, signature
from automation.jobs import store
from automation.jobs.pull_requests import GitHubConfig, dispatch
from automation.service.app import Problem

log = logging.getLogger("dbenv.service")


def install(app: FastAPI, config: GitHubConfig) -> None:
    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            signature.verify(config.secret, body, request.headers.get(signature.HEADER))
        except signature.BadSignature as err:
            raise Problem(401, "Unauthorized", f"webhook signature: {err}", field=signature.HEADER) from None
        event, delivery = request.headers.get("X-GitHub-Event"), request.headers.get("X-GitHub-Delivery")
        runtime = request.app.state.runtime
        if delivery and events.valid_delivery_id(delivery):
            async with runtime.pool.connection() as conn:
                if await store.known_deliveries(conn, [delivery]):
                    return JSONResponse({"delivery": delivery, "duplicate": True}, status_code=200)
        try:
            parsed = events.parse(event, delivery, events.load_payload(body))
        except events.BadPayload as err:
            if delivery and events.valid_delivery_id(delivery):
                # Authentic but unusable: recorded, so the missed-delivery sweep does not ask for it again.
                async with runtime.pool.connection() as conn:
                    await store.record_delivery(conn, delivery, (event or "?")[:64], None, None)
                    await store.set_delivery_outcome(conn, delivery, "bad payload")
            raise Problem(400, "Bad payload", str(err)) from None
        async with runtime.pool.connection() as conn, conn.transaction():
            action = getattr(parsed, "kind", None) if isinstance(parsed, events.Action) else None
            if not await store.record_delivery(conn, parsed.delivery_id, parsed.event, action,
                                               getattr(parsed, "repo", None) or None):
                return JSONResponse({"delivery": parsed.delivery_id, "duplicate": True}, status_code=200)
            status, answer = await dispatch(runtime, config, conn, parsed)
            jobs = answer.get("jobs") or []
            outcome = "ignored" if answer.get("ignored") else "queued" if jobs else "answered"
            await store.set_delivery_outcome(conn, parsed.delivery_id, outcome, jobs[0] if jobs else None)
        if answer.get("ignored"):
            log.info("github delivery %s (%s) ignored: %s", parsed.delivery_id, parsed.event, answer["ignored"])
        return JSONResponse({"delivery": parsed.delivery_id, **answer}, status_code=status)

    app.add_api_route("/v1/webhooks/github", webhook, methods=["POST"], status_code=202, tags=["webhooks"],
                      max_body_size=config.max_bytes, summary="GitHub webhook (pull_request, issue_comment, ping)")
