"""The Bus port: what goes between processes through Redis.

- events: `publish` rings the doorbell for a stored event (bus/messages.py has the format); each
  API process's event hub subscribes on `redis` (streams/hub.py);
- jobs: `enqueue` hands a job to the arq workers, through arq's own `enqueue_job` (optionally with
  a fixed id, so it is queued at most once, and deferred);
- limits: the tier limits' scripts (bus/limits.py);
- capacity: the provider credentials' quotas (bus/capacity.py).

Implemented once on redis-py's asyncio client (with hiredis installed, replies are parsed in C) and
arq. Redis holds nothing that the database cannot rebuild: the worker's reconcile re-queues
tracking and restores in-flight slots after Redis lost its data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job, JobStatus
from redis.exceptions import RedisError

from lunos_events.bus.capacity import CapacityScripts
from lunos_events.bus.jobs import (
    DELIVER_WEBHOOK,
    DRAIN_WEBHOOKS,
    TRACK_OPERATION,
    WATCH_QUEUED,
    delivery_job_id,
    drain_job_id,
    drain_window,
    tracking_job_id,
    watch_job_id,
)
from lunos_events.bus.limits import LimitScripts
from lunos_events.bus.messages import encode_event, revocations_channel
from lunos_events.settings import Settings
from lunos_events.store.records import StoredEvent

log = logging.getLogger(__name__)

_EXISTS_BATCH = 1000


class Bus:
    def __init__(self, redis: ArqRedis, *, events_channel: str, key_prefix: str) -> None:
        self.redis = redis
        self.events_channel = events_channel
        self._key_prefix = key_prefix
        self.limits = LimitScripts(redis, key_prefix)
        self.capacity = CapacityScripts(redis, key_prefix)

    async def publish(self, event: StoredEvent) -> None:
        await self.redis.publish(self.events_channel, encode_event(event))

    async def take_turn(self, name: str, seconds: float) -> bool:
        """True at most once per `seconds` for `name`, across every process."""
        return bool(
            await self.redis.set(f"{self._key_prefix}turn:{name}", b"1", nx=True, px=int(seconds * 1000))
        )

    async def publish_revocation(self, key_hash: str) -> None:
        """Tell every API process a key was revoked: its streams end at once."""
        await self.redis.publish(revocations_channel(self.events_channel), key_hash)

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_seconds: float = 0
    ) -> bool:
        """Queue a job; False when `job_id` is already queued, running or holding a result."""
        job = await self.redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer_seconds or None)
        return job is not None

    async def enqueue_tracking(self, operation_id: str, defer_seconds: float = 0) -> bool:
        return await self.enqueue(
            TRACK_OPERATION, operation_id, job_id=tracking_job_id(operation_id), defer_seconds=defer_seconds
        )

    async def hand_tracking_over(self, operation_id: str, defer_seconds: float, wait_seconds: float) -> bool:
        """Make sure a run of the operation's tracking job is due: queue one, or find one queued.

        Its id may be taken by a run in progress that saw the operation still queued and is ending
        its chain (a queued operation is watched, not tracked): then wait for that run to end, and
        queue one. False if none could be made due within `wait_seconds`.
        """
        job = Job(tracking_job_id(operation_id), self.redis, _queue_name=self.redis.default_queue_name)
        give_up_at = time.monotonic() + wait_seconds
        while True:
            if await self.enqueue_tracking(operation_id, defer_seconds):
                return True
            if await job.status() in (JobStatus.queued, JobStatus.deferred):
                return True  # that run sees the operation as it is by then
            if time.monotonic() > give_up_at:
                return False
            await asyncio.sleep(0.05)

    async def missing_jobs(self, job_ids: Sequence[str]) -> list[str]:
        """Those of `job_ids` that arq holds no job for: arq keeps a job in its queue's sorted set
        while it is queued, deferred or running (and between retries), so one ZMSCORE per
        `_EXISTS_BATCH` ids tells."""
        missing: list[str] = []
        for first in range(0, len(job_ids), _EXISTS_BATCH):
            batch = list(job_ids[first : first + _EXISTS_BATCH])
            scores = await self.redis.zmscore(self.redis.default_queue_name, batch)
            missing += [job_id for job_id, score in zip(batch, scores, strict=True) if score is None]
        return missing

    async def enqueue_watch(self, operation_id: str, defer_seconds: float) -> bool:
        return await self.enqueue(
            WATCH_QUEUED, operation_id, job_id=watch_job_id(operation_id), defer_seconds=defer_seconds
        )

    async def enqueue_drain(self) -> bool:
        """Wake this window's webhook drain (one job per window, however many events ask)."""
        window = drain_window()
        return await self.enqueue(DRAIN_WEBHOOKS, window, job_id=drain_job_id(window))

    async def enqueue_delivery(self, delivery_id: str, round_: int = 0, defer_seconds: float = 0) -> bool:
        return await self.enqueue(
            DELIVER_WEBHOOK,
            delivery_id,
            round_,
            job_id=delivery_job_id(delivery_id, round_),
            defer_seconds=defer_seconds,
        )

    async def queue_depth(self) -> int:
        return int(await self.redis.zcard(self.redis.default_queue_name))

    async def ping(self) -> None:
        await self.redis.ping()

    async def aclose(self) -> None:
        await self.redis.aclose()


def redis_settings(settings: Settings) -> RedisSettings:
    if not settings.redis_url:
        raise RuntimeError("LUNOS_REDIS_URL is not set (only `lunos-events dev` embeds a Redis)")
    return RedisSettings.from_dsn(settings.redis_url)


async def connect_redis(settings: Settings) -> ArqRedis:
    """A connection pool to the settings' Redis, as arq's workers and enqueuers use it."""
    return await create_pool(redis_settings(settings), default_queue_name=settings.queue_name)


async def announce_revocation(settings: Settings, key_hash: str) -> bool:
    """Publish a revoked key on the settings' Redis; False when there is none or it cannot be reached
    (the API processes then find the revocation in the database at their next key check)."""
    if not settings.redis_url:
        return False
    try:
        bus = await connect_bus(settings)
        try:
            await bus.publish_revocation(key_hash)
        finally:
            await bus.aclose()
    except (OSError, RedisError) as exc:
        log.warning("could not publish the revocation on Redis: %s", exc)
        return False
    return True


async def connect_bus(settings: Settings) -> Bus:
    return Bus(
        await connect_redis(settings),
        events_channel=settings.events_channel,
        key_prefix=settings.redis_key_prefix,
    )
