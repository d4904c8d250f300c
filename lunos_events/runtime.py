"""The per-process resources, built once at start-up (app lifespan, worker start) and passed down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from lunos_events.catalog import Catalog
from lunos_events.store.engine import apply_sqlite_pragmas, create_engine, ensure_schema
from lunos_events.db.point_reads import PointReads
from lunos_events.db.writes import Writes, open_writes
from lunos_events.ids import OperationStamps
from lunos_events.providers import build_provider
from lunos_events.providers.base import VideoProvider
from lunos_events.redis_batches import RedisBatches
from lunos_events.redis_packing import pack_with_hiredis
from lunos_events.services.accounts import PrincipalCache
from lunos_events.services.pending_statuses import PendingStatuses
from lunos_events.settings import Settings
from lunos_events.storage import build_storage
from lunos_events.storage.base import VideoStorage


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    redis: ArqRedis
    provider: VideoProvider
    storage: VideoStorage
    catalog: Catalog
    reads: PointReads
    writes: Writes
    stamps: OperationStamps = field(default_factory=OperationStamps)
    principals: PrincipalCache = field(init=False)
    redis_batches: RedisBatches = field(init=False)
    # Served from only while an API process's event hub listens (see pending_statuses.py).
    pending_statuses: PendingStatuses = field(init=False)

    def __post_init__(self) -> None:
        self.principals = PrincipalCache(self.settings.auth_cache_seconds)
        self.pending_statuses = PendingStatuses(self.settings.status_cache_seconds)
        self.redis_batches = RedisBatches(self.redis)


def redis_settings(settings: Settings) -> RedisSettings:
    if not settings.redis_url:
        raise RuntimeError("LUNOS_REDIS_URL is not set (only `lunos-events dev` embeds a Redis)")
    return RedisSettings.from_dsn(settings.redis_url)


async def connect_redis(settings: Settings) -> ArqRedis:
    redis = await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)
    await pack_with_hiredis(redis.connection_pool)
    return redis


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    engine = create_engine(settings.resolved_database_url())
    try:
        await ensure_schema(engine)
        redis = await connect_redis(settings)
        try:
            provider = build_provider(settings)
            storage = build_storage(settings)
            try:
                reads = PointReads(engine, settings.resolved_database_url())
                writes = open_writes(engine, settings.resolved_database_url(), apply_sqlite_pragmas)
                rt = Runtime(settings, engine, redis, provider, storage, Catalog(), reads, writes)
                try:
                    yield rt
                finally:
                    await rt.redis_batches.aclose()
                    writes.close()
                    reads.close()
            finally:
                await provider.aclose()
                await storage.aclose()
        finally:
            await redis.aclose()
    finally:
        await engine.dispose()
