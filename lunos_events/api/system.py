"""Liveness, readiness, metrics, and locally stored videos."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging

from prometheus_client.core import Metric
from sqlalchemy import case, func, select, text
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from lunos_events.api.auth import bearer_token, runtime
from lunos_events.api.capacity_metrics import capacity_metrics, provider_report
from lunos_events.api.errors import error_response
from lunos_events.metrics import gauge
from lunos_events.services.history import STATUSES
from lunos_events.storage.local import LocalStorage
from lunos_events.store.models import Operation
from lunos_events.store.webhook_models import WebhookAttempt

log = logging.getLogger(__name__)

READY_CHECK_TIMEOUT_SECONDS = 2.0
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database and Redis both answer: a load balancer sends traffic only then."""
    rt = runtime(request)

    async def database() -> None:
        await rt.store.first(text("SELECT 1"))

    checks: dict[str, str] = {}
    for name, probe in (("database", database), ("redis", rt.bus.ping)):
        try:
            await asyncio.wait_for(probe(), READY_CHECK_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; the reason goes to the log
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = "unreachable"
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        return JSONResponse({"error": f"Not ready: {', '.join(failed)} unreachable", "checks": checks}, 503)
    # Reported, not failing: with a credential out the others carry on, and submits queue meanwhile.
    try:
        provider, capacity = await asyncio.wait_for(provider_report(rt), READY_CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # Redis went away since its check: that check's next run reports it
        log.warning("provider credential health unavailable: %s", exc)
        return JSONResponse({"status": "ready", "checks": checks})
    checks_out = {**checks, "provider": provider}
    return JSONResponse({"status": "ready", "checks": checks_out, "provider_capacity": capacity})


def metrics_refusal(request: Request) -> Response | None:
    """Why this scrape is refused, or None. The figures span every account, so they are not public."""
    settings = runtime(request).settings
    if settings.metrics_open and not settings.metrics_token:
        return None
    if not settings.metrics_token:
        return error_response(403, "Metrics are off: the server has no LUNOS_METRICS_TOKEN")
    given = bearer_token(request) or ""
    if not hmac.compare_digest(given.encode(), settings.metrics_token.encode()):
        return error_response(
            401, "Metrics need 'Authorization: Bearer <LUNOS_METRICS_TOKEN>'", {"WWW-Authenticate": "Bearer"}
        )
    return None


async def metrics(request: Request) -> Response:
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    rt = runtime(request)
    outcome = case(
        (col(WebhookAttempt.status_code).is_(None), "network_error"),
        (col(WebhookAttempt.status_code).between(200, 299), "success"),
        else_="http_error",
    )
    rows = await rt.store.all(select(col(Operation.status), func.count()).group_by(col(Operation.status)))
    attempts = await rt.store.all(select(outcome, func.count()).group_by(outcome))
    by_status: dict[str, float] = dict.fromkeys(STATUSES, 0) | {status: n for status, n in rows}
    by_outcome: dict[str, float] = dict.fromkeys(("success", "http_error", "network_error"), 0) | {
        kind: n for kind, n in attempts
    }
    state: list[Metric] = [
        gauge("lunos_operations", "Operations by status (all accounts).", by_status, "status"),
        gauge(
            "lunos_webhook_attempts",
            "Webhook delivery attempts so far, by outcome (all processes).",
            by_outcome,
            "outcome",
        ),
        gauge(
            "lunos_sse_connections",
            "Open event streams on this process.",
            request.app.state.hub.subscriber_count,
        ),
        gauge(
            "lunos_gc_frozen_objects",
            "Objects built at start-up that garbage collection leaves out (this process).",
            gc.get_freeze_count(),
        ),
    ]
    try:
        depth = await rt.bus.queue_depth()
        state.append(gauge("lunos_queue_depth", "Jobs waiting in the arq queue.", depth))
        state += await capacity_metrics(rt)
    except Exception as exc:  # the rest of the metrics are still worth serving
        log.warning("queue depth unavailable: %s", exc)
    return Response(request.app.state.metrics.render(state), media_type=PROMETHEUS_TEXT)


class MediaFileResponse(FileResponse):
    """A stored video or poster, whose refusals (a malformed or unsatisfiable Range) are `{"error": …}` JSON
    like every other error: Starlette answers them in plain text."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal: Message | None = None

        async def json_refusals(message: Message) -> None:
            nonlocal refusal
            if message["type"] == "http.response.start" and message["status"] >= 400:
                refusal = message  # sent with the body, once the message is known
                return
            if refusal is None:
                await send(message)
                return
            status = refusal["status"]
            text = bytes(message.get("body", b"")).decode(errors="replace") or "Range not satisfiable"
            kept = [(k, v) for k, v in refusal["headers"] if k not in (b"content-type", b"content-length")]
            answer = error_response(status, text)
            await send({**refusal, "headers": [*kept, *answer.raw_headers]})
            await send({"type": "http.response.body", "body": answer.body})

        await super().__call__(scope, receive, json_refusals)


async def media(request: Request) -> Response:
    storage = runtime(request).storage
    try:
        path = storage.path_for(request.path_params["key"]) if isinstance(storage, LocalStorage) else None
        found = path is not None and path.is_file()
    except (OSError, ValueError):  # names too long for the file system, NUL bytes: no such video
        found = False
    if not found or path is None:
        return error_response(404, "Video not found")
    # Videos and posters only: an operation's stored inputs are not served.
    media_type = SERVED_TYPES.get(path.suffix)
    if media_type is None:
        return error_response(404, "Video not found")
    # Keys are unguessable and never rewritten with different content, so caches may keep them.
    return MediaFileResponse(
        path, media_type=media_type, headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )


SERVED_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg"}


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/media/{key:path}", media, methods=["GET"]),
]
