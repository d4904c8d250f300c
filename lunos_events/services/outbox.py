"""Releasing stored events: publish on Redis pub/sub, then mark them published.

An event whose publish failed (Redis down, process killed) stays unpublished and is released
again by the worker's relay, so every status change rings the doorbell at least once.
Subscribers de-duplicate on (account_id, seq).
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from lunos_events.bus import publish_event
from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime
from lunos_events.services.events import StoredEvent, mark_published, unpublished_events
from lunos_events.webhooks.drain import enqueue_event_deliveries

log = logging.getLogger(__name__)


async def release(rt: Runtime, event: StoredEvent) -> bool:
    try:
        await publish_event(rt.redis, rt.settings.events_channel, event)
        # Before marking it published: if queueing fails, the relay releases the event again.
        await enqueue_event_deliveries(rt, event.account_id, event.seq)
    except (RedisError, OSError) as exc:
        log.warning("event %s/%s not published yet: %s", event.account_id, event.seq, exc)
        return False
    await mark_published(rt.engine, event)
    return True


async def relay_unpublished(rt: Runtime, grace_ms: int = 2000) -> int:
    """Release events left unpublished for longer than `grace_ms`; returns how many went out."""
    released = 0
    for event in await unpublished_events(rt.engine, now_ms() - grace_ms):
        if not await release(rt, event):
            break
        released += 1
    return released
