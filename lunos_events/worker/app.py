"""The arq worker: job functions (thin, they take ids) and the Worker built from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from arq import Retry, cron, func
from arq.connections import ArqRedis
from arq.worker import Worker
from sqlalchemy import Row, select
from sqlmodel import col

from lunos_events.bus.jobs import TRACK_OPERATION, WATCH_QUEUED, tracking_job_id, watch_job_id
from lunos_events.ids import now_ms
from lunos_events.logs import operation_context
from lunos_events.runtime import Runtime
from lunos_events.services import idempotency, limits, retention
from lunos_events.store.models import ACTIVE_STATUSES, PENDING, Operation
from lunos_events.webhooks.jobs import (
    close_webhook_courier,
    open_webhook_courier,
    webhook_cron_jobs,
    webhook_functions,
)
from lunos_events.worker.dispatch import Dispatcher
from lunos_events.worker.tracking import seconds_to_deadline, track, watch_queued

log = logging.getLogger(__name__)

# Tracking retries are bounded by the operation deadline, not by a try count.
_UNBOUNDED_TRIES = 10**9
# Between restores of the counts kept in Redis while it keeps its data (the reconcile runs twice a
# minute).
RESTORE_COUNTS_SECONDS = 300.0
INPUTS_OF_EVERY_AGE_SECONDS = 7 * 24 * 3600.0


async def _step(
    ctx: dict[str, Any], operation_id: str, step: Callable[[Runtime, str], Awaitable[float | None]]
) -> None:
    """Run one step of an operation's job; again after the delay it returns (or after a poll
    interval, if it failed), never once it returns None."""
    rt: Runtime = ctx["rt"]
    with operation_context(operation_id):
        try:
            delay = await step(rt, operation_id)
        except Exception:
            log.exception("%s of %s failed; retrying", step.__name__, operation_id)
            delay = rt.settings.poll_interval_seconds
    if delay is not None:
        raise Retry(defer=delay)


async def track_operation(ctx: dict[str, Any], operation_id: str) -> None:
    await _step(ctx, operation_id, track)


async def watch_queued_operation(ctx: dict[str, Any], operation_id: str) -> None:
    await _step(ctx, operation_id, watch_queued)


async def relay_events(ctx: dict[str, Any]) -> int:
    rt: Runtime = ctx["rt"]
    return await rt.generations.outbox.relay_unpublished()


async def reconcile_operations(ctx: dict[str, Any]) -> int:
    """Make sure every active operation has its job: a tracking job, or a queued one's deadline
    watch (lost with a crash, a Redis restart that lost its last writes, or an empty Redis); and
    restore the counts kept in Redis.

    Every run reads the active operations and asks Redis which of their jobs exist (one ZMSCORE
    per thousand), so a lost job is queued again within half a minute. The counts are restored
    only when Redis has lost its data (or at start-up, on a new Redis) and otherwise at most every
    `RESTORE_COUNTS_SECONDS`: a restore re-adds the slot of an operation that ended after the read.
    """
    rt: Runtime = ctx["rt"]
    rows = await rt.store.all(
        select(
            col(Operation.id),
            col(Operation.account_id),
            col(Operation.deadline_at_ms),
            col(Operation.provider_credential),
            col(Operation.provider_model),
            col(Operation.status),
            col(Operation.queued_at_ms),
        ).where(col(Operation.status).in_(ACTIVE_STATUSES))
    )
    watched = {
        row.id
        for row in rows
        if row.status == PENDING and row.provider_credential is None and row.queued_at_ms is not None
    }
    job_ids = {(watch_job_id if row.id in watched else tracking_job_id)(row.id): row.id for row in rows}
    missing = [job_ids[job_id] for job_id in await rt.bus.missing_jobs(list(job_ids))]
    enqueued = 0
    for operation_id in missing:
        if operation_id not in watched:
            enqueued += await rt.bus.enqueue_tracking(operation_id)
    now = now_ms()
    for waiting in await _deadlines(rt, [op_id for op_id in missing if op_id in watched]):
        enqueued += await rt.bus.enqueue_watch(waiting.id, seconds_to_deadline(waiting, now))
    restored = 0
    if await rt.bus.take_turn("restore-counts", RESTORE_COUNTS_SECONDS):
        restored = await _restore_counts(rt, rows)
    if enqueued or restored:
        log.info(
            "reconcile: re-enqueued %d tracking or watch job(s), restored %d in-flight slot(s)",
            enqueued,
            restored,
        )
    return enqueued


async def _deadlines(rt: Runtime, operation_ids: list[str]) -> list[Operation]:
    """What a deadline watch needs of these operations (their start deadline is a parameter): read
    only for the watches that are missing, a thousand at a time."""
    found: list[Operation] = []
    for first in range(0, len(operation_ids), 1000):
        rows = await rt.store.all(
            select(
                col(Operation.id),
                col(Operation.created_at_ms),
                col(Operation.deadline_at_ms),
                col(Operation.parameters),
            ).where(col(Operation.id).in_(operation_ids[first : first + 1000]))
        )
        found += [Operation.model_construct(**row._asdict()) for row in rows]
    return found


async def _restore_counts(rt: Runtime, rows: Sequence[Row[Any]]) -> int:
    """The provider credentials' in-flight counts (per credential, and per model on it) and the
    accounts' in-flight slots of the tier limits; adding what is already there changes nothing."""
    by_account: dict[str, list[tuple[str, int]]] = {}
    by_credential: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for row in rows:
        by_account.setdefault(row.account_id, []).append((row.id, row.deadline_at_ms))
        if row.provider_credential is not None:
            slot = (row.provider_credential, row.provider_model)
            by_credential.setdefault(slot, []).append((row.id, row.deadline_at_ms))
    for (credential, model), operations in by_credential.items():
        await rt.bus.capacity.restore(credential, model, operations)
    restored = 0
    for account_id, operations in by_account.items():
        restored += await limits.restore_in_flight(rt.bus, account_id, operations)
    return restored


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Forget expired Idempotency-Keys (a repeat after expiry is a new request anyway)."""
    rt: Runtime = ctx["rt"]
    return await idempotency.purge_expired(rt.store)


async def prune_retention(ctx: dict[str, Any]) -> int:
    """Hourly: remove what the LUNOS_RETENTION_* and LUNOS_VIDEO_RETENTION_DAYS settings let go."""
    rt: Runtime = ctx["rt"]
    # Once a week it also looks for inputs of operations ended long ago (before an upgrade that
    # removes them at the end, or whose removals failed for a week): a read of every ended one.
    every_age = await rt.bus.take_turn("inputs-of-every-age", INPUTS_OF_EVERY_AGE_SECONDS)
    pruned = await retention.prune(rt.store, rt.storage, rt.settings, inputs_of_every_age=every_age)
    return pruned.deliveries + pruned.events + pruned.videos + pruned.inputs


async def _on_startup(ctx: dict[str, Any]) -> None:
    await open_webhook_courier(ctx)
    await reconcile_operations(ctx)
    ctx["dispatcher"] = asyncio.create_task(Dispatcher(ctx["rt"]).run(), name="dispatcher")


async def _on_shutdown(ctx: dict[str, Any]) -> None:
    dispatcher: asyncio.Task[None] | None = ctx.pop("dispatcher", None)
    if dispatcher is not None:
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
    await close_webhook_courier(ctx)


def build_worker(rt: Runtime, pool: ArqRedis) -> Worker:
    """A Worker that owns `pool` (it closes it) and shares the runtime's other resources."""
    settings = rt.settings
    return Worker(
        functions=[
            func(
                track_operation,
                name=TRACK_OPERATION,
                max_tries=_UNBOUNDED_TRIES,
                keep_result=0,
                timeout=settings.job_timeout_seconds,
            ),
            func(
                watch_queued_operation,
                name=WATCH_QUEUED,
                max_tries=_UNBOUNDED_TRIES,
                keep_result=0,
                timeout=settings.job_timeout_seconds,
            ),
            *webhook_functions(settings),
        ],
        cron_jobs=[
            cron(relay_events, second=set(range(0, 60, 5)), run_at_startup=True, unique=True),
            cron(reconcile_operations, second={7, 37}, unique=True),
            cron(purge_idempotency_keys, minute={17}, second={0}, unique=True),
            # Batched, each batch its own short transaction: no long lock (see services/retention.py).
            # No longer timeout than other jobs (arq would then keep a crashed worker's jobs locked
            # that long): a run cut short has committed its batches, and the next hour goes on.
            cron(prune_retention, minute={43}, second={0}, unique=True),
            *webhook_cron_jobs(),
        ],
        redis_pool=pool,
        queue_name=settings.queue_name,
        ctx={"rt": rt},
        on_startup=_on_startup,
        on_shutdown=_on_shutdown,
        max_jobs=settings.worker_max_jobs,
        # Also bounds how long a crashed worker's job stays locked before another worker re-runs it.
        job_timeout=settings.job_timeout_seconds,
        keep_result=0,
        # arq polls the queue (no blocking pop): this bounds the pick-up latency of every job, webhook
        # deliveries included, and at most max_jobs are taken per poll. An idle poll is one cheap call.
        poll_delay=0.05,
        handle_signals=False,
    )
