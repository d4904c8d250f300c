"""Starting operations at the provider within its capacity, or queueing them.

An operation is queued (`queued_at_ms` set, no credential) when no credential has room or the
provider answered "not now". A start is claimed in the database before the provider is called
(the credential is recorded by a guarded UPDATE), so however many API processes and dispatchers
race for a queued operation, one of them starts it, once; a start the provider turned away for
the moment is handed back to the queue by the same guard.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

from redis.exceptions import RedisError
from sqlalchemy import bindparam, func, update
from sqlmodel import col

from lunos_events.bus.redis_bus import Bus
from lunos_events.errors import START_FAILED_CODE
from lunos_events.ids import now_ms
from lunos_events.logs import operation_context
from lunos_events.providers.base import ProviderBusy, ProviderCredentialRefused, VideoProvider
from lunos_events.services.capacity import BUSY, FAILED, REFUSED, STARTED, Capacity
from lunos_events.services.lifecycle import Lifecycle, NewOperation
from lunos_events.services.progress import Latencies
from lunos_events.services.provider_jobs import START_FAILED, media_loader, provider_job
from lunos_events.storage.base import VideoStorage
from lunos_events.store.models import FAILED as FAILED_STATUS
from lunos_events.store.models import PENDING, Operation
from lunos_events.store.records import StoredEvent
from lunos_events.store.transactions import Store

log = logging.getLogger(__name__)

# How long a start waits for a tracking run in progress (one poll) to end, to queue the next one.
HANDOVER_SECONDS = 30.0

Outcome = Literal["started", "queued", "failed", "gone"]
QUEUED: Outcome = "queued"
GONE: Outcome = "gone"  # it ended (cancelled, timed out) or another process claimed it

_OP = col(Operation.id) == bindparam("operation_id")
_UNSTARTED = (col(Operation.status) == PENDING, col(Operation.provider_operation).is_(None))
_CLAIM = (
    update(Operation)
    .where(_OP, *_UNSTARTED, col(Operation.provider_credential).is_(None))
    .values(provider_credential=bindparam("credential"), started_at_ms=bindparam("now"))
)
_UNCLAIM = (
    update(Operation)
    .where(_OP, *_UNSTARTED, col(Operation.provider_credential) == bindparam("credential"))
    .values(
        provider_credential=None,
        started_at_ms=None,
        queued_at_ms=func.coalesce(col(Operation.queued_at_ms), bindparam("now")),
    )
)
_QUEUE = (
    update(Operation)
    .where(
        _OP, *_UNSTARTED, col(Operation.provider_credential).is_(None), col(Operation.queued_at_ms).is_(None)
    )
    .values(queued_at_ms=bindparam("now"))
)


class Starter:
    def __init__(
        self,
        store: Store,
        provider: VideoProvider,
        storage: VideoStorage,
        capacity: Capacity,
        lifecycle: Lifecycle,
        latencies: Latencies,
        bus: Bus,
        poll_interval_seconds: float,
    ) -> None:
        self.capacity = capacity
        self._bus = bus
        self._poll_interval = poll_interval_seconds
        self._store = store
        self._provider = provider
        self._storage = storage
        self._lifecycle = lifecycle
        self._latencies = latencies

    async def admit(
        self, op: Operation | NewOperation, published: StoredEvent | None = None
    ) -> tuple[Outcome, str | None]:
        """Start `op` now if a credential has room and nothing of its model waits, else queue it.

        Returns the outcome and, once started, the provider's operation name.
        """
        credential = await self.capacity.take(op.id, op.provider_model, op.deadline_at_ms, behind_queue=True)
        if credential is None:
            await self.enqueue(op)
            return QUEUED, None
        return await self.start_on(op, credential, published)

    async def enqueue(self, op: Operation | NewOperation) -> None:
        await self._store.execute(_QUEUE, {"operation_id": op.id, "now": now_ms()})
        await self.capacity.queued(op.provider_model)

    async def start_on(
        self,
        op: Operation | NewOperation,
        credential: str,
        published: StoredEvent | None = None,
        *,
        untracked: bool = False,
    ) -> tuple[Outcome, str | None]:
        """Claim and start `op` on `credential`, whose slot the caller holds for it.

        `untracked`: a queued operation has no tracking job (a deadline watch stands in for it), so
        one is queued once the claim is made, before the provider is called: whatever happens to
        the start from then on, the tracking job sees to it. If none can be, the claim is undone
        and the operation waits in the queue for a later round.
        """
        claim = {"operation_id": op.id, "credential": credential, "now": now_ms()}
        if (await self._store.execute(_CLAIM, claim)).rowcount != 1:
            await self.capacity.release(op.id)
            return GONE, None
        if untracked and not await self._hand_tracking_over(op.id):
            # Never a start nothing would track: back to the queue, for a later round. With Redis
            # away its slot stays taken (under its own id: its end, whenever, gives it back).
            await self._store.execute(_UNCLAIM, claim)
            with contextlib.suppress(RedisError):
                await self.capacity.release(op.id)
                await self.capacity.queued(op.provider_model)
            return QUEUED, None
        job = provider_job(op, media_loader(self._storage, op), credential)
        with operation_context(op.id):
            try:
                name = await self._provider.start(job)
            except (ProviderBusy, ProviderCredentialRefused) as exc:
                outcome = BUSY if isinstance(exc, ProviderBusy) else REFUSED
                await self.capacity.outcome(credential, outcome, str(exc))
                await self._store.execute(_UNCLAIM, claim)
                await self.capacity.queued(op.provider_model)
                await self.capacity.release(op.id)
                return QUEUED, None
            except Exception:
                log.exception("provider refused to start %s", op.id)
                await self.capacity.outcome(credential, FAILED)
                await self._lifecycle.finish(
                    op.id, FAILED_STATUS, error=START_FAILED, error_code=START_FAILED_CODE, refund=True
                )
                return "failed", None
        await self.capacity.outcome(credential, STARTED)
        run_seconds = await self._latencies.run_seconds(op.provider_model)
        # A queued operation read back from its row does not say whether it has a webhook of its own.
        own_webhook = op.has_request_webhook if isinstance(op, NewOperation) else True
        await self._lifecycle.processing(op.id, name, run_seconds, published, request_webhook=own_webhook)
        return "started", name

    async def _hand_tracking_over(self, operation_id: str) -> bool:
        try:
            if await self._bus.hand_tracking_over(operation_id, self._poll_interval, HANDOVER_SECONDS):
                return True
            log.warning("%s stays queued: a tracking run in progress did not end in time", operation_id)
        except RedisError as exc:
            log.warning("%s stays queued: its tracking job could not be queued: %s", operation_id, exc)
        return False
