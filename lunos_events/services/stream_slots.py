"""Open SSE streams per account, counted across every API process.

Each open stream holds a slot in the account's set of expiring slots in Redis (bus/limits.py). The
process that serves the stream pushes its slots' expiry forward every REFRESH_SECONDS and gives a
slot back when its stream ends; a process that crashed stops refreshing, so its streams' slots
free themselves within TTL_SECONDS instead of counting against the account for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import RedisError

from lunos_events.bus.redis_bus import Bus
from lunos_events.errors import RateLimited
from lunos_events.ids import now_ms, random_token
from lunos_events.settings import TierLimits

log = logging.getLogger(__name__)

TTL_SECONDS = 60.0
REFRESH_SECONDS = 15.0
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, slots=True)
class StreamSlot:
    key: str
    member: str


class StreamSlots:
    """This process's held stream slots; one per API process, refreshed by `running()`."""

    def __init__(self, bus: Bus, ttl_seconds: float = TTL_SECONDS) -> None:
        self._bus = bus
        self._ttl_ms = int(ttl_seconds * 1000)
        self._held: dict[str, set[str]] = {}
        self._releases: set[asyncio.Task[None]] = set()

    async def take(self, account_id: str, limits: TierLimits) -> StreamSlot:
        """A slot for one more stream of the account, or RateLimited (429) when all are held."""
        slot = StreamSlot(self._bus.limits.key(account_id, "streams"), random_token(12))
        allowed = await self._bus.limits.take_slot(
            slot.key, max_slots=limits.max_streams, member=slot.member, ttl_ms=self._ttl_ms
        )
        if not allowed:
            raise RateLimited(
                f"Too many open event streams: at most {limits.max_streams} at once for this tier; "
                "close one (or use the account stream, which carries every operation)",
                limits.max_streams,
                0,
                now_ms() + RETRY_AFTER_SECONDS * 1000,
                RETRY_AFTER_SECONDS,
            )
        self._held.setdefault(slot.key, set()).add(slot.member)
        return slot

    def release(self, slot: StreamSlot) -> None:
        """Give the slot back now (in the background: a stream ends from synchronous code too)."""
        members = self._held.get(slot.key)
        if members is None or slot.member not in members:
            return
        members.discard(slot.member)
        if not members:
            del self._held[slot.key]
        task = asyncio.get_running_loop().create_task(self._release(slot))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, slot: StreamSlot) -> None:
        try:
            await self._bus.limits.release_slot(slot.key, slot.member)
        except (RedisError, OSError) as exc:  # it expires by itself
            log.warning("stream slot of %s not released now: %s", slot.key, exc)

    @property
    def held(self) -> int:
        return sum(len(members) for members in self._held.values())

    async def refresh(self) -> None:
        for key, members in list(self._held.items()):
            await self._bus.limits.refresh_slots(key, sorted(members), self._ttl_ms)

    @contextlib.asynccontextmanager
    async def running(self, every_seconds: float = REFRESH_SECONDS) -> AsyncIterator[StreamSlots]:
        task = asyncio.create_task(self._refresh_forever(every_seconds), name="stream-slots")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh_forever(self, every_seconds: float) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:  # next round; meanwhile slots may lapse (fail open)
                log.warning("stream slots not refreshed: %s", exc)
