"""Where queued operations stand in the fair order, for the `queue_position` of their status.

Per model, the queue is read (ids and what the fair order sorts by, not whole rows) at most every
`REFRESH_SECONDS` by a process, and only while something asks: polls of queued operations cost one
read per model and second, however many clients poll. The order is services/fair_queue.py's from a
fresh start: the dispatchers' own turns differ by at most one per account, so a position is off
by at most the number of accounts waiting, and it never shows an operation further back than it is
by more than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select
from sqlmodel import col

from lunos_events.services.fair_queue import FairQueue, queued_operations
from lunos_events.services.timing import QueueSpot
from lunos_events.store.models import PROCESSING, Operation
from lunos_events.store.transactions import Store

REFRESH_SECONDS = 1.0

_RUNNING_OF_MODEL = select(func.count()).where(
    col(Operation.status) == PROCESSING, col(Operation.provider_model) == bindparam("model")
)


@dataclass
class _Snapshot:
    read_at: float
    running: int
    positions: dict[str, int] = field(default_factory=dict)


class QueuePositions:
    def __init__(self, store: Store, weight: Callable[[str], int]) -> None:
        self._store = store
        self._weight = weight  # a tier's queue_weight
        self._snapshots: dict[str, _Snapshot] = {}

    async def spot(self, operation_id: str, provider_model: str) -> QueueSpot | None:
        """Its place in its model's queue; None when it is not queued (any more)."""
        snapshot = self._snapshots.get(provider_model)
        if snapshot is None or time.monotonic() - snapshot.read_at >= REFRESH_SECONDS:
            snapshot = await self._read(provider_model)
        position = snapshot.positions.get(operation_id)
        return None if position is None else QueueSpot(position, snapshot.running)

    async def _read(self, provider_model: str) -> _Snapshot:
        read_at = time.monotonic()
        queued = await queued_operations(self._store, None, provider_model)
        running = int(await self._store.scalar(_RUNNING_OF_MODEL, model=provider_model) or 0)
        order = FairQueue(self._weight).order(queued)
        snapshot = _Snapshot(read_at, running, {op.id: place for place, op in enumerate(order, start=1)})
        self._snapshots[provider_model] = snapshot
        return snapshot
