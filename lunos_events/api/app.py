"""The Starlette application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from lunos_events.api import account, generations, system, webhooks
from lunos_events.api.errors import EXCEPTION_HANDLERS
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.settings import Settings


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    """Build the app; it opens its own Runtime at start-up unless one is shared with it (`dev`)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.rt = runtime
            yield
            return
        async with open_runtime(settings) as rt:
            app.state.rt = rt
            yield

    return Starlette(
        routes=[*generations.routes, *account.routes, *system.routes, *webhooks.routes],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
