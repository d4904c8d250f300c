"""Operation state transitions. Each one is a guarded UPDATE, so it happens at most once;
money and the matching event move in the same transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, bindparam, case, insert, null, update
from sqlmodel import col

from lunos_events.bus.redis_bus import Bus
from lunos_events.errors import InsufficientBalance
from lunos_events.faults import crash_point
from lunos_events.ids import now_ms
from lunos_events.services import limits
from lunos_events.services.events import append_event, mark_published
from lunos_events.services.input_store import stored_inputs
from lunos_events.services.outbox import Outbox
from lunos_events.services.running_statuses import RunningStatuses
from lunos_events.services.status import event_type, status_object
from lunos_events.services.timing import timestamps, timing
from lunos_events.services.webhook_fanout import RequestWebhook, store_request_webhook
from lunos_events.settings import Settings
from lunos_events.storage.base import VideoStorage
from lunos_events.store.models import ACTIVE_STATUSES, PENDING, PROCESSING, Account, Operation
from lunos_events.store.records import StoredEvent
from lunos_events.store.transactions import Store, Tx

log = logging.getLogger(__name__)

# The debit also takes the account's next event sequence number (and its webhooks version), for the
# `video.pending` event that follows: one statement fewer on every submit.
_DEBIT_TAKING_SEQ = (
    update(Account)
    .where(col(Account.id) == bindparam("account_id"), col(Account.balance_cents) >= bindparam("cost"))
    .values(
        balance_cents=col(Account.balance_cents) - bindparam("cost"), event_seq=col(Account.event_seq) + 1
    )
    .returning(col(Account.event_seq), col(Account.webhooks_version))
)
_CREDIT = (
    update(Account)
    .where(col(Account.id) == bindparam("account_id"))
    .values(balance_cents=col(Account.balance_cents) + bindparam("amount"))
)
_INSERT_OPERATION = insert(Operation.__table__)  # type: ignore[attr-defined]  # SQLModel declares no __table__
_START_PROCESSING = (
    update(Operation)
    .where(
        col(Operation.id) == bindparam("operation_id"),
        col(Operation.provider_operation).is_(None),
        col(Operation.status) == PENDING,
    )
    .values(
        provider_operation=bindparam("name"),
        status=PROCESSING,
        started_at_ms=bindparam("now"),
        updated_at_ms=bindparam("now"),
    )
    .returning(col(Operation.account_id), col(Operation.app_id), col(Operation.created_at_ms))
)
_FINISH = (
    update(Operation)
    .where(col(Operation.id) == bindparam("operation_id"), col(Operation.status).in_(ACTIVE_STATUSES))
    .values(
        status=bindparam("new_status"),
        video_url=bindparam("new_video_url"),
        error=bindparam("new_error"),
        error_code=bindparam("new_error_code"),
        outcome=bindparam("new_outcome", type_=JSON()),
        refunded=bindparam("new_refunded"),
        updated_at_ms=bindparam("now"),
        completed_at_ms=bindparam("now"),
        # A start claimed but never accepted by the provider is no start.
        started_at_ms=case(
            (col(Operation.provider_operation).is_(None), null()), else_=col(Operation.started_at_ms)
        ),
    )
    .returning(
        col(Operation.account_id),
        col(Operation.app_id),
        col(Operation.cost_cents),
        col(Operation.created_at_ms),
        col(Operation.started_at_ms),
        col(Operation.parameters),
    )
)


@dataclass(frozen=True, slots=True)
class NewOperation:
    """A pending operation about to be created, as `create_operation` inserts it.

    Made on every submit, so a plain dataclass: building and dumping the table model instead cost
    ~15 µs.
    """

    id: str
    account_id: str
    app_id: str | None
    model: str
    provider_model: str
    prompt: str
    parameters: dict[str, Any]
    video_key: str
    cost_cents: int
    created_at_ms: int
    deadline_at_ms: int
    # Not a column: whether the submit gave a webhook of its own (which its events may owe a delivery).
    has_request_webhook: bool = True

    def row(self) -> dict[str, Any]:
        """Every column of its `operations` row."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "app_id": self.app_id,
            "model": self.model,
            "provider_model": self.provider_model,
            "prompt": self.prompt,
            "parameters": self.parameters,
            "status": PENDING,
            "provider_operation": None,
            "video_key": self.video_key,
            "video_url": None,
            "error": None,
            "error_code": None,
            "outcome": None,
            "cost_cents": self.cost_cents,
            "refunded": False,
            "created_at_ms": self.created_at_ms,
            "updated_at_ms": self.created_at_ms,
            "completed_at_ms": None,
            "deadline_at_ms": self.deadline_at_ms,
            "provider_credential": None,
            "queued_at_ms": None,
            "started_at_ms": None,
        }


async def create_operation(tx: Tx, op: NewOperation, webhook: RequestWebhook | None = None) -> StoredEvent:
    """Debit the cost and insert the pending operation with its `video.pending` event, atomically.

    Raises InsufficientBalance when the balance does not cover the cost, and lets IntegrityError
    through when the operation id is taken (the caller picks another).
    """
    # The debit comes first: on PostgreSQL it locks the account's row, which orders the account's
    # event numbers and guards the endpoints memo (webhook_fanout.enabled_endpoints).
    debited = await tx.first(_DEBIT_TAKING_SEQ, account_id=op.account_id, cost=op.cost_cents)
    if debited is None:
        raise InsufficientBalance()
    await tx.execute(_INSERT_OPERATION, op.row())
    if webhook is not None:
        await store_request_webhook(tx, op.account_id, op.id, webhook)
    return await append_event(
        tx,
        account_id=op.account_id,
        operation_id=op.id,
        app_id=op.app_id,
        type=event_type(PENDING),
        data=status_object(
            op.id, PENDING, None, None, timing=timestamps(PENDING, op.created_at_ms, None, None)
        ),
        request_webhook=webhook is not None,
        numbered=(debited[0], debited[1]),
    )


