"""The per-process resources, built once at start-up (app lifespan, worker start) and passed down.

The composition root: it opens the two ports (Store, Bus), the provider and the storage, and builds
the services on them. Only api/, worker/, webhooks/ jobs and the CLI hold a Runtime; services get
the ports they need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from lunos_events.bus.redis_bus import Bus, connect_bus
from lunos_events.catalog import Catalog
from lunos_events.catalog_file import load_catalog
from lunos_events.providers import build_provider
from lunos_events.providers.base import VideoProvider
from lunos_events.services.accounts import PrincipalCache
from lunos_events.services.generations import Generations
from lunos_events.services.running_statuses import RunningStatuses
from lunos_events.settings import Settings
from lunos_events.storage import build_storage
from lunos_events.storage.base import VideoStorage
from lunos_events.store.transactions import Store


@dataclass
class Runtime:
    settings: Settings
    store: Store
    bus: Bus
    provider: VideoProvider
    storage: VideoStorage
    catalog: Catalog
    principals: PrincipalCache
    # Served from only while an API process's event hub listens (see running_statuses.py).
    running_statuses: RunningStatuses
    generations: Generations


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    catalog = load_catalog(settings.catalog)  # a bad catalog (CatalogError) stops start-up first
    store = Store.open(settings.resolved_database_url(), settings.database_pool_size)
    try:
        await store.migrate()
        bus = await connect_bus(settings)
        try:
            provider = build_provider(settings)
            storage = build_storage(settings)
            try:
                running = RunningStatuses(settings.status_cache_seconds)
                yield Runtime(
                    settings=settings,
                    store=store,
                    bus=bus,
                    provider=provider,
                    storage=storage,
                    catalog=catalog,
                    principals=PrincipalCache(settings.auth_cache_seconds),
                    running_statuses=running,
                    generations=Generations(store, bus, provider, storage, settings, running, catalog),
                )
            finally:
                await provider.aclose()
                await storage.aclose()
        finally:
            await bus.aclose()
    finally:
        await store.dispose()
