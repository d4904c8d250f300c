"""Which operations an API process knows to be pending, so that polling them skips the database.

A pending operation is polled again and again and changes once. Every change from pending is a
guarded UPDATE that stores an event in the same transaction, and the event is published on Redis
after the commit (outbox.py). So a process that hears every event can answer "still pending" from
memory until it hears of the change:

- the event hub forgets an operation as soon as one of its events arrives, whichever process made
  the change;
- a change made in this process forgets it at once, before its event is even published;
- nothing is kept or served while the hub is not subscribed (Redis away, reconnecting), and a new
  subscription starts from empty;
- an entry lives at most `ttl_seconds` (LUNOS_STATUS_CACHE_SECONDS), which bounds how stale a poll
  can be if an event is lost between a commit and its publish (the relay publishes it later).

The price: a poll of this process can still show `pending` in the moment between another process's
commit and its event arriving here (well under a millisecond on one host). Final statuses are always
read from the database.
"""

from __future__ import annotations

import time


class PendingStatuses:
    MAX_ENTRIES = 100_000

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._expiry: dict[str, float] = {}  # operation id -> time.monotonic() it is kept until
        self._listening = False
        # Counts forgets: a read that raced one (its row may predate the change) is not kept.
        self.version = 0

    def __len__(self) -> int:
        return len(self._expiry)

    def known_pending(self, operation_id: str) -> bool:
        expiry = self._expiry.get(operation_id)
        if expiry is None:
            return False
        if expiry > time.monotonic():
            return True
        del self._expiry[operation_id]
        return False

    def remember(self, operation_id: str, read_at_version: int) -> None:
        """Keep `operation_id` as pending, as read from the database when `version` was given."""
        if not self._listening or self._ttl <= 0 or read_at_version != self.version:
            return
        if len(self._expiry) >= self.MAX_ENTRIES:
            self._expiry.clear()
        self._expiry[operation_id] = time.monotonic() + self._ttl

    def forget(self, operation_id: str) -> None:
        self.version += 1
        self._expiry.pop(operation_id, None)

    def listening(self, listening: bool) -> None:
        """The event hub is (or is no longer) subscribed: either way, what was kept is dropped."""
        self._listening = listening
        self.version += 1
        self._expiry.clear()
