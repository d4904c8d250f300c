"""The Starlette application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from lunos_events.api import (
    account,
    admin,
    admin_webhooks,
    generations,
    page,
    streams,
    system,
    usage,
    videos,
    webhooks,
)
from lunos_events.api.errors import EXCEPTION_HANDLERS, error_response
from lunos_events.api.guard import RequestGuard
from lunos_events.metrics import Metrics, MetricsMiddleware
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.services.stream_slots import StreamSlots
from lunos_events.settings import Settings
from lunos_events.streams.hub import EventHub
from lunos_events.streams.key_check import checking_keys
from lunos_events.streams.tokens import signer_from_settings


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflights are `{"error": …}` like every other error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")}
        return error_response(response.status_code, bytes(response.body).decode(), headers)


def cors_middleware(settings: Settings) -> list[Middleware]:
    """Lets pages on the allowed origins call the API and open its event streams."""
    if not settings.cors_allowed_origins:
        return []
    return [
        Middleware(
            JsonCORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-App-ID", "Last-Event-ID", "Idempotency-Key"],
            expose_headers=[
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Idempotent-Replayed",
            ],
            max_age=600,
        )
    ]


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    """Build the app; it opens its own Runtime at start-up unless one is shared with it (`dev`)."""
    # Built here so the server can end its streams at shutdown; it listens only while the app runs.
    hub = EventHub(queue_size=settings.sse_queue_size, heartbeat_seconds=settings.sse_heartbeat_seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.stream_tokens = signer_from_settings(settings)
        async with AsyncExitStack() as stack:
            rt = runtime if runtime is not None else await stack.enter_async_context(open_runtime(settings))
            app.state.rt = rt
            hub.on_revoked = rt.principals.forget
            await stack.enter_async_context(
                hub.running(rt.bus.redis, rt.bus.events_channel, rt.store, rt.running_statuses)
            )
            await stack.enter_async_context(checking_keys(hub, rt.store, settings.stream_key_check_seconds))
            app.state.stream_slots = await stack.enter_async_context(StreamSlots(rt.bus).running())
            yield

    routes = [
        *generations.routes,
        *videos.routes,
        *streams.routes,
        *account.routes,
        *usage.routes,
        *system.routes,
        *webhooks.routes,
        *admin.routes,
        *admin_webhooks.routes,
        *page.routes,
    ]
    metrics = Metrics()
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics, routes=routes),
            *cors_middleware(settings),
            Middleware(RequestGuard),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.metrics = metrics
    return app
