"""Which operations an API process knows to be processing, so that polling them skips the database.

A processing operation is polled again and again, and what a poll answers changes only with time
(its progress and ETA, computed from when it started) until it ends. Every change of status is a
guarded UPDATE that stores an event in the same transaction, and the event is published on Redis
after the commit (outbox.py). So a process that hears every event can answer from memory until it
hears of the change:

- the event hub forgets an operation as soon as one of its status events arrives, whichever
  process made the change (progress events change nothing kept here);
- a change made in this process forgets it at once, before its event is even published;
- nothing is kept or served while the hub is not subscribed (Redis away, reconnecting, or silent
  for too long), and a new subscription starts from empty;
- an entry lives at most `ttl_seconds` (LUNOS_STATUS_CACHE_SECONDS), which bounds how stale a poll
  can be if an event is lost between a commit and its publish (the relay publishes it later).

Pending operations are not kept: a queued one's position moves with every start.

The price: a poll of this process can still show `processing` between another process's commit
and its event reaching this one: well under a millisecond on one host, longer while the hub works
through a backlog. Final statuses are always read from the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lunos_events.services.status import PROGRESS_EVENT, event_type
from lunos_events.store.models import PENDING

# The event that creates an operation, and the progress reports of a running one: they change
# nothing that a poll of a processing operation answers.
CREATION_EVENT = event_type(PENDING)
UNCHANGING_EVENTS = frozenset({CREATION_EVENT, PROGRESS_EVENT})


@dataclass(frozen=True, slots=True)
class Running:
    """What a poll of a processing operation answers from, besides the time."""

    created_at_ms: int
    started_at_ms: int
    provider_model: str


class RunningStatuses:
    MAX_ENTRIES = 100_000
    # Forgets remembered per operation, so that a read which raced one is not kept.
    MAX_FORGOTTEN = 10_000

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        # operation id -> (time.monotonic() it is kept until, what a poll answers from)
        self._kept: dict[str, tuple[float, Running]] = {}
        self._listening = False
        # Every forget takes the next version. A read started at version V may keep its operation
        # unless that operation was forgotten after V, or everything was (`_floor`).
        self.version = 0
        self._forgotten: dict[str, int] = {}
        self._floor = 0

    def __len__(self) -> int:
        return len(self._kept)

    def known_running(self, operation_id: str) -> Running | None:
        kept = self._kept.get(operation_id)
        if kept is None:
            return None
        if kept[0] > time.monotonic():
            return kept[1]
        del self._kept[operation_id]
        return None

    def remember(self, operation_id: str, read_at_version: int, running: Running) -> None:
        """Keep `operation_id` as processing: the database said so, read from `read_at_version` on."""
        if not self._listening or self._ttl <= 0 or read_at_version < self._floor:
            return
        if self._forgotten.get(operation_id, 0) > read_at_version:
            return  # it changed while it was being read: the row may predate the change
        if len(self._kept) >= self.MAX_ENTRIES:
            self._kept.clear()
        self._kept[operation_id] = (time.monotonic() + self._ttl, running)

    def event_arrived(self, operation_id: str, type: str) -> None:
        """An event of `operation_id` was published (told by the event hub, whatever was kept)."""
        if type not in UNCHANGING_EVENTS:
            self.forget(operation_id)  # also when not kept: a read of it may be in flight

    def forget(self, operation_id: str) -> None:
        self.version += 1
        self._kept.pop(operation_id, None)
        self._forgotten.pop(operation_id, None)  # re-inserted last: the oldest forget goes first
        self._forgotten[operation_id] = self.version
        if len(self._forgotten) > self.MAX_FORGOTTEN:
            oldest = next(iter(self._forgotten))
            self._floor = self._forgotten.pop(oldest)

    def listening(self, listening: bool) -> None:
        """The event hub is (or is no longer) subscribed: either way, what was kept is dropped."""
        self._listening = listening
        self.version += 1
        self._floor = self.version
        self._forgotten.clear()
        self._kept.clear()
