"""The event store: every status change, numbered per account, stored before it is published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from lunos_events.store.models import Account, Event
from lunos_events.db.writes import Tx
from lunos_events.ids import now_ms
from lunos_events.json_text import compact_json
from lunos_events.webhooks.fanout import record_deliveries


@dataclass(frozen=True)
class StoredEvent:
    account_id: str
    seq: int
    operation_id: str
    app_id: str | None
    type: str
    data: str  # JSON text of the status object
    created_at_ms: int
    # How many webhook deliveries storing it created; None when read back (not known).
    deliveries: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> StoredEvent:
        m = row._mapping
        return cls(
            account_id=m["account_id"],
            seq=m["seq"],
            operation_id=m["operation_id"],
            app_id=m["app_id"],
            type=m["type"],
            data=m["data"],
            created_at_ms=m["created_at_ms"],
        )


_EVENT_COLUMNS = (
    Event.account_id,
    Event.seq,
    Event.operation_id,
    Event.app_id,
    Event.type,
    Event.data,
    Event.created_at_ms,
)


_NEXT_SEQ = (
    update(Account)
    .where(Account.id == bindparam("account_id"))
    .values(event_seq=Account.event_seq + 1)
    .returning(Account.event_seq, Account.webhooks_version)
)
_INSERT = insert(Event.__table__)
_MARK_PUBLISHED = (
    update(Event)
    .where(
        Event.account_id == bindparam("event_account"),
        Event.seq == bindparam("event_seq"),
        Event.published_at_ms.is_(None),
    )
    .values(published_at_ms=bindparam("now"))
)


def append_event(
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
        numbered = tx.execute(_NEXT_SEQ, account_id=account_id).first()
        if numbered is None:
            raise LookupError(f"no account {account_id!r}")
    seq, webhooks_version = numbered
    data_json = compact_json(data)
    created_at_ms = now_ms()
    tx.execute(
        _INSERT,
        account_id=account_id,
        seq=seq,
        operation_id=operation_id,
        app_id=app_id,
        type=type,
        data=data_json,
        created_at_ms=created_at_ms,
        published_at_ms=None,
    )
    # Webhook deliveries commit with the event, so a stored event never lacks the deliveries it owes.
    deliveries = record_deliveries(
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


async def latest_event_of_operation(
    engine: AsyncEngine, account_id: str, operation_id: str
) -> StoredEvent | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(*_EVENT_COLUMNS)
                .where(Event.account_id == account_id, Event.operation_id == operation_id)
                .order_by(Event.seq.desc())
                .limit(1)
            )
        ).first()
    return StoredEvent.from_row(row) if row else None


async def unpublished_events(
    engine: AsyncEngine, created_before_ms: int, limit: int = 500
) -> list[StoredEvent]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(*_EVENT_COLUMNS)
                .where(Event.published_at_ms.is_(None), Event.created_at_ms < created_before_ms)
                .order_by(Event.created_at_ms)
                .limit(limit)
            )
        ).all()
    return [StoredEvent.from_row(r) for r in rows]


def mark_published(tx: Tx, event: StoredEvent) -> None:
    tx.execute(_MARK_PUBLISHED, event_account=event.account_id, event_seq=event.seq, now=now_ms())


async def events_after(
    engine: AsyncEngine,
    account_id: str,
    after_seq: int,
    *,
    operation_id: str | None = None,
    app_id: str | None = None,
    limit: int = 500,
) -> list[StoredEvent]:
    """The account's events with seq > `after_seq`, oldest first, optionally of one operation or app."""
    query = select(*_EVENT_COLUMNS).where(Event.account_id == account_id, Event.seq > after_seq)
    if operation_id is not None:
        query = query.where(Event.operation_id == operation_id)
    if app_id is not None:
        query = query.where(Event.app_id == app_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(Event.seq).limit(limit))).all()
    return [StoredEvent.from_row(r) for r in rows]


async def last_event_seq(engine: AsyncEngine, account_id: str) -> int:
    """The highest seq stored for the account (0 if none); every lower seq is committed too."""
    async with engine.connect() as conn:
        seq = (await conn.execute(select(Account.event_seq).where(Account.id == account_id))).scalar()
    return seq or 0
