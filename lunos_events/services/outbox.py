"""Releasing stored events: publish on Redis pub/sub, then mark them published.

An event whose publish failed (Redis down, process killed) stays unpublished and is released
again by the worker's relay, so every status change rings the doorbell at least once.
Subscribers de-duplicate on (account_id, seq).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from redis.exceptions import RedisError

from lunos_events.bus.messages import encode_event
from lunos_events.ids import now_ms
from lunos_events.redis_batches import RedisCommands
from lunos_events.runtime import Runtime
from lunos_events.services.events import StoredEvent, mark_published, unpublished_events
from lunos_events.webhooks.drain import owes_deliveries, queue_drain

log = logging.getLogger(__name__)


def queue_release(pipe: RedisCommands, rt: Runtime, event: StoredEvent) -> None:
    """Add the event's publish, and the wake-up of a drain for its webhooks, to `pipe`.

    `event.deliveries` must be known (see `release`). Once the pipeline has run, mark the event
    published; if it fails, the relay releases the event again.
    """
    pipe.publish(rt.settings.events_channel, encode_event(event))
    if event.deliveries:
        queue_drain(pipe, rt.settings.queue_name)


async def release(rt: Runtime, event: StoredEvent) -> bool:
    if event.deliveries is None:
        event = replace(event, deliveries=int(await owes_deliveries(rt, event.account_id, event.seq)))
    try:
        async with rt.redis.pipeline(transaction=False) as pipe:
            queue_release(pipe, rt, event)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("event %s/%s not published yet: %s", event.account_id, event.seq, exc)
        return False
    await rt.writes.run(mark_published, event)
    return True


async def relay_unpublished(rt: Runtime, grace_ms: int = 2000) -> int:
    """Release events left unpublished for longer than `grace_ms`; returns how many went out."""
    released = 0
    for event in await unpublished_events(rt.engine, now_ms() - grace_ms):
        if not await release(rt, event):
            break
        released += 1
    return released
