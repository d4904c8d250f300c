"""Operation state transitions. Each one is a guarded UPDATE, so it happens at most once;
money and the matching event move in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, bindparam, insert, update
from sqlmodel import col

from lunos_events.bus.redis_bus import Bus
from lunos_events.errors import InsufficientBalance
from lunos_events.faults import crash_point
from lunos_events.ids import now_ms
from lunos_events.services import limits
from lunos_events.services.events import append_event, mark_published
from lunos_events.services.outbox import Outbox
from lunos_events.services.pending_statuses import PendingStatuses
from lunos_events.services.status import event_type, status_object
from lunos_events.services.webhook_fanout import RequestWebhook, store_request_webhook
from lunos_events.settings import Settings
from lunos_events.store.models import PENDING, Account, Operation
from lunos_events.store.records import StoredEvent
from lunos_events.store.transactions import Store, Tx

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
_ATTACH = (
    update(Operation)
    .where(col(Operation.id) == bindparam("operation_id"), col(Operation.provider_operation).is_(None))
    .values(provider_operation=bindparam("name"), updated_at_ms=bindparam("now"))
)
_FINISH = (
    update(Operation)
    .where(col(Operation.id) == bindparam("operation_id"), col(Operation.status) == PENDING)
    .values(
        status=bindparam("new_status"),
        video_url=bindparam("new_video_url"),
        error=bindparam("new_error"),
        error_code=bindparam("new_error_code"),
        outcome=bindparam("new_outcome", type_=JSON()),
        refunded=bindparam("new_refunded"),
        updated_at_ms=bindparam("now"),
        completed_at_ms=bindparam("now"),
    )
    .returning(col(Operation.account_id), col(Operation.app_id), col(Operation.cost_cents))
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
        data=status_object(op.id, PENDING, None, None),
        request_webhook=webhook is not None,
        numbered=(debited[0], debited[1]),
    )


async def attach_provider_operation(
    store: Store, operation_id: str, name: str, published: StoredEvent | None = None
) -> None:
    """Record the provider's operation name, then that `published` went out.

    Two statements, each atomic alone and guarded so that it applies once; no transaction around
    them (on PostgreSQL that saves the BEGIN and COMMIT round trips of every submit). If the
    process dies between them, the relay only publishes the event once more.
    """
    await store.execute(_ATTACH, {"operation_id": operation_id, "name": name, "now": now_ms()})
    if published is not None:
        await mark_published(store, published)


@dataclass(frozen=True, slots=True)
class Ending:
    """How an operation ends: its status, and what its final status object shows."""

    status: str
    video_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    outcome: dict[str, Any] | None = None
    refund: bool = False


async def finish_transition(tx: Tx, operation_id: str, ending: Ending) -> StoredEvent | None:
    """Move a pending operation to `status` (refunding it if asked) with its event; None when it
    was no longer pending."""
    changed = await tx.first(
        _FINISH,
        operation_id=operation_id,
        new_status=ending.status,
        new_video_url=ending.video_url,
        new_error=ending.error,
        new_error_code=ending.error_code,
        new_outcome=ending.outcome,
        new_refunded=ending.refund,
        now=now_ms(),
    )
    if changed is None:
        return None
    account_id, app_id, cost_cents = changed
    if ending.refund:
        await tx.execute(_CREDIT, {"account_id": account_id, "amount": cost_cents})
    return await append_event(
        tx,
        account_id=account_id,
        operation_id=operation_id,
        app_id=app_id,
        type=event_type(ending.status),
        data=status_object(
            operation_id, ending.status, ending.video_url, ending.error, ending.error_code, ending.outcome
        ),
    )


class Lifecycle:
    """Ends operations: the transition, then its consequences outside the transaction."""

    def __init__(
        self, store: Store, bus: Bus, outbox: Outbox, pending: PendingStatuses, settings: Settings
    ) -> None:
        self._store = store
        self._bus = bus
        self._outbox = outbox
        self._pending = pending
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
        """Move a pending operation to `status`. Returns its event, or None if it was no longer pending."""
        ending = Ending(status, video_url, error, error_code, outcome, refund)
        async with self._store.transaction() as tx:
            event = await finish_transition(tx, operation_id, ending)
        self._pending.forget(operation_id)  # it is no longer pending, whoever changed it
        if event is None:
            return None
        crash_point(self._settings, "committed")
        # The slot goes first, so that a client told of the end by the event finds it free.
        await limits.give_back(self._bus, event.account_id, operation_id)
        # Its provider slot too (on whichever credential held it), waking the queue's dispatchers.
        await self._bus.capacity.release(self._credentials, operation_id)
        await self._outbox.release(event)
        return event
