"""One stream's events: what the store owes the client first, then the live ones from the hub.

The subscription is registered with the hub BEFORE the store is read, so an event committed while
the store is being read is buffered in the subscription's queue; anything the client has already
been sent (seq <= last sent) is skipped. That gives every event exactly once and in order, also
when events arrive during a replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from lunos_events.errors import NotFound
from lunos_events.services.events import StoredEvent, events_after, latest_event_of_operation
from lunos_events.services.retention import events_pruned_seq
from lunos_events.store.transactions import Store
from lunos_events.streams.frames import HEARTBEAT, event_frame, is_terminal, reset_frame, retry_frame
from lunos_events.streams.hub import EventHub
from lunos_events.streams.subscription import IDLE, Delivery, Subscription

REPLAY_BATCH = 500
OPERATION_NOT_FOUND = "Operation not found"


@dataclass(eq=False)
class EventFeed:
    subscription: Subscription
    store: Store
    sent: int  # events with seq <= sent are never sent (the client has them)
    first: StoredEvent | None = None  # the current state, sent before anything else
    replay: bool = False  # replay the store after `sent` before going live
    ends_on_terminal: bool = False  # an operation's stream ends after its final status
    app_id: str | None = None  # the operation's app, or the app the account stream is limited to
    pruned_through: int = 0  # > sent: retention removed events the client missed (stream.reset first)

    def close(self) -> None:
        self.subscription.end()

    async def frames(self, retry_ms: int) -> AsyncIterator[bytes]:
        """The stream's SSE frames, with a heartbeat comment whenever the hub asks for one."""
        try:
            yield retry_frame(retry_ms)
            if self.replay and self.pruned_through > self.sent:
                yield reset_frame(self.sent, self.pruned_through)
            if self.first is not None:
                yield event_frame(self.first)
                self.sent = self.first.seq
                if self.ends_on_terminal and is_terminal(self.first):
                    return
            if self.replay:
                async for event in self._replayed():
                    yield event_frame(event)
                    self.sent = event.seq
                    if self.ends_on_terminal and is_terminal(event):
                        return
            while (item := await self.subscription.next()) is not None:
                if item is IDLE:
                    yield HEARTBEAT
                    continue
                assert isinstance(item, Delivery)
                if item.event.transient:
                    yield item.frame  # a progress report: nothing to order it against or replay
                    continue
                if item.event.seq <= self.sent:
                    continue  # already sent from the store
                yield item.frame
                self.sent = item.event.seq
                if self.ends_on_terminal and is_terminal(item.event):
                    return
        finally:
            self.close()

    async def _replayed(self) -> AsyncIterator[StoredEvent]:
        sub = self.subscription
        after = self.sent
        while True:
            batch = await events_after(
                self.store,
                sub.account_id,
                after,
                operation_id=sub.operation_id,
                app_id=sub.app_id,
                limit=REPLAY_BATCH,
            )
            for event in batch:
                yield event
            if len(batch) < REPLAY_BATCH or sub.ended is not None:
                return
            after = batch[-1].seq


async def open_operation_feed(
    hub: EventHub,
    store: Store,
    account_id: str,
    operation_id: str,
    last_event_id: int | None,
    *,
    key_hash: str | None = None,
) -> EventFeed | None:
    """The operation's feed, or None when the client already has its final status (nothing to send).

    Without `last_event_id` the first event is the current state; with it, the missed events follow.
    `key_hash`: the key the stream is opened with; revoking it ends the feed.
    """
    sub = await hub.subscribe(account_id, operation_id=operation_id, key_hash=key_hash)
    try:
        latest = await latest_event_of_operation(store, account_id, operation_id)
    except BaseException:
        sub.end()
        raise
    if latest is None:
        sub.end()
        raise NotFound(OPERATION_NOT_FOUND)
    if last_event_id is None:
        return EventFeed(sub, store, sent=0, first=latest, ends_on_terminal=True, app_id=latest.app_id)
    if is_terminal(latest) and latest.seq <= last_event_id:
        sub.end()
        return None
    return EventFeed(
        sub,
        store,
        sent=last_event_id,
        replay=True,
        ends_on_terminal=True,
        app_id=latest.app_id,
        pruned_through=await _pruned_through(sub, store, account_id),
    )


async def open_account_feed(
    hub: EventHub,
    store: Store,
    account_id: str,
    app_id: str | None,
    last_event_id: int | None,
    *,
    key_hash: str | None = None,
) -> EventFeed:
    """Every event of the account (or of one app): the missed ones after `last_event_id`, then live."""
    sub = await hub.subscribe(account_id, app_id=app_id, key_hash=key_hash)
    if last_event_id is None:
        return EventFeed(sub, store, sent=0, app_id=app_id)
    pruned = await _pruned_through(sub, store, account_id)
    return EventFeed(sub, store, sent=last_event_id, replay=True, app_id=app_id, pruned_through=pruned)


async def _pruned_through(sub: Subscription, store: Store, account_id: str) -> int:
    try:
        return await events_pruned_seq(store, account_id)
    except BaseException:
        sub.end()
        raise
