"""Releasing stored events: publish on the bus, wake the webhook drain, then mark them published.

An event whose publish failed (Redis down, process killed) stays unpublished and is released
again by the worker's relay, so every status change rings the doorbell at least once.
Subscribers de-duplicate on (account_id, seq).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from redis.exceptions import RedisError

from lunos_events.bus.redis_bus import Bus
from lunos_events.ids import now_ms
from lunos_events.services.events import mark_published, unpublished_events
from lunos_events.services.webhook_fanout import owes_fresh_deliveries
from lunos_events.store.records import StoredEvent
from lunos_events.store.transactions import Store

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, store: Store, bus: Bus) -> None:
        self._store = store
        self._bus = bus

    async def ring(self, event: StoredEvent) -> None:
        """Publish the event and, when it owes webhook deliveries, wake a drain for them.

        `event.deliveries` must be known (see `release`). Once this returned, mark the event
        published; if it raises, the relay releases the event again.
        """
        if event.deliveries:
            await asyncio.gather(self._bus.publish(event), self._bus.enqueue_drain())
        else:
            await self._bus.publish(event)

    async def release(self, event: StoredEvent) -> bool:
        """Ring for the event and mark it published; False when the bus is away (the relay retries)."""
        if event.deliveries is None:
            owed = await owes_fresh_deliveries(self._store, event.account_id, event.seq)
            event = replace(event, deliveries=int(owed))
        try:
            await self.ring(event)
        except (RedisError, OSError) as exc:
            log.warning("event %s/%s not published yet: %s", event.account_id, event.seq, exc)
            return False
        await mark_published(self._store, event)
        return True

    async def relay_unpublished(self, grace_ms: int = 2000) -> int:
        """Release events left unpublished for longer than `grace_ms`; returns how many went out."""
        released = 0
        for event in await unpublished_events(self._store, now_ms() - grace_ms):
            if not await self.release(event):
                break
            released += 1
        return released
