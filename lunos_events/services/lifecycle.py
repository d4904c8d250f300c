"""Operation state transitions. Each one is a guarded UPDATE, so it happens at most once;
money and the matching event move in the same transaction."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from lunos_events.db.models import PENDING, Account, Operation
from lunos_events.errors import InsufficientBalance
from lunos_events.faults import crash_point
from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime
from lunos_events.services import limits, outbox
from lunos_events.services.events import StoredEvent, append_event
from lunos_events.services.status import event_type, status_object
from lunos_events.webhooks.fanout import RequestWebhook, store_request_webhook


async def create_operation(
    engine: AsyncEngine, op: Operation, webhook: RequestWebhook | None = None
) -> StoredEvent:
    """Debit the cost and insert the pending operation with its `video.pending` event, atomically.

    Raises InsufficientBalance when the balance does not cover the cost, and lets IntegrityError
    through when the operation id is taken (the caller picks another id).
    """
    async with engine.begin() as conn:
        # The write comes first so that SQLite takes its write lock before anything is read.
        debited = await conn.execute(
            update(Account)
            .where(Account.id == op.account_id, Account.balance_cents >= op.cost_cents)
            .values(balance_cents=Account.balance_cents - op.cost_cents)
        )
        if debited.rowcount != 1:
            raise InsufficientBalance()
        await conn.execute(Operation.__table__.insert().values(**op.model_dump()))
        if webhook is not None:
            await store_request_webhook(conn, op.account_id, op.id, webhook)
        return await append_event(
            conn,
            account_id=op.account_id,
            operation_id=op.id,
            app_id=op.app_id,
            type=event_type(PENDING),
            data=status_object(op.id, PENDING, None, None),
        )


async def attach_provider_operation(engine: AsyncEngine, operation_id: str, name: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(Operation)
            .where(Operation.id == operation_id, Operation.provider_operation.is_(None))
            .values(provider_operation=name, updated_at_ms=now_ms())
        )


async def finish_operation(
    rt: Runtime,
    operation_id: str,
    status: str,
    *,
    video_url: str | None = None,
    error: str | None = None,
    refund: bool = False,
) -> StoredEvent | None:
    """Move a pending operation to `status`. Returns its event, or None if it was no longer pending."""
    stamp = now_ms()
    async with rt.engine.begin() as conn:
        changed = (
            await conn.execute(
                update(Operation)
                .where(Operation.id == operation_id, Operation.status == PENDING)
                .values(
                    status=status,
                    video_url=video_url,
                    error=error,
                    refunded=refund,
                    updated_at_ms=stamp,
                    completed_at_ms=stamp,
                )
                .returning(Operation.account_id, Operation.app_id, Operation.cost_cents)
            )
        ).first()
        if changed is None:
            return None
        if refund:
            await conn.execute(
                update(Account)
                .where(Account.id == changed.account_id)
                .values(balance_cents=Account.balance_cents + changed.cost_cents)
            )
        event = await append_event(
            conn,
            account_id=changed.account_id,
            operation_id=operation_id,
            app_id=changed.app_id,
            type=event_type(status),
            data=status_object(operation_id, status, video_url, error),
        )
    crash_point(rt.settings, "committed")
    await outbox.release(rt, event)
    await limits.give_back(rt.redis, rt.settings.redis_key_prefix, changed.account_id, operation_id)
    return event
