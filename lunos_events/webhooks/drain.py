"""First attempts go out through drain jobs; later ones through one job per delivery.

An arq job costs several Redis round trips to claim, run and finish, which capped a worker at a
few hundred deliveries per second when every delivery was its own job. So a new delivery is sent
by a *drain* job that claims a batch of fresh deliveries in the database (a lease, so no two
drains send the same one) and sends them concurrently. Ownership is split cleanly:

- fresh (no attempt yet, never redelivered): owned by drains, claimed with `claimed_until_ms`;
- everything else (a retry, a redelivery): owned by its `deliver_webhook` job (see delivery.py).

Drain jobs are coalesced: every release in the same 200 ms window enqueues the same job id, and
that drain keeps claiming until the window (plus a margin) has passed, so a delivery committed
before its enqueue is always seen by the drain the enqueue pointed at. Anything else (a crash,
a lost job) is picked up by the relay once its lease has expired.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from lunos_events.bus.jobs import DRAIN_WEBHOOKS, drain_window
from lunos_events.bus.jobs import DRAIN_WINDOW_MS as WINDOW_MS
from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime
from lunos_events.services.webhook_fanout import FRESH_DELIVERY
from lunos_events.store.webhook_models import DELIVERY_PENDING, WebhookDelivery
from lunos_events.webhooks.delivery import Courier, attempt

log = logging.getLogger(__name__)

# Covers the time between a release reading the clock and the drain's last look (same host clocks).
MARGIN_MS = 300
CLAIM_BATCH = 100
IDLE_POLL_SECONDS = 0.02
LEASE_EXTRA_MS = 5000


async def claim_fresh(rt: Runtime, limit: int) -> list[str]:
    """Lease up to `limit` due fresh deliveries to this drain; returns their ids."""
    now = now_ms()
    claimable = (
        *FRESH_DELIVERY,
        col(WebhookDelivery.next_attempt_at_ms) <= now,
        col(WebhookDelivery.claimed_until_ms) < now,
    )
    async with rt.store.reading() as conn:
        # A read first: an idle drain must not take the database's write lock every few ms.
        ids = (
            (
                await conn.execute(
                    select(col(WebhookDelivery.id))
                    .where(*claimable)
                    .order_by(col(WebhookDelivery.next_attempt_at_ms))
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    if not ids:
        return []
    lease = now + int(rt.settings.webhook_timeout_seconds * 1000) + LEASE_EXTRA_MS
    async with rt.store.transaction() as conn:
        claimed = await conn.execute(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id).in_(ids), *claimable)
            .values(claimed_until_ms=lease)
            .returning(col(WebhookDelivery.id))
        )
        return list(claimed.scalars().all())


async def _send_first_attempt(rt: Runtime, courier: Courier, row: Any) -> None:
    try:
        delay = await attempt(rt, courier, row)
    except Exception:
        # The lease runs out and the relay hands the delivery to a new drain.
        log.exception("first attempt of %s failed", row.id)
        return
    if delay is not None:
        await rt.bus.enqueue_delivery(row.id, row.round, defer_seconds=delay)


async def drain(rt: Runtime, courier: Courier, window: int, max_inflight: int) -> int:
    """Send fresh deliveries until none is left and the window is over; returns how many."""
    deadline = (window + 1) * WINDOW_MS + MARGIN_MS
    # Stop claiming in time for the job's timeout; a follow-up drain takes over a backlog.
    stop_claiming = now_ms() + int(rt.settings.webhook_timeout_seconds * 1000)
    inflight: set[asyncio.Task[None]] = set()
    sent = 0
    backlog = False
    while True:
        started = now_ms()
        room = max_inflight - len(inflight)
        ids = await claim_fresh(rt, min(room, CLAIM_BATCH)) if room > 0 else []
        if ids:
            for row in await courier.loader.load_many(ids):
                if row is not None:
                    inflight.add(asyncio.create_task(_send_first_attempt(rt, courier, row)))
            sent += len(ids)
        elif room > 0 and started > deadline:
            break
        if started > stop_claiming:
            backlog = bool(ids)
            break
        if inflight and (room <= 0 or not ids):
            _, inflight = await asyncio.wait(
                inflight, timeout=IDLE_POLL_SECONDS, return_when="FIRST_COMPLETED"
            )
        elif not ids:
            await asyncio.sleep(IDLE_POLL_SECONDS)
    if inflight:
        await asyncio.wait(inflight)
    if backlog:
        await rt.bus.enqueue(DRAIN_WEBHOOKS, drain_window())
    return sent


async def relay_deliveries(rt: Runtime, grace_ms: int = 2000, limit: int = 500) -> int:
    """Queue overdue pending deliveries whose job was lost (a crash, Redis flushed).

    Fresh ones whose lease has run out get a drain; others get their own job again, a no-op
    while that job still exists (same job id).
    """
    now = now_ms()
    overdue = (
        col(WebhookDelivery.status) == DELIVERY_PENDING,
        col(WebhookDelivery.next_attempt_at_ms) < now - grace_ms,
    )
    async with rt.store.reading() as conn:
        stranded_fresh = (
            await conn.execute(
                select(col(WebhookDelivery.id))
                .where(*overdue, *FRESH_DELIVERY, col(WebhookDelivery.claimed_until_ms) < now)
                .limit(1)
            )
        ).first()
        retries = (
            await conn.execute(
                select(col(WebhookDelivery.id), col(WebhookDelivery.round))
                .where(*overdue, (col(WebhookDelivery.attempts) > 0) | (col(WebhookDelivery.round) > 0))
                .order_by(col(WebhookDelivery.next_attempt_at_ms))
                .limit(limit)
            )
        ).all()
    enqueued = 0
    if stranded_fresh is not None:
        await rt.bus.enqueue_drain()
        enqueued += 1
    for row in retries:
        enqueued += await rt.bus.enqueue_delivery(row.id, row.round)
    if enqueued:
        log.info("relay: queued %d webhook job(s)", enqueued)
    return enqueued