@dataclass(frozen=True, slots=True)
class Ending:
    """How an operation ends: its status, and what its final status object shows."""

    status: str
    video_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    outcome: dict[str, Any] | None = None
    refund: bool = False


@dataclass(frozen=True)
class Ended:
    event: StoredEvent
    inputs: str | None  # the storage key of its media inputs, which nothing needs any more


async def finish_transition(tx: Tx, operation_id: str, ending: Ending) -> Ended | None:
    """End an active (pending or processing) operation in `status`, refunding it if asked, with its
    event; None when it had ended already."""
    now = now_ms()
    changed = await tx.first(
        _FINISH,
        operation_id=operation_id,
        new_status=ending.status,
        new_video_url=ending.video_url,
        new_error=ending.error,
        new_error_code=ending.error_code,
        new_outcome=ending.outcome,
        new_refunded=ending.refund,
        now=now,
    )
    if changed is None:
        return None
    account_id, app_id, cost_cents, created_at_ms, started_at_ms, parameters = changed
    if ending.refund:
        await tx.execute(_CREDIT, {"account_id": account_id, "amount": cost_cents})
    event = await append_event(
        tx,
        account_id=account_id,
        operation_id=operation_id,
        app_id=app_id,
        type=event_type(ending.status),
        data=status_object(
            operation_id,
            ending.status,
            ending.video_url,
            ending.error,
            ending.error_code,
            ending.outcome,
            timing(ending.status, created_at_ms, started_at_ms, now, run_seconds=0, at_ms=now),
        ),
    )
    return Ended(event, stored_inputs(parameters))


class Lifecycle:
    """Starts and ends operations: the transition, then its consequences outside the transaction."""

    def __init__(
        self,
        store: Store,
        storage: VideoStorage,
        bus: Bus,
        outbox: Outbox,
        running: RunningStatuses,
        settings: Settings,
    ) -> None:
        self._store = store
        self._storage = storage
        self._bus = bus
        self._outbox = outbox
        self._running = running
        self._settings = settings
        self._credentials = [c.name for c in settings.provider_credentials()]

    async def finish(
        self,
        operation_id: str,
        status: str,
        *,
        video_url: str | None = None,
        error: str | None = None,
        error_code: str | None = None,
        outcome: dict[str, Any] | None = None,
        refund: bool = False,
    ) -> StoredEvent | None:
        """End an active operation in `status`. Returns its event, or None if it had ended already."""
        ending = Ending(status, video_url, error, error_code, outcome, refund)
        async with self._store.transaction() as tx:
            ended = await finish_transition(tx, operation_id, ending)
        self._running.forget(operation_id)  # it has ended, whoever changed it
        if ended is None:
            return None
        event = ended.event
        crash_point(self._settings, "committed")
        # The slot goes first, so that a client told of the end by the event finds it free.
        await limits.give_back(self._bus, event.account_id, operation_id)
        # Its provider slot too (on whichever credential held it), waking the queue's dispatchers.
        await self._bus.capacity.release(self._credentials, operation_id)
        await self._outbox.release(event)
        if ended.inputs is not None:
            await self._forget_inputs(operation_id, ended.inputs)
        return event

    async def _forget_inputs(self, operation_id: str, key: str) -> None:
        """The request's images (and the pointer to a video it extended) are the client's data,
        kept only while the provider may need them: removed once the operation ended."""
        try:
            await self._storage.delete(key)
        except Exception:  # the hourly retention run removes what is left (services/retention.py)
            log.warning("could not remove the inputs of %s (%s)", operation_id, key, exc_info=True)

    async def processing(
        self,
        operation_id: str,
        name: str,
        run_seconds: float,
        published: StoredEvent | None = None,
        *,
        request_webhook: bool = True,
    ) -> StoredEvent | None:
        """The provider accepted a pending operation as `name`: it is `processing`, with its
        `video.processing` event; None if it had ended meanwhile (cancelled, past its deadline).

        `published`: the operation's `video.pending` event, released before the provider was
        called; it is marked published in the same commit. `request_webhook=False`: the operation
        has no webhook of its own (saves looking for one).
        """
        now = now_ms()
        async with self._store.transaction() as tx:
            if published is not None:
                await mark_published(tx, published)
            started = await tx.first(_START_PROCESSING, operation_id=operation_id, name=name, now=now)
            if started is None:
                return None
            account_id, app_id, created_at_ms = started
            times = timing(PROCESSING, created_at_ms, now, None, run_seconds=run_seconds, at_ms=now)
            event = await append_event(
                tx,
                account_id=account_id,
                operation_id=operation_id,
                app_id=app_id,
                type=event_type(PROCESSING),
                data=status_object(operation_id, PROCESSING, None, None, timing=times),
                request_webhook=request_webhook,
            )
        await self._outbox.release(event)
        return event
