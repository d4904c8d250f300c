"""The dispatcher: starts queued operations as provider capacity frees.

A task of each worker process, beside arq's job slots (it never holds one while it waits). It
blocks on Redis for a wake-up (a slot freed, an operation queued) or one second, reads the queue
from the database in its fair order and starts as many as the credentials have room for; the
guarded claim in services/starts.py keeps two dispatchers from starting the same operation.
"""

from __future__ import annotations

import asyncio
import logging

from lunos_events.runtime import Runtime
from lunos_events.services.fair_queue import FairQueue, queued_operations
from lunos_events.services.starts import GONE, QUEUED
from lunos_events.store.models import Operation

log = logging.getLogger(__name__)

# How many queued operations per app one round looks at: a round that starts them all is followed at
# once by another, so this only bounds what one read returns (and the fair order sorts).
PER_APP = 10
IDLE_SECONDS = 1.0


class Dispatcher:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._fair = FairQueue(rt.settings.queue_weight)
        self._waiting_models: set[str] = set()

    async def run(self) -> None:
        capacity = self._rt.generations.starter.capacity
        while True:
            try:
                if not await self.round():
                    await capacity.wait_for_wake(IDLE_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or Redis outage: try again shortly
                log.exception("dispatch round failed")
                await asyncio.sleep(IDLE_SECONDS)

    async def round(self) -> int:
        """One pass over the queue; returns how many operations it started."""
        starter = self._rt.generations.starter
        capacity = starter.capacity
        queued = await queued_operations(self._rt.store, PER_APP)
        models = {q.op.provider_model for q in queued}
        for model in self._waiting_models - models:
            await capacity.queued(model, waiting=False)  # new submits may start at once again
        full: set[str] = set()
        chosen: list[Operation] = []
        starts = []
        for op in self._fair.order(queued):
            if op.provider_model in full:
                continue
            credential = await capacity.take(op.id, op.provider_model, op.deadline_at_ms, behind_queue=False)
            if credential is None:
                full.add(op.provider_model)
                continue
            chosen.append(op)
            starts.append(self._start(op.id, credential))
        for model in models:
            await capacity.queued(model)
        self._waiting_models = models
        outcomes = await asyncio.gather(*starts)
        for op, outcome in zip(chosen, outcomes, strict=True):
            # A start the provider turned away (or one that ended meanwhile) takes no turn: the
            # account keeps its place for the next round. A refusal did use its turn.
            if outcome not in (QUEUED, GONE):
                self._fair.served(op)
        return sum(1 for outcome in outcomes if outcome == "started")

    async def _start(self, operation_id: str, credential: str) -> str:
        """Start a queued operation on `credential`, whose slot was taken for it: its whole row is
        read only now (the queue is read with what its order needs)."""
        starter = self._rt.generations.starter
        op = await self._rt.store.operation(operation_id)
        if op is None:
            await starter.capacity.release(operation_id)
            return GONE
        outcome, _ = await starter.start_on(op, credential, untracked=True)
        return outcome
