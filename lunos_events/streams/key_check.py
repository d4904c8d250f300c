"""The database check behind revocation: a stream never outlives its key by more than one interval.

A revoked key's message on the bus ends its streams at once (streams/hub.py), but pub/sub delivers
at most once: a process whose subscription was down when the message went out never hears it, and
`lunos-events keys revoke` may have no Redis to publish on. So every `interval` each API process
also asks the database which of its open streams' keys are still live, and ends the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from lunos_events.services.accounts import live_keys
from lunos_events.store.transactions import Store
from lunos_events.streams.hub import EventHub

log = logging.getLogger(__name__)


async def end_streams_of_revoked_keys(hub: EventHub, store: Store) -> int:
    """One check: end the streams whose key is no longer live; how many keys were found revoked."""
    keys = hub.key_hashes()
    if not keys:
        return 0
    revoked = keys - await live_keys(store, keys)
    for key_hash in revoked:
        hub.revoke(key_hash)
    return len(revoked)


@contextlib.asynccontextmanager
async def checking_keys(hub: EventHub, store: Store, interval: float) -> AsyncIterator[None]:
    """Check the open streams' keys every `interval` seconds while the block runs."""

    async def check_forever() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await end_streams_of_revoked_keys(hub, store)
            except Exception as exc:  # the database away: the next round tries again
                log.warning("could not check the keys of the open event streams: %s", exc)

    task = asyncio.create_task(check_forever(), name="stream-key-check")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
