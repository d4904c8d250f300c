"""A stream's subscription to the EventHub: a small bounded queue the hub never waits on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from lunos_events.services.events import StoredEvent


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event with its SSE frame, encoded once for every subscriber that receives it."""

    event: StoredEvent
    frame: bytes


class Idle:
    """What `Subscription.next` returns when the hub asks a quiet stream for a heartbeat."""


IDLE = Idle()


class Subscription:
    """One stream's view of the hub: the account's events matching its filter, in seq order."""

    # A server holds one per open stream, so it is kept small (a list, not a deque: its first
    # block alone is 600 bytes) and wakes its stream through one future, never a timer of its own.
    __slots__ = (
        "_limit",
        "_on_end",
        "_queue",
        "_waiter",
        "account_id",
        "app_id",
        "ended",
        "key_hash",
        "last_active",
        "on_overflow",
        "operation_id",
    )

    OVERFLOWED = "overflowed"
    CLOSED = "closed"
    REVOKED = "revoked"  # the key it was opened with (or that minted its token) was revoked

    def __init__(
        self,
        account_id: str,
        *,
        operation_id: str | None,
        app_id: str | None,
        limit: int,
        on_end: Callable[[Subscription], None],
        key_hash: str | None = None,
    ) -> None:
        self.account_id = account_id
        self.key_hash = key_hash
        self.operation_id = operation_id
        self.app_id = app_id
        self._limit = limit
        self._on_end = on_end
        self._queue: list[Delivery] = []
        self._waiter: asyncio.Future[None] | None = None
        self.ended: str | None = None
        self.last_active = time.monotonic()
        # Set by the stream: called when the client fell too far behind (it may be stuck sending).
        self.on_overflow: Callable[[], None] | None = None

    def wants(self, event: StoredEvent) -> bool:
        return (self.operation_id is None or event.operation_id == self.operation_id) and (
            self.app_id is None or event.app_id == self.app_id
        )

    def offer(self, delivery: Delivery) -> None:
        """Queue an event without ever waiting; a full queue ends the subscription instead."""
        if self.ended is not None:
            return
        if len(self._queue) >= self._limit:
            self.end(self.OVERFLOWED)
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self._queue.append(delivery)
        self._wake()

    def poke(self, now: float) -> bool:
        """Wake a stream that is waiting for events, to send a heartbeat; False if it is busy."""
        if self._waiter is None or self._queue:
            return False
        self.last_active = now
        self._wake()
        return True

    async def next(self) -> Delivery | Idle | None:
        """The next event; IDLE when poked for a heartbeat; None once the subscription has ended."""
        if not self._queue and self.ended is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self._queue:
            self.last_active = time.monotonic()
            return self._queue.pop(0)
        return None if self.ended is not None else IDLE

    def end(self, reason: str = CLOSED) -> None:
        """Stop receiving; a waiting `next()` returns None. Idempotent."""
        if self.ended is None:
            self.ended = reason
            self._queue.clear()
            self._on_end(self)
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
