"""Retention: the worker's hourly pruning of finished webhook deliveries (with their attempts),
of old events, (when LUNOS_VIDEO_RETENTION_DAYS is set) of old videos, and of media inputs an
operation's end failed to remove.

Every batch is found by a read outside any transaction, then removed by primary key in a short
transaction of its own: no long lock on either backend (SQLite has one writer at a time, so a long
delete would stall every submit). An event is removed once its operation ended
LUNOS_RETENTION_EVENTS_DAYS ago, except the operation's last event: a stream of that operation, or
a resume, still finds its final state (and so the account's last event is always kept too). The
account's `events_pruned_seq` records how far pruning went, so a stream resumed from an older
Last-Event-ID is told of the gap (streams/feed.py) instead of silently missing events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import aliased
from sqlmodel import col

from lunos_events.ids import now_ms
from lunos_events.services.deletion import delete_expired_videos
from lunos_events.services.input_store import INPUTS
from lunos_events.settings import Settings
from lunos_events.storage.base import VideoStorage
from lunos_events.store.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Account, Event, Operation
from lunos_events.store.transactions import Store
from lunos_events.store.webhook_models import DELIVERY_PENDING, WebhookAttempt, WebhookDelivery

log = logging.getLogger(__name__)

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
INPUTS_SWEEP_DAYS = 7


@dataclass
class Pruned:
    deliveries: int = 0
    events: int = 0
    videos: int = 0
    inputs: int = 0


def _cutoff(days: float, now: int) -> int | None:
    return None if days <= 0 else now - int(days * DAY_MS)


async def prune_webhook_deliveries(store: Store, before_ms: int, batch: int) -> int:
    """Remove delivered or failed deliveries created before `before_ms`, and their attempts."""
    total = 0
    while True:
        ids = [
            row.id
            for row in await store.all(
                select(col(WebhookDelivery.id))
                .where(
                    col(WebhookDelivery.created_at_ms) < before_ms,
                    col(WebhookDelivery.status) != DELIVERY_PENDING,
                )
                .limit(batch)
            )
        ]
        if not ids:
            return total
        async with store.transaction() as tx:
            # Guarded again: a redelivery may have made one pending since the read.
            removed = [
                row.id
                for row in (
                    await tx.execute(
                        delete(WebhookDelivery)
                        .where(
                            col(WebhookDelivery.id).in_(ids),
                            col(WebhookDelivery.status) != DELIVERY_PENDING,
                        )
                        .returning(col(WebhookDelivery.id))
                    )
                ).all()
            ]
            if removed:
                await tx.execute(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(removed)))
        total += len(removed)
        if len(ids) < batch:
            return total


_LATER = aliased(Event)


async def prune_events(store: Store, ended_before_ms: int, batch: int) -> int:
    """Remove events of operations that ended before `ended_before_ms`, but each one's last."""
    total = 0
    while True:
        later_event_of_same_operation = exists().where(
            col(_LATER.account_id) == col(Event.account_id),
            col(_LATER.operation_id) == col(Event.operation_id),
            col(_LATER.seq) > col(Event.seq),
        )
        rows = await store.all(
            select(col(Event.account_id), col(Event.seq))
            .join(Operation, col(Operation.id) == col(Event.operation_id))
            .where(
                col(Operation.status).not_in(ACTIVE_STATUSES),
                col(Operation.completed_at_ms) < ended_before_ms,
                col(Event.published_at_ms).is_not(None),
                later_event_of_same_operation,
            )
            .limit(batch)
        )
        if not rows:
            return total
        by_account: dict[str, list[int]] = {}
        for row in rows:
            by_account.setdefault(row.account_id, []).append(row.seq)
        async with store.transaction() as tx:
            for account_id, seqs in by_account.items():
                await tx.execute(
                    delete(Event).where(col(Event.account_id) == account_id, col(Event.seq).in_(seqs))
                )
                await tx.execute(
                    update(Account)
                    .where(col(Account.id) == account_id, col(Account.events_pruned_seq) < max(seqs))
                    .values(events_pruned_seq=max(seqs))
                )
        total += len(rows)
        if len(rows) < batch:
            return total


async def prune_ended_inputs(
    store: Store, storage: VideoStorage, now: int, batch: int, *, every_age: bool = False
) -> int:
    """Remove the stored media inputs that operations ended in the last week (but over an hour
    ago) still name, and the name. An operation's end removes them at once (services/lifecycle.py):
    this is for a removal that failed there, retried every hour for a week. `every_age`: whenever
    they ended (the worker does that once a week: it reads every ended operation)."""
    total = 0
    since = 0 if every_age else now - INPUTS_SWEEP_DAYS * DAY_MS
    while True:
        rows = await store.all(
            select(col(Operation.id), col(Operation.parameters))
            .where(
                col(Operation.completed_at_ms) >= since,
                col(Operation.completed_at_ms) < now - HOUR_MS,
                col(Operation.status).in_(TERMINAL_STATUSES),
                col(Operation.parameters)[INPUTS].as_string().is_not(None),
            )
            .limit(batch)
        )
        if not rows:
            return total
        for row in rows:
            await storage.delete(row.parameters[INPUTS])
        async with store.transaction() as tx:
            for row in rows:
                kept = {name: value for name, value in row.parameters.items() if name != INPUTS}
                await tx.execute(update(Operation).where(col(Operation.id) == row.id).values(parameters=kept))
        total += len(rows)
        if len(rows) < batch:
            return total


async def prune(
    store: Store, storage: VideoStorage, settings: Settings, *, inputs_of_every_age: bool = False
) -> Pruned:
    """One retention run, as the hourly cron job makes it."""
    now = now_ms()
    pruned = Pruned()
    batch = settings.retention_batch_size
    if (cutoff := _cutoff(settings.retention_webhook_days, now)) is not None:
        pruned.deliveries = await prune_webhook_deliveries(store, cutoff, batch)
    if (cutoff := _cutoff(settings.retention_events_days, now)) is not None:
        pruned.events = await prune_events(store, cutoff, batch)
    if (cutoff := _cutoff(settings.video_retention_days, now)) is not None:
        pruned.videos = await delete_expired_videos(store, storage, cutoff)
    pruned.inputs = await prune_ended_inputs(store, storage, now, batch, every_age=inputs_of_every_age)
    if pruned.deliveries or pruned.events or pruned.videos or pruned.inputs:
        log.info("retention: removed %s", pruned)
    return pruned


async def events_pruned_seq(store: Store, account_id: str) -> int:
    """How far retention removed the account's events (0: nothing removed)."""
    value = await store.scalar(select(col(Account.events_pruned_seq)).where(col(Account.id) == account_id))
    return int(value or 0)


__all__ = [
    "Pruned",
    "events_pruned_seq",
    "prune",
    "prune_ended_inputs",
    "prune_events",
    "prune_webhook_deliveries",
]
