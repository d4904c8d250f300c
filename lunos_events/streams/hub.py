"""The EventHub: one Redis pub/sub subscription per API process, fanned out in memory to its streams.

Pub/sub is only a doorbell; the event store is the truth. Per account that has live subscribers the
hub remembers the highest seq it has dispatched and hands events on strictly in seq order, exactly
once: a duplicate (the outbox may publish twice) is dropped, and a gap (a message published out of
order, or lost while Redis was away) is filled from the store. That is sound because an account's
seqs are handed out under the account row's lock, so when seq N is visible every lower seq is too.
After the subscription drops (or stops answering a ping), the hub reconnects with backoff and
catches every account up from the store, so a stream never misses an event. It also tells the
process's known-pending operations of every event (services/running_statuses.py).

Each subscriber has a bounded queue. The hub never waits for a subscriber: one whose queue
overflows is cut off (its client resumes with Last-Event-ID) and nobody else is delayed.

The same subscription hears of revoked API keys (bus/messages.py): the streams opened with one, or
with a stream token it minted, end at once (streams/key_check.py also finds them in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError

from lunos_events.bus.messages import event_from_message, revocations_channel, type_prefix
from lunos_events.services.events import StoredEvent, events_after, last_event_seq
from lunos_events.services.running_statuses import UNCHANGING_EVENTS, RunningStatuses
from lunos_events.store.transactions import Store
from lunos_events.streams.frames import event_frame
from lunos_events.streams.subscription import Delivery, Subscription

log = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
# A subscription quiet for this long is pinged; one that stays silent as long again counts as lost.
# A half-open connection (a failover, a NAT that forgot it) never reports an error by itself.
LIVENESS_SECONDS = 5.0
_CATCH_UP_BATCH = 1000
# Messages waiting for the streams while the hub is busy (a database read to fill a gap). Past this,
# the subscription is dropped and the store catches the streams up once it is back, so a stall never
# piles messages up in memory.
INBOX_LIMIT = 10_000
# With no stream open, a message only matters to the running statuses, and neither an operation's
# creation nor a progress report changes what they keep: such a message (every submit's own comes
# back) is not even parsed.
_NOTHING_TO_NOTE = tuple(type_prefix(type) for type in UNCHANGING_EVENTS)


@dataclass(eq=False)
class _AccountFeed:
    high: int  # highest seq dispatched to this account's subscribers
    subscribers: set[Subscription] = field(default_factory=set)


class EventHub:
    def __init__(
        self, *, queue_size: int, heartbeat_seconds: float, liveness_seconds: float = LIVENESS_SECONDS
    ) -> None:
        self.queue_size = queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self.liveness_seconds = liveness_seconds
        self._feeds: dict[str, _AccountFeed] = {}
        # Held while feed state changes around a database read, so seq order is never broken.
        self._lock = asyncio.Lock()
        self._store: Store | None = None
        self._pending: RunningStatuses | None = None
        self._closed = False
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._inbox: deque[bytes] = deque()  # messages for the streams, in order
        self._wakeup: asyncio.Future[None] | None = None
        self._revocations: bytes = b""  # the channel revoked keys arrive on
        # Told of every revoked key (the process's cache of key lookups forgets it at once).
        self.on_revoked: Callable[[str], None] | None = None

    @property
    def subscriber_count(self) -> int:
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    @property
    def closed(self) -> bool:
        return self._closed

    @contextlib.asynccontextmanager
    async def running(
        self, redis: Redis, channel: str, store: Store, pending: RunningStatuses | None = None
    ) -> AsyncIterator[EventHub]:
        """Listen on `channel` until the block exits; then end every subscription.

        `pending`: the process's known-pending operations, told of every event and of the
        subscription's state (see running_statuses.py).
        """
        self._store = store
        self._pending = pending
        self._closed = False
        task = asyncio.create_task(self._listen(redis, channel), name="event-hub")
        heartbeats = asyncio.create_task(self._heartbeats(), name="event-hub-heartbeats")
        # Not required for correctness (a late subscription catches up from the store), but
        # streams opened right after start-up then get their events without that detour.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=5)
        try:
            yield self
        finally:
            self.close()
            if pending is not None:
                pending.listening(False)
            for background in (task, heartbeats):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background

    def close(self) -> None:
        """End every stream (server shutdown): their responses finish and connections can close."""
        self._closed = True
        for feed in list(self._feeds.values()):
            for sub in list(feed.subscribers):
                sub.end(Subscription.CLOSED)

    def key_hashes(self) -> set[str]:
        """The keys the open streams were opened with (or whose tokens they were opened with)."""
        return {sub.key_hash for feed in self._feeds.values() for sub in feed.subscribers if sub.key_hash}

    def revoke(self, key_hash: str) -> int:
        """End every stream opened with this key or a token it minted; how many there were."""
        if self.on_revoked is not None:
            self.on_revoked(key_hash)
        ended = [sub for feed in self._feeds.values() for sub in feed.subscribers if sub.key_hash == key_hash]
        for sub in ended:
            sub.end(Subscription.REVOKED)
        if ended:
            log.info("ended %d event stream(s) opened with a revoked key", len(ended))
        return len(ended)

    async def subscribe(
        self,
        account_id: str,
        *,
        operation_id: str | None = None,
        app_id: str | None = None,
        key_hash: str | None = None,
    ) -> Subscription:
        """Register a stream first, then read the store: nothing published meanwhile is missed.

        `key_hash`: the key the stream was opened with (or that minted its token): revoking it ends
        the stream.
        """
        sub = Subscription(
            account_id,
            operation_id=operation_id,
            app_id=app_id,
            limit=self.queue_size,
            on_end=self._forget,
            key_hash=key_hash,
        )
        if self._closed or self._store is None:
            sub.end(Subscription.CLOSED)
            return sub
        async with self._lock:
            feed = self._feeds.get(account_id)
            fresh = feed is None
            if feed is None:
                high = await last_event_seq(self._store, account_id)
                feed = self._feeds[account_id] = _AccountFeed(high=high)
            if sub.ended is None:  # close() may have run while the store was read
                feed.subscribers.add(sub)
            if fresh:
                # An event published while the store was read found no feed here and was passed
                # over; it is stored after `high`, so the store hands it on now.
                await self._fill(feed, account_id, until=None)
        return sub

    def _forget(self, sub: Subscription) -> None:
        feed = self._feeds.get(sub.account_id)
        if feed is not None:
            feed.subscribers.discard(sub)
            if not feed.subscribers:
                del self._feeds[sub.account_id]

    async def _heartbeats(self) -> None:
        """Ask every stream quiet for `heartbeat_seconds` to send a heartbeat comment.

        One ticker for all streams rather than a timer per stream: cheaper per connection, and the
        heartbeats of streams opened at different times stay spread out.
        """
        interval = self.heartbeat_seconds
        while True:
            await asyncio.sleep(min(1.0, interval))
            now = time.monotonic()
            for feed in list(self._feeds.values()):
                for sub in tuple(feed.subscribers):
                    if now - sub.last_active >= interval:
                        sub.poke(now)

    async def _listen(self, redis: Redis, channel: str) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            pubsub = redis.pubsub()
            try:
                await self._subscribe(pubsub, channel)
                # Whatever was published while unsubscribed is only in the store now.
                await self._catch_up()
                if self.reconnects or self.connected.is_set():
                    log.info("event hub re-subscribed to %s", channel)
                self.connected.set()
                if self._pending is not None:
                    self._pending.listening(True)
                delay = RECONNECT_FIRST_DELAY
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected.is_set():
                    log.warning("event hub lost its Redis subscription: %s", exc)
                elif self.reconnects == 0:
                    log.warning("event hub could not subscribe to %s yet: %s", channel, exc)
                self.connected.clear()
                if self._pending is not None:
                    self._pending.listening(False)
                self.reconnects += 1
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py 5
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _subscribe(self, pubsub: PubSub, channel: str) -> None:
        """Subscribe, and return once Redis confirms it: from then on nothing published is missed."""
        self._inbox.clear()  # what a lost subscription left here, the catch-up reads from the store
        revocations = revocations_channel(channel)
        self._revocations = revocations.encode()
        try:
            # Bounded as a whole: connecting includes a handshake, which a half-open connection
            # would never answer.
            async with asyncio.timeout(self.liveness_seconds):
                await pubsub.subscribe(channel, revocations)
                confirmed = 0
                while True:
                    message = await pubsub.get_message(timeout=self.liveness_seconds)
                    if message is not None and message["type"] == "subscribe":
                        confirmed += 1
                        if confirmed == 2:
                            return
        except TimeoutError:
            raise ConnectionError(f"Redis did not confirm the subscription to {channel}") from None

    async def _read(self, pubsub: PubSub) -> None:
        """Read the subscription until it fails, goes silent when pinged, or the streams fall too far
        behind; a task hands the messages on meanwhile, so reading never waits for the database."""
        handler = asyncio.create_task(self._hand_on(), name="event-hub-hand-on")
        reader = asyncio.current_task()
        assert reader is not None

        # A handler that fails (the database away while it fills a gap) stops the reading at once.
        def stop_reading(_: object) -> None:
            reader.cancel()

        handler.add_done_callback(stop_reading)
        pinged = False
        try:
            while True:
                message = await pubsub.get_message(timeout=self.liveness_seconds)
                if message is None:
                    if pinged:
                        raise ConnectionError(f"no answer from Redis for {2 * self.liveness_seconds:g} s")
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                kind = message["type"]
                if kind == "message":
                    if message["channel"] == self._revocations:
                        self.revoke(message["data"].decode(errors="replace"))
                    else:
                        self._arrived(message["data"])
                elif kind == "subscribe":
                    # The client reconnected by itself: what was published meanwhile was missed.
                    raise ConnectionError("the subscription was renewed behind the hub's back")
        except asyncio.CancelledError:
            if not handler.done() or handler.cancelled() or reader.cancelling() > 1:
                raise  # the hub itself is stopping
            reader.uncancel()
            raise handler.exception() or ConnectionError("the event hub stopped handing on") from None
        finally:
            handler.remove_done_callback(stop_reading)
            handler.cancel()
            await asyncio.wait([handler])  # its own outcome is known already, or irrelevant

    def _arrived(self, raw: bytes) -> None:
        if self._feeds or self._inbox:
            self._inbox.append(raw)
            if len(self._inbox) > INBOX_LIMIT:
                raise ConnectionError(f"more than {INBOX_LIMIT} events waiting")
            self._wake()
        elif not raw.startswith(_NOTHING_TO_NOTE):
            self._note(raw)  # no stream open here: nothing to hand on, so no task to wake

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _hand_on(self) -> None:
        """Hand messages on, in order, as they arrive."""
        while True:
            while self._inbox:
                await self._receive(self._inbox.popleft())
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup

    def _note(self, raw: bytes) -> dict[str, Any] | None:
        """Parse a message and tell the pending statuses of it; None when it is malformed."""
        try:
            message: dict[str, Any] = json.loads(raw)
            if self._pending is not None:
                self._pending.event_arrived(message["operation_id"], message["type"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed event message: %s", exc)
            return None
        return message

    async def _receive(self, raw: bytes) -> None:
        message = self._note(raw)
        if message is None or not self._feeds:
            return  # no stream open here: a feed opened later starts from the store
        try:
            event = event_from_message(message)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed event message: %s", exc)
            return
        feed = self._feeds.get(event.account_id)
        if feed is not None and event.transient:
            async with self._lock:  # behind a gap being filled, as it was published
                # Looked up again: while waiting for the lock the feed may have been dropped.
                feed = self._feeds.get(event.account_id)
                if feed is not None:
                    self._dispatch(feed, event)
            return
        if feed is None or event.seq <= feed.high:
            return  # nobody here follows this account, or a duplicate
        async with self._lock:
            # Looked up again: while waiting for the lock the feed may have been dropped and re-made.
            feed = self._feeds.get(event.account_id)
            if feed is None or event.seq <= feed.high:
                return
            if event.seq > feed.high + 1:
                await self._fill(feed, event.account_id, until=event.seq - 1)
            if event.seq > feed.high:
                self._dispatch(feed, event)

    async def _catch_up(self) -> None:
        async with self._lock:
            for account_id, feed in list(self._feeds.items()):
                await self._fill(feed, account_id, until=None)

    async def _fill(self, feed: _AccountFeed, account_id: str, until: int | None) -> None:
        """Dispatch the stored events after `feed.high` (up to `until`): the store fills the gap."""
        assert self._store is not None
        while until is None or feed.high < until:
            missed = await events_after(self._store, account_id, feed.high, limit=_CATCH_UP_BATCH)
            for event in missed:
                if until is not None and event.seq > until:
                    return
                self._dispatch(feed, event)
            if len(missed) < _CATCH_UP_BATCH:
                return

    def _dispatch(self, feed: _AccountFeed, event: StoredEvent) -> None:
        if not event.transient:
            feed.high = event.seq
        delivery: Delivery | None = None
        # A copy: a subscriber whose queue overflows leaves the set during the loop.
        for sub in tuple(feed.subscribers):
            if sub.wants(event):
                if delivery is None:
                    delivery = Delivery(event, event_frame(event))
                sub.offer(delivery)
