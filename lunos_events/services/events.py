"""The event store: every status change, numbered per account, stored before it is published."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import col

from lunos_events.ids import now_ms
from lunos_events.json_text import compact_json
from lunos_events.services.webhook_fanout import record_deliveries
from lunos_events.store.models import Account, Event
from lunos_events.store.records import StoredEvent
from lunos_events.store.transactions import Store, Tx, Writer

__all__ = ["StoredEvent", "append_event", "events_after", "last_event_seq", "mark_published"]

_EVENT_COLUMNS = (
    col(Event.account_id),
    col(Event.seq),
    col(Event.operation_id),
    col(Event.app_id),
    col(Event.type),
    col(Event.data),
    col(Event.created_at_ms),
)

_NEXT_SEQ = (
    update(Account)
    .where(col(Account.id) == bindparam("account_id"))
    .values(event_seq=col(Account.event_seq) + 1)
    .returning(col(Account.event_seq), col(Account.webhooks_version))
)
_INSERT = insert(Event.__table__)  # type: ignore[attr-defined]  # SQLModel declares no __table__
_MARK_PUBLISHED = (
    update(Event)
    .where(
        col(Event.account_id) == bindparam("event_account"),
        col(Event.seq) == bindparam("event_seq"),
        col(Event.published_at_ms).is_(None),
    )
    .values(published_at_ms=bindparam("now"))
)


async def append_event(
    tx: Tx,
    *,
    account_id: str,
    operation_id: str,
    app_id: str | None,
    type: str,
    data: dict[str, Any],
    request_webhook: bool = True,
    numbered: tuple[int, int] | None = None,
) -> StoredEvent:
    """Store one event inside the caller's transaction, taking the account's next sequence number.

    `request_webhook=False`: the operation has no per-request webhook to deliver it to.
    `numbered`: the caller already took the number, in a statement of its own on the account's row
    that also returned the account's `webhooks_version`: (seq, webhooks_version).
    """
    if numbered is None:
        row = await tx.first(_NEXT_SEQ, account_id=account_id)
        if row is None:
            raise LookupError(f"no account {account_id!r}")
        numbered = (row[0], row[1])
    seq, webhooks_version = numbered
    data_json = compact_json(data)
    created_at_ms = now_ms()
    await tx.execute(
        _INSERT,
        {
            "account_id": account_id,
            "seq": seq,
            "operation_id": operation_id,
            "app_id": app_id,
            "type": type,
            "data": data_json,
            "created_at_ms": created_at_ms,
            "published_at_ms": None,
        },
    )
    # Webhook deliveries commit with the event, so a stored event never lacks the deliveries it owes.
    deliveries = await record_deliveries(
        tx,
        account_id=account_id,
        seq=seq,
        operation_id=operation_id,
        app_id=app_id,
        type=type,
        data=data_json,
        created_at_ms=created_at_ms,
        webhooks_version=webhooks_version,
        request_webhook=request_webhook,
    )
    return StoredEvent(account_id, seq, operation_id, app_id, type, data_json, created_at_ms, deliveries)


async def mark_published(writer: Writer, event: StoredEvent) -> None:
    """Atomic by itself, so it needs no transaction: a lost mark only means the relay rings again."""
    await writer.execute(
        _MARK_PUBLISHED, {"event_account": event.account_id, "event_seq": event.seq, "now": now_ms()}
    )


async def latest_event_of_operation(store: Store, account_id: str, operation_id: str) -> StoredEvent | None:
    row = await store.first(
        select(*_EVENT_COLUMNS)
        .where(col(Event.account_id) == account_id, col(Event.operation_id) == operation_id)
        .order_by(col(Event.seq).desc())
        .limit(1)
    )
    return StoredEvent.from_row(row) if row else None


async def unpublished_events(store: Store, created_before_ms: int, limit: int = 500) -> list[StoredEvent]:
    rows = await store.all(
        select(*_EVENT_COLUMNS)
        .where(col(Event.published_at_ms).is_(None), col(Event.created_at_ms) < created_before_ms)
        .order_by(col(Event.created_at_ms))
        .limit(limit)
    )
    return [StoredEvent.from_row(r) for r in rows]


async def events_after(
    store: Store,
    account_id: str,
    after_seq: int,
    *,
    operation_id: str | None = None,
    app_id: str | None = None,
    limit: int = 500,
) -> list[StoredEvent]:
    """The account's events with seq > `after_seq`, oldest first, optionally of one operation or app."""
    query = select(*_EVENT_COLUMNS).where(col(Event.account_id) == account_id, col(Event.seq) > after_seq)
    if operation_id is not None:
        query = query.where(col(Event.operation_id) == operation_id)
    if app_id is not None:
        query = query.where(col(Event.app_id) == app_id)
    rows = await store.all(query.order_by(col(Event.seq)).limit(limit))
    return [StoredEvent.from_row(r) for r in rows]


async def last_event_seq(store: Store, account_id: str) -> int:
    """The highest seq stored for the account (0 if none); every lower seq is committed too."""
    seq = await store.scalar(select(col(Account.event_seq)).where(col(Account.id) == account_id))
    return int(seq or 0)
